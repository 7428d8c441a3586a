"""Credentials stay with their host, and no known secret is ever printed.

Real servers on loopback: a recording HTTP server (a redirect target, a proxy, a
gateway whose 401 echoes the token), the sandbox registry, real ZooKeeper.
"""

from __future__ import annotations

import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import yaml

from tests.helpers import run_cli

TOKEN = "tok-9f8e7d6c5b4a"
PASSWORD = "Pw-u8y7t6r5e4"
ZK_PW = "zkpw-3e4r5t6y"


class Recorder:
    """A tiny HTTP server: records every request (path, headers) and answers ``answer(handler)``."""

    def __init__(self, answer) -> None:
        self.requests: list = []
        rec = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _any(self):
                rec.requests.append({"path": self.path, "headers": dict(self.headers)})
                status, headers, body = answer(self)
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _any

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def recorder():
    made = []

    def make(answer):
        r = Recorder(answer)
        made.append(r)
        return r

    yield make
    for r in made:
        r.close()


def names_answer(_h):
    return 200, {"Content-Type": "application/json"}, json.dumps([{"service_name": "via-proxy"}]).encode()


# --------------------------------------------------------------------------- one HTTP configuration

def completion_lookup(env: dict) -> list:
    """What shell completion's name lookup returns with ``env`` (its settings from the environment)."""
    from regctl.cli.completion.lookup import _from_api
    from regctl.settings import resolve

    old = dict(os.environ)
    try:
        os.environ.update(env)
        try:
            return _from_api(resolve({}, env=env), None, 3.0)
        except Exception:  # any failure: completion shows nothing (lookup() catches it too)
            return []
    finally:
        os.environ.clear()
        os.environ.update(old)


def test_neither_completion_nor_commands_follow_a_redirect_with_credentials(recorder):
    elsewhere = recorder(names_answer)
    hop = recorder(lambda h: (302, {"Location": elsewhere.url + h.path}, b""))
    env = {"CONFIG_SERVICE_URL": hop.url, "REGCTL_TOKEN": TOKEN, "REGCTL_HEADERS": "X-Gateway-Key: gw-secret-1"}
    assert completion_lookup(env) == []
    res = run_cli("list", "--source", "api", env=env)
    assert res.exit_code == 3, res
    assert hop.requests and hop.requests[0]["headers"].get("Authorization") == f"Bearer {TOKEN}"
    assert elsewhere.requests == [], "credentials were forwarded to another host"


def test_completion_and_commands_honour_the_same_proxy(recorder, monkeypatch):
    proxy = recorder(names_answer)
    env = {"CONFIG_SERVICE_URL": "http://registry.invalid:8082", "HTTP_PROXY": proxy.url, "NO_PROXY": ""}
    monkeypatch.delenv("http_proxy", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    assert completion_lookup(env) == ["via-proxy"]
    res = run_cli("list", "--source", "api", "-o", "json", env=env)
    assert "via-proxy" in res.stdout, res
    assert all(r["path"].startswith("http://registry.invalid:8082/") for r in proxy.requests), proxy.requests
    assert len(proxy.requests) >= 2  # one from completion, at least one from the command
    proxy.requests.clear()
    env["NO_PROXY"] = "registry.invalid"
    assert completion_lookup(env) == []
    assert run_cli("list", "--source", "api", env=env).exit_code == 3
    assert proxy.requests == []


# --------------------------------------------------------------------------- masking and redaction

def test_a_url_password_is_masked_everywhere_it_is_printed(tmp_path):
    url = f"http://admin:{PASSWORD}@127.0.0.1:9"
    outputs = [run_cli("--config-url", url, "list", "--source", "api", *extra)
               for extra in ([], ["-o", "json"], ["-o", "yaml"], ["-vv"])]
    outputs.append(run_cli("--config-url", url, "doctor", "config", "-o", "json", "--timeout", "1"))
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump({"contexts": {"prod": {"config_url": url}}, "current-context": "prod"}))
    os.chmod(cfg, 0o600)
    env = {"REGCTL_CONFIG": str(cfg)}
    for args in (["config", "view"], ["config", "view", "-o", "json"], ["config", "get-contexts"],
                 ["config", "get-contexts", "-o", "wide"], ["config", "get-contexts", "-o", "json"],
                 ["list", "--source", "api", "-vv"]):
        outputs.append(run_cli(*args, env=env))
    for res in outputs:
        assert PASSWORD not in res.stdout + res.stderr, res
    assert any("admin:***@" in r.stdout + r.stderr for r in outputs)
    raw = run_cli("config", "view", "--raw", env=env)
    assert PASSWORD in raw.stdout  # the operator asked for it


