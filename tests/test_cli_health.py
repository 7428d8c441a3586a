"""health, wait and url --verify against a real ZooKeeper, the contract registry and tiny local HTTP servers."""

import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from regctl.sandbox.proc import free_port
from tests.helpers import assert_one_line_error, run_cli

TIMEOUT = 1.0


class _Ok(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self):  # noqa: N802
        body = b'{"status": "healthy"}'
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def endpoints():
    """URLs of a healthy server, a refused port, a hanging server (accepts, never answers) and a 503 server."""
    servers = []

    def serve(status):
        handler = type("H", (_Ok,), {"status": status})
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        httpd.daemon_threads = True
        threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(httpd)
        return f"http://127.0.0.1:{httpd.server_address[1]}"

    hang = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    hang.bind(("127.0.0.1", 0))
    hang.listen(64)  # the kernel completes handshakes; nobody ever reads or answers
    urls = {"ok": serve(200), "refused": f"http://127.0.0.1:{free_port()}",
            "hang": f"http://127.0.0.1:{hang.getsockname()[1]}", "bad": serve(503)}
    try:
        yield urls
    finally:
        for s in servers:
            s.shutdown()
            s.server_close()
        hang.close()


def reg(registry, name, iid, url, status="healthy"):
    r = httpx.post(f"{registry.api}/register", timeout=5,
                   json={"service_name": name, "service_url": url, "health_check_url": url + "/health",
                         "service_metadata": {"instance_id": iid, "status": status}})
    assert r.status_code == 201, r.text


def dereg(registry, name, iid):
    httpx.post(f"{registry.api}/deregister", params={"service_name": name, "instance_id": iid}, timeout=5)


# ---------------------------------------------------------------------------- health

def test_health_healthy_refused_hanging_in_about_one_timeout(registry, endpoints):
    for kind in ("ok", "refused", "hang"):
        reg(registry, "mixed", f"m-{kind}", endpoints[kind])
    started = time.monotonic()
    res = run_cli("health", "mixed", "--timeout", str(TIMEOUT), "-o", "json", env=registry.env)
    elapsed = time.monotonic() - started
    assert res.exit_code == 1, res
    assert elapsed < 2.5 * TIMEOUT + 1.0, elapsed  # one timeout (plus ZooKeeper/API reads), not three
    by_id = {r["instance_id"]: r for r in res.json["results"]}
    assert by_id["m-ok"]["verdict"] == "healthy" and by_id["m-ok"]["status_code"] == 200
    assert by_id["m-refused"]["verdict"] == "unhealthy" and by_id["m-refused"]["error"] == "refused"
    assert by_id["m-hang"]["verdict"] == "unhealthy" and by_id["m-hang"]["error"] == "timeout"
    assert res.json["summary"] == {"total": 3, "healthy": 1, "unhealthy": 2, "unreachable_from_here": 0,
                                   "services_without_instances": []}
    assert res.json["source"] == "zookeeper"


def test_health_table_and_api_source(registry, endpoints):
    reg(registry, "one", "one-1", endpoints["ok"])
    reg(registry, "one", "one-2", endpoints["bad"])
    res = run_cli("health", "one", "--timeout", "2", env={"CONFIG_SERVICE_URL": registry.url})
    assert res.exit_code == 1, res
    header, *rows = res.stdout.splitlines()
    assert header.split()[:7] == ["SERVICE", "INSTANCE", "URL", "HTTP", "MS", "VERDICT", "ERROR"]
    row2 = next(r for r in rows if "one-2" in r)
    assert "503" in row2 and "unhealthy" in row2 and "HTTP 503" in row2
    assert "read from api" in res.stderr


def test_health_all_healthy_exit_0_and_expect(registry, endpoints):
    reg(registry, "good", "g-1", endpoints["ok"])
    assert run_cli("health", "good", env=registry.env).exit_code == 0
    res = run_cli("health", "good", "--expect", "204", "-o", "json", env=registry.env)
    assert res.exit_code == 1 and res.json["results"][0]["error"] == "HTTP 200"
    reg(registry, "bad", "b-1", endpoints["bad"])
    assert run_cli("health", "bad", "--expect", "200,503", env=registry.env).exit_code == 0


