"""Probe instances' health endpoints concurrently, bounded, each under its own deadline.

``probe_many`` runs on one asyncio loop. At most ``concurrency`` attempts are open
at once (that many workers, each taking the next target when done with one, one
socket each; default :data:`DEFAULT_CONCURRENCY`, capped by the process's file
limit, whose soft limit is raised to the hard limit once, see :func:`socket_ceiling`). Every attempt is cut off after ``timeout``
seconds whatever the server does (accepts and never answers, trickles bytes),
and Ctrl-C cancels every probe at once.

The width is what keeps hanging endpoints from stalling the fan-out: one that
never answers holds its slot for one timeout, so 1,000 of them among 10,000
instances hold 1,000 of the slots while the rest keep turning over. It stays
safe because a plain ``http://`` probe costs little CPU (a bare non-blocking
socket on the loop's reader/writer callbacks, parsed by h11) and its verdict is
decided inside the I/O callback, so a busy loop cannot time out an answer that
had already arrived. Probes that need httpx
(https, userinfo, redirects; ~2 ms of CPU each) also take one of
:data:`HTTPX_CONCURRENCY` slots, so a thousand TLS handshakes are never started
at once on a client that cannot finish them within the timeout.
bench/health.py measures the choice (docs/performance.md).

A probe's verdict is "healthy" when the endpoint answers 2xx (or a status in
``expect``), "unreachable-from-here" when the URL's host does not resolve on this
machine (could not check), "unhealthy" otherwise; ``error`` says why in a few
words (refused, DNS, timeout, TLS, HTTP 503 ...).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import re
import socket
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit
from typing import Callable, Iterable, Sequence

import h11
import httpx

from regctl.http.bounded import ACCEPT_ENCODING, Decoder, read_body_async
from regctl.http.config import ssl_verify
from regctl.models import Instance

try:
    import resource
except ImportError:  # pragma: no cover - not on Linux/macOS
    resource = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

#: attempts open at once (``--concurrency``), capped by :func:`socket_ceiling`; see bench/health.py
DEFAULT_CONCURRENCY = 1024
#: of those, attempts that go through httpx (https, userinfo, redirects: ~2 ms of CPU each)
HTTPX_CONCURRENCY = 128
#: the verdict of a probe whose URL's host does not resolve from this machine
UNREACHABLE_FROM_HERE = "unreachable-from-here"


@dataclass(frozen=True)
class ProbeTarget:
    service_name: str
    instance_id: str
    url: str | None


@dataclass(frozen=True)
class ProbeResult:
    service_name: str
    instance_id: str
    url: str | None
    healthy: bool
    status_code: int | None = None
    latency_ms: float | None = None
    error: str | None = None
    attempts: int = 1

    @property
    def checked(self) -> bool:
        """False when the probe could not be made from this machine: the URL's host does not resolve here
        (a Docker-network name such as ``tts-service``). That is "could not check", not "dead"."""
        return self.healthy or self.error != "DNS"

    @property
    def verdict(self) -> str:
        """``healthy``, ``unhealthy``, or ``unreachable-from-here`` (see :attr:`checked`)."""
        if self.healthy:
            return "healthy"
        return "unhealthy" if self.checked else UNREACHABLE_FROM_HERE

    def to_dict(self) -> dict:
        return {
            "service_name": self.service_name,
            "instance_id": self.instance_id,
            "url": self.url,
            "status_code": self.status_code,
            "latency_ms": None if self.latency_ms is None else round(self.latency_ms, 1),
            "verdict": self.verdict,
            "error": self.error,
            "attempts": self.attempts,
        }


def targets_for(instances: Iterable[Instance]) -> list[ProbeTarget]:
    """One target per instance: ``health_check_url``, else ``service_url + /health``."""
    return [ProbeTarget(i.service_name, i.instance_id, i.probe_url()) for i in instances]


def describe_error(exc: BaseException) -> str:
    """A few words for a failed probe: refused, DNS, timeout, TLS, reset, bad URL ..."""
    if isinstance(exc, (httpx.TimeoutException, asyncio.TimeoutError, TimeoutError)):
        return "timeout"
    if isinstance(exc, (NotHTTP, asyncio.IncompleteReadError)):
        return "not HTTP"
    if isinstance(exc, httpx.TooManyRedirects):
        return "too many redirects"
    text = f"{exc} {exc.__cause__ or ''}".lower()
    chain: BaseException | None = exc
    seen = set()
    while chain is not None and id(chain) not in seen:
        seen.add(id(chain))
        if isinstance(chain, ssl.SSLError):
            return "TLS"
        if isinstance(chain, socket.gaierror):
            return "DNS"
        if isinstance(chain, ConnectionRefusedError) or getattr(chain, "errno", None) == errno.ECONNREFUSED:
            return "refused"
        chain = chain.__cause__ or chain.__context__
    if isinstance(exc, httpx.UnsupportedProtocol) or isinstance(exc, httpx.InvalidURL):
        return "bad URL"
    if "name or service not known" in text or "name resolution" in text or "nodename" in text \
            or "no address associated" in text:
        return "DNS"
    if "certificate" in text or "ssl" in text or "tls" in text:
        return "TLS"
    if "refused" in text:
        return "refused"
    if "reset" in text:
        return "reset"
    if "unreachable" in text:
        return "unreachable"
    if isinstance(exc, httpx.RemoteProtocolError):
        return "not HTTP"
    return type(exc).__name__


def _is_healthy(status: int, expect: Sequence[int] | None) -> bool:
    return status in expect if expect else 200 <= status < 300


class NotHTTP(Exception):
    """The endpoint answered, but not with HTTP."""


#: Largest health body read (decompressed); the rest is not waited for.
MAX_HEALTH_BODY = 64 * 1024
#: file descriptors kept free for everything else (ZooKeeper, logs, the event loop itself)
FD_RESERVE = 64


def socket_ceiling() -> int:
    """How many sockets may be open at once: the process's file limit (soft raised to hard once), less a reserve."""
    if resource is None:  # pragma: no cover - not on Linux/macOS
        return 1024 - FD_RESERVE
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
    if soft != resource.RLIM_INFINITY and soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
            soft = want
        except (ValueError, OSError):
            pass
    limit = 65536 if soft == resource.RLIM_INFINITY else soft
    return max(1, limit - FD_RESERVE)


