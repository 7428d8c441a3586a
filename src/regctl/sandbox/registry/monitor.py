"""Health checks of the sandbox registry, in both generations, and the later one's monitor.

Earlier generation (``perform_health_check`` of the real one): ``POST
/services/{name}/health`` GETs each instance's ``health_check_url`` (else its
``service_url``) one after another, ``health_timeout`` seconds each (3), following
redirects; the first answer **below 500** makes the service ``healthy`` (a 404 counts),
and when none does it is ``unknown``, never ``unhealthy``. The verdict is written to
the row (a 500 while PostgreSQL is down, after the probes).

Later generation (the real ``HealthMonitorService``):

* every endpoint is tried ``1 + len(retry_delays)`` times (default 3), ``probe_timeout``
  seconds each (default 3), sleeping ``retry_delays`` (default 1 s, 2 s) between tries:
  about 3 s per refused endpoint and 12 s per hanging one; 2xx and 3xx are healthy
  (redirects followed);
* an instance's endpoints are its ``health_check_url``, or, without one,
  ``/health``, ``/api/v1/health`` and ``/api/v1/{first word of the name}/health``
  under its ``service_url``; the first healthy one ends that instance. The health
  call and ``/health/detailed`` check instances one after another (tens of seconds)
  and write the verdict (healthy if any instance is) into the row;
  ``/health/detailed`` lists every endpoint tried; a bad stored status is 400 there;
* :class:`Monitor` runs a cycle at start and then every ``monitor_interval`` seconds
  over the **database rows**: each row's instances are read as the API reads them
  (through the cache, so the monitor keeps cached lists fresh and a bad status makes
  that service ``unknown``), also accepting ``/ready`` and ``/live``; rows with a live
  instance get ``status`` and ``last_health_check`` rewritten, rows without one are
  left alone; at the end of the cycle every row's verdict is put in the cache for
  ``GET /internal/health-status`` (``max(2 x interval, 30)`` seconds), with
  ``state`` ``unknown`` for a service without instances. Nothing is cached while
  Redis is down, and nothing happens while PostgreSQL is;
* :func:`seed` adds the rows the real migration seeds (13, ``config-service`` among
  them; status healthy, no ``registered_at``; two with empty URLs).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import httpx

from regctl.sandbox.registry.http import BackendDown, HTTPError, InvalidStatus, iso_now

log = logging.getLogger("regctl.sandbox.registry")

_SEED_META = {"version": "1.0.0", "environment": "development"}
#: (name, service_url) of the rows the later generation's migration seeds (health URL: url + /health)
SEED_ROWS = (
    ("api-gateway-service", "http://api-gateway-service:8080"), ("auth-service", "http://auth-service:8081"),
    ("config-service", "http://config-service:8082"), ("metrics-service", "http://metrics-service:8083"),
    ("telemetry-service", "http://telemetry-service:8084"), ("alerting-service", "http://alerting-service:8085"),
    ("dashboard-service", "http://dashboard-service:8086"), ("asr-service", ""), ("tts-service", ""),
    ("nmt-service", "http://nmt-service:8003"), ("llm-service", "http://llm-service:8004"),
    ("ocr-service", "http://ocr-service:8005"), ("ner-service", "http://ner-service:8006"),
)
SEEDED_SERVICES = tuple(name for name, _ in SEED_ROWS)
#: what the real deployment's HEALTH_CHECK_ADDITIONAL_ENDPOINTS adds for the monitor
MONITOR_ENDPOINTS = ("/ready", "/live")


def seed(db) -> None:
    """The migration's seed rows (``ON CONFLICT DO NOTHING``): status healthy, no registered_at."""
    db.seed([{"service_name": name, "service_url": url, "health_check_url": url + "/health" if url else "",
              "status": "healthy", "service_metadata": dict(_SEED_META)} for name, url in SEED_ROWS])


def health_status_key(name: str) -> str:
    """The real service's Redis key for the monitor's verdict on ``name``."""
    return f"internal:health-status:{name}"


def health_state(total: int, healthy: int) -> str:
    """``healthy`` (all), ``degraded`` (some), ``unhealthy`` (none), ``unknown`` (no instance)."""
    if total <= 0:
        return "unknown"
    if healthy <= 0:
        return "unhealthy"
    return "healthy" if healthy >= total else "degraded"


def _client() -> httpx.Client:
    return httpx.Client(trust_env=False, follow_redirects=True)


# --------------------------------------------------------------------------- earlier generation

def _earlier_ok(server, client: httpx.Client, url: str | None) -> bool:
    """The earlier generation's probe: a GET answered below 500 within ``health_timeout``."""
    try:
        return client.get(str(url), timeout=server.health_timeout).status_code < 500
    except Exception:  # refused, timeout, a URL it cannot fetch
        return False


# --------------------------------------------------------------------------- later generation

