"""Auth/TLS settings: header merging, token sources, TLS and ZooKeeper option plumbing, redaction."""

from __future__ import annotations

import logging

import pytest

from regctl import redaction
from regctl.errors import UsageError
from regctl.settings import parse_headers_env, resolve

SECRET = "tok-3c9d1e-SECRET"


def test_headers_merge_context_then_env_then_flags_by_name():
    ctx = {"headers": {"X-Team": "ops", "X-Env": "ctx", "Authorization": "Bearer ctx"}}
    env = {"REGCTL_HEADERS": "x-env: env\nX-Only-Env: 1"}
    s = resolve({"headers": ["X-ENV: flag"]}, env=env, context=ctx)
    assert s.endpoint.headers == {"X-Team": "ops", "Authorization": "Bearer ctx", "X-Only-Env": "1", "X-ENV": "flag"}
    assert s.sources["headers"] == "flag"
    assert resolve({}, env={}, context={}).sources["headers"] == "default"


def test_token_sources_and_precedence(tmp_path):
    f = tmp_path / "t"
    f.write_text(f"  {SECRET}\n")
    ctx = {"headers": {"Authorization": "Bearer from-context"}}
    assert resolve({}, env={}, context=ctx).endpoint.headers["Authorization"] == "Bearer from-context"
    assert resolve({}, env={"REGCTL_TOKEN": "e"}, context=ctx).endpoint.headers["Authorization"] == "Bearer e"
    s = resolve({"token_file": str(f)}, env={"REGCTL_TOKEN": "e"}, context=ctx)
    assert s.endpoint.headers["Authorization"] == f"Bearer {SECRET}"


def test_token_and_header_in_one_layer_conflict(tmp_path):
    f = tmp_path / "t"
    f.write_text(SECRET)
    with pytest.raises(UsageError) as exc:
        resolve({"token_file": str(f), "headers": ["Authorization: Basic x"]}, env={})
    assert SECRET not in str(exc.value)
    with pytest.raises(UsageError):
        resolve({}, env={"REGCTL_TOKEN": SECRET, "REGCTL_HEADERS": "Authorization: Bearer x"})


@pytest.mark.parametrize("text,expected", [
    ('{"Authorization": "Bearer a", "X-N": 3}', {"Authorization": "Bearer a", "X-N": "3"}),
    ("A: 1\n\n# comment\nB: two words\n", {"A": "1", "B": "two words"}),
    ("a: 1\nA: 2", {"A": "2"}),
    ("", {}),
])
def test_regctl_headers_formats(text, expected):
    assert parse_headers_env(text) == expected


@pytest.mark.parametrize("text", ['{"A": ', '["x"]', '{"A": true}', "no colon here", ": novalue-name", "A:"])
def test_bad_regctl_headers_are_usage_errors_naming_the_variable(text):
    with pytest.raises(UsageError) as exc:
        parse_headers_env(text)
    assert "REGCTL_HEADERS" in str(exc.value)


def test_bad_header_flag_never_repeats_the_value():
    with pytest.raises(UsageError) as exc:
        resolve({"headers": [f"Authorization Bearer {SECRET}"]}, env={})
    assert SECRET not in str(exc.value) and "--header" in str(exc.value)