#: a URL part httpx sends unchanged (nothing to percent-encode, no IDNA, no IPv6 literal)
_PLAIN_TARGET = re.compile(r"/(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/?]|%[0-9A-Fa-f]{2})*")
_PLAIN_NETLOC = re.compile(r"[A-Za-z0-9.\-]+(?::[0-9]{1,5})?")


def _plain_request(url: str) -> "tuple[str, int, bytes, object] | None":
    """(host, port, request bytes, the h11 connection awaiting the answer) for an ``http://`` URL, as httpx
    would send it; None for what is left to httpx (https, userinfo). Anything httpx would percent-encode
    (spaces, non-ASCII) or refuse goes through :class:`httpx.URL`, so it is encoded or refused the same."""
    parts = urlsplit(url)
    if parts.scheme.lower() != "http" or not parts.hostname or parts.username or parts.password:
        return None
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if _PLAIN_NETLOC.fullmatch(parts.netloc) and _PLAIN_TARGET.fullmatch(target) and "#" not in url \
            and int(parts.netloc.rpartition(":")[2] if ":" in parts.netloc else 80) <= 65535:
        host, port, netloc, raw = parts.hostname, parts.port, parts.netloc.lower().encode(), target.encode("ascii")
    else:  # anything httpx would encode or refuse: exactly as httpx does
        u = httpx.URL(url)
        if not u.host:
            return None
        host, port, netloc, raw = u.host, u.port, u.netloc, u.raw_path
    conn = h11.Connection(h11.CLIENT)
    # h11's state machine only needs to know a GET without body and with "Connection: close" went out (that
    # decides how the answer is framed); sending one validated template costs a third of building each request
    conn.send(_SENT)
    conn.send(h11.EndOfMessage())
    return host, port or 80, _request_bytes(raw, netloc), conn


def _request_bytes(target: bytes, netloc: bytes) -> bytes:
    """The probe's GET, byte for byte what h11 writes for it (tests/test_contract_bounded_probes.py compares)."""
    return b"GET " + target + b" HTTP/1.1\r\nHost: " + netloc + b"\r\n" + _PROBE_HEADERS


#: what h11 is told was sent (see :func:`_plain_request`)
_SENT = h11.Request(method="GET", target=b"/", headers=[("Host", "x"), ("Connection", "close")])
#: every header of the probe's GET after Host, and the blank line that ends them
_PROBE_HEADERS = (f"User-Agent: regctl-health\r\nAccept: */*\r\nAccept-Encoding: {ACCEPT_ENCODING}\r\n"
                  "Connection: close\r\n\r\n").encode()


