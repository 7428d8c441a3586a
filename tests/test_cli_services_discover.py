"""The discovery verdict: pure judgements, then list/inspect against a real ZooKeeper and registry."""

import http.server
import json
import threading

import httpx
import pytest

from regctl.discovery import REASONS, judge
from regctl.errors import BadResponse, Unreachable
from regctl.prober import ProbeResult
from regctl.models import Instance
from regctl.sandbox.proc import free_port
from tests.helpers import assert_one_line_error, register, run_cli


def inst(iid, status="healthy", service="svc"):
    return Instance(service, iid, f"http://{iid}:80", None, status)


# --------------------------------------------------------------------------- pure


def test_judge_ok_and_each_reason():
    a, b = inst("a"), inst("b")
    assert judge("svc", zk=[a], api=[a]).discoverable is True
    assert judge("svc", zk=[a], api=[a]).label == "OK"
    v = judge("svc", zk=[], api=[])
    assert (v.discoverable, v.reason) == (False, "no-instances")
    v = judge("svc", zk=[inst("a", "unknown")], api=[inst("a", "unknown")])
    assert (v.discoverable, v.reason) == (False, "no-healthy-status") and "a=unknown" in v.detail
    err = BadResponse("instances of svc: HTTP 500: Internal Server Error", status_code=500)
    v = judge("svc", zk=[a], api=err)
    assert (v.discoverable, v.reason) == (False, "api-500")
    v = judge("svc", zk=[inst("a", "UP")], api=err)
    assert (v.discoverable, v.reason) == (False, "bad-status") and "'UP'" in v.detail
    v = judge("svc", zk=[], api=[a])
    assert (v.discoverable, v.reason) == (False, "stale-cache")
    v = judge("svc", zk=[b], api=[a, b])
    assert (v.discoverable, v.reason, v.label) == (True, "stale-cache", "OK (stale-cache)")
    v = judge("svc", zk=[a], api=[])
    assert (v.discoverable, v.reason) == (False, "api-differs")
    v = judge("svc", zk=[a], api=Unreachable("connection refused"))
    assert (v.discoverable, v.reason) == (None, "api-unreachable")
    v = judge("svc", zk=None, zk_error="refused", api=None)
    assert (v.discoverable, v.reason) == (None, "zk-unreadable")
    v = judge("svc", zk=[inst("a", "UP")], api=None)
    assert (v.discoverable, v.reason, v.judged_from) == (False, "bad-status", "zookeeper")
    for v in (judge("svc", zk=[a], api=[a]), judge("svc", zk=[], api=[]), judge("svc", api=err)):
        assert v.reason is None or v.reason in REASONS or v.reason.startswith("api-5")


def test_judge_with_probes_counts_only_answering_instances():
    a = inst("a")
    ok = ProbeResult("svc", "a", "http://a/health", True, 200)
    refused = ProbeResult("svc", "a", "http://a/health", False, error="refused")
    dns = ProbeResult("svc", "a", "http://a/health", False, error="DNS")
    assert judge("svc", zk=[a], api=[a], probes={"a": ok}).answering == 1
    v = judge("svc", zk=[a], api=[a], probes={"a": refused})
    assert (v.discoverable, v.reason) == (False, "not-answering")
    v = judge("svc", zk=[a], api=[a], probes={"a": dns})
    assert (v.discoverable, v.reason) == (None, "unreachable-from-here")


# --------------------------------------------------------------------------- real servers




def by_name(doc):
    return {s["name"]: s for s in doc["services"]}


def verdicts(res):
    return {n: (s["discovery"]["discoverable"], s["discovery"]["reason"]) for n, s in by_name(res.json).items()}


@pytest.fixture
def populated(registry):
    register(registry, "asr-service", "asr-1")
    register(registry, "asr-service", "asr-2")
    register(registry, "audit-service", "audit-1", status=None)
    register(registry, "billing", "billing-1")
    httpx.post(f"{registry.url}/api/v1/registry/deregister",
               params={"service_name": "billing", "instance_id": "billing-1"}, timeout=5)
    return registry


