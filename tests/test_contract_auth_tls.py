"""Auth and TLS for the Config Service, against real servers.

* HTTPS: the sandbox registry serves TLS with a certificate from a CA made at test
  time (``openssl``); regctl must refuse it without the CA (exit 3, one line naming
  TLS/the certificate and --ca-bundle), accept it with --ca-bundle / env / context,
  and accept it with --insecure while warning on every run.
* A gateway-style header requirement (``required_headers``): 401 without the
  header; --header, --token-file, REGCTL_TOKEN, context token_env/token_file,
  REGCTL_HEADERS all work; precedence flag > env > context by header name.
* The secret never appears in any output channel.
* A config file that holds a secret and is readable by others gets one warning.
"""

from __future__ import annotations

import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from tests.helpers import assert_one_line_error, run_cli
from tests.tlsutil import make_certs

pytestmark = pytest.mark.compat  # also run on the oldest and newest Python (.ci/run)

SECRET = "s3cret-TOKEN-7f3a9c"
GATEWAY = {"Authorization": f"Bearer {SECRET}"}


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return make_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture
def https_registry(make_registry, certs):
    return with_a_row(make_registry(certfile=certs.cert, keyfile=certs.key))


@pytest.fixture
def gateway(make_registry):
    return with_a_row(make_registry(required_headers=dict(GATEWAY)))


def with_a_row(reg):
    """One registered service: the Config Service registers itself in ZooKeeper only, so it has no row."""
    reg.server.register({"service_name": "asr-service", "service_url": "http://asr:8080", "health_check_url": None,
                         "service_metadata": {"instance_id": "asr-1", "status": "healthy"}})
    return reg


def api_env(reg) -> dict:
    """Only the Config Service URL: the commands read the API."""
    return {"CONFIG_SERVICE_URL": reg.url}


def write_config(path: Path, contexts: dict, current: str | None = "dev", mode: int = 0o600) -> Path:
    doc = {"version": 1, "contexts": contexts}
    if current:
        doc["current-context"] = current
    path.write_text(yaml.safe_dump(doc))
    os.chmod(path, mode)
    return path


# --------------------------------------------------------------------------- HTTPS

def test_https_without_the_ca_is_one_line_exit_3_naming_tls_and_ca_bundle(https_registry):
    assert https_registry.url.startswith("https://127.0.0.1:")
    res = run_cli("list", "--source", "api", env=api_env(https_registry))
    line = assert_one_line_error(res, 3)
    assert "TLS" in line and "certificate" in line and "--ca-bundle" in line, line
    assert https_registry.url in line


def test_https_with_the_wrong_ca_fails(https_registry, certs):
    res = run_cli("list", "--source", "api", "--ca-bundle", certs.other_ca, env=api_env(https_registry))
    line = assert_one_line_error(res, 3)
    assert "certificate" in line


@pytest.mark.parametrize("how", ["flag", "env", "context"])
def test_https_with_ca_bundle_works(https_registry, certs, tmp_path, how):
    env = api_env(https_registry)
    args = ["list", "--source", "api", "-o", "json"]
    if how == "flag":
        args += ["--ca-bundle", str(certs.ca)]
    elif how == "env":
        env["REGCTL_CA_BUNDLE"] = str(certs.ca)
    else:
        write_config(Path(os.environ["REGCTL_CONFIG"]), {"dev": {"ca_bundle": str(certs.ca)}})
    res = run_cli(*args, env=env)
    assert res.exit_code == 0, res
    assert any(r["name"] == "asr-service" for r in res.json["services"]), res.json
    assert "TLS certificate verification is OFF" not in res.stderr


@pytest.mark.parametrize("how", ["flag", "env", "context"])
def test_insecure_works_and_warns_on_every_run(https_registry, how):
    env = api_env(https_registry)
    args = ["list", "--source", "api", "-o", "json"]
    if how == "flag":
        args.append("--insecure")
    elif how == "env":
        env["REGCTL_INSECURE"] = "1"
    else:
        write_config(Path(os.environ["REGCTL_CONFIG"]), {"dev": {"insecure": True}})
    for _ in range(2):
        res = run_cli(*args, env=env)
        assert res.exit_code == 0, res
        res.json  # stdout is still a clean document
        warnings = [l for l in res.stderr.splitlines() if "TLS certificate verification is OFF" in l]
        assert len(warnings) == 1, res
        assert f"for {https_registry.url}" in warnings[0] and warnings[0].startswith("regctl: warning:")


