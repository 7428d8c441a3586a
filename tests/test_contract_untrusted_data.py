"""Hostile input through the command line: odd ZooKeeper nodes, odd API answers, odd names.

Whatever ZooKeeper holds or the API answers, a command ends with a documented exit
code (0, 1, 2 or 3; never 70), at most one ``regctl: error:`` line, no traceback,
and within a bounded time. Names are validated before they reach a ZooKeeper path
or a URL; nothing outside the base path is read or written.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import threading
import time

import httpx
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from regctl.http.api import RegistryApi
from tests.helpers import CliResult, assert_one_line_error, run_cli

HYPO = settings(max_examples=30, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def assert_contract(res: CliResult, allowed=(0, 1, 2, 3)) -> None:
    assert res.exit_code in allowed, res
    assert "Traceback" not in res.stderr, res
    errors = [l for l in res.stderr.splitlines() if l.startswith("regctl: error:")]
    assert len(errors) <= 1, res
    if res.exit_code in (2, 3):
        assert len(errors) == 1, res


# --------------------------------------------------------------------------- ZooKeeper node data

json_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20))
json_values = st.recursive(json_scalars, lambda c: st.one_of(st.lists(c, max_size=3),
                                                              st.dictionaries(st.text(max_size=8), c, max_size=3)),
                           max_leaves=12)
odd_fields = st.fixed_dictionaries({}, optional={
    k: json_values for k in ("service_url", "health_check_url", "status", "instance_id", "version")})
node_data = st.one_of(
    st.binary(max_size=200),
    st.binary(min_size=1, max_size=50).map(lambda b: b"\xff\xfe" + b),  # never UTF-8
    json_values.map(lambda v: json.dumps(v).encode()),
    odd_fields.map(lambda v: json.dumps(v).encode()),
    odd_fields.map(lambda v: json.dumps(v).encode()[:-1]),  # truncated
    st.integers(50, 50_000).map(lambda n: b"[" * n + b"]" * n),  # deeply nested
    st.integers(4301, 5000).map(lambda n: b'{"n": ' + b"9" * n + b"}"),
    st.just(b'{"service_url": "http://\\ud800.test", "status": "\\udfff", "instance_id": "\\u202e"}'),
)

# characters ZooKeeper accepts in a node name (it refuses controls, surrogates, private use, specials)
zk_name_chars = st.characters(blacklist_categories=("Cs", "Co", "Cc"), blacklist_characters="/\u2028\u2029\ufeff",
                              max_codepoint=0xFFEF)
zk_names = st.text(zk_name_chars, min_size=1, max_size=12).filter(lambda s: s not in (".", "..", "zookeeper"))


def create(kazoo_client, path: str, data: bytes = b"", ephemeral: bool = False) -> bool:
    from kazoo.exceptions import BadArgumentsError, NodeExistsError

    try:
        kazoo_client.create(path, data, makepath=True, ephemeral=ephemeral)
    except NodeExistsError:
        kazoo_client.set(path, data)
    except (BadArgumentsError, ValueError):
        return False
    return True


@HYPO
@given(data=node_data, ephemeral=st.booleans())
def test_any_instance_node_data(registry, kazoo_client, data, ephemeral):
    name = f"svc-{secrets.token_hex(3)}"
    path = f"{registry.base_path}/{name}/instances/inst-1"
    assert create(kazoo_client, path, data, ephemeral)
    try:
        res = run_cli("list", "--source", "zk", "-o", "json", env=registry.env)
        assert_contract(res, (0,))
        doc = res.json
        listed = {s["name"] for s in doc["services"]}
        reported = {p["path"] for p in doc["problems"]}
        assert name in listed
        live = next(s for s in doc["services"] if s["name"] == name)["live_instances"]
        assert live == 1 or path in reported  # either parsed, or reported as a layout problem
        for args in (("inspect", name, "--source", "zk", "-o", "wide"), ("list", "-o", "wide"),
                     ("health", name, "--timeout", "1")):
            assert_contract(run_cli(*args, env=registry.env))
    finally:
        kazoo_client.delete(f"{registry.base_path}/{name}", recursive=True)


@HYPO
@given(service=zk_names, iid=zk_names)
def test_odd_names_created_in_zookeeper_are_listed_or_reported(registry, kazoo_client, service, iid):
    base = registry.base_path
    svc_path = f"{base}/{service}"
    assume(not kazoo_client.exists(svc_path))
    assume(create(kazoo_client, f"{svc_path}/instances/{iid}",
                  json.dumps({"service_url": "http://x.test:1", "status": "healthy", "instance_id": iid}).encode()))
    try:
        res = run_cli("list", "--source", "zk", "-o", "json", env=registry.env)
        assert_contract(res, (0,))
        doc = res.json
        assert service in {s["name"] for s in doc["services"]} or \
            any(p["path"].startswith(svc_path) for p in doc["problems"]), doc
        for args in (("list", "-o", "yaml"), ("inspect", service, "--source", "zk"), ("url", service)):
            assert_contract(run_cli(*args, env=registry.env))
    finally:
        kazoo_client.delete(svc_path, recursive=True)


@pytest.mark.parametrize("size", [600 * 1024, 1000 * 1024])
def test_huge_node_data_is_reported(registry, kazoo_client, size):
    path = f"{registry.base_path}/big/instances/big-1"
    assert create(kazoo_client, path, b'{"service_url": "' + b"x" * size + b'"}')
    res = run_cli("list", "--source", "zk", "-o", "json", env=registry.env)
    assert_contract(res, (0,))
    assert any(p["path"] == path and p["kind"] == "too-large" for p in res.json["problems"]), res.json["problems"]
    assert_contract(run_cli("inspect", "big", "--source", "zk", env=registry.env))


def test_layout_misfits_are_reported(registry, kazoo_client):
    base = registry.base_path
    create(kazoo_client, f"{base}/no-instances-child", b"hello")
    create(kazoo_client, f"{base}/persistent/instances/p-1", b'{"service_url": "http://p:1"}')
    create(kazoo_client, f"{base}/nested/instances/n-1/child", b"")
    res = run_cli("list", "--source", "zk", "-o", "json", env=registry.env)
    assert_contract(res, (0,))
    kinds = {(p["path"], p["kind"]) for p in res.json["problems"]}
    assert (f"{base}/no-instances-child", "no-instances-node") in kinds
    assert (f"{base}/persistent/instances/p-1", "persistent-instance") in kinds
    assert any(path == f"{base}/nested/instances/n-1" for path, _ in kinds)


def test_lone_surrogates_are_printed_not_crashed_on(registry, kazoo_client):
    """JSON escapes can carry lone surrogates; a real UTF-8 stdout cannot encode them."""
    path = f"{registry.base_path}/sur/instances/s-1"
    create(kazoo_client, path, b'{"service_url": "http://\\ud800.test:1", "status": "\\udfff", "meta": "\\udc80"}',
           ephemeral=True)
    env = {**os.environ, **registry.env, "PYTHONIOENCODING": "utf-8"}
    for args in (["list", "--source", "zk", "-o", "json"], ["list", "--source", "zk", "-o", "wide"],
                 ["inspect", "sur", "-o", "yaml"], ["inspect", "sur", "-o", "wide"]):
        p = subprocess.run([sys.executable, "-m", "regctl", *args], env=env, capture_output=True, timeout=60,
                           stdin=subprocess.DEVNULL)
        res = CliResult(p.returncode, p.stdout.decode("utf-8"), p.stderr.decode("utf-8"))
        assert_contract(res, (0,))
        if "json" in args:
            svc = next(s for s in json.loads(res.stdout)["services"] if s["name"] == "sur")
            assert svc["live_instances"] == 1


# --------------------------------------------------------------------------- API answers (shape matrix)

STATUS = st.integers(100, 599)
CTYPES = st.sampled_from(["application/json", "text/html", "text/plain", "", "application/problem+json"])
contract_items = st.fixed_dictionaries({}, optional={
    k: json_values for k in ("service_name", "instance_id", "service_url", "health_check_url", "status",
                             "service_metadata", "registered_at", "url", "detail")})
api_bodies = st.one_of(
    json_values.map(lambda v: json.dumps(v).encode()),
    st.lists(contract_items, max_size=3).map(lambda v: json.dumps(v).encode()),
    contract_items.map(lambda v: json.dumps(v).encode()),
    st.lists(st.one_of(json_scalars, st.lists(json_scalars)), max_size=3).map(lambda v: json.dumps(v).encode()),
    st.lists(contract_items, min_size=1, max_size=2).map(lambda v: json.dumps(v).encode()[:-2]),
    st.binary(max_size=100),
    st.just(b"<!DOCTYPE html><html><body>Bad gateway</body></html>"),
    st.just(b""), st.just(b"null"),
)


@pytest.fixture
def mocked_api(monkeypatch):
    """Every RegistryApi the CLI makes answers with ``answers[0](request)``."""
    answers: list = []
    original = RegistryApi.__init__

    def init(self, base_url, **kw):
        kw["transport"] = httpx.MockTransport(lambda request: answers[0](request))
        original(self, base_url, **kw)

    monkeypatch.setattr(RegistryApi, "__init__", init)
    return answers


@HYPO
@given(status=STATUS, ctype=CTYPES, body=api_bodies, per_path=st.booleans())
def test_any_api_answer(mocked_api, status, ctype, body, per_path):
    def answer(request: httpx.Request) -> httpx.Response:
        code = status
        if per_path and request.url.path.endswith("/services"):
            code = 200  # the list is fine, the per-service answers are hostile
        return httpx.Response(code, headers={"content-type": ctype} if ctype else {}, content=body)

    mocked_api[:] = [answer]
    env = {"CONFIG_SERVICE_URL": "http://registry.test:8082"}
    for args in (("list",), ("list", "-o", "json"), ("inspect", "svc", "-o", "wide"), ("url", "svc"),
                 ("url", "svc", "--verify", "--timeout", "0.5"), ("discover", "svc", "-o", "yaml"),
                 ("health", "svc", "--server", "--timeout", "0.5"), ("deregister", "svc", "i-1", "--yes")):
        assert_contract(run_cli(*args, env=env))


# --------------------------------------------------------------------------- slow and endless answers

class NastyServer:
    """A raw TCP server on 127.0.0.1 answering every connection with ``behaviour``."""

    def __init__(self, behaviour: str) -> None:
        self.behaviour = behaviour
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        self.sock.settimeout(0.2)
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        try:
            conn.settimeout(0.5)
            try:
                conn.recv(65536)
            except OSError:
                pass
            b = self.behaviour
            head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            if b == "silent":
                self.stop.wait(60)
            elif b == "trickle":
                conn.sendall(head + b"Content-Length: 1000000\r\n\r\n[")
                while not self.stop.wait(0.2):
                    conn.sendall(b" ")
            elif b == "endless":
                conn.sendall(head + b"Transfer-Encoding: chunked\r\n\r\n")
                chunk = b"[" + b"{}," * 20000
                frame = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
                while not self.stop.is_set():
                    conn.sendall(frame)
            elif b == "short":
                conn.sendall(head + b"Content-Length: 500\r\n\r\n[{\"service_name\": ")
            elif b == "garbage":
                conn.sendall(b"\x16\x03\x01 this is not HTTP at all\r\n\r\n")
            elif b == "slow-headers":
                for ch in head:
                    if self.stop.wait(0.3):
                        break
                    conn.sendall(bytes([ch]))
        except OSError:
            pass
        finally:
            conn.close()

    def close(self):
        self.stop.set()
        self.sock.close()


@pytest.mark.slow
@pytest.mark.parametrize("behaviour", [
    "silent", "trickle", "endless", "short", "garbage",
    "slow-headers",
])
def test_slow_or_endless_answers_end_in_time(behaviour):
    server = NastyServer(behaviour)
    timeout = 0.5
    try:
        commands = [("list", "--source", "api"), ("inspect", "svc"), ("url", "svc"), ("discover", "svc"),
                    ("health", "svc")]
        if behaviour in ("trickle", "endless"):  # each takes the whole 4 x --timeout cap
            commands = commands[:2]
        if behaviour == "slow-headers":
            commands = commands[:1]
        for args in commands:
            started = time.monotonic()
            res = run_cli(*args, "--timeout", str(timeout), env={"CONFIG_SERVICE_URL": server.url})
            elapsed = time.monotonic() - started
            assert_one_line_error(res, 3)
            # the whole-answer cap is 4 x --timeout per request; inspect makes two requests in a row
            assert elapsed < 8 * timeout + 3, (args, elapsed)
    finally:
        server.close()


@pytest.mark.slow
@pytest.mark.parametrize("behaviour", ["silent", "trickle", "garbage"])
def test_health_endpoints_that_misbehave_are_unhealthy_in_time(registry, behaviour):
    server = NastyServer(behaviour)
    try:
        with RegistryApi(registry.url, timeout=10) as api:
            api.register({"service_name": "nasty", "service_url": server.url, "health_check_url": server.url + "/h",
                          "service_metadata": {"instance_id": "n-1", "status": "healthy"}})
        started = time.monotonic()
        res = run_cli("health", "nasty", "--timeout", "1", "-o", "json", env=registry.env)
        assert_contract(res, (1,))
        assert time.monotonic() - started < 6
        (probe,) = [r for r in res.json["results"] if r["instance_id"] == "n-1"] if "results" in res.json else [None]
        if probe is not None:
            assert probe["verdict"] == "unhealthy"
    finally:
        server.close()


# --------------------------------------------------------------------------- names and paths

ESCAPES = ["..", ".", "../x", "a/b", "/abs", "x/../../zookeeper", "a\x00b", "a\tb", " lead", "zookeeper", ""]


def sibling_state(kazoo_client, registry) -> dict:
    """mzxid, cversion and data of everything outside the base that an escape could touch."""
    parent = registry.base_path.rsplit("/", 1)[0]
    out = {}
    for path in ("/zookeeper", "/zookeeper/config", "/zookeeper/quota", parent, f"{parent}/sibling",
                 f"{parent}/sibling/instances/s-1", "/"):
        res = kazoo_client.exists(path)
        out[path] = None if res is None else (res.mzxid, res.cversion, res.pzxid, kazoo_client.get(path)[0])
    return out


@pytest.mark.parametrize("name", ESCAPES)
def test_names_that_would_escape_are_refused(registry, kazoo_client, name):
    parent = registry.base_path.rsplit("/", 1)[0]
    create(kazoo_client, f"{parent}/sibling/instances/s-1", b'{"service_url": "http://s:1"}')
    before = sibling_state(kazoo_client, registry)
    # refused before any network: a registry that is not there would give exit 3 instead of 2
    dead = {"CONFIG_SERVICE_URL": "http://127.0.0.1:9", "ZOOKEEPER_HOSTS": "127.0.0.1:9",
            "ZOOKEEPER_BASE_PATH": registry.base_path}
    for env in (registry.env, dead):
        for args in (("inspect", name), ("inspect", name, "--source", "zk"), ("url", name), ("discover", name),
                     ("health", name), ("wait", name, "--timeout", "1"), ("deregister", name, "x", "--yes"),
                     ("deregister", "svc", name, "--yes"), ("deregister", name, "--all", "--yes"),
                     ("register", "--name", name, "--url", "http://x:1"),
                     ("register", "--name", "svc", "--url", "http://x:1", "--instance-id", name)):
            if name == "zookeeper" and (args[1] == "svc" or "--instance-id" in args):
                continue  # 'zookeeper' is only reserved as a service name
            res = run_cli(*args, env=env)
            assert_one_line_error(res, 2)
    assert sibling_state(kazoo_client, registry) == before


def test_deregister_dot_dot_zookeeper_touches_nothing(registry, kazoo_client):
    before = sibling_state(kazoo_client, registry)
    assert_one_line_error(run_cli("deregister", "../../zookeeper", "x", "--yes", env=registry.env), 2)
    assert_one_line_error(run_cli("deregister", "..", "..", "--yes", "--force", env=registry.env), 2)
    assert_one_line_error(run_cli("inspect", "..", env=registry.env), 2)
    assert sibling_state(kazoo_client, registry) == before


@pytest.mark.parametrize("name", ["a%2Fb", "a%2F..%2F..", "a\u2215b", "a\uff0fb", "caf\u00e9", "\u202eevil",
                                  "a?b=c", "a#b", "a b", "100%"])
def test_odd_but_valid_names_stay_inside_the_base(registry, kazoo_client, name):
    """Encoded slashes and slash look-alikes are ordinary characters: one segment, encoded for the API."""
    with RegistryApi(registry.url, timeout=10) as api:
        api.register({"service_name": name, "service_url": "http://odd.test:1", "health_check_url": None,
                      "service_metadata": {"instance_id": name + "-1", "status": "healthy"}})
    node = f"{registry.base_path}/{name}/instances/{name}-1"
    assert kazoo_client.exists(node), node
    res = run_cli("inspect", name, "-o", "json", env=registry.env)
    assert_contract(res, (0,))
    (inst,) = res.json["instances"]
    assert inst["instance_id"] == name + "-1" and inst["in_zookeeper"] and inst["in_api"]
    assert run_cli("url", name, env=registry.env).stdout.strip() == "http://odd.test:1"
    assert_contract(run_cli("discover", name, env=registry.env), (0,))
    res = run_cli("deregister", name, name + "-1", "--yes", "-o", "json", env=registry.env)
    assert_contract(res, (0,))
    assert [r["result"] for r in res.json["results"]] == ["removed"]
    assert not kazoo_client.exists(node)


@pytest.mark.parametrize("name", ["s" * 250, " leading-space", "trailing-space ", "bidi-\u202e-name"])
def test_a_name_the_config_service_accepted_is_listed_not_refused(registry, name):
    """Names regctl would refuse as input are still data when read: listed, counted, never exit 2."""
    r = httpx.post(f"{registry.api}/register", timeout=5,
                   json={"service_name": name, "service_url": "http://127.0.0.1:9/x",
                         "health_check_url": "http://127.0.0.1:9/x/health",
                         "service_metadata": {"instance_id": "one", "status": "healthy"}})
    assert r.status_code == 201, r.text
    try:
        for source in ("api", "zk", "auto"):
            res = run_cli("list", "--source", source, "-o", "json", env=registry.env)
            assert res.exit_code == 0, (source, res.stderr)
            listed = {s["name"]: s for s in res.json["services"]}
            assert name in listed, (source, sorted(listed))
            assert listed[name]["live_instances"] == 1, (source, listed[name])
        table = run_cli("list", env=registry.env)
        assert table.exit_code == 0 and "\u202e" not in table.stdout, table.stderr
    finally:
        httpx.post(f"{registry.api}/deregister", params={"service_name": name, "instance_id": "one"}, timeout=5)