def test_health_all_includes_every_service(registry, endpoints):
    reg(registry, "a", "a-1", endpoints["ok"])
    reg(registry, "b", "b-1", endpoints["ok"])
    res = run_cli("health", "--all", "-o", "json", env=registry.env)
    assert res.exit_code == 0, res
    services = {r["service_name"] for r in res.json["results"]}
    assert {"a", "b", "config-service"} <= services


def test_health_retries_count_attempts(registry, endpoints):
    reg(registry, "r", "r-1", endpoints["refused"])
    res = run_cli("health", "r", "--retries", "2", "-o", "json", env=registry.env)
    assert res.exit_code == 1
    assert res.json["results"][0]["attempts"] == 3


def test_health_nothing_to_probe(registry):
    res = run_cli("health", "ghost", env=registry.env)
    assert "nothing to probe" in assert_one_line_error(res, 1)


def test_health_server_side_comparison(make_registry, endpoints):
    new = make_registry(detailed_health=True)
    reg(new, "s", "s-1", endpoints["ok"])
    reg(new, "s", "s-2", endpoints["refused"])
    res = run_cli("health", "s", "--server", "-o", "json", env=new.env)
    assert res.exit_code == 1, res
    (row,) = res.json["server"]
    assert row["server_status"] == "healthy"  # the server says healthy when any instance is
    assert row["detailed"].startswith("healthy 1/2")
    by_id = {r["instance_id"]: r for r in res.json["results"]}
    assert by_id["s-1"]["server"] == "healthy" and by_id["s-2"]["server"] == "unhealthy"

    old = make_registry(detailed_health=False)
    reg(old, "s", "s-1", endpoints["ok"])
    res = run_cli("health", "s", "--server", "-o", "json", env=old.env)
    assert res.exit_code == 0, res
    assert res.json["server"][0]["detailed"] == "n/a (older server)"


@pytest.mark.parametrize("args", [[], ["a", "--all"], ["bad/name"], ["a", "--expect", "abc"],
                                  ["a", "--concurrency", "0"]])
def test_health_usage_errors(registry, args):
    assert_one_line_error(run_cli("health", *args, env=registry.env), 2)


def test_health_could_not_check_is_exit_3(registry):
    res = run_cli("health", "a", "--config-url", f"http://127.0.0.1:{free_port()}", env={})
    assert_one_line_error(res, 3)
    res = run_cli("health", "a", "--zk", f"127.0.0.1:{free_port()}", "--timeout", "1", env=registry.env)
    assert_one_line_error(res, 3)


# ---------------------------------------------------------------------------- url --verify

def test_url_verify_skips_instances_that_do_not_answer(registry, endpoints):
    reg(registry, "v", "v-refused", endpoints["refused"])
    reg(registry, "v", "v-hang", endpoints["hang"])
    reg(registry, "v", "v-ok", endpoints["ok"])
    reg(registry, "v", "v-unknown", endpoints["ok"], status="unknown")  # never a candidate
    for _ in range(4):
        started = time.monotonic()
        res = run_cli("url", "v", "--verify", "--timeout", str(TIMEOUT), env=registry.env)
        assert res.exit_code == 0, res
        assert res.stdout == endpoints["ok"] + "\n"
        assert time.monotonic() - started < 3 * TIMEOUT + 1.0


def test_url_verify_none_answers(registry, endpoints):
    reg(registry, "d", "d-1", endpoints["refused"])
    reg(registry, "d", "d-2", endpoints["bad"])
    res = run_cli("url", "d", "--verify", "--timeout", str(TIMEOUT), env=registry.env)
    line = assert_one_line_error(res, 1)
    assert "d-1: refused" in line and "d-2: HTTP 503" in line
    assert res.stdout == ""
    # without --verify the registry's pick is printed as before
    assert run_cli("url", "d", env=registry.env).exit_code == 0


# ---------------------------------------------------------------------------- wait

def _register_later(registry, name, iid, url, delay=1.0):
    t = threading.Timer(delay, reg, args=(registry, name, iid, url))
    t.start()
    return t


