"""Health checks of the sandbox registry, in both generations, and the later one's monitor.

Earlier generation: ``POST /services/{name}/health`` GETs every instance's
``health_check_url`` once, in parallel (``health_timeout``); healthy when one answers 2xx.

Later generation (``registry-contract.md``, "The later generation"):

* every endpoint is tried ``1 + len(retry_delays)`` times (default 3), ``probe_timeout``
  seconds each (default 3), sleeping ``retry_delays`` (default 1 s, 2 s) between tries:
  about 3 s per refused endpoint and 12 s per hanging one; 2xx and 3xx are healthy;
* an instance's endpoint is its ``health_check_url``, or ``/health`` then
  ``/api/v1/health`` under its ``service_url`` when it has none; the health call
  tries instances one after another (so it takes tens of seconds) and writes its
  verdict into the service's row;
* :class:`Monitor` runs every ``monitor_interval`` seconds: for each service with a
  live instance it also accepts ``/ready`` and ``/live`` (any success counts),
  rewrites the row's ``status`` and ``last_health_check``, and keeps a verdict for
  ``GET /internal/health-status`` that expires after ``monitor_ttl`` seconds;
* :func:`seed` adds the dozen rows a migration seeds (status healthy, no
  ``registered_at``, never an instance).
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from regctl.sandbox.registry_http import BackendDown, HTTPError, InvalidStatus, iso_now

log = logging.getLogger("regctl.sandbox.registry")

SEEDED_SERVICES = (
    "auth-service", "user-service", "order-service", "payment-service", "inventory-service",
    "notification-service", "search-service", "analytics-service", "report-service",
    "scheduler-service", "email-service", "file-service",
)


def seed(db) -> None:
    """The migration's seed rows: one per name in :data:`SEEDED_SERVICES`, status healthy, no registered_at."""
    db.seed([{"service_name": name, "service_url": f"http://{name}:8080",
              "health_check_url": f"http://{name}:8080/health", "status": "healthy"}
             for name in SEEDED_SERVICES])


def _result(url: str | None) -> dict:
    return {"endpoint_url": url, "is_healthy": False, "response_time_ms": 0.0, "status_code": None,
            "error_message": None, "timestamp": iso_now()}