def test_list_discovery_column_and_json(populated):
    res = run_cli("list", "-o", "json", env=populated.env)
    assert res.exit_code == 0, res
    v = verdicts(res)
    assert v["asr-service"] == (True, None)
    assert v["audit-service"] == (False, "no-healthy-status")
    assert v["billing"] == (False, "no-instances")
    table = run_cli("list", env=populated.env)
    row = {line.split()[0]: line.split() for line in table.stdout.splitlines()[1:]}
    assert row["asr-service"][3] == "OK" and row["audit-service"][3] == "no-healthy-status"
    assert row["billing"][3] == "no-instances"
    wide = run_cli("list", "-o", "wide", env=populated.env)
    assert "none with status 'healthy'" in wide.stdout


def test_fail_undiscoverable_is_a_ci_gate(populated):
    ok = run_cli("list", "asr-service", "--fail-undiscoverable", env=populated.env)
    assert ok.exit_code == 0, ok
    assert [l.split()[0] for l in ok.stdout.splitlines()[1:]] == ["asr-service"]
    bad = run_cli("list", "asr-service", "audit-service", "--fail-undiscoverable", env=populated.env)
    line = assert_one_line_error(bad, 1)
    assert "audit-service (no-healthy-status)" in line and "asr-service" not in line.split("discoverable:")[1]
    everything = run_cli("list", "--fail-undiscoverable", "-o", "json", env=populated.env)
    assert everything.exit_code == 1 and by_name(everything.json)["billing"]
    # without the flag the same registry is a successful read
    assert run_cli("list", env=populated.env).exit_code == 0
    # the Config Service down: ZooKeeper alone cannot say what clients get -> could not check (3)
    env = {**populated.env, "CONFIG_SERVICE_URL": f"http://127.0.0.1:{free_port()}"}
    down = run_cli("list", "asr-service", "--fail-undiscoverable", "-o", "json", "--timeout", "2", env=env)
    assert down.exit_code == 3, down
    assert verdicts(down)["asr-service"] == (None, "api-unreachable")
    assert down.json["sources"]["api"]["read"] is False and down.json["sources"]["zookeeper"]["read"] is True


def test_bad_status_in_one_service_only(populated):
    register(populated, "weird", "w-1", status="UP")
    res = run_cli("list", "-o", "json", env=populated.env)
    assert res.exit_code == 0, res
    v = verdicts(res)
    assert v["weird"] == (False, "bad-status")
    assert v["asr-service"] == (True, None)
    assert "weird" in by_name(res.json) and "instances-unread" in by_name(res.json)["weird"]["flags"]
    assert res.json["sources"]["api"]["instances"]["failed"] == ["weird"]


def test_stale_cache_and_api_differs(populated, kazoo_client):
    run_cli("list", env=populated.env)  # warm the registry's 60 s cache for every service
    base = populated.base_path
    for iid in ("asr-1", "asr-2"):
        kazoo_client.delete(f"{base}/asr-service/instances/{iid}")
    kazoo_client.create(f"{base}/billing/instances/b-2",
                        json.dumps({"instance_id": "b-2", "service_url": "http://b:1", "status": "healthy"}).encode(),
                        makepath=True, ephemeral=True)
    res = run_cli("list", "-o", "json", env=populated.env)
    v = verdicts(res)
    assert v["asr-service"] == (False, "stale-cache")
    assert v["billing"] == (False, "api-differs")
    assert "api-differs" in by_name(res.json)["asr-service"]["flags"]


def test_probe_counts_answering_instances(registry):
    server = _Server(200)
    try:
        register(registry, "alive", "a-1", url=server.url)
        register(registry, "dead", "d-1", url=f"http://127.0.0.1:{free_port()}")
        res = run_cli("list", "alive", "dead", "--probe", "-o", "json", "--timeout", "2", env=registry.env)
        assert res.exit_code == 0, res
        svc = by_name(res.json)
        assert svc["alive"]["answering_instances"] == 1 and svc["dead"]["answering_instances"] == 0
        assert verdicts(res) == {"alive": (True, None), "dead": (False, "not-answering")}
        table = run_cli("list", "alive", "dead", "--probe", "--timeout", "2", env=registry.env)
        assert "ANSWERING" in table.stdout.splitlines()[0]
    finally:
        server.stop()


