"""What the operator gave is exit 2, what the network or server did is exit 3; never 70.

A fuzz over every setting (flags' environment twins, auth variables) and over
context files checks that no value reaches a library that then raises something
regctl did not translate (the bug exit 70): settings are resolved, the HTTP
request is built and sent (to a closed loopback port), the config commands run.
"""

from __future__ import annotations

import os

import httpx
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from regctl.errors import RegctlError
from tests.helpers import assert_one_line_error, run_cli

FUZZ = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
CLI_FUZZ = settings(max_examples=25, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

texts = st.text(max_size=30)
odd = st.sampled_from(["", " ", "\x00", "\r\n", "\u202e", "\u20ac", ":", "::", "a:b", "{", "[]", "{}", "null",
                       "1e400", "-1", "0", "nan", "inf", "yes", "digest", "digets:ops:pw", "digest:nocolon",
                       "X A: v", "X-A: caf\u00e9", "X-A:", '{"X A:": "v"}', '{"X": 1}', '{"X": [1]}', "\ud800"])
values = st.one_of(texts, odd)
hostish = st.sampled_from(["127.0.0.1:9", "127.0.0.1:9/chroot", "127.0.0.1:99999", "[::1]:9", "127.0.0.1:",
                           ":9", "a b:1", "127.0.0.1:9,", "127.0.0.1:x"])
urlish = st.sampled_from(["http://127.0.0.1:9", "http://u:p@127.0.0.1:9", "https://127.0.0.1:9", "ftp://x",
                          "http://", "http://127.0.0.1:9/pa th", "http://127.0.0.1:99999", "http://[::1", "x",
                          "http://127.0.0.1:9\u202e", "http://\u20ac.invalid:9", "http://127.0.0.1:9?q=1#f"])

ENV_KEYS = ["REGCTL_TIMEOUT", "REGCTL_OUTPUT", "REGCTL_HEADERS", "REGCTL_TOKEN", "REGCTL_ZK_AUTH",
            "REGCTL_INSECURE", "REGCTL_ZK_TLS", "ZOOKEEPER_BASE_PATH", "REGCTL_CA_BUNDLE"]
env_strategy = st.fixed_dictionaries(
    {"CONFIG_SERVICE_URL": urlish},
    optional={"ZOOKEEPER_HOSTS": hostish, **{k: values for k in ENV_KEYS}})

context_values = st.fixed_dictionaries({}, optional={
    "config_url": st.one_of(urlish, values, st.integers()),
    "zk_hosts": st.one_of(hostish, values),
    "zk_base": values,
    "timeout": st.one_of(st.integers(-5, 5000), st.floats(allow_nan=True), values),
    "headers": st.one_of(st.dictionaries(values, st.one_of(values, st.integers(), st.booleans(), st.none()),
                                         max_size=3), values),
    "token_env": values, "token_file": values, "ca_bundle": values,
    "insecure": st.one_of(st.booleans(), values),
    "zk_auth": st.one_of(st.fixed_dictionaries({"scheme": values, "credential": values}), values),
    "zk_tls": st.one_of(st.booleans(), values),
    "description": values,
    "bogus": values,
})


def clean_env(env: dict) -> dict:
    return {k: v for k, v in env.items() if "\x00" not in v and "\ud800" not in v}


@FUZZ
@given(env=env_strategy, ctx=context_values)
def test_resolving_and_sending_never_raises_an_untranslated_error(env, ctx):
    from regctl import contexts
    from regctl.http.api import RegistryApi
    from regctl.settings import resolve

    try:
        clean = contexts.validate_context(ctx, "fuzz")
        values = contexts.settings_values(clean, env)
        s = resolve({}, env=env, context=values)
    except (RegctlError, contexts._KeyProblem):
        return
    with RegistryApi(s.endpoint.config_url, timeout=0.3, headers=s.endpoint.headers, verify=s.endpoint.verify) as api:
        try:
            api.list_services()
        except RegctlError:
            pass


def write_context_file(tmp_path, ctx) -> str:
    path = tmp_path / "fuzz-config.yaml"
    try:
        text = yaml.safe_dump({"current-context": "f", "contexts": {"f": ctx}}, allow_unicode=True)
    except yaml.YAMLError:
        text = "current-context: f\ncontexts: {f: {}}\n"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    os.chmod(path, 0o600)
    return str(path)


@CLI_FUZZ
@given(env=env_strategy, ctx=context_values)
def test_no_setting_or_context_makes_a_command_exit_70(tmp_path, env, ctx):
    env = {**clean_env(env), "REGCTL_CONFIG": write_context_file(tmp_path, ctx)}
    env.pop("ZOOKEEPER_HOSTS", None)  # a real connection attempt per example would be slow
    for args in (["list", "--source", "api", "--timeout", "0.5"], ["config", "view"], ["config", "get-contexts"],
                 ["inspect", "svc", "-o", "json", "--timeout", "0.5"]):
        res = run_cli(*args, env=env)
        assert res.exit_code in (0, 1, 2, 3), (args, env, ctx, res)
        assert "internal error" not in res.stderr, (args, env, ctx, res)


# --------------------------------------------------------------------------- the named cases

def test_an_unknown_zookeeper_auth_scheme_is_exit_2(zk_server):
    res = run_cli("list", "--source", "zk", env={"ZOOKEEPER_HOSTS": zk_server.hosts,
                                                 "REGCTL_ZK_AUTH": "digets:ops:pw"})
    line = assert_one_line_error(res, 2)
    assert "REGCTL_ZK_AUTH" in line and "pw" not in line.replace("ops:pw", "")


def test_a_context_header_name_http_cannot_send_is_a_config_error(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text('current-context: c\ncontexts:\n  c:\n    config_url: http://127.0.0.1:9\n'
                    '    headers: {"X A:": v}\n')
    os.chmod(path, 0o600)
    line = assert_one_line_error(run_cli("list", "--source", "api", env={"REGCTL_CONFIG": str(path)}), 2)
    assert str(path) in line and "line 5" in line


@pytest.mark.parametrize("header", ["X-A: caf\u00e9", "X-A: a\u202eb", "X A: v"])
def test_a_header_http_cannot_send_is_exit_2_from_every_source(tmp_path, header):
    assert_one_line_error(run_cli("list", "-H", header, env={"CONFIG_SERVICE_URL": "http://127.0.0.1:9"}), 2)
    assert_one_line_error(run_cli("list", env={"CONFIG_SERVICE_URL": "http://127.0.0.1:9",
                                               "REGCTL_HEADERS": header}), 2)


def test_a_server_that_breaks_http_is_exit_3():
    import socket
    import threading

    sock = socket.create_server(("127.0.0.1", 0))

    def serve():
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Encoding: zz\r\nContent-Length: 2\r\n\r\n[]")

    threading.Thread(target=serve, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        assert_one_line_error(run_cli("list", "--source", "api", env={"CONFIG_SERVICE_URL": url}), 3)
    finally:
        sock.close()
    with httpx.Client() as _:
        pass


def test_a_file_name_with_a_nul_character_is_a_usage_error_not_a_crash(tmp_path):
    from tests.helpers import assert_one_line_error, run_cli

    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("current-context: x\ncontexts:\n  x:\n    config_url: http://127.0.0.1:9\n    token_file: \"a\\0b\"\n")
    for r in (run_cli("list", "--token-file", "a\x00b", "--config-url", "http://127.0.0.1:9"),
              run_cli("list", env={"REGCTL_CONFIG": str(cfg)})):
        line = assert_one_line_error(r, 2)
        assert "NUL" in line
