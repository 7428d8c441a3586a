"""Hostile registry data and hostile servers, round two: every attack is run for real.

Anyone can write the registry (its API has no authentication), so instance data, names and
the servers they point at are the attacker's. Each test below is one attack found on a
sandbox, replayed against real parts: a real ZooKeeper (256 MB heap, as the sandbox starts
it), raw loopback servers, regctl as a subprocess where memory and time are the point
(its own peak RSS measured as in tests/test_contract_bounded_reads.py).

What must hold: exit 0-3 (never 70), RSS under 150 MB, time within 2 x --timeout + 1 s,
ZooKeeper alive, credentials never received by a foreign listener, lookalike names flagged,
data printed as stored.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import threading
import time

import pytest

from tests.helpers import LoopbackServer, read_http_head, run_cli
from tests.test_contract_bounded_reads import PEAK_RSS_MB, gzip_bomb, run_measured

TIMEOUT = 3
#: what the brief allows a hostile answer to cost: twice --timeout plus a second
TIME_BOUND = 2 * TIMEOUT + 1


def assert_contract(r: dict) -> None:
    """Exit 0-3, no traceback, memory bounded, time bounded."""
    assert r["code"] in (0, 1, 2, 3), r
    assert "Traceback" not in r["stderr"] and "internal error" not in r["stderr"], r
    assert r["rss_mb"] < PEAK_RSS_MB, r
    assert r["wall"] < TIME_BOUND, r


# --------------------------------------------------------------------------- hostile HTTP

class Round2Server(LoopbackServer):
    """Answers by path; remembers every request head it received (to look for credentials).

    /r-bomb     302 to /ok whose body is a 1 GiB gzip bomb
    /r-endless  302 to /ok whose chunked body never ends
    /bomb       200, a 1 GiB gzip bomb
    /endless    200, a chunked body that never ends
    anything else: 200 {"status": "healthy"}
    """

    def __init__(self, bomb: bytes = b"") -> None:
        self.bomb = bomb
        self.heads: list[bytes] = []
        self.lock = threading.Lock()
        super().__init__()
        self.url = f"http://127.0.0.1:{self.port}"

    def _endless(self, conn: socket.socket, status: bytes, extra: bytes = b"") -> None:
        conn.sendall(b"HTTP/1.1 " + status + b"\r\nContent-Type: application/json\r\n" + extra
                     + b"Transfer-Encoding: chunked\r\n\r\n")
        block = b"100000\r\n" + b"[" * 0x100000 + b"\r\n"
        for _ in range(4096):  # 4 GiB at most, then stop by itself
            conn.sendall(block)

    def _one(self, conn: socket.socket) -> None:
        try:
            with conn:
                head = read_http_head(conn)
                if not head:
                    return
                with self.lock:
                    self.heads.append(head)
                path = head.split(b" ", 2)[1]
                if path.startswith(b"/r-bomb"):
                    conn.sendall(b"HTTP/1.1 302 Found\r\nLocation: /ok\r\nContent-Encoding: gzip\r\n"
                                 b"Content-Length: %d\r\n\r\n" % len(self.bomb) + self.bomb)
                elif path.startswith(b"/r-endless"):
                    self._endless(conn, b"302 Found", b"Location: /ok\r\n")
                elif path.startswith(b"/bomb"):
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n"
                                 b"Content-Length: %d\r\n\r\n" % len(self.bomb) + self.bomb)
                elif path.startswith(b"/endless"):
                    self._endless(conn, b"200 OK")
                else:
                    body = b'{"status": "healthy"}'
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                                 b"Connection: close\r\n\r\n" % len(body) + body)
        except OSError:
            pass

    def saw(self, text: str) -> bool:
        with self.lock:
            return any(text.encode() in h for h in self.heads)


@pytest.fixture(scope="module")
def bomb() -> bytes:
    return gzip_bomb(1024)


@pytest.fixture(scope="module")
def hostile_http(bomb):
    srv = Round2Server(bomb)
    yield srv
    srv.close()


def put_instance(kazoo_client, registry, service: str, iid: str, **fields) -> str:
    node = {"instance_id": iid, "service_name": service, "status": "healthy", **fields}
    path = f"{registry.base_path}/{service}/instances/{iid}"
    kazoo_client.create(path, json.dumps(node).encode(), makepath=True, ephemeral=True)
    return path


@pytest.mark.parametrize("path", ["/r-bomb", "/r-endless"])
def test_a_redirect_body_is_read_within_the_bound_by_every_prober_path(path, hostile_http, registry, kazoo_client):
    """A 302 carrying a gzip bomb or an endless body: httpx would read it whole before following."""
    put_instance(kazoo_client, registry, "redir-svc", "redir-1", service_url=hostile_http.url,
                 health_check_url=hostile_http.url + path)
    r = run_measured(["health", "redir-svc", "--timeout", str(TIMEOUT), "-o", "json"], registry.env)
    assert_contract(r)
    result = json.loads(r["stdout"])["results"][0]
    assert result["status_code"] == 200 and result["verdict"] == "healthy", r  # the redirect was followed
    r = run_measured(["url", "redir-svc", "--verify", "--timeout", str(TIMEOUT)], registry.env)
    assert_contract(r)
    assert r["code"] == 0 and r["stdout"].strip() == hostile_http.url, r


def test_a_redirect_loop_is_a_verdict_not_a_hang(registry, kazoo_client):
    class Loop(LoopbackServer):
        def _one(self, conn):
            try:
                with conn:
                    conn.recv(65536)
                    conn.sendall(b"HTTP/1.1 302 Found\r\nLocation: /again\r\nContent-Length: 0\r\n\r\n")
            except OSError:
                pass

    srv = Loop()
    url = f"http://127.0.0.1:{srv.port}"
    try:
        put_instance(kazoo_client, registry, "loop-svc", "loop-1", service_url=url, health_check_url=url + "/h")
        res = run_cli("health", "loop-svc", "--timeout", str(TIMEOUT), "-o", "json", env=registry.env)
    finally:
        srv.close()
    assert res.exit_code == 1, res
    assert res.json["results"][0]["error"] == "too many redirects", res


# --------------------------------------------------------------------------- doctor --env-file

def env_file(tmp_path, config_url: str) -> str:
    p = tmp_path / "svc.env"
    p.write_text(f"SERVICE_NAME=envsvc\nSERVICE_PORT=8090\nSERVICE_HOST=127.0.0.1\nCONFIG_SERVICE_URL={config_url}\n")
    return str(p)


@pytest.mark.parametrize("path", ["", "/endless", "/bomb"])
def test_doctor_env_file_sends_no_credentials_to_the_files_url_and_reads_it_bounded(path, tmp_path, bomb):
    foreign = Round2Server(bomb)
    own = Round2Server()
    token = "tok-round2-SECRET-9f8e7d"
    try:
        r = run_measured(["doctor", "env", "--env-file", env_file(tmp_path, foreign.url + path),
                          "--timeout", str(TIMEOUT), "-o", "json", "-H", "X-Gateway-Key: gw-key-77",
                          "-H", "X-Team: platform-ops"],
                         {"CONFIG_SERVICE_URL": own.url, "REGCTL_TOKEN": token})
        assert foreign.heads, "the file's URL was not probed at all"
        assert not foreign.saw(token) and not foreign.saw("gw-key-77") and not foreign.saw("Authorization"), \
            foreign.heads
        assert not foreign.saw("platform-ops"), foreign.heads  # no operator header at all
    finally:
        foreign.close()
        own.close()
    assert_contract(r)


def test_doctor_env_file_naming_the_configured_service_keeps_its_credentials(tmp_path):
    own = Round2Server()
    token = "tok-round2-own-1a2b3c"
    try:
        # the same Config Service, spelled with a path: still its own host, so the token may go there
        r = run_cli("doctor", "env", "--env-file", env_file(tmp_path, own.url + "/"), "--timeout", str(TIMEOUT),
                    env={"CONFIG_SERVICE_URL": own.url, "REGCTL_TOKEN": token})
    finally:
        own.close()
    assert r.exit_code in (0, 1, 3), r
    assert "Traceback" not in r.stderr, r


# --------------------------------------------------------------------------- files

@pytest.mark.parametrize("args,env", [
    (["import", "/dev/zero", "--dry-run"], {}),
    (["register", "-f", "/dev/zero", "--dry-run"], {}),
    (["list", "--source", "api", "--token-file", "/dev/zero"], {}),
    (["doctor", "env", "--env-file", "/dev/zero"], {}),
    (["register", "--from-env", "--env-file", "/dev/zero", "--dry-run"], {}),
    (["config", "view"], {"REGCTL_CONFIG": "/dev/zero"}),
])
def test_endless_files_are_bad_input_without_reading_them(args, env):
    r = run_measured(args, {"CONFIG_SERVICE_URL": "http://127.0.0.1:9", **env})
    assert r["code"] == 2, r
    assert "not a regular file" in r["stderr"] and r["stderr"].count("regctl: error:") == 1, r
    assert_contract(r)


def test_a_context_token_file_that_never_ends_is_bad_input(tmp_path):
    cfg = tmp_path / "config.yaml"
    cfg.write_text("current-context: a\ncontexts:\n  a:\n    config_url: http://127.0.0.1:9\n"
                   "    token_file: /dev/zero\n")
    r = run_measured(["list", "--source", "api"], {"REGCTL_CONFIG": str(cfg)})
    assert r["code"] == 2 and "token_file" in r["stderr"] and "not a regular file" in r["stderr"], r
    assert_contract(r)


def test_a_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    r = run_measured(["import", str(fifo), "--dry-run"], {"CONFIG_SERVICE_URL": "http://127.0.0.1:9"})
    assert r["code"] == 2 and "FIFO" in r["stderr"], r


def test_a_file_over_the_cap_is_bad_input_before_it_is_parsed(tmp_path):
    from regctl.http.bounded import TOKEN_FILE_MAX_BYTES

    big = tmp_path / "token"
    big.write_bytes(b"a" * (TOKEN_FILE_MAX_BYTES + 1))
    r = run_cli("list", "--source", "api", "--token-file", str(big), env={"CONFIG_SERVICE_URL": "http://127.0.0.1:9"})
    assert r.exit_code == 2 and "larger than 64 KiB" in r.stderr, r
    assert "aaaa" not in r.stderr  # never the token itself


def test_the_bounded_file_reader_directly(tmp_path):
    from regctl.http.bounded import read_file_text
    from regctl.errors import UsageError

    ok = tmp_path / "ok"
    ok.write_text("héllo")
    assert read_file_text(ok, 10) == "héllo"
    with pytest.raises(UsageError, match="larger than 5 bytes"):
        read_file_text(ok, 5)
    with pytest.raises(UsageError, match="directory"):
        read_file_text(tmp_path, 10)
    with pytest.raises(FileNotFoundError):
        read_file_text(tmp_path / "missing", 10)


# --------------------------------------------------------------------------- hostile ZooKeeper servers

class FakeZooKeeper(LoopbackServer):
    """A TCP server that reads kazoo's connect request and then misbehaves by ``mode``:

    huge     a 0x7fffffff length prefix, then bytes as fast as they are read
    silent   a valid answer granting a 30 s session, then silence (reads everything, answers nothing)
    """

    def __init__(self, mode: str) -> None:
        self.mode = mode
        super().__init__()
        self.hosts = f"127.0.0.1:{self.port}"

    def _one(self, conn: socket.socket) -> None:
        try:
            with conn:
                (length,) = struct.unpack("!i", _recv_exactly(conn, 4))
                _recv_exactly(conn, length)
                if self.mode == "huge":
                    conn.sendall(struct.pack("!i", 0x7FFFFFFF))
                    block = b"\x00" * (1 << 20)
                    for _ in range(4096):  # stops by itself after 4 GiB
                        conn.sendall(block)
                    return
                body = struct.pack("!iiqi", 0, 30000, 0x1234, 16) + b"p" * 16 + b"\x00"
                conn.sendall(struct.pack("!i", len(body)) + body)
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline and conn.recv(65536):
                    pass
        except OSError:
            pass


def _recv_exactly(conn: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        data = conn.recv(n - len(buf))
        if not data:
            raise OSError("closed")
        buf += data
    return buf


@pytest.mark.parametrize("mode", ["huge", "silent"])
@pytest.mark.parametrize("args", [["inspect", "svc", "--source", "zk"], ["list", "--source", "zk"]])
def test_a_hostile_zookeeper_costs_one_timeout_and_bounded_memory(mode, args):
    srv = FakeZooKeeper(mode)
    try:
        r = run_measured([*args, "--timeout", str(TIMEOUT)], {"ZOOKEEPER_HOSTS": srv.hosts,
                                                               "CONFIG_SERVICE_URL": "http://127.0.0.1:9"})
    finally:
        srv.close()
    assert r["code"] == 3, r
    assert r["stderr"].count("regctl: error:") == 1 and "ZooKeeper" in r["stderr"], r
    assert_contract(r)


def test_the_frame_cap_and_session_cap_are_in_place_on_the_library_reader():
    from regctl.errors import Unreachable
    from regctl.zookeeper.reader import ZkReader

    for mode in ("huge", "silent"):
        srv = FakeZooKeeper(mode)
        started = time.monotonic()
        try:
            with pytest.raises(Unreachable):
                with ZkReader(srv.hosts, "/services", timeout=2) as reader:
                    reader.snapshot()
        finally:
            srv.close()
        assert time.monotonic() - started < 2 * 2 + 1, mode


# --------------------------------------------------------------------------- ZooKeeper held to a byte budget

@pytest.fixture(scope="module")
def small_heap_zk(tmp_path_factory):
    """A ZooKeeper of its own, 256 MB heap as the sandbox starts it (an OOM here must not take the shared one)."""
    from regctl.sandbox import zookeeper as zk
    from regctl.sandbox.proc import free_port

    assert "-Xmx256m" in zk.JVM_OPTIONS
    members = zk.start_zookeeper(tmp_path_factory.mktemp("zk-256m"), free_port(), 1)
    try:
        zk.wait_for(members, timeout=60)
        yield members[0]
    finally:
        zk.stop_zookeeper(members)


def zk_alive(member) -> bool:
    from regctl.sandbox import zookeeper as zk

    try:
        return os.path.exists(f"/proc/{member.pid}") and "Mode:" in zk.four_letter_word(
            member.host, member.client_port, "srvr")
    except OSError:
        return False


def test_fat_nodes_do_not_kill_a_256mb_zookeeper(small_heap_zk):
    """45 instances of ~900 KB: one multi-read of all of them made ZooKeeper die of OutOfMemoryError."""
    from kazoo.client import KazooClient

    hosts = small_heap_zk.hosts
    writer = KazooClient(hosts=hosts, timeout=15)
    writer.start(timeout=15)
    try:
        pad = "x" * (900 * 1024 - 200)
        for i in range(45):
            body = {"instance_id": f"fat-{i}", "service_url": f"http://10.1.0.{i}:80", "status": "healthy", "pad": pad}
            writer.create(f"/services/fat3-svc/instances/fat-{i}", json.dumps(body).encode(), makepath=True,
                          ephemeral=True)
        writer.create("/services/thin-svc/instances/thin-1",
                      json.dumps({"service_url": "http://10.1.1.1:80", "status": "healthy"}).encode(),
                      makepath=True, ephemeral=True)
        env = {"ZOOKEEPER_HOSTS": hosts, "ZOOKEEPER_BASE_PATH": "/services", "CONFIG_SERVICE_URL": "http://127.0.0.1:9"}
        for args in (["inspect", "fat3-svc", "--source", "zk", "-o", "json"], ["list", "--source", "zk", "-o", "json"],
                     ["export", "--source", "zk", "-o", "json"]):
            r = run_measured([*args, "--timeout", "10"], env)
            assert r["code"] in (0, 1, 2, 3), r
            assert "Traceback" not in r["stderr"], r
            if args[0] != "export":  # export carries every node whole (40 MB of them here), by design
                assert r["rss_mb"] < PEAK_RSS_MB, r
            assert zk_alive(small_heap_zk), (args, r)
        inspected = run_cli("inspect", "fat3-svc", "--source", "zk", "-o", "json", env=env)
        assert "too-large" in inspected.stdout, inspected  # reported, not parsed
        # the session that wrote them is still there: ZooKeeper never restarted
        assert writer.connected and writer.exists("/services/fat3-svc/instances/fat-44") is not None
    finally:
        writer.stop()
        writer.close()
    assert zk_alive(small_heap_zk)


def test_the_byte_budget_sizes_batches_from_what_it_has_seen():
    from regctl.zookeeper import multi as zk_multi
    budget = zk_multi.ByteBudget()
    assert budget.batch_size() == 16  # nothing seen: 16 nodes of at most 1 MiB each
    for _ in range(2000):
        budget.observe(250)
    assert budget.batch_size() == zk_multi.DEFAULT_BATCH  # a registry of small nodes earns full batches
    fat = zk_multi.ByteBudget()
    for _ in range(16):
        fat.observe(900 * 1024)
    assert fat.batch_size() == 16 and fat.batch_size() * fat.per_node() >= fat.budget  # alone in flight
    mixed = zk_multi.ByteBudget()
    for i in range(1000):
        mixed.observe(900 * 1024 if i % 100 == 0 else 250)
    assert mixed.batch_size() * mixed.per_node() <= mixed.budget / 4 + 1


def test_bulk_reads_come_back_whole_whatever_the_batches(kazoo_client, registry):
    """Random order and budgeted batches: every path answered, in any mix of sizes, as single reads say."""
    from regctl.zookeeper.reader import ZkReader

    base = registry.base_path
    paths = []
    for i in range(60):
        size = 300_000 if i % 7 == 0 else 40
        path = f"{base}/mix/instances/m-{i:02d}"
        kazoo_client.create(path, b"y" * size, makepath=True, ephemeral=True)
        paths.append(path)
    with ZkReader(registry.zk_hosts, base, timeout=10) as reader:
        got = reader.bulk_get(paths + [f"{base}/mix/instances/gone"])
        assert reader.use_multi_read is True
    assert got[f"{base}/mix/instances/gone"] is None
    for i, path in enumerate(paths):
        assert len(got[path][0]) == (300_000 if i % 7 == 0 else 40), path


# --------------------------------------------------------------------------- depth and strict JSON

def nested(depth: int) -> dict:
    value: dict = {"leaf": True}
    for _ in range(depth):
        value = {"a": value}
    return value


@pytest.fixture
def deep_node(registry, kazoo_client):
    put_instance(kazoo_client, registry, "deep-svc", "deep-1", service_url="http://127.0.0.1:9/",
                 service_metadata=nested(480), deep=nested(480), score=float("nan"), big=float("inf"),
                 small=float("-inf"))
    return registry


def strict_json(text: str):
    def refuse(name):
        raise ValueError(f"not JSON: {name}")
    return json.loads(text, parse_constant=refuse)


@pytest.mark.parametrize("args", [
    ["inspect", "deep-svc", "-o", "json"], ["inspect", "deep-svc", "-o", "yaml"], ["inspect", "deep-svc", "-o", "wide"],
    ["inspect", "deep-svc"], ["inspect", "deep-svc", "--source", "zk", "-o", "json"], ["list", "-o", "json"],
    ["discover", "deep-svc", "-o", "json"], ["export", "--source", "zk", "-o", "json"], ["list", "-o", "wide"],
])
def test_deep_metadata_renders_in_every_format(args, deep_node):
    r = run_cli(*args, "--timeout", str(TIMEOUT), env=deep_node.env)
    assert r.exit_code in (0, 1, 2, 3), r
    assert "internal error" not in r.stderr and "RecursionError" not in r.stderr, r
    if "json" in args:
        strict_json(r.stdout)  # strict JSON: no NaN, no Infinity
    if args[:3] == ["inspect", "deep-svc", "-o"] and args[3] == "json":
        text = r.stdout
        assert '"NaN"' in text and '"Infinity"' in text and '"-Infinity"' in text, text[:2000]
        assert "nested deeper than" in text


def test_machine_data_is_iterative_and_strict():
    from regctl.cli.render import DEPTH_MARKER, MAX_DEPTH, machine_data, to_json, to_yaml

    deep = nested(5000)  # deeper than any recursion could walk
    doc = machine_data({"d": deep, "n": float("nan"), 1: (1, 2), None: "x"})
    assert doc["n"] == "NaN" and doc["1"] == [1, 2] and doc["null"] == "x"
    depth, node = 0, doc["d"]
    while isinstance(node, dict):
        node, depth = node["a"], depth + 1
    assert node == DEPTH_MARKER and depth == MAX_DEPTH - 1
    strict_json(to_json({"d": deep}))
    import yaml

    node = yaml.safe_load(to_yaml({"d": deep}))["d"]
    while isinstance(node, dict):
        node = node["a"]
    assert node == DEPTH_MARKER


# --------------------------------------------------------------------------- display

def test_one_huge_name_does_not_pad_every_row(registry, kazoo_client):
    long_name = "l" * 100_000
    put_instance(kazoo_client, registry, long_name, "long-1", service_url="http://127.0.0.1:9/")
    put_instance(kazoo_client, registry, "short-svc", "short-1", service_url="http://127.0.0.1:9/")
    r = run_cli("list", "--source", "zk", "-o", "wide", env=registry.env)
    assert r.exit_code in (0, 1), r
    from regctl.cli.render import MAX_CELL_WIDTH

    widest = max(len(line) for line in r.stdout.splitlines())
    assert widest < 20 * MAX_CELL_WIDTH, widest
    assert "short-svc" in r.stdout and "..." in r.stdout
    whole = run_cli("list", "--source", "zk", "-o", "json", env=registry.env)
    assert long_name in [s["name"] for s in whole.json["services"]]  # full value in JSON


LOOKALIKES = ["asr-service", "asr-service\u200b", "asr-service\u2060", "asr-ser\u00advice", "asr-serv\u0456ce",
              "asr\u2010service"]


def test_lookalike_names_are_flagged_where_listed_and_in_prompts(registry, kazoo_client):
    for i, name in enumerate(LOOKALIKES):
        put_instance(kazoo_client, registry, name, f"inst-{i}", service_url=f"http://127.0.0.1:9/{i}")
    for fmt in ("table", "json"):
        r = run_cli("list", "--source", "zk", "-o", fmt, env=registry.env)
        assert r.exit_code in (0, 1), r
        assert "6 names look alike" in r.stderr, r
        for shown in ("asr-service\\u200b", "asr-service\\u2060", "asr-ser\\xadvice", "asr-serv\\u0456ce",
                      "asr\\u2010service"):
            assert shown in r.stderr, (shown, r.stderr)
            if fmt == "table":
                assert shown in r.stdout, (shown, r.stdout)
        if fmt == "table":
            rows = [line.split()[0] for line in r.stdout.splitlines()[1:] if line.startswith("asr")]
            assert len(rows) == 6 and len(set(rows)) == 6, rows  # six rows, six different looks
    dry = run_cli("deregister", "asr-serv\u0456ce", "inst-4", "--dry-run", "--force", env=registry.env)
    assert "asr-serv\\u0456ce" in dry.stderr + dry.stdout, dry
    prompt = run_cli("deregister", "asr-service\u200b", "inst-1", input="n\n", tty_stdin=True, env=registry.env)
    assert "asr-service\\u200b" in prompt.stderr, prompt  # the note and the question name it escaped
    assert "asr-service\u200b" not in prompt.stderr


def test_the_safety_rule_finds_lookalikes():
    from regctl.safety import lookalike_groups, safe_text

    assert lookalike_groups(LOOKALIKES + ["other"]) == [LOOKALIKES]
    assert lookalike_groups(["ASR-service", "asr-service"]) == []  # case is visible
    assert safe_text("сервис") == "сервис"  # a word in one script is left alone
    assert safe_text("a \u2014 b") == "a \u2014 b"


# --------------------------------------------------------------------------- redaction alters nothing but secrets

def test_an_ordinary_header_value_is_not_redacted_from_data(registry, kazoo_client):
    url = "http://platform-ops.internal:8080/"
    put_instance(kazoo_client, registry, "team-svc", "team-1", service_url=url, owner="platform-ops",
                 note="Basic plan")
    env = {**registry.env, "REGCTL_TOKEN": "tok-SECRET-5d6e7f"}
    r = run_cli("url", "team-svc", "-H", "X-Team: platform-ops", env=env)
    assert r.exit_code == 0 and r.stdout.strip() == url, r
    for fmt in ("json", "yaml"):
        r = run_cli("inspect", "team-svc", "-o", fmt, "-H", "X-Team: platform-ops", env=env)
        assert "platform-ops.internal" in r.stdout and "***" not in r.stdout, r
        assert "Basic plan" in r.stdout
    r = run_cli("discover", "team-svc", "-o", "json", "-H", "X-Team: platform-ops", env=env)
    assert "platform-ops.internal" in r.stdout, r


def test_a_real_secret_in_data_is_still_redacted(registry, kazoo_client):
    token = "tok-SECRET-a1b2c3d4"
    put_instance(kazoo_client, registry, "leaky-svc", "leaky-1", service_url="http://127.0.0.1:9/", echo=token)
    r = run_cli("inspect", "leaky-svc", "-o", "json", env={**registry.env, "REGCTL_TOKEN": token})
    assert token not in r.stdout and "***" in r.stdout, r