class _Exchange:
    """One GET over one non-blocking socket driven by the loop's reader/writer callbacks, the answer parsed by h11.

    No transport, protocol or task per probe (asyncio's ``create_connection`` was most of
    a probe's CPU at 10,000 targets). The verdict is set inside the I/O callback, not by
    waking a task, so an answer that reached this machine before the deadline fires is
    counted even when a busy loop handles both in the same iteration.
    """

    def __init__(self, loop, conn, request: bytes, family: int, address: tuple, done: "asyncio.Future") -> None:
        self.loop, self.conn, self.pending, self.done = loop, conn, request, done
        self.status: int | None = None
        self.decoder: Decoder | None = None
        self.read = 0
        self.connected = False
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.fd = self.sock.fileno()
        self.sock.setblocking(False)
        err = self.sock.connect_ex(address)
        if err in (0, errno.EINPROGRESS, errno.EAGAIN):
            self.loop.add_writer(self.fd, self._writable)
        else:
            self._finish(exc=OSError(err, os.strerror(err)))

    def _writable(self) -> None:
        if not self.connected:
            err = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                return self._finish(exc=OSError(err, os.strerror(err)))
            self.connected = True
            self.loop.add_reader(self.fd, self._readable)
        try:
            sent = self.sock.send(self.pending)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            return self._finish(exc=exc)
        self.pending = self.pending[sent:]
        if not self.pending:
            self.loop.remove_writer(self.fd)

    def _readable(self) -> None:
        try:
            data = self.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            return self._finish(exc=exc)
        if self.done.done():
            return
        self.conn.receive_data(data)
        self._advance()
        if not data and not self.done.done():
            self._finish(exc=NotHTTP("connection closed before an answer"))

    def close(self) -> None:
        if self.sock.fileno() >= 0:
            self.loop.remove_writer(self.fd)
            self.loop.remove_reader(self.fd)
            self.sock.close()

    def _finish(self, status: "int | None" = None, exc: "BaseException | None" = None) -> None:
        if not self.done.done():
            if exc is None:
                self.done.set_result(status)
            else:
                self.done.set_exception(exc)
        self.close()

    def _advance(self) -> None:
        try:
            while True:
                event = self.conn.next_event()
                if event is h11.NEED_DATA:
                    return
                if isinstance(event, h11.InformationalResponse):
                    continue
                if isinstance(event, h11.Response):
                    self.status = event.status_code
                    headers = {k.lower(): v for k, v in event.headers}
                    if 300 <= self.status < 400 and b"location" in headers:
                        return self._finish(None)  # let httpx follow redirects
                    self.decoder = Decoder(headers.get(b"content-encoding", b"").decode("latin-1"))
                    continue
                if isinstance(event, h11.Data):
                    if self.decoder is not None:
                        self.read += len(self.decoder.feed(bytes(event.data), MAX_HEALTH_BODY - self.read))
                    if self.read > MAX_HEALTH_BODY:
                        return self._finish(self.status)  # enough: the status is what counts
                    continue
                if isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
                    if self.status is None:
                        return self._finish(exc=NotHTTP("answer ended inside the headers"))
                    return self._finish(self.status)
                if event is h11.PAUSED:
                    return self._finish(self.status)
        except h11.RemoteProtocolError as exc:
            self._finish(exc=NotHTTP(str(exc)))
        except Exception as exc:  # a bad Content-Encoding, a corrupt gzip stream: a verdict, not a crash
            self._finish(exc=exc)


def _literal_address(host: str, port: int) -> "list[tuple[int, tuple]] | None":
    """[(family, address)] when ``host`` is an IP literal (no resolver, no task: the common case), else None."""
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host)
        except OSError:
            continue
        return [(family, (host, port))]
    return None


async def _plain_http_status(url: str, timeout: float = 5.0) -> int | None:
    """GET an ``http://`` URL over a bare non-blocking socket, parsed by h11 (httpx's own parser); the status.

    A health probe needs the status and a complete answer, not httpx's pool and
    machinery (~2 ms of CPU per request, bench/health.py). As in httpx, 1xx
    interim answers are skipped; the body is read to its end (so a trickled
    body is a timeout), at most :data:`MAX_HEALTH_BODY` decompressed bytes.
    Every address of a name is tried in turn, as httpx does, all within ``timeout``
    seconds (else TimeoutError). Returns None for what is left to httpx: https,
    userinfo, redirects.
    """
    planned = _plain_request(url)
    if planned is None:
        return None
    host, port, data, conn = planned
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    addresses = _literal_address(host, port)
    if addresses is None:
        infos = await asyncio.wait_for(loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), timeout)
        addresses = [(family, address) for family, _type, _proto, _name, address in infos]
    failure: BaseException = OSError(errno.EHOSTUNREACH, f"no address for {host}")
    for family, address in addresses:
        done = loop.create_future()
        timer = loop.call_at(deadline, lambda: done.done() or done.set_exception(TimeoutError()))
        exchange = None
        try:
            exchange = _Exchange(loop, conn, data, family, address, done)
            return await done
        except TimeoutError:
            raise
        except OSError as exc:
            if exchange is not None and exchange.connected:
                raise
            failure = exc  # this address refused or is unreachable: the next one
        finally:
            timer.cancel()
            if exchange is not None:
                exchange.close()
            if not done.done():
                done.cancel()  # interrupted: nothing may set a verdict nobody reads
    raise failure


