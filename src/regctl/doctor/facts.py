"""Shared pieces of ``regctl doctor``'s checks: host classification and facts fetched once per run.

Data more than one check needs (DNS answer, TCP connect, the raw ``/health``
answer, the ZooKeeper session, ensemble member reports, instance lists, probes)
is fetched through ``run.fact`` so concurrent checks share one request. Every
network step uses ``run.step_timeout()``.
"""

from __future__ import annotations

import ipaddress
import json
import math
import socket
import time
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import urlsplit

import httpx

from regctl import discovery
from regctl.deadline import Cut, Raised, Value, run_all, run_with_deadline
from regctl.doctor.base import CheckRun
from regctl.errors import RegctlError, Unreachable
from regctl.prober import probe_many, socket_ceiling
from regctl.http.api import instances_call
from regctl.http.bounded import BadEncoding, BodyTooSlow, read_body
from regctl.http.config import http_options
from regctl.monitor import detect_generation
from regctl.zookeeper.admin import check_ensemble

GUIDE_CONFIG_PORT = 8082
LOOPBACK_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost")


# ---------------------------------------------------------------------------
# small helpers
# ---------------------------------------------------------------------------

def is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
        return True
    except ValueError:
        return False


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    h = host.strip("[]").lower()
    if h in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False


def is_docker_name(host: str | None) -> bool:
    """A bare name like ``config-service`` or ``my-service``: resolves only inside a Docker network."""
    if not host:
        return False
    h = host.strip("[]").lower()
    return "." not in h and not is_ip(h) and not is_loopback(h)