def test_tls_precedence_and_the_insecure_warning(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    assert resolve({}, env={}).endpoint.verify is True and not resolve({}, env={}).warnings
    s = resolve({"ca_bundle": str(ca)}, env={"REGCTL_INSECURE": "1"}, context={"verify": False})
    assert s.endpoint.verify == str(ca) and not s.warnings
    s = resolve({}, env={"REGCTL_INSECURE": "1"}, context={"verify": str(ca)})
    assert s.endpoint.verify is False and s.sources["verify"] == "REGCTL_INSECURE"
    assert any("TLS certificate verification is OFF for http://config-service:8082" in w for w in s.warnings)
    s = resolve({}, env={"REGCTL_CA_BUNDLE": str(ca)}, context={"verify": False})
    assert s.endpoint.verify == str(ca)
    s = resolve({"config_url": "https://gw.example"}, env={}, context={"verify": False})
    assert s.endpoint.verify is False and s.warnings[0].startswith("TLS certificate verification is OFF for https://gw.example")
    with pytest.raises(UsageError):
        resolve({}, env={"REGCTL_INSECURE": "maybe"})
    with pytest.raises(UsageError):
        resolve({"ca_bundle": str(tmp_path / "missing.pem")}, env={})


def test_zk_auth_sources(tmp_path):
    f = tmp_path / "zkauth"
    f.write_text("digest:file:pw1\n")
    ctx = {"zk_auth_data": [("digest", "ctx:pw0")]}
    assert resolve({}, env={}, context=ctx).endpoint.zk_auth_data == [("digest", "ctx:pw0")]
    assert resolve({}, env={"REGCTL_ZK_AUTH": "digest:env:pw2"}, context=ctx).endpoint.zk_auth_data == [("digest", "env:pw2")]
    s = resolve({"zk_auth_file": str(f)}, env={"REGCTL_ZK_AUTH": "digest:env:pw2"}, context=ctx)
    assert s.endpoint.zk_auth_data == [("digest", "file:pw1")] and s.sources["zk_auth"] == "flag"
    assert "pw1" not in repr(s) and "digest:***" in repr(s)


def test_zk_tls_options_reach_the_reader(tmp_path):
    from regctl.zookeeper.reader import ZkReader

    for name in ("ca.pem", "c.pem", "k.pem"):
        (tmp_path / name).write_text("x")
    s = resolve({"zk_ca": str(tmp_path / "ca.pem"), "zk_cert": str(tmp_path / "c.pem"),
                 "zk_key": str(tmp_path / "k.pem")}, env={})
    assert s.endpoint.zk_client_kwargs == {"ca": str(tmp_path / "ca.pem"), "certfile": str(tmp_path / "c.pem"),
                                  "keyfile": str(tmp_path / "k.pem"), "use_ssl": True, "verify_certs": True}
    reader = ZkReader("127.0.0.1:1", "/services", **s.endpoint.zk_options())
    assert reader._kwargs["use_ssl"] is True and reader._kwargs["ca"].endswith("ca.pem")
    assert resolve({}, env={"REGCTL_ZK_TLS": "1"}).endpoint.zk_client_kwargs == {"use_ssl": True, "verify_certs": True}
    assert resolve({}, env={}).endpoint.zk_client_kwargs == {}
    insecure = resolve({"zk_tls": True, "insecure": True}, env={})
    assert insecure.endpoint.zk_client_kwargs["verify_certs"] is False
    assert any("ZooKeeper" in w for w in insecure.warnings)
    with pytest.raises(UsageError):
        resolve({"zk_cert": str(tmp_path / "c.pem")}, env={})
    ctx = {"zk_client_kwargs": {"use_ssl": True, "ca": "/ctx/ca.pem"}}
    assert resolve({}, env={}, context=ctx).endpoint.zk_client_kwargs["ca"] == "/ctx/ca.pem"


def test_context_zk_tls_keys(tmp_path):
    from regctl import contexts

    (tmp_path / "ca.pem").write_text("x")
    vals = contexts.settings_values({"zk_ca": str(tmp_path / "ca.pem")}, {})
    assert vals["zk_client_kwargs"] == {"use_ssl": True, "ca": str(tmp_path / "ca.pem")}
    assert contexts.settings_values({"zk_tls": True}, {})["zk_client_kwargs"] == {"use_ssl": True}
    with pytest.raises(UsageError):
        contexts.settings_values({"zk_cert": str(tmp_path / "missing.pem")}, {})


def test_settings_repr_and_redacted_view_hold_no_secret(tmp_path):
    s = resolve({"headers": [f"X-Api-Key: {SECRET}", "X-Team: ops"]},
                env={"REGCTL_TOKEN": SECRET + "2", "REGCTL_ZK_AUTH": f"digest:u:{SECRET}3"})
    text = repr(s) + str(s.redacted())
    assert SECRET not in text and "'X-Team': '***'" in text  # every header value is masked
    assert {SECRET, SECRET + "2", f"u:{SECRET}3", f"{SECRET}3"} <= set(s.secret_values())


def test_redacting_formatter_masks_registered_and_shaped_secrets():
    redaction.clear_secrets()
    redaction.add_secrets([SECRET, "", None, "ab"])
    fmt = redaction.RedactingFormatter("%(message)s")

    def out(msg, *args):
        return fmt.format(logging.LogRecord("x", logging.DEBUG, __file__, 1, msg, args, None))

    try:
        assert SECRET not in out("token %s in text", SECRET)
        assert out("Authorization: Bearer abc.def") == "Authorization: ***"
        assert "zzz-unregistered" not in out("[(b'authorization', b'Bearer zzz-unregistered')]")
        assert "ab" in out("ab cd")  # too short to be registered
        assert out("nothing secret here") == "nothing secret here"
    finally:
        redaction.clear_secrets()


def test_shared_option_clashing_with_a_command_parameter_is_left_out():
    import inspect

    from regctl.cli.options import with_common_options

    def fn(rc, header: list | None = None) -> None:  # like config set-context --header
        pass

    w = with_common_options(fn, lambda f, common, kwargs: (common, kwargs))
    names = list(inspect.signature(w).parameters)
    assert names.count("header") == 1 and "token_file" in names
    common, kwargs = w(header=["A: b"], token_file=None)
    assert kwargs == {"header": ["A: b"]} and "header" not in common