def test_server_text_echoing_the_token_is_redacted(recorder):
    gw = recorder(lambda h: (401, {"Content-Type": "application/json"},
                             json.dumps({"detail": f"token {h.headers.get('Authorization')} is not valid; "
                                                   f"key {h.headers.get('X-Api-Secret')}"}).encode()))
    env = {"CONFIG_SERVICE_URL": gw.url, "REGCTL_TOKEN": TOKEN, "REGCTL_HEADERS": "X-Api-Secret: sk-abcdef123456"}
    for extra in ([], ["-o", "json"], ["-o", "yaml"], ["-vv"]):
        res = run_cli("list", "--source", "api", *extra, env=env)
        assert res.exit_code == 3, res
        text = res.stdout + res.stderr
        assert TOKEN not in text and "sk-abcdef123456" not in text, res
        assert "is not valid" in text or "401" in text


def test_registry_data_holding_a_known_secret_is_redacted(registry, kazoo_client):
    node = {"instance_id": "leak-1", "service_url": f"http://u:{PASSWORD}@leak:1",
            "status": "healthy", "service_metadata": {"note": f"zk {ZK_PW} tok {TOKEN}"}}
    kazoo_client.create(f"{registry.base_path}/leak/instances/leak-1", json.dumps(node).encode(), makepath=True,
                        ephemeral=True)
    env = {**registry.env, "REGCTL_TOKEN": TOKEN, "REGCTL_ZK_AUTH": f"digest:ops:{ZK_PW}"}
    for fmt in ("table", "wide", "json", "yaml"):
        res = run_cli("inspect", "leak", "--source", "zk", "-o", fmt, env=env)
        assert res.exit_code == 0, res
        text = res.stdout + res.stderr
        assert PASSWORD not in text and ZK_PW not in text and TOKEN not in text, res
        assert "leak-1" in text


def test_config_view_masks_every_header_value_unless_raw(tmp_path):
    headers = {"X-Custom-Pass": "p-111", "Signature": "sig-222", "X-Team": "ops", "Authorization": "Bearer b-333"}
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump({"contexts": {"gw": {"config_url": "http://gw:1", "headers": headers,
                                                        "zk_auth": {"scheme": "digest",
                                                                    "credential": f"ops:{ZK_PW}"}}}}))
    os.chmod(cfg, 0o600)
    env = {"REGCTL_CONFIG": str(cfg)}
    for fmt in ("table", "json", "yaml"):
        res = run_cli("config", "view", "-o", fmt, env=env)
        assert res.exit_code == 0, res
        for v in ("p-111", "sig-222", "ops", "b-333", ZK_PW):
            assert v not in res.stdout.replace("scheme: digest", ""), (v, res)
    raw = run_cli("config", "view", "--raw", "-o", "json", env=env)
    doc = raw.json["contexts"]["gw"]
    assert doc["headers"] == headers and doc["zk_auth"]["credential"] == f"ops:{ZK_PW}"


# --------------------------------------------------------------------------- one secret heuristic, one parser

def test_one_secret_heuristic_and_one_permission_check():
    from regctl import contexts, redaction, settings

    for name in ("Authorization", "X-Api-Key", "X-Custom-Pass", "Signature", "Cookie", "credential"):
        assert redaction.is_secret_name(name)
    assert contexts.is_secret_key("credential") and not contexts.is_secret_key("token_file")
    assert not redaction.is_secret_name("X-Team")
    assert settings.file_readable_by_others is contexts.__dict__.get("file_readable_by_others",
                                                                     settings.file_readable_by_others)


@pytest.mark.parametrize("text", ["X A: v", "X A:: v", "Näme: v", "X-A v", ": v", "X-A: caf\u00e9", "X-A: a\x1bb"])
def test_one_header_parser_refuses_what_http_cannot_send(text):
    from regctl import contexts, settings
    from regctl.errors import UsageError

    with pytest.raises(UsageError):
        settings.parse_header_line(text, "--header")
    with pytest.raises(UsageError):
        contexts.parse_header(text)
    name, _, value = text.partition(":") if ":" in text else (text, "", "v")
    doc = yaml.safe_dump({"contexts": {"c": {"headers": {name: value.strip() or "v"}}}})
    if (name, value.strip()) != ("X-A", "v"):
        with pytest.raises(UsageError):
            contexts.parse(doc, "cfg.yaml")