def url_parts(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an http(s) URL, with the scheme's default port."""
    parts = urlsplit(url)
    scheme = parts.scheme or "http"
    port = parts.port or (443 if scheme == "https" else 80)
    return scheme, parts.hostname or "", port


def resolve_host(host: str, port: int, timeout: float) -> list[str]:
    """Addresses of ``host`` within ``timeout`` (getaddrinfo has no timeout of its own).

    Raises ``socket.gaierror`` when it does not resolve, :class:`Unreachable` on timeout.
    """
    got = run_with_deadline(lambda: socket.getaddrinfo(host, port, type=socket.SOCK_STREAM), timeout,
                            name=f"dns-{host}")
    if isinstance(got, Cut):
        raise Unreachable(f"the name server did not answer for {host!r} within {timeout:g}s",
                          hint="check /etc/resolv.conf and the network")
    if isinstance(got, Raised):
        raise got.error
    out: list[str] = []
    for *_rest, sockaddr in got.value:
        if sockaddr[0] not in out:
            out.append(sockaddr[0])
    return out


def parallel(*fns: Callable[[], Any]) -> list[Any]:
    """Run ``fns`` in threads; results (or the exception each raised) in order."""
    return [got.value if isinstance(got, Value) else got.error for got in run_all(fns)]


def settled(result: Any) -> tuple[Any, "RegctlError | None"]:
    """One result of :func:`parallel` as ``(value, None)`` or ``(None, error)``; a bug is raised again."""
    if isinstance(result, RegctlError):
        return None, result
    if isinstance(result, BaseException):
        raise result
    return result, None


def err_text(exc: BaseException) -> str:
    if isinstance(exc, RegctlError):
        return exc.message
    return f"{type(exc).__name__}: {exc}".strip().rstrip(":")


def docker_hint(host: str, url: str | None = None) -> str:
    """What to do about a URL whose Docker-network name does not resolve outside that network."""
    return (f"{host!r} resolves only inside the Docker network, so it cannot be checked from here: run regctl "
            "there (docker compose exec <service> regctl doctor ...), or check the port Docker publishes on this "
            "host (docker compose port <service> <port>, then e.g. curl http://localhost:PORT/health); if callers "
            "outside Docker need it, register a reachable URL with SERVICE_PUBLIC_URL")


def is_seeded(row, zk_dir: bool | None = None) -> bool:
    """A database row the deployment seeded, never registered here (:func:`regctl.discovery.is_seeded`):
    no ``registered_at``, no metadata a registration writes, and no ZooKeeper directory (``zk_dir``;
    None when ZooKeeper was not read)."""
    return discovery.is_seeded(row, zk_dir)


def zk_dir(snapshot, name: str) -> bool | None:
    """Whether ZooKeeper has ``{base}/{name}`` (None: ZooKeeper not read)."""
    if snapshot is None:
        return None
    svc = snapshot.service(name)
    return svc is not None and svc.exists


def config_where(run: CheckRun) -> str:
    src = run.config.config_url_source
    return f"--config-url / CONFIG_SERVICE_URL ({src})" if src else "--config-url / CONFIG_SERVICE_URL"


# ---------------------------------------------------------------------------
# shared facts
# ---------------------------------------------------------------------------

def api_client(run: CheckRun):
    def make():
        client = run.config.endpoint.api()
        run.ctx.on_close(client.close)
        return client

    return run.fact("api_client", make)


def config_dns(run: CheckRun) -> list[str]:
    _scheme, host, port = url_parts(run.config.endpoint.config_url)
    if is_ip(host):
        return [host.strip("[]")]
    return run.fact("config_dns", lambda: resolve_host(host, port, run.step_timeout()))


@dataclass(frozen=True)
class Connected:
    address: str
    elapsed_ms: float


def config_connect(run: CheckRun) -> Connected:
    def compute() -> Connected:
        _scheme, host, port = url_parts(run.config.endpoint.config_url)
        addrs = config_dns(run)
        last: BaseException | None = None
        end = time.monotonic() + run.step_timeout()
        for addr in addrs[:4]:
            left = end - time.monotonic()
            if left <= 0.02:
                break
            t0 = time.monotonic()
            try:
                with socket.create_connection((addr, port), timeout=left):
                    return Connected(addr, round((time.monotonic() - t0) * 1000, 1))
            except OSError as exc:
                last = exc
        raise last if last is not None else socket.timeout("timed out")

    return run.fact("config_connect", compute)


@dataclass(frozen=True)
class HttpAnswer:
    url: str
    status_code: int
    content_type: str
    body: bytes
    elapsed_ms: float
    server: str | None = None
    location: str | None = None

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except (ValueError, RecursionError):
            return None

    def excerpt(self, limit: int = 120) -> str:
        text = self.body[:limit].decode("utf-8", "replace")
        return " ".join(text.split())


def config_health_answer(run: CheckRun) -> HttpAnswer:
    """``GET {config_url}/health``, raw: the answer whatever it is, or the httpx/OS exception."""
    def compute() -> HttpAnswer:
        c = run.config
        url = c.endpoint.config_url.rstrip("/") + "/health"
        t = run.step_timeout()
        t0 = time.monotonic()
        with httpx.Client(**http_options(t, c.endpoint.headers, c.endpoint.verify)) as client:
            with client.stream("GET", url) as resp:
                try:
                    body = read_body(resp, 1024 * 1024, t0 + t, truncate=True).data
                except BodyTooSlow:
                    raise httpx.ReadTimeout(f"answer still arriving after {t:g}s") from None
                except BadEncoding as exc:
                    raise httpx.DecodingError(str(exc)) from None
                return HttpAnswer(url, resp.status_code, resp.headers.get("content-type", ""), body,
                                  round((time.monotonic() - t0) * 1000, 1), resp.headers.get("server"),
                                  resp.headers.get("location"))

    return run.fact("config_health", compute)


def config_answers(run: CheckRun) -> bool:
    """Whether the Config Service answered ``GET /health`` at --config-url (any HTTP answer from it)."""
    try:
        return config_health_answer(run).json() is not None
    except BaseException:
        return False


def zk_reader(run: CheckRun):
    """A connected :class:`regctl.zookeeper.reader.ZkReader` (one session for the whole run)."""
    def make():
        reader = run.config.endpoint.zk_reader()
        run.ctx.on_close(reader.close)
        t0 = time.monotonic()
        reader.connect()
        reader.connect_ms = round((time.monotonic() - t0) * 1000, 1)  # type: ignore[attr-defined]
        return reader

    return run.fact("zk_session", make)


def zk_members(run: CheckRun):
    def compute():
        c = run.config
        return check_ensemble(c.endpoint.zk_hosts, run.step_timeout(),
                              zk_options=c.endpoint.zk_options())

    return run.fact("zk_members", compute)


@dataclass(frozen=True)
class LiveView:
    """A service's live instances, and where they were read."""

    instances: list
    source: str
    zk_error: RegctlError | None = None
    problems: tuple = ()


def live_instances(run: CheckRun, name: str) -> LiveView:
    """Live instances of ``name``: from ZooKeeper when configured (API as fallback), else the API."""
    def compute() -> LiveView:
        zk_error = None
        if run.config.endpoint.zk_hosts:
            try:
                svc = zk_reader(run).service(name)
                return LiveView(list(svc.instances), "zookeeper", None, tuple(svc.problems))
            except RegctlError as exc:
                zk_error = exc
        return LiveView(api_instances(run, name), "api", zk_error)

    return run.fact(f"live:{name}", compute)


def api_instances(run: CheckRun, name: str) -> list:
    return run.fact(f"api_instances:{name}", lambda: api_client(run).instances(name))


def api_rows(run: CheckRun) -> list:
    return run.fact("api_rows", lambda: api_client(run).list_services())


def probe(run: CheckRun, key: str, targets: list) -> list:
    """``health.probe_many`` over ``targets`` once per ``key``.

    Every target at once, as far as :func:`regctl.prober.socket_ceiling` allows, so any number of
    hanging instances costs one ``--timeout``, not one per 32; when the ceiling forces several rounds,
    each probe's timeout shrinks so that every round ends within the check's deadline.
    """
    def compute():
        width = max(1, min(len(targets), socket_ceiling()))
        rounds = max(1, math.ceil(len(targets) / width))
        timeout = run.step_timeout()
        if rounds > 1:
            timeout = max(0.05, min(timeout, (run.remaining() - 0.3) / rounds))
        return probe_many(targets, timeout=timeout, concurrency=width, retries=0)

    return run.fact(key, compute)


# ---------------------------------------------------------------------------
# the whole registry, read once (hygiene and cause checks)
# ---------------------------------------------------------------------------

@dataclass
class RegistryView:
    rows: list | None = None
    rows_error: RegctlError | None = None
    #: service -> live instances
    instances: dict = field(default_factory=dict)
    #: "zookeeper" or "api"
    source: str = "api"
    snapshot: Any = None
    zk_error: RegctlError | None = None
    #: service -> the API's error reading it (a 500 means an unparseable status)
    api_errors: dict = field(default_factory=dict)

    def all_instances(self) -> list:
        return [i for name in sorted(self.instances) for i in self.instances[name]]


def zk_snapshot(run: CheckRun):
    """Everything under the base path, read once per run (needs ZooKeeper configured)."""
    return run.fact("zk_snapshot", lambda: zk_reader(run).snapshot())


def registry_view(run: CheckRun) -> RegistryView:
    def compute() -> RegistryView:
        view = RegistryView()

        def read_snapshot():
            return zk_snapshot(run) if run.config.endpoint.zk_hosts else None

        rows, snap = parallel(lambda: api_rows(run), read_snapshot)
        view.rows, view.rows_error = settled(rows)
        snap, view.zk_error = settled(snap)
        if snap is not None:
            view.snapshot, view.source = snap, "zookeeper"
            view.instances = {s.name: list(s.instances) for s in snap.services}
            return view
        if view.rows is None:
            raise view.rows_error or view.zk_error or RegctlError("nothing readable")
        names = [r.service_name for r in view.rows]
        for name, res in zip(names, api_reads(run, names)):
            if isinstance(res, RegctlError):
                view.api_errors[name] = res
            else:
                view.instances[name] = res
        return view

    return run.fact("registry_view", compute)


def api_reads(run: CheckRun, names: list) -> list:
    """``GET /services/{name}`` for each name, concurrently: a list of instances or the RegctlError, in order.

    Shares :func:`api_instances`' memo, so a service read here is not read again.
    """
    missing = [n for n in dict.fromkeys(names) if not run.ctx.facts.has(f"api_instances:{n}")]
    if missing:
        calls, askable = [], []
        for n in missing:
            try:
                calls.append(instances_call(n))
                askable.append(n)
            except RegctlError as exc:  # a name the API path cannot carry: that read could not be made
                run.ctx.facts.put(f"api_instances:{n}", None, exc)
        results = api_client(run).map(calls, return_exceptions=True) if calls else []
        for name, res in zip(askable, results):
            run.ctx.facts.put(f"api_instances:{name}", res if not isinstance(res, RegctlError) else None,
                              res if isinstance(res, RegctlError) else None)
    out = []
    for n in names:
        try:
            out.append(api_instances(run, n))
        except RegctlError as exc:
            out.append(exc)
    return out


def api_failure(exc: BaseException) -> dict:
    """Details naming the API read that failed and its HTTP status, for rows built from ``exc``.

    Cause checks use them to claim the rows their cause explains (e.g. every 500
    from a per-service read while Redis is down).
    """
    code = getattr(exc, "status_code", None)
    if code is None:
        return {}
    where = (getattr(exc, "where", None) or "").split("?")[0].rstrip("/")
    read = ("rows" if where.endswith("/registry/services") else "url" if where.endswith("/url")
            else "discover" if "/discover/" in where else "health" if where.endswith("/health")
            else "instances" if "/services/" in where else "other")
    return {"api_status": code, "api_read": read}


def generation(run: CheckRun):
    """Which Config Service generation answers (:func:`regctl.monitor.detect_generation`), once per run."""
    def compute():
        return detect_generation(api_client(run))

    return run.fact("generation", compute)