class _Server:
    """A real HTTP server answering every request with ``code`` (and a JSON detail)."""

    def __init__(self, code, body=b'{"detail": "Service unhealthy"}'):
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            def _answer(self):
                outer.hits += 1
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer

            def log_message(self, *a):
                pass

        self.hits = 0
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


# --------------------------------------------------------------------------- each source down


def test_inspect_with_zookeeper_down_shows_the_api_and_says_so(populated):
    env = {**populated.env, "ZOOKEEPER_HOSTS": f"127.0.0.1:{free_port()}"}
    res = run_cli("inspect", "asr-service", "-o", "json", "--timeout", "2", env=env)
    assert res.exit_code == 0, res
    assert {i["instance_id"] for i in res.json["instances"]} == {"asr-1", "asr-2"}
    assert all(i["in_zookeeper"] is None for i in res.json["instances"])
    assert res.json["sources"]["zookeeper"]["read"] is False
    assert "ZooKeeper could not be read" in res.stderr
    gone = run_cli("inspect", "billing", "--timeout", "2", env=env)
    assert gone.exit_code == 0 and "the API lists no instance (ZooKeeper could not be read)" in gone.stdout


def test_inspect_with_the_api_down(populated):
    env = {**populated.env, "CONFIG_SERVICE_URL": f"http://127.0.0.1:{free_port()}"}
    res = run_cli("inspect", "asr-service", "--timeout", "2", env=env)
    assert res.exit_code == 0, res
    assert "asr-1" in res.stdout and "could not be read" not in res.stdout
    # ZooKeeper holds nothing, the API is down: "not registered" would be a guess
    res = run_cli("inspect", "billing", "--timeout", "2", env=env)
    line = assert_one_line_error(res, 3)
    assert "no live instance of 'billing' in ZooKeeper" in line and "unknown" in line
    assert "not registered" not in res.stderr


@pytest.mark.parametrize("api", ["down", "503"])
def test_inspect_and_list_with_both_sources_down_exit_3(api):
    server = _Server(503) if api == "503" else None
    try:
        url = server.url if server else f"http://127.0.0.1:{free_port()}"
        env = {"CONFIG_SERVICE_URL": url, "ZOOKEEPER_HOSTS": f"127.0.0.1:{free_port()}"}
        res = run_cli("inspect", "asr-service", "--timeout", "2", env=env)
        line = assert_one_line_error(res, 3)
        assert ("API" in line or "Config Service" in line) and "ZooKeeper" in line
        assert "no live instances" not in res.stdout + res.stderr and "not registered" not in res.stderr
        res = run_cli("list", "-o", "json", "--timeout", "2", env=env)
        assert res.exit_code == 3 and res.json["error"]["code"] == 3
        assert "ZooKeeper" in res.json["error"]["message"]
    finally:
        if server:
            server.stop()


def test_api_503_with_zookeeper_up_shows_zookeeper(populated):
    server = _Server(503)
    try:
        env = {**populated.env, "CONFIG_SERVICE_URL": server.url}
        res = run_cli("list", "-o", "json", "--timeout", "2", env=env)
        assert res.exit_code == 0, res
        api = res.json["sources"]["api"]
        assert api["read"] is False and api["error_code"] == 3 and "503" in api["error"]
        assert verdicts(res)["asr-service"] == (None, "api-unreachable")
        assert server.hits == 1  # the per-service reads are skipped while the Config Service answers 503
    finally:
        server.stop()


# --------------------------------------------------------------------------- health: could not check from here