#: redirects a probe follows before it is a failure (as httpx's own default, 20)
MAX_REDIRECTS = 20


async def _httpx_status(client: httpx.AsyncClient, url: str) -> int:
    """GET through httpx (https, redirects); the status of the last answer.

    Redirects are followed here, one hop at a time, not by httpx: httpx reads a
    redirect's whole body before following it, unbounded (a 302 carrying a gzip bomb
    or an endless body). Every body, 3xx included, goes through the bounded reader.
    """
    request = client.build_request("GET", url)
    for _hop in range(MAX_REDIRECTS + 1):
        resp = await client.send(request, stream=True)
        try:
            await read_body_async(resp, MAX_HEALTH_BODY, truncate=True)
        finally:
            await resp.aclose()
        nxt = getattr(resp, "next_request", None)
        if nxt is None:
            return resp.status_code
        request = nxt
    raise httpx.TooManyRedirects(f"more than {MAX_REDIRECTS} redirects", request=request)


async def _probe_once(client: httpx.AsyncClient, tls_slots: asyncio.Semaphore, url: str, timeout: float,
                      expect: Sequence[int] | None) -> tuple[bool, int | None, float, str | None]:
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        status = await _plain_http_status(url, timeout)
        if status is None:
            spent = loop.time() - started
            async with tls_slots:  # waiting for a local slot is not the endpoint's time
                started = loop.time() - spent
                status = await asyncio.wait_for(_httpx_status(client, url), max(0.001, timeout - spent))
        latency = (loop.time() - started) * 1000
        ok = _is_healthy(status, expect)
        return ok, status, latency, None if ok else f"HTTP {status}"
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # every failure is a verdict, never an exception
        return False, None, (loop.time() - started) * 1000, describe_error(exc)


async def probe_many_async(targets: Sequence[ProbeTarget], *, timeout: float = 5.0,
                           concurrency: int = DEFAULT_CONCURRENCY, retries: int = 0, backoff: float = 0.2,
                           expect: Sequence[int] | None = None, verify: bool | str = True,
                           on_result: Callable[[ProbeResult], None] | None = None) -> list[ProbeResult]:
    """Probe every target; results in the order of ``targets``.

    At most ``concurrency`` attempts (one socket each) are open at once, capped by
    :func:`socket_ceiling`; of those, at most :data:`HTTPX_CONCURRENCY` go through httpx.
    """
    width = max(1, min(concurrency, socket_ceiling()))
    tls_slots = asyncio.Semaphore(HTTPX_CONCURRENCY)
    # no keep-alive: each target is a different origin, probed once; idle pooled connections only make
    # httpcore scan a longer list on every request (O(pool) per request, the largest cost at 1,000 targets)
    limits = httpx.Limits(max_connections=HTTPX_CONCURRENCY, max_keepalive_connections=0)
    async with httpx.AsyncClient(timeout=timeout, verify=ssl_verify(verify), limits=limits, follow_redirects=False,
                                 trust_env=False, headers={"Accept-Encoding": ACCEPT_ENCODING}) as client:

        async def one(t: ProbeTarget) -> ProbeResult:
            if not t.url:
                return ProbeResult(t.service_name, t.instance_id, None, False, error="no URL", attempts=0)
            attempts = 0
            while True:
                attempts += 1
                ok, code, latency, err = await _probe_once(client, tls_slots, t.url, timeout, expect)
                if ok or attempts > retries:
                    return ProbeResult(t.service_name, t.instance_id, t.url, ok, code, latency, err, attempts)
                await asyncio.sleep(backoff * (2 ** (attempts - 1)))

        # ``width`` workers take the next target as they finish one: one plain bound on open sockets, without
        # a task and a semaphore wait per target (a semaphore with 10,000 waiters was 15% of the CPU)
        results: list = [None] * len(targets)
        queue = iter(range(len(targets)))

        async def worker() -> None:
            for i in queue:
                results[i] = res = await one(targets[i])
                if on_result is not None:
                    on_result(res)

        await asyncio.gather(*(worker() for _ in range(min(width, len(targets)))))
        return results


def probe_many(targets: Sequence[ProbeTarget], **kwargs) -> list[ProbeResult]:
    """Synchronous entry point for :func:`probe_many_async` (same keyword arguments)."""
    if not targets:
        return []
    return asyncio.run(probe_many_async(targets, **kwargs))


def probe_url(url: str, *, timeout: float = 5.0, expect: Sequence[int] | None = None) -> ProbeResult:
    """Probe one URL (for ``url --verify`` and doctor)."""
    return probe_many([ProbeTarget("", "", url)], timeout=timeout, expect=expect)[0]
