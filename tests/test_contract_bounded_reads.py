"""Bounded memory and time against a hostile HTTP server (a raw socket server in this test).

Each bomb is pointed at every reader that could meet it -- the Config Service API
(``list --source api``), the health prober (``health``) and doctor -- and regctl runs
as a subprocess started by a tiny launcher, whose ``RUSAGE_CHILDREN`` gives regctl's
own peak RSS (a child forked straight from pytest would inherit pytest's high-water
mark). Bounds are generous correctness bounds, not benchmarks: without the bounded
reader, one chunk costs ~800 MB and a gzip bomb over a gigabyte.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import zlib

import pytest

from tests.helpers import LoopbackServer, read_http_head

PEAK_RSS_MB = 150
LAUNCHER = r"""
import json, resource, subprocess, sys, time
t = time.monotonic()
p = subprocess.run(sys.argv[1:], stdin=subprocess.DEVNULL, capture_output=True)
wall = time.monotonic() - t
rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({"code": p.returncode, "wall": wall, "rss_mb": rss / 1024,
                  "stdout": p.stdout.decode("utf-8", "replace")[-3000:],
                  "stderr": p.stderr.decode("utf-8", "replace")[-3000:]}))
"""


def gzip_bomb(mb: int) -> bytes:
    """``mb`` MiB of zeros, gzip-compressed (about 1,000:1)."""
    z = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = bytes(1024 * 1024)
    return b"".join(z.compress(block) for _ in range(mb)) + z.flush()


class HostileServer(LoopbackServer):
    """Answers every request by ``mode``: chunk, gzip, redirect (to /gzip), trickle, ok."""

    def __init__(self, mode: str, bomb: bytes = b"") -> None:
        self.mode, self.bomb = mode, bomb
        super().__init__()
        self.url = f"http://127.0.0.1:{self.port}"

    def _one(self, conn: socket.socket) -> None:
        try:
            with conn:
                head = read_http_head(conn)
                if not head:
                    return
                path = head.split(b" ", 2)[1]
                mode = "gzip" if path.startswith(b"/gzip") else self.mode
                if mode == "redirect":
                    conn.sendall(b"HTTP/1.1 302 Found\r\nLocation: /gzip\r\nContent-Length: 0\r\n\r\n")
                elif mode == "gzip":
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n"
                                 b"Content-Length: %d\r\n\r\n" % len(self.bomb) + self.bomb)
                elif mode == "chunk":  # one 2 GiB chunk of '[' (JSON-looking), sent as fast as it is read
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                 b"Transfer-Encoding: chunked\r\n\r\n80000000\r\n")
                    block = b"[" * (1024 * 1024)
                    for _ in range(2048):
                        conn.sendall(block)
                elif mode == "trickle":  # headers at once, then one byte every 0.3 s, forever
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n")
                    while True:
                        conn.sendall(b" ")
                        time.sleep(0.3)
        except OSError:
            pass



@pytest.fixture(scope="module")
def bomb() -> bytes:
    return gzip_bomb(1024)


def run_measured(args, env, timeout=120) -> dict:
    full = {**os.environ, **env}
    p = subprocess.run([sys.executable, "-S", "-c", LAUNCHER, sys.executable, "-m", "regctl", *args],
                       env=full, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)
    return json.loads(p.stdout)


def point_health_at(kazoo_client, registry, url: str, name: str = "bombed") -> None:
    node = {"instance_id": f"{name}-1", "service_name": name, "service_url": url, "health_check_url": url + "/health",
            "status": "healthy"}
    kazoo_client.create(f"{registry.base_path}/{name}/instances/{name}-1", json.dumps(node).encode(),
                        makepath=True, ephemeral=True)


@pytest.mark.parametrize("mode", ["chunk", "gzip", "redirect"])
def test_api_answers_are_read_within_a_memory_bound(mode, bomb):
    srv = HostileServer(mode, bomb)
    try:
        r = run_measured(["list", "--source", "api", "--timeout", "10"], {"CONFIG_SERVICE_URL": srv.url})
    finally:
        srv.close()
    assert r["code"] == 3, r
    assert "Traceback" not in r["stderr"] and r["stderr"].count("regctl: error:") == 1, r
    assert r["rss_mb"] < PEAK_RSS_MB, r


@pytest.mark.parametrize("mode", ["chunk", "gzip", "redirect"])
def test_health_probes_read_within_a_memory_bound(mode, bomb, registry, kazoo_client):
    srv = HostileServer(mode, bomb)
    point_health_at(kazoo_client, registry, srv.url)
    try:
        r = run_measured(["health", "bombed", "--timeout", "10", "-o", "json"], registry.env)
    finally:
        srv.close()
    assert r["code"] in (0, 1), r
    assert r["rss_mb"] < PEAK_RSS_MB, r
    assert r["wall"] < 20, r
    probe = json.loads(r["stdout"])["results"][0] if "results" in json.loads(r["stdout"]) else None
    assert probe is None or probe["status_code"] == 200, r


@pytest.mark.parametrize("mode", ["chunk", "gzip", "redirect"])
def test_doctor_reads_within_a_memory_bound(mode, bomb):
    srv = HostileServer(mode, bomb)
    try:
        r = run_measured(["doctor", "config", "--timeout", "5", "-o", "json"], {"CONFIG_SERVICE_URL": srv.url})
    finally:
        srv.close()
    assert r["code"] in (0, 1, 3), r
    assert "Traceback" not in r["stderr"], r
    assert r["rss_mb"] < PEAK_RSS_MB, r


@pytest.mark.parametrize("args", [["inspect", "svc", "--source", "api"], ["list", "--source", "api"],
                                  ["url", "svc"]])
def test_a_trickling_server_costs_about_one_timeout(args):
    srv = HostileServer("trickle")
    try:
        r = run_measured([*args, "--timeout", "2"], {"CONFIG_SERVICE_URL": srv.url})
    finally:
        srv.close()
    assert r["code"] == 3, r
    assert r["stderr"].count("regctl: error:") == 1, r
    assert r["wall"] < 2 * 2 + 3, r  # about --timeout (plus start-up), never a multiple per request
    assert r["rss_mb"] < PEAK_RSS_MB, r


def test_a_trickling_health_endpoint_is_a_timeout_within_the_bound(registry, kazoo_client):
    srv = HostileServer("trickle")
    point_health_at(kazoo_client, registry, srv.url, "slow")
    try:
        r = run_measured(["health", "slow", "--timeout", "2", "-o", "json"], registry.env)
    finally:
        srv.close()
    assert r["code"] == 1, r
    assert r["wall"] < 2 * 2 + 4, r
    assert "timeout" in r["stdout"], r


def test_a_yaml_alias_bomb_is_bad_input(tmp_path):
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 9):
        prev, cur = chr(ord("a") + i - 1), chr(ord("a") + i)
        lines.append(f"{cur}: &{cur} [" + ",".join([f"*{prev}"] * 9) + "]")
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines) + "\n")
    assert path.stat().st_size < 1024
    for args in (["register", "-f", str(path), "--dry-run"], ["import", str(path), "--dry-run"]):
        r = run_measured(args, {"CONFIG_SERVICE_URL": "http://127.0.0.1:9"})
        assert r["code"] == 2, r
        assert "alias" in r["stderr"] and str(path) in r["stderr"], r
        assert r["rss_mb"] < PEAK_RSS_MB and r["wall"] < 20, r
    cfg = tmp_path / "config.yaml"
    cfg.write_text("contexts:\n  x:\n    description: hi\n" + "\n".join("# " + line for line in lines) + "\n"
                   + "x: " + "\n".join(lines))
    bad = tmp_path / "config-bomb.yaml"
    bad.write_text("\n".join(lines) + "\ncontexts: {}\n")
    r = run_measured(["config", "view"], {"REGCTL_CONFIG": str(bad)})
    assert r["code"] == 2 and "alias" in r["stderr"], r
    assert r["rss_mb"] < PEAK_RSS_MB, r
