"""Hostile registry data and hostile servers, round two: every attack is run for real.

Anyone can write the registry (its API has no authentication), so instance data, names and
the servers they point at are the attacker's. Each test below is one attack found on a
sandbox, replayed against real parts: a real ZooKeeper (256 MB heap, as the sandbox starts
it), raw loopback servers, regctl as a subprocess where memory and time are the point
(its own peak RSS measured as in tests/test_bounds_http.py).

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

from tests.helpers import LoopbackServer, run_cli
from tests.test_bounds_http import PEAK_RSS_MB, gzip_bomb, run_measured

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
                head = b""
                while b"\r\n\r\n" not in head:
                    data = conn.recv(65536)
                    if not data:
                        return
                    head += data
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
    from regctl.bounded import TOKEN_FILE_MAX_BYTES

    big = tmp_path / "token"
    big.write_bytes(b"a" * (TOKEN_FILE_MAX_BYTES + 1))
    r = run_cli("list", "--source", "api", "--token-file", str(big), env={"CONFIG_SERVICE_URL": "http://127.0.0.1:9"})
    assert r.exit_code == 2 and "larger than 64 KiB" in r.stderr, r
    assert "aaaa" not in r.stderr  # never the token itself


def test_the_bounded_file_reader_directly(tmp_path):
    from regctl.bounded import read_file_text
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
    from regctl.zk import ZkReader

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
