"""The plain-HTTP fast path of the health prober, against raw socket servers on loopback."""

import time

import pytest

from regctl.prober import probe_url
from tests.helpers import LoopbackServer


class RawServer(LoopbackServer):
    """Answers every connection with fixed bytes, then keeps it open (keep-alive) or closes it."""

    def __init__(self, answer: bytes, keep_open: bool = False, trickle: float = 0.0):
        self.answer, self.keep_open, self.trickle = answer, keep_open, trickle
        self.requests = []
        super().__init__()

    def _one(self, conn):
        try:
            self._answer(conn)
        except OSError:  # the prober hung up first
            pass

    def _answer(self, conn):
        with conn:
            self.requests.append(conn.recv(4096))
            if self.trickle:
                for b in self.answer:
                    conn.sendall(bytes([b]))
                    time.sleep(self.trickle)
            else:
                conn.sendall(self.answer)
            if self.keep_open:
                time.sleep(5)

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}/health?x=1"



@pytest.mark.parametrize("answer,status,healthy", [
    (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 200, True),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", 200, True),
    (b"HTTP/1.0 204 No Content\r\n\r\n", 204, True),
    (b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n", 503, False),
])
def test_complete_answers_on_a_kept_open_connection_do_not_wait_for_close(answer, status, healthy):
    srv = RawServer(answer, keep_open=True)
    try:
        started = time.monotonic()
        res = probe_url(srv.url, timeout=3)
        assert time.monotonic() - started < 2
        assert (res.status_code, res.healthy) == (status, healthy)
        assert srv.requests[0].startswith(b"GET /health?x=1 HTTP/1.1\r\n")
        assert b"Host: 127.0.0.1:" in srv.requests[0]
    finally:
        srv.close()


@pytest.mark.parametrize("answer,error", [
    (b"SSH-2.0-OpenSSH_9.2\r\n", "not HTTP"),
    (b"", "not HTTP"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n", "not HTTP"),
])
def test_broken_answers_are_unhealthy_with_a_reason(answer, error):
    srv = RawServer(answer)
    try:
        res = probe_url(srv.url, timeout=2)
        assert not res.healthy and res.error == error, res
    finally:
        srv.close()


def test_a_trickling_body_is_a_timeout_as_with_httpx():
    srv = RawServer(b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n" + b"x" * 50, trickle=0.05)
    try:
        res = probe_url(srv.url, timeout=1)
        assert not res.healthy and res.error == "timeout"
    finally:
        srv.close()


def test_redirects_are_followed_through_httpx():
    target = RawServer(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    hop = RawServer(f"HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:{target.port}/h\r\n"
                    "Content-Length: 0\r\n\r\n".encode())
    try:
        res = probe_url(hop.url, timeout=2)
        assert res.healthy and res.status_code == 200
    finally:
        hop.close()
        target.close()
