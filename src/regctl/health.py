"""Probe instances' health endpoints concurrently, bounded, each under its own deadline.

``probe_many`` runs on one asyncio loop with one pooled ``httpx.AsyncClient``;
at most ``concurrency`` probes are actively in flight, every attempt is cut off
after ``timeout`` seconds whatever the server does (accepts and never answers,
trickles bytes), and Ctrl-C cancels every probe at once.

Hanging endpoints do not stall the fan-out: an attempt that has had no answer
for ``stall_after`` seconds (default ``min(0.1, timeout / 4)``) gives its slot
to the next probe and keeps waiting, parked, until its own deadline -- unless
the event loop itself is late (a CPU-bound client must not start ever more
probes and time them all out). At most ``max_in_flight`` attempts (one socket
each, parked ones included) are open at once: by default as many as the process's
file limit allows (its soft limit is raised to the hard limit once, see
:func:`socket_ceiling`), at most :data:`MAX_IN_FLIGHT`, so 1,000 hanging endpoints
among 10,000 park side by side instead of queueing. Without this, 100 endpoints that
never answer cost ``100 x timeout / concurrency`` seconds (6.3 s for a 2 s timeout
and 32 slots) before the last answering instance is even asked; with it the
whole run takes about the time the answering instances need plus one timeout.
``stall_after=None`` restores fixed slots.

A probe's verdict is "healthy" when the endpoint answers 2xx (or a status in
``expect``), "unreachable-from-here" when the URL's host does not resolve on this
machine (could not check), "unhealthy" otherwise; ``error`` says why in a few
words (refused, DNS, timeout, TLS, HTTP 503 ...).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import re
import socket
import ssl
import time
from dataclasses import dataclass
from urllib.parse import urlsplit
from typing import Callable, Iterable, Sequence

import httpx

from regctl.bounded import ACCEPT_ENCODING, Decoder, read_body_async
from regctl.models import Instance

log = logging.getLogger(__name__)

#: probes actively in flight (``--concurrency``); 128 measured best on 2 cores with 1,000 targets (bench/health.py)
DEFAULT_CONCURRENCY = 128
#: a probe silent this long (capped by timeout / 4) gives up its slot and waits parked
DEFAULT_STALL_AFTER = 0.1
#: sockets open at once, parked probes included: the file limit (raised to its hard limit), at most this
MAX_IN_FLIGHT = 4096

_DEFAULT = object()
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
    try:
        import resource
    except ImportError:  # pragma: no cover - not on Linux/macOS
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
    """(host, port, request bytes, the h11 connection awaiting the answer) for an ``http://`` URL as httpx would send it; None for what is left
    to httpx (https, userinfo). The target and Host header come from :class:`httpx.URL`, so spaces and
    non-ASCII in the path are percent-encoded exactly as httpx does; a URL httpx refuses raises the same."""
    import h11

    parts = urlsplit(url)
    if parts.scheme.lower() != "http" or not parts.hostname or parts.username or parts.password:
        return None
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if _PLAIN_NETLOC.fullmatch(parts.netloc) and _PLAIN_TARGET.fullmatch(target) and "#" not in url \
            and int(parts.netloc.rpartition(":")[2] if ":" in parts.netloc else 80) <= 65535:
        host, port, netloc, raw = parts.hostname, parts.port, parts.netloc.lower(), target.encode("ascii")
    else:  # anything httpx would encode or refuse: exactly as httpx does
        u = httpx.URL(url)
        if not u.host:
            return None
        host, port, netloc, raw = u.host, u.port, u.netloc, u.raw_path
    request = h11.Request(method="GET", target=raw, headers=[
        ("Host", netloc), ("User-Agent", "regctl-health"), ("Accept", "*/*"),
        ("Accept-Encoding", ACCEPT_ENCODING), ("Connection", "close")])
    conn = h11.Connection(h11.CLIENT)
    data = conn.send(request) + (conn.send(h11.EndOfMessage()) or b"")
    return host, port or 80, data, conn


async def _plain_http_status(url: str) -> int | None:
    """GET an ``http://`` URL over a bare asyncio stream, parsed by h11 (httpx's own parser); the status.

    A health probe needs the status and a complete answer, not httpx's pool and
    machinery (~2 ms of CPU per request, bench/health.py). As in httpx, 1xx
    interim answers are skipped; the body is read to its end (so a trickled
    body is a timeout), at most :data:`MAX_HEALTH_BODY` decompressed bytes.
    Returns None for what is left to httpx: https, userinfo, redirects.
    """
    import h11

    planned = _plain_request(url)
    if planned is None:
        return None
    host, port, data, conn = planned
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(data)
        await writer.drain()
        status = None
        decoder = None
        read = 0
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                raise NotHTTP(str(exc)) from None
            if event is h11.NEED_DATA:
                conn.receive_data(await reader.read(65536))
                continue
            if isinstance(event, h11.InformationalResponse):
                continue
            if isinstance(event, h11.Response):
                status = event.status_code
                headers = {k.lower(): v for k, v in event.headers}
                if 300 <= status < 400 and b"location" in headers:
                    return None  # let httpx follow redirects
                decoder = Decoder(headers.get(b"content-encoding", b"").decode("latin-1"))
                continue
            if isinstance(event, h11.Data):
                read += len(decoder.feed(bytes(event.data), MAX_HEALTH_BODY - read)) if decoder else 0
                if read > MAX_HEALTH_BODY:
                    return status  # enough: the status is what counts
                continue
            if isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
                if status is None:
                    raise NotHTTP("answer ended inside the headers")
                return status
    finally:
        writer.close()


async def _httpx_status(client: httpx.AsyncClient, url: str) -> int:
    """GET through httpx (https, redirects); the body read through the bounded reader."""
    async with client.stream("GET", url) as resp:
        await read_body_async(resp, MAX_HEALTH_BODY, truncate=True)
        return resp.status_code


async def _probe_once(client: httpx.AsyncClient, url: str, timeout: float,
                      expect: Sequence[int] | None) -> tuple[bool, int | None, float, str | None]:
    started = time.monotonic()
    try:
        status = await asyncio.wait_for(_plain_http_status(url), timeout)
        if status is None:
            left = max(0.001, timeout - (time.monotonic() - started))
            status = await asyncio.wait_for(_httpx_status(client, url), left)
        latency = (time.monotonic() - started) * 1000
        ok = _is_healthy(status, expect)
        return ok, status, latency, None if ok else f"HTTP {status}"
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # every failure is a verdict, never an exception
        return False, None, (time.monotonic() - started) * 1000, describe_error(exc)


async def probe_many_async(targets: Sequence[ProbeTarget], *, timeout: float = 5.0,
                           concurrency: int = DEFAULT_CONCURRENCY, retries: int = 0, backoff: float = 0.2,
                           expect: Sequence[int] | None = None, verify: bool | str = True,
                           on_result: Callable[[ProbeResult], None] | None = None,
                           stall_after: "float | None | object" = _DEFAULT,
                           max_in_flight: int | None = None) -> list[ProbeResult]:
    """Probe every target; results in the order of ``targets``.

    ``stall_after`` (seconds, None for fixed slots) and ``max_in_flight``: see the module docstring.
    """
    ceiling = socket_ceiling()
    concurrency = max(1, min(concurrency, ceiling))
    if stall_after is _DEFAULT:
        stall_after = min(DEFAULT_STALL_AFTER, timeout / 4)
    if max_in_flight is None:
        max_in_flight = concurrency if stall_after is None else min(ceiling, MAX_IN_FLIGHT)
    max_in_flight = max(concurrency, min(max_in_flight, ceiling))
    slots = asyncio.Semaphore(concurrency)
    loop = asyncio.get_running_loop()
    sockets = asyncio.Semaphore(max_in_flight)
    # no keep-alive: each target is a different origin, probed once; idle pooled connections only make
    # httpcore scan a longer list on every request (O(pool) per request, the largest cost at 1,000 targets)
    limits = httpx.Limits(max_connections=max_in_flight, max_keepalive_connections=0)
    from regctl.api import ssl_verify

    async with httpx.AsyncClient(timeout=timeout, verify=ssl_verify(verify), limits=limits, follow_redirects=True,
                                 trust_env=False, headers={"Accept-Encoding": ACCEPT_ENCODING}) as client:

        async def attempt(url: str) -> tuple[bool, int | None, float, str | None]:
            async with sockets:
                await slots.acquire()
                held = True
                try:
                    if stall_after is None:
                        return await _probe_once(client, url, timeout, expect)
                    task = asyncio.ensure_future(_probe_once(client, url, timeout, expect))
                    try:
                        while True:
                            asked = loop.time()
                            done, _ = await asyncio.wait({task}, timeout=stall_after)
                            if done:
                                break
                            if loop.time() - asked < stall_after * 1.5 + 0.02:
                                # silent while this loop kept time: the endpoint stalls, not us; let the
                                # next probe have the slot and keep waiting (parking never feeds an
                                # overloaded loop: a late wake-up keeps the slot)
                                slots.release()
                                held = False
                                break
                        return await task
                    except asyncio.CancelledError:
                        task.cancel()
                        raise
                finally:
                    if held:
                        slots.release()

        async def one(t: ProbeTarget) -> ProbeResult:
            if not t.url:
                res = ProbeResult(t.service_name, t.instance_id, None, False, error="no URL", attempts=0)
            else:
                attempts = 0
                while True:
                    attempts += 1
                    ok, code, latency, err = await attempt(t.url)
                    if ok or attempts > retries:
                        break
                    await asyncio.sleep(backoff * (2 ** (attempts - 1)))
                res = ProbeResult(t.service_name, t.instance_id, t.url, ok, code, latency, err, attempts)
            if on_result is not None:
                on_result(res)
            return res

        return list(await asyncio.gather(*(one(t) for t in targets)))


def probe_many(targets: Sequence[ProbeTarget], **kwargs) -> list[ProbeResult]:
    """Synchronous entry point for :func:`probe_many_async` (same keyword arguments)."""
    if not targets:
        return []
    return asyncio.run(probe_many_async(targets, **kwargs))


def probe_url(url: str, *, timeout: float = 5.0, expect: Sequence[int] | None = None) -> ProbeResult:
    """Probe one URL (for ``url --verify`` and doctor)."""
    return probe_many([ProbeTarget("", "", url)], timeout=timeout, expect=expect)[0]
