"""Probe instances' health endpoints concurrently, bounded, each under its own deadline.

``probe_many`` runs on one asyncio loop with one pooled ``httpx.AsyncClient``;
at most ``concurrency`` probes are in flight, every attempt is cut off after
``timeout`` seconds whatever the server does (accepts and never answers,
trickles bytes), and Ctrl-C cancels every probe at once.

A probe's verdict is "healthy" when the endpoint answers 2xx (or a status in
``expect``), "unhealthy" otherwise; ``error`` says why in a few words
(refused, DNS, timeout, TLS, HTTP 503 ...).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import ssl
import time
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

import httpx

from regctl.models import Instance

log = logging.getLogger(__name__)


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
    def verdict(self) -> str:
        return "healthy" if self.healthy else "unhealthy"

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


async def _probe_once(client: httpx.AsyncClient, url: str, timeout: float,
                      expect: Sequence[int] | None) -> tuple[bool, int | None, float, str | None]:
    started = time.monotonic()
    try:
        resp = await asyncio.wait_for(client.get(url), timeout)
        latency = (time.monotonic() - started) * 1000
        ok = _is_healthy(resp.status_code, expect)
        return ok, resp.status_code, latency, None if ok else f"HTTP {resp.status_code}"
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # every failure is a verdict, never an exception
        return False, None, (time.monotonic() - started) * 1000, describe_error(exc)


async def probe_many_async(targets: Sequence[ProbeTarget], *, timeout: float = 5.0, concurrency: int = 32,
                           retries: int = 0, backoff: float = 0.2, expect: Sequence[int] | None = None,
                           verify: bool | str = True,
                           on_result: Callable[[ProbeResult], None] | None = None) -> list[ProbeResult]:
    """Probe every target; results in the order of ``targets``."""
    sem = asyncio.Semaphore(max(1, concurrency))
    limits = httpx.Limits(max_connections=max(1, concurrency), max_keepalive_connections=max(1, concurrency))
    async with httpx.AsyncClient(timeout=timeout, verify=verify, limits=limits, follow_redirects=True,
                                 trust_env=False) as client:

        async def one(t: ProbeTarget) -> ProbeResult:
            if not t.url:
                res = ProbeResult(t.service_name, t.instance_id, None, False, error="no URL", attempts=0)
            else:
                attempts = 0
                while True:
                    attempts += 1
                    async with sem:
                        ok, code, latency, err = await _probe_once(client, t.url, timeout, expect)
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