def check_endpoint(server, client: httpx.Client, url: str) -> dict:
    """One endpoint, retried with back-off like the later generation's monitor."""
    tries = 1 + len(server.retry_delays)
    error: str | None = None
    status_code: int | None = None
    elapsed = 0.0
    for attempt in range(tries):
        started = time.monotonic()
        try:
            resp = client.get(url, timeout=server.probe_timeout)
            elapsed = (time.monotonic() - started) * 1000
            status_code = resp.status_code
            if 200 <= resp.status_code < 400:
                return {"endpoint_url": url, "is_healthy": True, "response_time_ms": elapsed,
                        "status_code": status_code, "error_message": None, "timestamp": iso_now()}
            error = f"HTTP {resp.status_code}"
        except httpx.TimeoutException:
            error, elapsed = "Timeout", server.probe_timeout * 1000
        except httpx.HTTPError as exc:
            error, elapsed = f"Client error: {exc}", 0.0
        except Exception as exc:  # a URL httpx cannot even build
            error, elapsed = f"Unexpected error: {exc}", 0.0
        if attempt < tries - 1 and not server.stopping:
            time.sleep(server.retry_delays[attempt])
        elif server.stopping:
            break
    return {"endpoint_url": url, "is_healthy": False, "response_time_ms": elapsed, "status_code": status_code,
            "error_message": error, "timestamp": iso_now()}


def endpoints(name: str, inst: dict, additional: tuple[str, ...] = ()) -> list[str]:
    """The URLs the later generation tries for one instance, in order."""
    urls: list[str] = []
    base = str(inst.get("service_url") or "").rstrip("/")
    if inst.get("health_check_url"):
        urls.append(inst["health_check_url"])
    elif inst.get("service_url"):
        urls += [f"{base}{path}" for path in ("/health", "/api/v1/health", f"/api/v1/{name.split('-')[0]}/health")]
    if inst.get("service_url"):
        urls += [f"{base}{path}" for path in additional]
    return urls


def check_service(server, name: str, instances: list[dict], additional: tuple[str, ...] = ()) -> dict:
    """The later generation's ``check_service_health``: instances one after another."""
    results: list[dict] = []
    healthy = 0
    with _client() as client:
        for inst in instances:
            ok = False
            for url in endpoints(name, inst, additional):
                if server.stopping:
                    break
                result = check_endpoint(server, client, url)
                results.append(result)
                if result["is_healthy"]:
                    ok = True
                    break
            healthy += ok
    total = len(instances)
    overall = "healthy" if healthy else ("unhealthy" if total else "unknown")
    return {"service_name": name, "overall_status": overall, "total_instances": total,
            "healthy_instances": healthy, "unhealthy_instances": total - healthy, "check_results": results,
            "timestamp": iso_now()}


# --------------------------------------------------------------------------- the HTTP calls

def health_call(server, name: str) -> str:
    """``POST /services/{name}/health``: the verdict, written to the row."""
    instances = server.instances(name)
    if server.generation == "later":
        status = check_service(server, name, instances)["overall_status"]
    else:
        status = "unknown"
        with _client() as client:
            for inst in instances:
                if _earlier_ok(server, client, inst.get("health_check_url") or inst.get("service_url")):
                    status = "healthy"
                    break
    server.record_status(name, status)
    return status


def detailed_call(server, name: str) -> dict:
    """``POST /services/{name}/health/detailed``; a bad stored status is 400 (a ValueError there)."""
    try:
        instances = server.instances(name)
    except InvalidStatus as exc:
        raise HTTPError(400, str(exc)) from exc
    result = check_service(server, name, instances)
    server.record_status(name, result["overall_status"])
    return result


# --------------------------------------------------------------------------- the monitor

def _unknown(name: str) -> dict:
    return {"service_name": name, "overall_status": "unknown", "total_instances": 0, "healthy_instances": 0,
            "unhealthy_instances": 0, "check_results": []}


class Monitor:
    """The later generation's background health monitor (one daemon thread)."""

    def __init__(self, server) -> None:
        self.server = server
        self.cycles = 0  # finished cycles
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> "Monitor":
        self._thread = threading.Thread(target=self._run, name="registry-monitor", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def kick(self) -> None:
        """Start a cycle now (the real monitor starts one when the process starts)."""
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.cycle()
            except Exception:  # a cycle must never kill the monitor
                log.exception("health monitor cycle failed")
            self._wake.wait(self.server.monitor_interval)
            self._wake.clear()

    def cycle(self) -> None:
        """One pass over the database rows; rewrite rows; cache the verdicts."""
        server = self.server
        try:
            rows = server.list_rows()
        except Exception as exc:  # PostgreSQL down: the real cycle fails as a whole
            log.warning("Error in periodic health check: %s", exc)
            self.cycles += 1
            return
        results: list[dict] = []
        for row in rows:
            if self._stop.is_set():
                return
            name = row.get("service_name")
            try:
                instances = server.instances(name)
                if not instances:
                    results.append(_unknown(name))
                    continue
                result = check_service(server, name, instances, MONITOR_ENDPOINTS)
                results.append(result)
                server.record_status(name, result["overall_status"], iso_now())
            except Exception as exc:
                log.warning("Error checking health for %s: %s", name, exc)
                results.append(_unknown(name))
        self._cache(results)
        self.cycles += 1

    def _cache(self, results: list[dict]) -> None:
        server = self.server
        try:
            server.check_redis()
        except BackendDown:
            return  # every write fails (and is only logged at debug level there)
        now = iso_now()
        ttl = server.monitor_ttl
        for r in results:
            if not r["service_name"]:
                continue
            verdict: dict[str, Any] = {"service_id": r["service_name"],
                                       "state": health_state(r["total_instances"], r["healthy_instances"]),
                                       "last_check": now, "total_instances": r["total_instances"],
                                       "healthy_instances": r["healthy_instances"]}
            server.cache.set(health_status_key(r["service_name"]), verdict, ttl)