def test_flag_ca_bundle_beats_env_insecure(https_registry, certs):
    env = {**api_env(https_registry), "REGCTL_INSECURE": "1"}
    res = run_cli("list", "--source", "api", "--ca-bundle", certs.ca, env=env)
    assert res.exit_code == 0, res
    assert "verification is OFF" not in res.stderr


def test_missing_ca_bundle_file_is_a_usage_error(https_registry, tmp_path):
    res = run_cli("list", "--source", "api", "--ca-bundle", tmp_path / "nope.pem", env=api_env(https_registry))
    line = assert_one_line_error(res, 2)
    assert "nope.pem" in line and "--ca-bundle" in line


# --------------------------------------------------------------------------- gateway headers

def test_gateway_without_credentials_is_401_one_line(gateway):
    res = run_cli("list", "--source", "api", env=api_env(gateway))
    line = assert_one_line_error(res, 3)
    assert "401" in line and "Not authenticated" in line and "--header" in line


@pytest.mark.parametrize("how", ["header", "header-short", "token-file", "REGCTL_TOKEN", "REGCTL_HEADERS-lines",
                                 "REGCTL_HEADERS-json", "context-headers", "context-token_env",
                                 "context-token_file"])
def test_gateway_credentials_from_every_source(gateway, tmp_path, how):
    env = api_env(gateway)
    args = ["list", "--source", "api", "-o", "json"]
    token_file = tmp_path / "token"
    token_file.write_text(SECRET + "\n")
    token_file.chmod(0o600)
    cfg = Path(os.environ["REGCTL_CONFIG"])
    if how == "header":
        args += ["--header", f"Authorization: Bearer {SECRET}", "--header", "X-Team: ops"]
    elif how == "header-short":
        args = ["-H", f"authorization: Bearer {SECRET}"] + args  # before the command name, any case
    elif how == "token-file":
        args += ["--token-file", str(token_file)]
    elif how == "REGCTL_TOKEN":
        env["REGCTL_TOKEN"] = SECRET
    elif how == "REGCTL_HEADERS-lines":
        env["REGCTL_HEADERS"] = f"X-Team: ops\nAuthorization: Bearer {SECRET}\n"
    elif how == "REGCTL_HEADERS-json":
        env["REGCTL_HEADERS"] = json.dumps({"Authorization": f"Bearer {SECRET}"})
    elif how == "context-headers":
        write_config(cfg, {"dev": {"headers": dict(GATEWAY)}})
    elif how == "context-token_env":
        env["MY_GATEWAY_TOKEN"] = SECRET
        write_config(cfg, {"dev": {"token_env": "MY_GATEWAY_TOKEN"}})
    else:
        write_config(cfg, {"dev": {"token_file": str(token_file)}})
    res = run_cli(*args, env=env)
    assert res.exit_code == 0, res
    assert res.json["services"], res.json
    assert SECRET not in res.stdout + res.stderr


@pytest.mark.parametrize("ctx,env_extra,flags,ok", [
    # flag beats env beats context, header by header (names case-insensitive)
    ({"headers": {"Authorization": "Bearer wrong-ctx"}}, {}, ["-H", f"AUTHORIZATION: Bearer {SECRET}"], True),
    ({}, {"REGCTL_TOKEN": "wrong-env"}, ["-H", f"Authorization: Bearer {SECRET}"], True),
    ({"headers": dict(GATEWAY)}, {"REGCTL_TOKEN": "wrong-env"}, [], False),
    ({"headers": {"Authorization": "Bearer wrong-ctx"}}, {"REGCTL_TOKEN": SECRET}, [], True),
    # a context's other headers survive an env/flag Authorization
    ({"headers": {"X-Team": "ops", "Authorization": "Bearer wrong"}}, {"REGCTL_HEADERS": f"Authorization: Bearer {SECRET}"},
     [], True),
])
def test_header_precedence(gateway, ctx, env_extra, flags, ok):
    write_config(Path(os.environ["REGCTL_CONFIG"]), {"dev": ctx})
    res = run_cli("list", "--source", "api", *flags, env={**api_env(gateway), **env_extra})
    assert (res.exit_code == 0) is ok, res


