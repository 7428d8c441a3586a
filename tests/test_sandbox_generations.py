"""The sandbox registry's two generations over real HTTP and ZooKeeper (``registry-contract.md``,
"The later generation"): the monitor, /internal/health-status, /health/detailed, the retrying
health call, seeded rows; and the earlier generation without them.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from regctl.sandbox import proc
from regctl.sandbox.registry.server import Behaviour, RegistryServer
from regctl.sandbox.registry.monitor import SEEDED_SERVICES
from tests.helpers import wait_until

API = "/api/v1/registry"
FAST = {"retry_delays": (0.05, 0.05), "probe_timeout": 0.5}


class _Counting(BaseHTTPRequestHandler):
    status = 200
    location = "/elsewhere"
    hits: list

    def log_message(self, *a):
        pass

    def do_GET(self):
        self.hits.append(self.path)
        code = self.status
        self.send_response(code)
        if 300 <= code < 400:
            self.send_header("Location", self.location)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")


@pytest.fixture
def endpoints():
    """Base URLs: ok (200), bad (500), redirect (302 to ok), loop (302 to itself), refused, hang (accepts, never
    answers); and hit lists."""
    servers, hits = [], {}

    def serve(kind, status, location="/elsewhere"):
        hits[kind] = []
        handler = type("H", (_Counting,), {"status": status, "hits": hits[kind], "location": location})
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        httpd.daemon_threads = True
        threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(httpd)
        return f"http://127.0.0.1:{httpd.server_address[1]}"

    hang = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    hang.bind(("127.0.0.1", 0))
    hang.listen(64)
    ok = serve("ok", 200)
    urls = {"ok": ok, "bad": serve("bad", 500), "redirect": serve("redirect", 302, ok + "/health"),
            "loop": serve("loop", 302),
            "refused": f"http://127.0.0.1:{proc.free_port()}", "hang": f"http://127.0.0.1:{hang.getsockname()[1]}"}
    urls["hits"] = hits
    try:
        yield urls
    finally:
        for s in servers:
            s.shutdown()
            s.server_close()
        hang.close()


def reg(registry, name, iid, url, status="healthy", health=...):
    body = {"service_name": name, "service_url": url,
            "health_check_url": url + "/health" if health is ... else health,
            "service_metadata": {"instance_id": iid, "status": status}}
    r = httpx.post(f"{registry.api}/register", json=body, timeout=10)
    assert r.status_code == 201, r.text


def status_of(registry, name):
    return httpx.get(f"{registry.url}/internal/health-status", params={"service_id": name}, timeout=10)


def rows(registry):
    return {r["service_name"]: r for r in httpx.get(registry.api + "/services", timeout=10).json()}


def stored(registry, name):
    """The row as the database holds it (``last_health_check`` is never listed by the API)."""
    return next(r for r in registry.server.db.rows() if r["service_name"] == name)




@pytest.fixture
def later(make_registry):
    """A later-generation registry whose monitor runs only at start (done on return), then when the test says
    (``server.monitor.cycle()``)."""
    registry = make_registry(generation="later", monitor_interval=3600, **FAST)
    assert wait_until(lambda: registry.server.monitor.cycles >= 1)
    return registry


# --------------------------------------------------------------------------- the monitor

def test_monitor_verdicts_and_row_rewrites(later, endpoints):
    reg(later, "all-ok", "ok-1", endpoints["ok"])
    reg(later, "mixed", "m-1", endpoints["ok"])
    reg(later, "mixed", "m-2", endpoints["refused"])
    reg(later, "dead", "d-1", endpoints["bad"])
    assert status_of(later, "dead").status_code == 404  # before its first cycle: not known yet
    assert status_of(later, "dead").json() == {"detail": "Health status not found"}
    assert "last_health_check" not in stored(later, "dead")
    later.server.monitor.cycle()
    got = {name: status_of(later, name).json() for name in ("all-ok", "mixed", "dead")}
    assert {n: (v["state"], v["healthy_instances"], v["total_instances"]) for n, v in got.items()} == {
        "all-ok": ("healthy", 1, 1), "mixed": ("degraded", 1, 2), "dead": ("unhealthy", 0, 1)}
    assert set(got["dead"]) == {"service_id", "state", "last_check", "total_instances", "healthy_instances"}
    assert got["dead"]["service_id"] == "dead"
    # the monitor rewrites the row, not the node: /url still hands the dead instance out
    row = rows(later)["dead"]
    assert row["status"] == "unhealthy" and "last_health_check" not in row  # written, never listed
    assert stored(later, "dead")["last_health_check"]
    assert rows(later)["mixed"]["status"] == "healthy"
    assert httpx.get(later.api + "/services/dead", timeout=10).json()[0]["status"] == "healthy"
    assert httpx.get(later.api + "/services/dead/url", timeout=10).json() == {"url": endpoints["bad"]}
    # the bad endpoint was tried three times; /ready and /live were tried too
    assert endpoints["hits"]["bad"].count("/health") == 3
    assert {"/ready", "/live"} <= set(endpoints["hits"]["bad"])


def test_monitor_skips_services_without_a_live_instance(later, endpoints):
    reg(later, "gone", "g-1", endpoints["bad"])
    httpx.post(later.api + "/deregister", params={"service_name": "gone", "instance_id": "g-1"}, timeout=10)
    assert rows(later)["gone"]["status"] == "unknown"
    later.server.monitor.cycle()
    assert rows(later)["gone"]["status"] == "unknown"  # kept as it was
    assert "last_health_check" not in stored(later, "gone")
    assert status_of(later, "gone").json()["state"] == "unknown"
    assert status_of(later, "gone").json()["total_instances"] == 0


def test_health_status_errors_422_500_and_expiry(make_registry, endpoints):
    registry = make_registry(generation="later", monitor_interval=3600, monitor_ttl=1.0, **FAST)
    reg(registry, "svc", "s-1", endpoints["ok"])
    resp = httpx.get(f"{registry.url}/internal/health-status", timeout=10)
    assert resp.status_code == 422 and resp.json()["detail"][0]["loc"] == ["query", "service_id"]
    resp = status_of(registry, "")
    assert resp.status_code == 422 and resp.json()["detail"][0]["type"] == "string_too_short"
    registry.server.monitor.cycle()
    assert status_of(registry, "svc").status_code == 200
    registry.server.faults.add("redis")
    resp = status_of(registry, "svc")  # the Redis read is not guarded: a plain 500, not a 503
    assert (resp.status_code, resp.text) == (500, "Internal Server Error")
    registry.server.faults.discard("redis")
    assert wait_until(lambda: status_of(registry, "svc").status_code == 404)  # expired after monitor_ttl
    assert status_of(registry, "never-seen").status_code == 404


def test_monitor_thread_runs_on_its_own(make_registry, endpoints):
    registry = make_registry(generation="later", monitor_interval=0.2, **FAST)
    reg(registry, "svc", "s-1", endpoints["ok"])
    assert wait_until(lambda: status_of(registry, "svc").status_code == 200)
    assert status_of(registry, "svc").json()["state"] == "healthy"
    assert registry.server.monitor.cycles >= 1


# --------------------------------------------------------------------------- health calls

def test_later_health_call_retries_each_failing_endpoint_and_writes_the_row(later, endpoints):
    reg(later, "svc", "s-bad", endpoints["bad"])
    reg(later, "svc", "s-hang", endpoints["hang"])
    resp = httpx.post(later.api + "/services/svc/health", timeout=30)
    assert resp.json() == {"status": "unhealthy"}
    assert endpoints["hits"]["bad"] == ["/health"] * 3  # 3 tries; no /ready or /live in the health call
    assert rows(later)["svc"]["status"] == "unhealthy"
    reg(later, "svc", "s-loop", endpoints["loop"])  # redirects are followed: a loop is an error
    assert httpx.post(later.api + "/services/svc/health", timeout=30).json() == {"status": "unhealthy"}
    reg(later, "svc", "s-ok", endpoints["redirect"])  # followed to a 200
    assert httpx.post(later.api + "/services/svc/health", timeout=30).json() == {"status": "healthy"}
    assert rows(later)["svc"]["status"] == "healthy"
    assert httpx.post(later.api + "/services/nobody/health", timeout=30).json() == {"status": "unknown"}


def test_later_health_call_falls_back_to_health_paths_without_a_health_url(later, endpoints):
    reg(later, "bare", "b-1", endpoints["bad"], health=None)
    assert httpx.post(later.api + "/services/bare/health", timeout=30).json() == {"status": "unhealthy"}
    assert endpoints["hits"]["bad"] == ["/health"] * 3 + ["/api/v1/health"] * 3 + ["/api/v1/bare/health"] * 3


def test_default_timings_are_the_contracts(make_registry):
    server = make_registry(generation="later").server
    assert (server.retry_delays, server.probe_timeout, server.monitor_interval, server.monitor_ttl) == (
        (1.0, 2.0), 3.0, 30.0, 60.0)


def test_later_detailed_shape_and_bad_status_400(later, endpoints):
    reg(later, "svc", "s-1", endpoints["ok"])
    reg(later, "svc", "s-2", endpoints["refused"])
    detailed = httpx.post(later.api + "/services/svc/health/detailed", timeout=30).json()
    assert set(detailed) == {"service_name", "overall_status", "total_instances", "healthy_instances",
                             "unhealthy_instances", "check_results", "timestamp"}
    assert (detailed["service_name"], detailed["overall_status"]) == ("svc", "healthy")
    assert (detailed["total_instances"], detailed["healthy_instances"], detailed["unhealthy_instances"]) == (2, 1, 1)
    by_url = {r["endpoint_url"]: r for r in detailed["check_results"]}
    assert by_url[endpoints["ok"] + "/health"]["status_code"] == 200
    assert by_url[endpoints["refused"] + "/health"]["is_healthy"] is False
    assert by_url[endpoints["refused"] + "/health"]["error_message"]
    reg(later, "odd", "o-1", endpoints["ok"], status="UP")
    resp = httpx.post(later.api + "/services/odd/health/detailed", timeout=30)
    assert resp.status_code == 400 and resp.json() == {"detail": "'UP' is not a valid ServiceStatus"}
    assert httpx.get(later.api + "/services/odd", timeout=10).status_code == 500  # 500 on the other calls
    later.server.faults.add("redis")
    assert httpx.post(later.api + "/services/svc/health/detailed", timeout=30).status_code == 500


def test_earlier_generation_has_neither_endpoint(registry):
    assert registry.server.generation == "earlier"
    assert httpx.post(registry.api + "/services/svc/health/detailed", timeout=10).status_code == 404
    assert status_of(registry, "svc").status_code == 404
    assert status_of(registry, "svc").json() == {"detail": "Not Found"}
    assert registry.server.monitor is None


def test_unknown_generation_is_refused():
    with pytest.raises(ValueError):
        RegistryServer(behaviour=Behaviour(generation="middle"))


# --------------------------------------------------------------------------- seeded rows

def test_seeded_rows_never_had_an_instance(make_registry, kazoo_client):
    registry = make_registry(generation="later", monitor_interval=3600, seed_rows=True)
    assert wait_until(lambda: registry.server.monitor.cycles >= 1)  # the cycle it runs at start
    got = rows(registry)
    assert sorted(got) == sorted(SEEDED_SERVICES) and len(got) == 13  # the migration's, config-service's too
    for name, row in got.items():
        assert "registered_at" not in row and row["service_metadata"] == {"version": "1.0.0",
                                                                         "environment": "development"}
        if name == "config-service":  # its own node is a live instance: the monitor checked it
            assert status_of(registry, name).json()["total_instances"] == 1
            continue
        assert row["status"] == "healthy"
        assert httpx.get(registry.api + f"/services/{name}", timeout=10).json() == []
        assert kazoo_client.exists(f"{registry.base_path}/{name}") is None
        verdict = status_of(registry, name).json()  # the start cycle's verdict on a row without instances
        assert (verdict["state"], verdict["total_instances"]) == ("unknown", 0)
    assert got["asr-service"]["service_url"] == "" == got["asr-service"]["health_check_url"]
    registry.server.monitor.cycle()
    assert rows(registry)["auth-service"]["status"] == "healthy"  # skipped: no live instance


# --------------------------------------------------------------------------- command line

def test_command_line_later_generation_with_seeded_rows_and_a_fault(zk_server, tmp_path):
    port = proc.free_port()
    base = f"/regctl-test-{uuid.uuid4().hex[:8]}/services"
    log = tmp_path / "registry.log"
    pid = proc.spawn([sys.executable, "-m", "regctl.sandbox.registry", "--port", str(port), "--zk",
                      zk_server.hosts, "--base", base, "--generation", "later", "--seed-rows", "--fault", "redis"],
                     log, cwd=tmp_path, token=(token := proc.new_token()))
    started = proc.start_time(pid)
    url = f"http://127.0.0.1:{port}"
    try:
        def answers():
            try:
                return httpx.get(url + "/live", timeout=2).status_code == 200
            except httpx.TransportError:
                return False
        assert wait_until(answers), proc.tail(log, 20)
        assert httpx.get(url + "/internal/health-status", params={"service_id": "x"}, timeout=5).status_code == 500
        assert len(httpx.get(url + API + "/services", timeout=5).json()) == 13
        assert httpx.get(url + "/health", timeout=5).json() == {"detail": "Service unhealthy"}
    finally:
        assert proc.stop_owned(pid, token, started, timeout=5) is None
    bad = subprocess.run([sys.executable, "-m", "regctl.sandbox.registry", "--generation", "middle"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "--generation" in bad.stderr
