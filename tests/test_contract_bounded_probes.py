"""The health prober's plain-HTTP fast path behaves as httpx does, over the same cases.

Each case is a raw answer from a socket server on loopback and a URL (odd paths
included); the fast path (h11 over a bare non-blocking socket) and a plain
``httpx.AsyncClient`` must send the same request target and reach the same status
and verdict. A hostile answer (one endless chunk) is read within the body cap.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import httpx
import pytest

from regctl import prober as health
from tests.helpers import LoopbackServer, read_http_head

pytestmark = pytest.mark.compat  # also run on the oldest and newest Python (.ci/run)


class RawServer(LoopbackServer):
    def __init__(self, answer: bytes) -> None:
        self.answer = answer
        self.request_lines: list = []
        super().__init__()

    def _one(self, conn) -> None:
        try:
            with conn:
                data = read_http_head(conn)
                if not data:
                    return
                self.request_lines.append(data.split(b"\r\n", 1)[0])
                self.before_answer()
                conn.sendall(self.answer)
        except OSError:
            pass

    def before_answer(self) -> None:
        pass



ANSWERS = {
    "200 length": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    "200 chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
    "200 until close": b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nok",
    "100 then 200": b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
    "103 then 204": b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
    "503": b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 3\r\n\r\nbad",
    "1.0 404": b"HTTP/1.0 404 Not Found\r\n\r\nnope",
    "gzip 200": b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 20\r\n\r\n"
                b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03\xcb\xcf\x06\x00G\xdd\xdc\x79\x02\x00\x00\x00",
}
PATHS = ["/health", "/h\u20acalth", "/a b/c", "/health?x=1&y=\u20ac z", "/%7Euser/h", "/caf\u00e9?q=caf\u00e9#frag"]


async def httpx_status(url: str) -> int:
    async with httpx.AsyncClient(timeout=3, trust_env=False) as client:
        return (await client.get(url)).status_code


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("case", sorted(ANSWERS))
def test_fast_path_and_httpx_agree(case, path):
    srv = RawServer(ANSWERS[case])
    try:
        url = f"http://127.0.0.1:{srv.port}{path}"
        fast = asyncio.run(health._plain_http_status(url))
        reference = asyncio.run(httpx_status(url))
        assert fast == reference
        assert srv.request_lines[0] == srv.request_lines[1]  # the same request target, byte for byte
        res = health.probe_url(url, timeout=3)
        assert res.status_code == reference and res.healthy == (200 <= reference < 300)
    finally:
        srv.close()


def test_a_url_httpx_refuses_is_refused_the_same_way():
    bad = "http://127.0.0.1:1/a\x00b"
    with pytest.raises(httpx.InvalidURL):
        httpx.URL(bad)
    res = health.probe_url(bad, timeout=1)
    assert not res.healthy and res.error == "bad URL"


def test_one_endless_chunk_is_read_only_up_to_the_cap():
    sock = socket.create_server(("127.0.0.1", 0))
    sent = []

    def serve():
        conn, _ = sock.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n80000000\r\n")
            block = b"x" * 65536
            try:
                for _ in range(32768):
                    conn.sendall(block)
                    sent.append(len(block))
            except OSError:
                pass

    threading.Thread(target=serve, daemon=True).start()
    try:
        res = health.probe_url(f"http://127.0.0.1:{sock.getsockname()[1]}/h", timeout=10)
    finally:
        sock.close()
    assert res.healthy and res.status_code == 200
    assert sum(sent) < 64 * 2**20  # the prober hung up long before the 2 GiB chunk's end


class BusyingServer(RawServer):
    """On a request, blocks the client's event loop (``loop``) for a second and answers 50 ms into it."""

    loop = None

    def before_answer(self) -> None:
        self.loop.call_soon_threadsafe(time.sleep, 1.0)  # the client is busy from now on ...
        time.sleep(0.05)  # ... and the answer arrives while it is


def test_an_answer_that_arrived_while_the_client_was_busy_is_not_a_timeout():
    """The client's loop is blocked past the deadline while the answer arrives: healthy, not "timeout"."""
    server = BusyingServer(ANSWERS["200 length"])

    async def probe():
        server.loop = asyncio.get_running_loop()
        return await health.probe_many_async([health.ProbeTarget("s", "i", f"http://127.0.0.1:{server.port}/h")],
                                             timeout=0.5)

    try:
        [res] = asyncio.run(probe())
    finally:
        server.close()
    assert res.healthy and res.status_code == 200, res


def test_a_name_is_resolved_and_each_address_tried():
    """``localhost`` may resolve to ::1 first while the server listens on 127.0.0.1 only."""
    server = RawServer(ANSWERS["200 length"])
    try:
        res = health.probe_url(f"http://localhost:{server.port}/h", timeout=3)
    finally:
        server.close()
    assert res.healthy and res.status_code == 200, res


def test_a_closed_port_is_refused_and_a_silent_one_times_out():
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    silent = socket.create_server(("127.0.0.1", 0))  # accepts (backlog) and never answers
    try:
        refused, timeout = health.probe_many([health.ProbeTarget("s", "a", f"http://127.0.0.1:{port}/h"),
                                              health.ProbeTarget("s", "b", f"http://127.0.0.1:{silent.getsockname()[1]}/h")],
                                             timeout=0.5)
    finally:
        silent.close()
    assert (refused.healthy, refused.error) == (False, "refused")
    assert (timeout.healthy, timeout.error) == (False, "timeout")


@pytest.mark.parametrize("url", [f"http://127.0.0.1:8080{p}" for p in PATHS]
                         + ["http://Svc-A.example:81/health", "http://[::1]:9/h", "http://host/", "http://host"])
def test_the_request_bytes_are_what_h11_writes_for_them(url):
    """The probe writes its GET by hand (h11 is told a template); it must be what h11 itself would write."""
    import h11

    host, port, data, conn = health._plain_request(url)
    u = httpx.URL(url)
    want = h11.Connection(h11.CLIENT).send(h11.Request(method="GET", target=u.raw_path, headers=[
        ("Host", u.netloc), ("User-Agent", "regctl-health"), ("Accept", "*/*"),
        ("Accept-Encoding", "gzip, deflate"), ("Connection", "close")]))
    assert data == want
    assert conn.our_state is h11.MUST_CLOSE and (host, port) == (u.host, u.port or 80)