def test_context_headers_merge_with_flag_headers(gateway):
    write_config(Path(os.environ["REGCTL_CONFIG"]), {"dev": {"headers": {"X-Team": "ops", "X-Env": "ctx"}}})
    res = run_cli("list", "--source", "api", "-H", f"Authorization: Bearer {SECRET}", "-H", "x-env: flag",
                  env=api_env(gateway))
    assert res.exit_code == 0, res
    seen = {k.lower(): v for k, v in gateway.server.seen_headers[-1].items()}
    assert seen["x-team"] == "ops" and seen["x-env"] == "flag" and seen["authorization"] == f"Bearer {SECRET}"


def test_token_and_authorization_header_in_one_layer_is_a_usage_error(gateway, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text(SECRET)
    res = run_cli("list", "--token-file", token_file, "-H", "Authorization: Bearer other", env=api_env(gateway))
    line = assert_one_line_error(res, 2)
    assert SECRET not in res.stderr + res.stdout and "--token-file" in line


def test_bad_token_file_names_the_file_never_the_token(gateway, tmp_path):
    res = run_cli("list", "--token-file", tmp_path / "missing-token", env=api_env(gateway))
    assert "missing-token" in assert_one_line_error(res, 2)
    two = tmp_path / "two-lines"
    two.write_text(f"{SECRET}\nmore\n")
    res = run_cli("list", "--token-file", two, env=api_env(gateway))
    assert "two-lines" in assert_one_line_error(res, 2)
    assert SECRET not in res.stderr + res.stdout


def test_bad_header_flag_is_a_usage_error_without_echoing_the_value(gateway):
    res = run_cli("list", "-H", f"Authorization Bearer {SECRET}", env=api_env(gateway))
    assert_one_line_error(res, 2)
    assert SECRET not in res.stderr + res.stdout


# --------------------------------------------------------------------------- health probes

class _Recorder(BaseHTTPRequestHandler):
    seen: list = []

    def do_GET(self):  # noqa: N802
        type(self).seen.append({k.lower(): v for k, v in self.headers.items()})
        body = b'{"status": "ok"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


@pytest.fixture
def recording_service():
    handler = type("Rec", (_Recorder,), {"seen": []})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", handler
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_health_probes_never_get_the_gateway_headers(gateway, recording_service):
    url, handler = recording_service
    gateway.server.register({"service_name": "probe-me", "service_url": url, "health_check_url": url + "/health",
                             "service_metadata": {"instance_id": "p1", "status": "healthy"}})
    res = run_cli("health", "probe-me", "-H", f"Authorization: Bearer {SECRET}", "-H", "X-Gateway-Key: k3y-abc",
                  "-o", "json", env=api_env(gateway))
    assert res.exit_code == 0, res
    assert handler.seen, "the instance was not probed"
    for headers in handler.seen:
        assert "authorization" not in headers and "x-gateway-key" not in headers, headers
    # while the Config Service did get them
    assert any(h.get("Authorization") == f"Bearer {SECRET}" for h in gateway.server.seen_headers)


# --------------------------------------------------------------------------- no secret anywhere

def test_the_secret_never_appears_in_any_output(gateway, tmp_path, make_registry):
    token_file = tmp_path / "token"
    token_file.write_text(SECRET)
    token_file.chmod(0o600)
    cfg = write_config(Path(os.environ["REGCTL_CONFIG"]),
                       {"dev": {"config_url": gateway.url, "headers": {"Authorization": f"Bearer {SECRET}",
                                                                        "X-Api-Key": SECRET + "-key"}},
                        "other": {"zk_auth": {"scheme": "digest", "credential": f"ops:{SECRET}"},
                                  "token_env": "GW_TOKEN"}})
    assert SECRET in cfg.read_text()
    export = tmp_path / "backup.yaml"
    res = run_cli("export", "-f", export, env={**gateway.env, "CONFIG_SERVICE_URL": gateway.url})
    assert res.exit_code == 0, res
    down = f"http://127.0.0.1:{_closed_port()}"
    env = {"GW_TOKEN": SECRET}
    runs = [
        ("list", "--source", "api"),
        ("list", "--source", "api", "-v"),
        ("list", "--source", "api", "-vv"),
        ("list", "--source", "api", "-vv", "-o", "json"),
        ("inspect", "config-service", "--source", "api", "-vv", "-o", "yaml"),
        ("health", "config-service", "-vv"),
        ("register", "-n", "svc-x", "--url", "http://svc-x:8000", "--dry-run", "-vv"),
        ("register", "-n", "svc-x", "--url", "http://svc-x:8000", "--dry-run", "-o", "json"),
        ("deregister", "config-service", "config-service-1", "--dry-run", "--force", "-vv"),
        ("deregister", "config-service", "config-service-1", "--dry-run", "--force", "-o", "json"),
        ("import", str(export), "--dry-run", "-vv"),
        ("import", str(export), "--dry-run", "-o", "json"),
        ("doctor", "-vv"),
        ("list", "--source", "api", "--config-url", down, "-vv"),
        ("list", "--source", "api", "--config-url", down, "-o", "json"),
        ("list", "--source", "api", "--token-file", token_file, "-H", "X-Team: ops", "-vv"),
        ("--context", "other", "list", "--source", "api", "--config-url", gateway.url, "-vv", "-o", "json"),
        ("--context", "other", "list", "--source", "api", "--config-url", gateway.url, "-vv"),
        ("config", "view"),
        ("config", "view", "-o", "json"),
        ("config", "view", "-o", "yaml"),
        ("config", "get-contexts", "-o", "wide"),
        ("config", "get-contexts", "-o", "json"),
        ("config", "set-context", "dev", "--description", "x", "-o", "json"),
    ]
    saw_debug = saw_dry_run = False
    for args in runs:
        res = run_cli(*args, env=env)
        assert "Traceback" not in res.stderr, (args, res)
        for channel, text in (("stdout", res.stdout), ("stderr", res.stderr)):
            assert SECRET not in text, f"secret leaked on {channel} of regctl {' '.join(map(str, args))}:\n{text}"
        saw_debug |= "httpcore" in res.stderr or "httpx" in res.stderr
        saw_dry_run |= "dry run" in res.stderr or '"dry_run": true' in res.stdout
    assert saw_debug, "-vv printed no library debug log: the test would not see a leak there"
    assert saw_dry_run
    # the run with the gateway credentials really sent them
    assert any(h.get("Authorization") == f"Bearer {SECRET}" for h in gateway.server.seen_headers)


def test_a_library_logging_the_header_is_redacted(gateway, capsys):
    """A log line that holds the token (as a library at debug level might write it) comes out as ***."""
    import logging

    from regctl.cli import runtime
    from regctl import redaction

    runtime.configure_logging(2)
    try:
        redaction.add_secrets([SECRET])
        logging.getLogger("httpcore.test").debug("headers=[(b'Authorization', b'Bearer %s')]", SECRET)
        logging.getLogger("other").debug("Authorization: Basic dXNlcjpwYXNz and token=%s", SECRET)
    finally:
        runtime.configure_logging(0)
        redaction.clear_secrets()
    err = capsys.readouterr().err
    assert SECRET not in err and "dXNlcjpwYXNz" not in err and "***" in err, err


def _closed_port() -> int:
    from regctl.sandbox.proc import free_port

    return free_port()


# --------------------------------------------------------------------------- config file permissions

@pytest.mark.parametrize("mode,warned", [(0o644, True), (0o640, True), (0o600, False)])
def test_config_with_a_secret_readable_by_others_warns_naming_the_file(registry, mode, warned):
    cfg = write_config(Path(os.environ["REGCTL_CONFIG"]),
                       {"dev": {"config_url": registry.url, "headers": {"Authorization": f"Bearer {SECRET}"}}},
                       mode=mode)
    for args in (("list", "--source", "api"), ("list", "--source", "api", "-o", "json"), ("config", "view")):
        res = run_cli(*args)
        assert res.exit_code == 0, res
        lines = [l for l in res.stderr.splitlines() if str(cfg) in l and "warning" in l]
        assert len(lines) == (1 if warned else 0), (args, res)
        if warned:
            assert "chmod 600" in lines[0] and "readable by" in lines[0]
        assert SECRET not in res.stdout + res.stderr


def test_config_without_a_secret_does_not_warn(registry):
    cfg = write_config(Path(os.environ["REGCTL_CONFIG"]), {"dev": {"config_url": registry.url}}, mode=0o644)
    res = run_cli("list", "--source", "api")
    assert res.exit_code == 0, res
    assert str(cfg) not in res.stderr


def test_token_file_readable_by_others_warns(gateway, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text(SECRET)
    token_file.chmod(0o644)
    res = run_cli("list", "--source", "api", "--token-file", token_file, env=api_env(gateway))
    assert res.exit_code == 0, res
    assert len([l for l in res.stderr.splitlines() if str(token_file) in l and "chmod 600" in l]) == 1, res
