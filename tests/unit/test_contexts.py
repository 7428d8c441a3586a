"""The config file with contexts: location, validation with line numbers, atomic 0600 writes,
redaction, selection precedence and the translation into settings."""

import os
import stat
from pathlib import Path

import pytest

from regctl import contexts
from regctl.errors import UsageError
from regctl.settings import resolve

GOOD = """\
current-context: dev
contexts:
  dev:
    config_url: http://dev:8082
    zk_hosts: devzk:2181
    zk_base: /dev
    timeout: 3
    headers: {X-Team: ops}
  prod:
    config_url: https://gw.example.com
    headers:
      Authorization: Bearer s3cret
    zk_auth: {scheme: digest, credential: "user:pa55"}
"""


def write(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


# --------------------------------------------------------------------------- location

def test_config_path_precedence(tmp_path):
    assert contexts.config_path({"REGCTL_CONFIG": str(tmp_path / "x.yaml"), "XDG_CONFIG_HOME": "/nope"}) \
        == tmp_path / "x.yaml"
    assert contexts.config_path({"XDG_CONFIG_HOME": str(tmp_path)}) == tmp_path / "regctl" / "config.yaml"
    assert contexts.config_path({}) == Path.home() / ".config" / "regctl" / "config.yaml"


def test_missing_file_is_an_empty_config(tmp_path):
    cfg = contexts.load(tmp_path / "absent.yaml")
    assert cfg.contexts == {} and cfg.current is None and not cfg.exists


# --------------------------------------------------------------------------- validation

def test_parse_good_file(tmp_path):
    cfg = contexts.load(write(tmp_path / "c.yaml", GOOD))
    assert cfg.current == "dev" and set(cfg.contexts) == {"dev", "prod"}
    assert cfg.contexts["dev"]["timeout"] == 3 and cfg.contexts["dev"]["headers"] == {"X-Team": "ops"}


@pytest.mark.parametrize("text,line,words", [
    ("contexts:\n  dev:\n    config_url: http://x\n    zk_host: y\n", 4, ["'zk_host'", "context 'dev'"]),
    ("contexts:\n  dev:\n    timeout: soon\n", 3, ["timeout", "number"]),
    ("contexts:\n  dev:\n    insecure: yes please\n", 3, ["insecure"]),
    ("current-context: dev\ncolour: blue\n", 2, ["'colour'"]),
    ("contexts:\n  dev:\n    zk_auth: {scheme: digest, cred: x}\n", 3, ["'cred'", "zk_auth"]),
    ("contexts:\n  dev: [\n", 3, ["invalid YAML"]),
    ("contexts:\n  dev:\n    config_url: http://x\n   bad indent: 1\n", 4, ["invalid YAML"]),
])
def test_errors_name_file_line_and_key(tmp_path, text, line, words):
    path = write(tmp_path / "c.yaml", text)
    with pytest.raises(UsageError) as exc:
        contexts.load(path)
    msg = str(exc.value)
    assert str(path) in msg and f"line {line}" in msg, msg
    for w in words:
        assert w in msg, msg
    assert "\n" not in msg


def test_unsupported_version(tmp_path):
    with pytest.raises(UsageError, match="version 7"):
        contexts.load(write(tmp_path / "c.yaml", "version: 7\ncontexts: {}\n"))


# --------------------------------------------------------------------------- writing

def test_save_is_atomic_0600_and_round_trips(tmp_path):
    path = tmp_path / "dir" / "config.yaml"
    cfg = contexts.load(path)
    contexts.set_context(cfg, "dev", {"config_url": "http://dev:8082", "timeout": 2},
                         headers={"Authorization": "Bearer t"})
    contexts.use_context(cfg, "dev")
    contexts.save(cfg)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["config.yaml"]  # no temporary file left
    again = contexts.load(path)
    assert again.current == "dev" and again.contexts["dev"]["headers"] == {"Authorization": "Bearer t"}


def test_save_replaces_a_world_readable_file_with_0600(tmp_path):
    path = write(tmp_path / "c.yaml", GOOD, 0o644)
    ino = path.stat().st_ino
    cfg = contexts.load(path)
    contexts.save(cfg)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.stat().st_ino != ino  # renamed into place, not rewritten


def test_set_context_merges_unsets_and_removes_headers(tmp_path):
    cfg = contexts.load(write(tmp_path / "c.yaml", GOOD))
    contexts.set_context(cfg, "dev", {"timeout": 9}, unset=("zk_hosts",), headers={"x-team": None, "X-A": "1"})
    dev = cfg.contexts["dev"]
    assert dev["timeout"] == 9 and "zk_hosts" not in dev and dev["headers"] == {"X-A": "1"}
    assert dev["config_url"] == "http://dev:8082"
    with pytest.raises(UsageError):
        contexts.set_context(cfg, "dev", {}, unset=("nonsense",))


def test_delete_current_context_unsets_it(tmp_path):
    cfg = contexts.load(write(tmp_path / "c.yaml", GOOD))
    assert contexts.delete_context(cfg, "dev") is True and cfg.current is None
    with pytest.raises(UsageError, match="not defined"):
        contexts.delete_context(cfg, "dev")


@pytest.mark.parametrize("text,expected", [
    ("X-Team: ops", ("X-Team", "ops")), ("Authorization:Bearer a:b", ("Authorization", "Bearer a:b")),
    ("X-Team-", ("X-Team", None)), ("X-Team:", ("X-Team", None)),
])
def test_parse_header(text, expected):
    assert contexts.parse_header(text) == expected


def test_parse_header_rejects_garbage():
    with pytest.raises(UsageError):
        contexts.parse_header("no colon here")


# --------------------------------------------------------------------------- secrets

def test_redact_hides_every_secret_and_keeps_the_rest(tmp_path):
    cfg = contexts.load(write(tmp_path / "c.yaml", GOOD))
    cfg.contexts["dev"]["headers"]["X-Api-Key"] = "k3y"
    cfg.contexts["dev"]["token_file"] = "/etc/token"
    red = contexts.redact(cfg.to_dict())
    text = repr(red)
    for secret in ("s3cret", "pa55", "k3y"):
        assert secret not in text
    assert red["contexts"]["prod"]["zk_auth"] == {"scheme": "digest", "credential": "***"}
    assert red["contexts"]["dev"]["headers"]["X-Team"] == "***"  # every header value: a gateway decides what is secret
    assert red["contexts"]["dev"]["token_file"] == "/etc/token"


def test_permission_warning_only_for_readable_files_holding_secrets(tmp_path):
    path = write(tmp_path / "c.yaml", GOOD, 0o644)
    warnings = contexts.permission_warnings(contexts.load(path))
    assert len(warnings) == 1 and "chmod 600" in warnings[0] and str(path) in warnings[0]
    path.chmod(0o600)
    assert contexts.permission_warnings(contexts.load(path)) == []
    path = write(tmp_path / "plain.yaml", "contexts:\n  a: {config_url: 'http://a:1'}\n", 0o644)
    assert contexts.permission_warnings(contexts.load(path)) == []


def test_permission_warning_for_token_file(tmp_path):
    token = write(tmp_path / "token", "abc\n", 0o640)
    path = write(tmp_path / "c.yaml", f"contexts:\n  a: {{token_file: '{token}'}}\n")
    warnings = contexts.permission_warnings(contexts.load(path))
    assert len(warnings) == 1 and "token_file" in warnings[0] and "group" in warnings[0]


# --------------------------------------------------------------------------- selection and settings

def test_select_precedence(tmp_path):
    cfg = contexts.load(write(tmp_path / "c.yaml", GOOD))
    assert contexts.select("prod", {"REGCTL_CONTEXT": "dev"}, cfg) == ("prod", "--context")
    assert contexts.select(None, {"REGCTL_CONTEXT": "prod"}, cfg) == ("prod", "REGCTL_CONTEXT")
    assert contexts.select(None, {}, cfg) == ("dev", "current-context")
    cfg.current = None
    assert contexts.select(None, {}, cfg) == (None, None)


def test_load_selected_unknown_context_names_its_origin(tmp_path):
    path = write(tmp_path / "c.yaml", GOOD)
    with pytest.raises(UsageError) as exc:
        contexts.load_selected(None, {"REGCTL_CONTEXT": "staging"}, path)
    assert "staging" in str(exc.value) and "REGCTL_CONTEXT" in str(exc.value) and "dev, prod" in str(exc.value)


def test_settings_values_tokens_tls_and_zk_auth(tmp_path):
    token = write(tmp_path / "token", "file-token\n")
    ca = write(tmp_path / "ca.pem", "pem")
    vals = contexts.settings_values({"token_file": str(token), "ca_bundle": str(ca),
                                     "zk_auth": {"scheme": "digest", "credential": "u:p"}}, {})
    assert vals["headers"] == {"Authorization": "Bearer file-token"}
    assert vals["verify"] == str(ca) and vals["zk_auth_data"] == [("digest", "u:p")]
    vals = contexts.settings_values({"token_env": "MY_TOKEN", "insecure": True}, {"MY_TOKEN": "env-token"})
    assert vals["headers"]["Authorization"] == "Bearer env-token" and vals["verify"] is False
    # an explicit Authorization header wins over token_file/token_env
    vals = contexts.settings_values({"headers": {"authorization": "Basic x"}, "token_env": "MY_TOKEN"}, {})
    assert vals["headers"] == {"authorization": "Basic x"}
    with pytest.raises(UsageError, match="MY_TOKEN"):
        contexts.settings_values({"token_env": "MY_TOKEN"}, {})
    with pytest.raises(UsageError, match="ca_bundle"):
        contexts.settings_values({"ca_bundle": str(tmp_path / "absent.pem")}, {})


def test_precedence_flag_env_context_default(tmp_path):
    """flag > environment > context > default, through the real loading path."""
    path = write(tmp_path / "c.yaml", GOOD)
    name, values, _ = contexts.load_selected(None, {}, path)
    env = {"ZOOKEEPER_HOSTS": "envzk:2181"}
    s = resolve({"timeout": 7}, env=env, context=values, context_name=name)
    assert (s.endpoint.timeout, s.sources["timeout"]) == (7.0, "flag")
    assert (s.endpoint.zk_hosts, s.sources["zk_hosts"]) == ("envzk:2181", "env")
    assert (s.endpoint.config_url, s.sources["config_url"]) == ("http://dev:8082", "context")
    assert (s.output, s.sources["output"]) == ("table", "default")
    assert s.context == "dev" and s.endpoint.headers == {"X-Team": "ops"}
    assert "context 'dev'" in s.describe("config_url")


def test_context_values_are_validated_by_resolve_with_the_context_named(tmp_path):
    path = write(tmp_path / "c.yaml", "contexts:\n  bad: {config_url: 'config-service:8082'}\n")
    name, values, _ = contexts.load_selected("bad", {}, path)
    with pytest.raises(UsageError, match="context 'bad'"):
        resolve({}, env={}, context=values, context_name=name)


def test_no_file_no_context(tmp_path):
    assert contexts.load_selected(None, {}, tmp_path / "absent.yaml") == (None, {}, [])
    with pytest.raises(UsageError):
        contexts.load_selected("dev", {}, tmp_path / "absent.yaml")
    assert not os.path.exists(tmp_path / "absent.yaml")
