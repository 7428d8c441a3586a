"""The health prober's plain-HTTP fast path behaves as httpx does, over the same cases.

Each case is a raw answer from a socket server on loopback and a URL (odd paths
included); the fast path (h11 over a bare asyncio stream) and a plain
``httpx.AsyncClient`` must send the same request target and reach the same status
and verdict. A hostile answer (one endless chunk) is read within the body cap.
"""

from __future__ import annotations

import asyncio
import socket
import threading

import httpx
import pytest

from regctl import health
from tests.helpers import LoopbackServer


class RawServer(LoopbackServer):
    def __init__(self, answer: bytes) -> None:
        self.answer = answer
        self.request_lines: list = []
        super().__init__()

    def _one(self, conn) -> None:
        try:
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    got = conn.recv(65536)
                    if not got:
                        return
                    data += got
                self.request_lines.append(data.split(b"\r\n", 1)[0])
                conn.sendall(self.answer)
        except OSError:
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
