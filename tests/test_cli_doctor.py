"""``regctl doctor`` against real parts: ZooKeeper, the contract registry, tiny stdlib servers."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from regctl.sandbox.proc import free_port
from tests.helpers import assert_one_line_error, register, run_cli

TIMEOUT = 1.0
NOT_IN_CONTAINER = {"REGCTL_DOCTOR_IN_CONTAINER": "0"}


def doctor(*args, env=None):
    return run_cli("doctor", "--timeout", str(TIMEOUT), *args, env={**NOT_IN_CONTAINER, **(env or {})})


def rows(result):
    """name -> list of rows (JSON)."""
    out: dict = {}
    for c in result.json["checks"]:
        out.setdefault(c["name"], []).append(c)
    return out


def one(result, name):
    (row,) = rows(result)[name]
    return row


# --------------------------------------------------------------------------- tiny servers

class TinyHttp:
    """An HTTP server answering every GET with ``status``/``body``; ``hang`` never answers."""

    def __init__(self, status=200, body=b'{"status": "healthy"}', ctype="application/json", hang=False):
        release = self.release = threading.Event()

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                if hang:
                    release.wait(30)
                    return
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def tiny():
    servers = []

    def make(**kw):
        s = TinyHttp(**kw)
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.close()




def deregister(registry, name, iid):
    r = httpx.post(registry.api + "/deregister", params={"service_name": name, "instance_id": iid}, timeout=5)
    assert r.status_code == 200, r.text


# --------------------------------------------------------------------------- listing and selection

def test_list_checks_names_areas_and_what_they_catch():
    res = doctor("--list-checks", "-o", "json")
    assert res.exit_code == 0, res
    names = [c["name"] for c in res.json["checks"]]
    for expected in ("config.dns", "config.connect", "config.http", "config.health", "config.kafka",
                     "zookeeper.members", "zookeeper.quorum", "zookeeper.session", "zookeeper.base",
                     "env.required", "env.network", "service.registered", "service.reachable",
                     "service.discoverable", "hygiene.zombies", "hygiene.stale-rows", "hygiene.sessions"):
        assert expected in names
    assert all(set(c) >= {"name", "area", "catches"} for c in res.json["checks"])
    table = doctor("--list-checks")
    assert table.exit_code == 0 and "config.dns" in table.stdout and "CATCHES" in table.stdout


def test_unknown_check_name_is_a_usage_error():
    res = doctor("config.nope")
    line = assert_one_line_error(res, 2)
    assert "config.nope" in line and "--list-checks" in line


def test_only_named_checks_run_and_skip_leaves_some_out(registry):
    res = doctor("config", "--skip", "config.kafka", "-o", "json", env=registry.env)
    names = {c["name"] for c in res.json["checks"]}
    assert "config.dns" in names and "config.kafka" not in names
    assert not any(n.startswith("zookeeper.") for n in names)


# --------------------------------------------------------------------------- 1-2 Config Service

def test_healthy_registry_passes_config_and_zookeeper(registry):
    res = doctor("config", "zookeeper", "-o", "json", env=registry.env)
    assert res.exit_code == 0, res
    statuses = {c["name"]: c["status"] for c in res.json["checks"]}
    assert set(statuses.values()) == {"pass"}, statuses
    assert res.json["exit_code"] == 0
    assert res.json["summary"]["failed"] == 0 and res.json["summary"]["passed"] == len(statuses)
    member = one(res, "zookeeper.members")
    assert member["target"] == registry.zk_hosts
    assert "standalone" in member["finding"] and "nodes" in member["finding"] and "latency" in member["finding"]
    assert one(res, "zookeeper.base")["details"]["base_path"] == registry.base_path


def test_kafka_down_is_a_warning_and_strict_fails(registry):
    registry.server.simulate = {"kafka": "unhealthy"}
    res = doctor("config", "-o", "json", env=registry.env)
    assert res.exit_code == 0, res
    kafka = one(res, "config.kafka")
    assert kafka["status"] == "warn" and "works without Kafka" in kafka["finding"] and kafka["hint"]
    assert one(res, "config.health")["status"] == "pass"
    assert "only because of kafka" in one(res, "config.health")["finding"]
    strict = doctor("config", "--strict", "-o", "json", env=registry.env)
    assert strict.exit_code == 1 and strict.json["exit_code"] == 1


def test_zookeeper_or_postgres_down_fails(registry):
    registry.server.simulate = {"zookeeper": "unhealthy", "postgres": "unhealthy", "redis": "unhealthy"}
    res = doctor("config", "-o", "json", env=registry.env)
    assert res.exit_code == 1
    # like the real Config Service: a bare 503 'Service unhealthy' without a component report, so the
    # component rows cannot tell (never a pass), and config.health names what it can
    for name in ("config.zookeeper", "config.postgres", "config.redis"):
        row = one(res, name)
        assert row["status"] == "skip" and "no component report" in row["finding"], row
    health = one(res, "config.health")
    assert health["status"] == "fail" and "Redis or PostgreSQL" in health["finding"]


def test_health_503_service_unhealthy_fails(registry):
    registry.server.simulate = {"health_check": "broken"}
    res = doctor("config", "-o", "json", env=registry.env)
    assert res.exit_code == 1
    assert one(res, "config.http")["status"] == "pass"  # it is the Config Service answering
    health = one(res, "config.health")
    assert health["status"] == "fail" and "503" in health["finding"] and "Service unhealthy" in health["finding"]
    assert one(res, "config.kafka")["status"] == "skip"


def test_closed_port_is_refused_with_a_hint():
    port = free_port()
    res = doctor("config", "--config-url", f"http://127.0.0.1:{port}", "-o", "json")
    assert res.exit_code == 1
    conn = one(res, "config.connect")
    assert conn["status"] == "fail" and "refused" in conn["finding"]
    assert "8082" in conn["hint"]  # not the guide's port: says so
    assert one(res, "config.http")["status"] == "skip"


def test_unresolvable_host():
    res = doctor("config", "--config-url", "http://nonexistent.invalid:8082", "-o", "json")
    assert res.exit_code == 1
    dns = one(res, "config.dns")
    assert dns["status"] == "fail" and "does not resolve" in dns["finding"] and dns["hint"]
    assert one(res, "config.connect")["status"] == "skip"


def test_docker_name_outside_docker_suggests_localhost():
    res = doctor("config.dns", "--config-url", "http://config-service:8082", "-o", "json")
    dns = one(res, "config.dns")
    if dns["status"] == "pass":
        pytest.skip("config-service resolves on this machine")
    assert "localhost:8082" in dns["hint"] and "Docker network" in dns["hint"]


def test_a_proxy_answering_html(tiny):
    proxy = tiny(status=200, body=b"<html><head><title>Corporate Proxy</title></head></html>", ctype="text/html")
    res = doctor("config", "--config-url", proxy.url, "-o", "json")
    assert res.exit_code == 1
    http = one(res, "config.http")
    assert http["status"] == "fail" and "HTML" in http["finding"] and "Corporate Proxy" in http["finding"]
    assert "proxy" in http["hint"]


def test_https_against_plain_http_is_a_tls_error(registry):
    url = registry.url.replace("http://", "https://")
    res = doctor("config.http", "--config-url", url, "-o", "json")
    http = one(res, "config.http")
    assert http["status"] == "fail" and "TLS" in http["finding"] and "http://" in http["hint"]


def test_config_service_that_never_answers_ends_in_time(tiny):
    hung = tiny(hang=True)
    res = doctor("config", "--config-url", hung.url, "-o", "json")
    assert res.exit_code == 1
    http = one(res, "config.http")
    assert http["status"] == "fail" and "no answer" in http["finding"]


# --------------------------------------------------------------------------- 3 ZooKeeper

def test_zookeeper_stopped(registry):
    dead = free_port()
    res = doctor("zookeeper", "--zk", f"127.0.0.1:{dead}", "-o", "json", env=registry.env)
    assert res.exit_code == 1
    member = one(res, "zookeeper.members")
    assert member["status"] == "fail" and "refused" in member["finding"] and member["target"] == f"127.0.0.1:{dead}"
    assert one(res, "zookeeper.quorum")["status"] == "fail"
    assert one(res, "zookeeper.session")["status"] == "fail"
    assert one(res, "zookeeper.base")["status"] == "skip"


def test_ensemble_members_each_on_their_own_row(registry):
    dead = free_port()
    res = doctor("zookeeper", "--zk", f"{registry.zk_hosts},127.0.0.1:{dead}", "-o", "json", env=registry.env)
    members = rows(res)["zookeeper.members"]
    assert [m["status"] for m in members] == ["pass", "fail"]
    quorum = one(res, "zookeeper.quorum")
    # a standalone server listed with a second member: misconfigured
    assert quorum["status"] in ("warn", "fail") and quorum["hint"]


def test_zookeeper_not_configured_is_skipped_with_a_hint(registry):
    env = {"CONFIG_SERVICE_URL": registry.url}
    res = doctor("zookeeper", "-o", "json", env=env)
    assert res.exit_code == 0
    checks = res.json["checks"]
    assert {c["name"] for c in checks} >= {"zookeeper.members", "zookeeper.session", "zookeeper.base"}, checks
    for c in checks:
        assert c["status"] == "skip" and "not configured" in c["finding"] and "--zk" in c["hint"]


def test_base_path_missing(registry):
    res = doctor("zookeeper.base", "--zk-base", "/no-such-registry", "-o", "json", env=registry.env)
    base = one(res, "zookeeper.base")
    assert base["status"] == "fail" and "does not exist" in base["finding"] and "ZOOKEEPER_BASE_PATH" in base["hint"]


# --------------------------------------------------------------------------- 4 environment

def test_env_file_checks(tmp_path, registry):
    f = tmp_path / "svc.env"
    f.write_text("SERVICE_NAME=my-service\nSERVICE_PORT=80x\nSERVICE_HOST=localhost\n"
                 "CONFIG_SERVICE_URL=http://config-service:8082\n")
    res = doctor("env", "--env-file", str(f), "-o", "json", env=registry.env)
    assert res.exit_code == 1
    assert one(res, "env.port")["status"] == "fail"
    f.write_text("SERVICE_NAME=my-service\nSERVICE_PORT=8090\nSERVICE_HOST=localhost\n"
                 "CONFIG_SERVICE_URL=http://config-service:8082\n")
    res = doctor("env", "--env-file", str(f), "-o", "json", env=registry.env)
    assert res.exit_code == 0
    assert "http://localhost:8090" in one(res, "env.service-url")["finding"]
    net = one(res, "env.network")
    assert net["status"] == "warn" and "SERVICE_HOST=my-service" in net["hint"]


def test_unreadable_env_file_is_a_usage_error(tmp_path):
    res = doctor("env", "--env-file", str(tmp_path / "missing.env"))
    assert_one_line_error(res, 2)


# --------------------------------------------------------------------------- 5-7 one service

def svc_env(registry, **extra):
    return {**registry.env, **extra}


def test_healthy_service_passes(registry, tiny):
    app = tiny(status=200)
    register(registry, "asr", "asr-1", url=app.url)
    res = doctor("service", "--service", "asr", "-o", "json", env=registry.env)
    assert res.exit_code == 0, res
    monitor = one(res, "service.monitor")
    assert monitor["status"] == "skip" and "earlier generation" in monitor["finding"]
    assert {c["status"] for c in res.json["checks"] if c["name"] != "service.monitor"} == {"pass"}, res.json["checks"]
    assert "asr-1" in one(res, "service.registered")["finding"]
    assert one(res, "service.discoverable")["finding"] == f"/url returns {app.url}"


def test_service_checks_skip_without_a_service(registry):
    res = doctor("service", "-o", "json", env=registry.env)
    assert res.exit_code == 0
    for c in res.json["checks"]:
        assert c["status"] == "skip" and "--service" in c["hint"]


def test_health_endpoint_answering_500(registry, tiny):
    app = tiny(status=500, body=b'{"status": "broken"}')
    register(registry, "tts", "tts-1", url=app.url)
    res = doctor("service.reachable", "--service", "tts", "-o", "json", env=registry.env)
    assert res.exit_code == 1
    row = one(res, "service.reachable")
    assert row["status"] == "fail" and row["target"] == "tts/tts-1"
    assert "HTTP 500" in row["finding"] and "regctl deregister tts tts-1" in row["hint"]


def test_health_endpoint_that_never_answers(registry, tiny):
    app = tiny(hang=True)
    register(registry, "slow", "slow-1", url=app.url)
    res = doctor("service.reachable", "--service", "slow", "-o", "json", env=registry.env)
    row = one(res, "service.reachable")
    assert row["status"] == "fail" and "timeout" in row["finding"]


def test_registered_url_on_a_closed_port(registry):
    register(registry, "gone", "gone-1", url=f"http://127.0.0.1:{free_port()}")
    res = doctor("service.reachable", "--service", "gone", "-o", "json", env=registry.env)
    row = one(res, "service.reachable")
    assert row["status"] == "fail" and "refused" in row["finding"] and "zombie" in row["hint"]


def test_instance_without_status_is_not_discoverable(registry, tiny):
    app = tiny(status=200)
    register(registry, "audit", "audit-1", url=app.url, status=None)
    res = doctor("service", "--service", "audit", "-o", "json", env=registry.env)
    assert res.exit_code == 1
    row = one(res, "service.discoverable")
    assert row["status"] == "fail" and "audit-1=unknown" in row["finding"]
    assert "without a status" in row["finding"] and "--status healthy" in row["hint"]
    assert one(res, "service.registered")["status"] == "pass"


def test_deregistered_service_row_without_live_instance(registry, tiny):
    app = tiny(status=200)
    register(registry, "billing", "billing-1", url=app.url)
    deregister(registry, "billing", "billing-1")
    res = doctor("service.registered", "--service", "billing", "-o", "json", env=registry.env)
    assert res.exit_code == 1
    row = one(res, "service.registered")
    assert row["status"] == "fail" and "no live instance" in row["finding"] and "'unknown'" in row["finding"]
    assert "register" in row["hint"]
    hy = doctor("hygiene.stale-rows", "--all", "-o", "json", env=registry.env)
    stale = one(hy, "hygiene.stale-rows")
    assert stale["status"] == "warn" and stale["target"] == "billing"


def test_never_registered_service(registry):
    res = doctor("service.registered", "--service", "ghost", "-o", "json", env=registry.env)
    row = one(res, "service.registered")
    assert row["status"] == "fail" and "never registered" in row["finding"]
    assert "registration skipped/failed" in row["hint"]


def test_expected_instance_id_from_env_file(registry, tiny, tmp_path):
    app = tiny(status=200)
    register(registry, "nmt", "nmt-1", url=app.url)
    f = tmp_path / ".env"
    f.write_text("SERVICE_NAME=nmt\nSERVICE_PORT=8091\nSERVICE_INSTANCE_ID=nmt-7\n")
    res = doctor("service.registered", "--env-file", str(f), "-o", "json", env=registry.env)
    row = one(res, "service.registered")
    assert row["status"] == "fail" and "nmt-7" in row["finding"] and "nmt-1" in row["finding"]


def test_status_the_config_service_cannot_parse(registry, kazoo_client, tiny):
    app = tiny(status=200)
    path = f"{registry.base_path}/odd/instances/odd-1"
    kazoo_client.create(path, json.dumps({"instance_id": "odd-1", "service_url": app.url,
                                          "status": "ok"}).encode(), ephemeral=True, makepath=True)
    res = doctor("service.discoverable", "service.api-view", "--service", "odd", "-o", "json", env=registry.env)
    assert res.exit_code == 1
    assert "cannot parse" in one(res, "service.api-view")["hint"]
    hy = doctor("cause.bad-status", "--all", "-o", "json", env=registry.env)
    row = one(hy, "cause.bad-status")
    assert row["status"] == "fail" and row["target"] == "odd" and "odd-1='ok'" in row["finding"]
    assert "regctl deregister odd odd-1" in row["hint"]


def test_api_cache_disagreeing_with_zookeeper(registry, kazoo_client, tiny):
    app = tiny(status=200)
    register(registry, "cached", "cached-1", url=app.url)
    httpx.get(registry.api + "/services/cached", timeout=5)  # fill the 60 s cache
    kazoo_client.delete(f"{registry.base_path}/cached/instances/cached-1")
    res = doctor("service.api-view", "--service", "cached", "-o", "json", env=registry.env)
    row = one(res, "service.api-view")
    assert row["status"] == "warn" and "only in the API: cached-1" in row["finding"] and "60 s" in row["hint"]


# --------------------------------------------------------------------------- output, verbosity, timing

def test_everything_stopped_fails_with_hints_within_about_one_timeout():
    env = {"CONFIG_SERVICE_URL": f"http://127.0.0.1:{free_port()}", "ZOOKEEPER_HOSTS": f"127.0.0.1:{free_port()}",
           "SERVICE_NAME": "asr-service", "SERVICE_PORT": "8090"}
    res = doctor("--no-color", env=env)
    assert res.exit_code == 1, res
    assert "Traceback" not in res.stderr
    out = res.stdout
    assert "Config Service" in out and "ZooKeeper" in out
    assert "[XX]  config.connect" in out and "[XX]  zookeeper.session" in out
    assert "-> " in out  # hints under failing rows
    assert "\u2718" not in out and "\x1b[" not in out  # plain ASCII off a terminal
    last = out.strip().splitlines()[-1]
    assert "skipped" in last and "failed" in last and "passed" in last


def test_json_shape_is_stable(registry):
    res = doctor("config.dns", "-o", "json", env=registry.env)
    doc = res.json
    assert set(doc) == {"checks", "summary", "config", "selected", "exit_code"}
    assert set(doc["checks"][0]) == {"name", "area", "target", "status", "finding", "hint", "duration_ms",
                                     "details"}
    assert set(doc["summary"]) >= {"passed", "warnings", "failed", "skipped", "total", "strict", "text"}
    y = doctor("config.dns", "-o", "yaml", env=registry.env)
    assert y.yaml["checks"][0]["name"] == "config.dns"


def test_verbose_shows_what_each_check_did(registry):
    res = doctor("config.http", "-v", env=registry.env)
    assert res.exit_code == 0
    assert f"url: {registry.url}/health" in res.stdout and "took" in res.stdout


# --------------------------------------------------------------------------- the demo sandbox

def test_demo_sandbox_all_shows_the_planted_problems(demo_sandbox):
    env = {"CONFIG_SERVICE_URL": demo_sandbox.api_url, "ZOOKEEPER_HOSTS": demo_sandbox.zk_hosts}
    res = doctor("--all", "-o", "json", env=env)
    assert res.exit_code == 1, res
    by = rows(res)
    for name in ("config.dns", "config.connect", "config.http", "config.health", "zookeeper.members",
                 "zookeeper.session", "zookeeper.base", "hygiene.duplicate-urls", "hygiene.layout",
                 "cause.bad-status", "hygiene.sessions"):
        assert [r["status"] for r in by[name]] == ["pass"], (name, by[name])
    zombies = by["hygiene.zombies"]
    assert [(r["status"], r["target"]) for r in zombies] == [("fail", "tts-service/tts-service-1")]
    assert "HTTP 500" in zombies[0]["finding"] and "regctl deregister tts-service tts-service-1" in zombies[0]["hint"]
    undiscoverable = by["hygiene.undiscoverable"]
    assert [(r["status"], r["target"]) for r in undiscoverable] == [("fail", "audit-service")]
    assert "without a status" in undiscoverable[0]["finding"]
    stale = by["hygiene.stale-rows"]
    assert [(r["status"], r["target"]) for r in stale] == [("warn", "legacy-billing")]
    assert all(r["hint"] for r in zombies + undiscoverable + stale)
    assert "one ZooKeeper session" in by["hygiene.sessions"][0]["finding"]
    table = doctor("--all", env=env)
    assert "Registry hygiene" in table.stdout
    for planted in ("tts-service/tts-service-1", "audit-service", "legacy-billing"):
        assert planted in table.stdout


def test_demo_sandbox_one_service_in_depth(demo_sandbox):
    env = {"CONFIG_SERVICE_URL": demo_sandbox.api_url, "ZOOKEEPER_HOSTS": demo_sandbox.zk_hosts}
    res = doctor("service", "--service", "asr-service", "-o", "json", env=env)
    assert res.exit_code == 0, res
    reach = rows(res)["service.reachable"]
    assert sorted(r["target"] for r in reach) == ["asr-service/asr-service-1", "asr-service/asr-service-2"]
    assert {r["status"] for r in reach} == {"pass"}