@pytest.mark.parametrize("with_zk", [True, False], ids=["zookeeper-watch", "api-poll"])
def test_wait_succeeds_when_an_instance_appears(registry, endpoints, with_zk):
    env = registry.env if with_zk else {"CONFIG_SERVICE_URL": registry.url}
    t = _register_later(registry, "late", "late-1", endpoints["ok"])
    started = time.monotonic()
    res = run_cli("wait", "late", "--timeout", "15", "--interval", "0.2", "-o", "json", env=env)
    elapsed = time.monotonic() - started
    t.join()
    assert res.exit_code == 0, res
    assert res.json["ok"] is True and res.json["instance_ids"] == ["late-1"]
    assert res.json["source"] == ("zookeeper" if with_zk else "api")
    assert 0.8 < elapsed < 10


def test_wait_min_and_healthy(registry, endpoints):
    reg(registry, "h", "h-1", endpoints["ok"])
    reg(registry, "h", "h-2", endpoints["refused"])
    res = run_cli("wait", "h", "--min", "2", "--timeout", "10", env=registry.env)
    assert res.exit_code == 0, res
    assert res.stdout.startswith("h: 2 of 2 instances live")
    res = run_cli("wait", "h", "--min", "2", "--healthy", "--timeout", "10", env=registry.env)
    assert res.exit_code == 0, res  # both registered status healthy and /url answers
    res = run_cli("wait", "h", "--min", "2", "--probe", "--timeout", "1.5", "--interval", "0.3",
                  env=registry.env)
    line = assert_one_line_error(res, 1)
    assert "2 of 2 instances live, 2 with status healthy, 1 answering" in line
    t = _register_later(registry, "h", "h-3", endpoints["ok"], delay=0.5)
    res = run_cli("wait", "h", "--min", "2", "--healthy", "--probe", "--timeout", "10", "--interval", "0.3",
                  env=registry.env)
    t.join()
    assert res.exit_code == 0, res


def test_wait_healthy_means_discoverable(registry, endpoints):
    reg(registry, "quiet", "q-1", endpoints["ok"], status="unknown")  # answers, but /url never returns it
    res = run_cli("wait", "quiet", "--healthy", "--timeout", "1", "--interval", "0.3", env=registry.env)
    assert "0 with status healthy" in assert_one_line_error(res, 1)
    assert run_cli("wait", "quiet", "--timeout", "5", env=registry.env).exit_code == 0  # it is live
    reg(registry, "odd", "o-1", endpoints["ok"])
    reg(registry, "odd", "o-2", endpoints["ok"], status="UP")  # every read of the service answers 500
    res = run_cli("wait", "odd", "--healthy", "--timeout", "1", "--interval", "0.3", env=registry.env)
    line = assert_one_line_error(res, 1)
    assert "1 with status healthy" in line and "/url fails" in line and "500" in line


def test_wait_times_out_with_an_account(registry):
    started = time.monotonic()
    res = run_cli("wait", "never", "--timeout", "1", env=registry.env)
    assert time.monotonic() - started < 4
    line = assert_one_line_error(res, 1)
    assert "0 of 1 instance live" in line and "never" in line


def test_wait_backend_unreachable_is_exit_3():
    res = run_cli("wait", "x", "--timeout", "1", "--interval", "0.2",
                  "--config-url", f"http://127.0.0.1:{free_port()}")
    assert "could not read" in assert_one_line_error(res, 3)
    res = run_cli("wait", "x", "--timeout", "1.5", "--zk", f"127.0.0.1:{free_port()}")
    assert_one_line_error(res, 3)


@pytest.mark.parametrize("args", [["bad/name"], ["x", "--min", "0"], ["x", "--interval", "0"], []])
def test_wait_usage_errors(args):
    assert_one_line_error(run_cli("wait", *args), 2)


def test_cli_default_concurrency_matches_the_prober():
    import inspect

    from regctl import prober
    from regctl.cli import health as cli_health

    assert inspect.signature(cli_health.health).parameters["concurrency"].default == prober.DEFAULT_CONCURRENCY