def test_health_unresolvable_host_is_unreachable_from_here_not_dead(registry):
    server = _Server(200)
    try:
        register(registry, "alive", "a-1", url=server.url)
        register(registry, "tts-service", "tts-1", url="http://tts-service.invalid:8080")
        res = run_cli("health", "--all", "-o", "json", "--timeout", "2", env=registry.env)
        assert res.exit_code == 0, res
        verdict = {r["instance_id"]: r["verdict"] for r in res.json["results"]}
        assert verdict["tts-1"] == "unreachable-from-here" and verdict["a-1"] == "healthy"
        assert res.json["summary"]["unhealthy"] == 0 and res.json["summary"]["unreachable_from_here"] == 1
        assert "tts-service.invalid does not resolve" in res.stderr
        only = run_cli("health", "tts-service", "--timeout", "2", env=registry.env)
        assert "could not check" in assert_one_line_error(only, 3)
        register(registry, "dead", "d-1", url=f"http://127.0.0.1:{free_port()}")
        assert run_cli("health", "--all", "--timeout", "2", env=registry.env).exit_code == 1
    finally:
        server.stop()


# --------------------------------------------------------------------------- answers of the wrong shape

GARBAGE = b'[1, "two", null, {"service_name": 5}]'


def test_garbage_services_list_is_could_not_check_not_an_empty_registry():
    from regctl.http.api import RegistryApi

    transport = httpx.MockTransport(lambda req: httpx.Response(200, content=GARBAGE,
                                                               headers={"content-type": "application/json"}))
    with RegistryApi("http://cs.test", transport=transport) as api:
        with pytest.raises(BadResponse, match="the answer is not a list of services: 4 of 4"):
            api.list_services()
        with pytest.raises(BadResponse, match="not a list of instances"):
            api.instances("asr-service")
        with pytest.raises(BadResponse, match="not a list of instances"):
            api.discover("asr-service")
    server = _Server(200, GARBAGE)
    try:
        env = {"CONFIG_SERVICE_URL": server.url}
        for args in (["list"], ["discover", "asr-service"], ["url", "asr-service"], ["inspect", "asr-service"]):
            res = run_cli(*args, "--timeout", "2", env=env)
            line = assert_one_line_error(res, 3)
            assert "no services registered" not in res.stdout and "not registered" not in line, res
        assert "the answer is not a list of services" in run_cli("list", env=env).stderr
    finally:
        server.stop()


# --------------------------------------------------------------------------- smaller truths


def test_did_you_mean_for_unknown_names(populated):
    for args in (["inspect", "asr-servce"], ["url", "asr-servce"], ["discover", "asr-servce"],
                 ["health", "asr-servce"], ["wait", "asr-servce", "--timeout", "0.5"]):
        res = run_cli(*args, env=populated.env)
        line = assert_one_line_error(res, 1)
        assert "did you mean: asr-service" in line, (args, line)
    line = assert_one_line_error(run_cli("inspect", "zzzzzz", env=populated.env), 1)
    assert "did you mean" not in line


def test_a_closed_stdout_is_not_an_error(populated):
    import subprocess
    import sys

    env = {**__import__("os").environ, **populated.env}
    for args in (["inspect", "asr-service"], ["list", "-o", "json"]):
        proc = subprocess.Popen([sys.executable, "-m", "regctl", *args], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        proc.stdout.close()  # like `| head -1` that has already exited
        err = proc.stderr.read().decode()
        assert proc.wait(timeout=60) == 0, err
        assert "Traceback" not in err and "Exception ignored" not in err and "error" not in err


def test_inspect_source_zk_says_what_it_did_not_read(populated):
    res = run_cli("inspect", "billing", "--source", "zk", env=populated.env)
    line = assert_one_line_error(res, 1)
    assert "no live instance in ZooKeeper" in line and "not read" in line


def test_a_persistent_node_is_not_called_a_session_that_will_expire():
    """Only a node some session owns can be on borrowed time; a persistent one never expires."""
    from dataclasses import replace

    from regctl.models import NodeStat

    def owned(iid, owner):
        return replace(inst(iid), stat=NodeStat(0.0, 0.0, owner, 0, 10))

    current, other = 0x100, 0x200
    v = judge("svc", zk=[owned("p", 0)], api=[owned("p", 0)], owners=frozenset({current}))
    assert (v.discoverable, v.reason) == (True, None) and "session" not in v.detail
    v = judge("svc", zk=[owned("o", other)], api=[owned("o", other)], owners=frozenset({current}))
    assert (v.discoverable, v.reason) == (True, "orphaned-session") and "0x200" in v.detail