def _error(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


# --------------------------------------------------------------------------- earlier generation

def probe_parallel(server, instances: list[dict]) -> list[dict]:
    """GET every instance's health URL once, in parallel; one check result per instance."""
    def one(inst: dict) -> dict:
        url = inst.get("health_check_url")
        started = time.monotonic()
        result = _result(url)
        if not url:
            result["error_message"] = "no health_check_url registered"
            return result
        try:
            resp = client.get(url)
            result["status_code"] = resp.status_code
            result["is_healthy"] = 200 <= resp.status_code < 300
            if not result["is_healthy"]:
                result["error_message"] = f"HTTP {resp.status_code}"
        except Exception as exc:  # httpx errors, bad URLs
            result["error_message"] = _error(exc)
        result["response_time_ms"] = round((time.monotonic() - started) * 1000, 2)
        return result

    if not instances:
        return []
    with httpx.Client(timeout=server.health_timeout, trust_env=False) as client, \
            ThreadPoolExecutor(max_workers=min(16, len(instances))) as pool:
        return list(pool.map(one, instances))


# --------------------------------------------------------------------------- later generation

def check_endpoint(server, client: httpx.Client, url: str) -> dict:
    """One endpoint, retried with back-off like the later generation's monitor."""
    result = _result(url)
    started = time.monotonic()
    delays = list(server.retry_delays)
    while True:
        try:
            resp = client.get(url, timeout=server.probe_timeout)
            result["status_code"] = resp.status_code
            if 200 <= resp.status_code < 400:
                result["is_healthy"] = True
                result["error_message"] = None
                break
            result["error_message"] = f"HTTP {resp.status_code}"
        except Exception as exc:  # httpx errors, bad URLs
            result["status_code"] = None
            result["error_message"] = _error(exc)
        if not delays or server.stopping:
            break
        time.sleep(delays.pop(0))
    result["response_time_ms"] = round((time.monotonic() - started) * 1000, 2)
    result["timestamp"] = iso_now()
    return result


def _health_urls(inst: dict) -> list[str]:
    if inst.get("health_check_url"):
        return [inst["health_check_url"]]
    base = str(inst.get("service_url") or "").rstrip("/")
    return [base + "/health", base + "/api/v1/health"] if base else []


def check_instance(server, client: httpx.Client, inst: dict, *, extra: bool = False) -> dict:
    """The instance's health endpoint(s), then (``extra``, the monitor) ``/ready`` and ``/live``."""
    urls = _health_urls(inst)
    base = str(inst.get("service_url") or "").rstrip("/")
    if extra and base:
        urls += [base + "/ready", base + "/live"]
    last = _result(urls[0] if urls else None)
    if not urls:
        last["error_message"] = "no health_check_url or service_url registered"
    for url in urls:
        last = check_endpoint(server, client, url)
        if last["is_healthy"]:
            break
    return last


def _client() -> httpx.Client:
    return httpx.Client(trust_env=False, follow_redirects=False)


def check_results(server, instances: list[dict]) -> list[dict]:
    """The later generation's check of each instance, one after another."""
    with _client() as client:
        return [check_instance(server, client, inst) for inst in instances]


# --------------------------------------------------------------------------- the HTTP calls

def health_call(server, name: str) -> str:
    """``POST /services/{name}/health``: healthy/unhealthy/unknown, written to the row."""
    instances = server.instances(name)
    if not instances:
        return "unknown"
    if server.generation == "later":
        results = check_results(server, instances)
    else:
        results = probe_parallel(server, instances)
    status = "healthy" if any(r["is_healthy"] for r in results) else "unhealthy"
    server.record_verdict(name, status, iso_now() if server.generation == "later" else None)
    return status


def detailed_call(server, name: str) -> dict:
    """``POST /services/{name}/health/detailed``; a bad instance status is 400 in the later generation."""
    try:
        instances = server.instances(name)
    except InvalidStatus as exc:
        if server.generation == "later":
            raise HTTPError(400, str(exc)) from exc
        raise
    if server.generation == "later":
        results = check_results(server, instances)
    else:
        results = probe_parallel(server, instances)
    healthy = sum(1 for r in results if r["is_healthy"])
    overall = "unknown" if not results else ("healthy" if healthy else "unhealthy")
    return {"service_name": name, "overall_status": overall, "total_instances": len(results),
            "healthy_instances": healthy, "unhealthy_instances": len(results) - healthy,
            "check_results": results, "timestamp": iso_now()}


# --------------------------------------------------------------------------- the monitor

class Monitor:
    """The later generation's background health monitor (one daemon thread)."""

    def __init__(self, server) -> None:
        self.server = server
        self.cycles = 0  # finished cycles
        self._verdicts: dict[str, tuple[float, dict]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> "Monitor":
        self._thread = threading.Thread(target=self._run, name="registry-monitor", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def reset(self) -> None:
        """Forget every verdict (the cache they live in was emptied)."""
        with self._lock:
            self._verdicts.clear()

    def status(self, name: str) -> dict:
        """``GET /internal/health-status``: the verdict, or HTTPError 404 (none yet, expired) / 503 (no Redis)."""
        try:
            self.server.check_redis()
        except BackendDown as exc:
            raise HTTPError(503, f"Health status unavailable: {exc}") from exc
        with self._lock:
            hit = self._verdicts.get(name)
        if hit is None or time.monotonic() - hit[0] >= self.server.monitor_ttl:
            raise HTTPError(404, "Health status not found")
        return dict(hit[1])

    def _run(self) -> None:
        while not self._stop.wait(self.server.monitor_interval):
            try:
                self.cycle()
            except Exception:  # a cycle must never kill the monitor
                log.exception("health monitor cycle failed")

    def cycle(self) -> None:
        """Probe every live instance of every service once; rewrite rows; store verdicts."""
        server = self.server
        try:
            names = server.service_names()
        except Exception as exc:  # ZooKeeper unusable: nothing to monitor this time
            log.warning("health monitor: cannot list services: %s", exc)
            return
        with _client() as client:
            for name in names:
                if self._stop.is_set():
                    return
                self._one(client, name)
        self.cycles += 1

    def _one(self, client: httpx.Client, name: str) -> None:
        server = self.server
        try:
            instances = server.read_raw_instances(name)
        except Exception as exc:
            log.warning("health monitor: cannot read %s: %s", name, exc)
            return
        healthy = 0
        for inst in instances:
            if self._stop.is_set():
                return
            if check_instance(server, client, inst, extra=True)["is_healthy"]:
                healthy += 1
        total = len(instances)
        now = iso_now()
        if total == 0:
            state = "unknown"
        elif healthy == total:
            state = "healthy"
        else:
            state = "degraded" if healthy else "unhealthy"
        verdict: dict[str, Any] = {"service_id": name, "state": state, "last_check": now,
                                   "total_instances": total, "healthy_instances": healthy}
        if total:  # services without a live instance are skipped: their row keeps its status
            server.record_verdict(name, "healthy" if healthy else "unhealthy", now)
        if "redis" not in server.faults:
            with self._lock:
                self._verdicts[name] = (time.monotonic(), verdict)
