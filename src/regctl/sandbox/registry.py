"""A Config Service look-alike: the registry HTTP API over a real ZooKeeper.

It follows ``registry-contract.md`` exactly, quirks included, so that regctl's
tests mean something against it:

* instances are EPHEMERAL nodes owned by *this server's* kazoo session (stop the
  server and they all vanish; a crashed microservice's instance stays: a zombie);
* the "database" (PostgreSQL in production) keeps one row per service name, the
  last registration wins, deregistration only sets ``status`` to ``unknown``; rows
  are persisted to ``db_path`` (JSON) when given, so they survive a restart;
* ``GET /services/{name}`` is served from an in-memory cache ("Redis") up to
  ``cache_ttl`` seconds old; only register/deregister through the API clear it;
* an instance's ``status`` is what it registered (``unknown`` when absent), and a
  status the real service's enum cannot parse makes every read of that service
  answer 500;
* ``/services/{name}/url`` only returns instances whose status is ``healthy``.

Health probes (``POST /services/{name}/health``): every instance's
``health_check_url`` is fetched (GET, ``health_timeout`` seconds, in parallel); the
service is **healthy when at least one instance answers 2xx**, unhealthy when none
does, unknown when it has no instances. An instance without a health URL counts
as failed.

The HTTP routing lives in :mod:`regctl.sandbox.registry_http`. Stdlib
``ThreadingHTTPServer`` + kazoo + httpx only. Runnable::

    python -m regctl.sandbox.registry --port 8082 --zk 127.0.0.1:2181 --db db.json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable

import httpx
from kazoo.client import KazooClient, KazooState
from kazoo.exceptions import (
    BadArgumentsError,
    ConnectionClosedError,
    ConnectionLoss,
    NodeExistsError,
    NoNodeError,
    NotEmptyError,
    OperationTimeoutError,
    SessionExpiredError,
)
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.retry import KazooRetry

from regctl.errors import SandboxError
from regctl.names import VALID_STATUSES  # the real service's ServiceStatus enum
from regctl.sandbox.registry_http import (  # noqa: F401  (re-exported)
    Handler,
    HTTPError,
    InvalidStatus,
    ZkUnavailable,
    iso_now,
    utc_now_str,
)

log = logging.getLogger("regctl.sandbox.registry")

PREFIX = "/api/v1/registry"
COMPONENTS = ("redis", "postgres", "kafka", "zookeeper")
VERSION = "sandbox"

_ZK_DOWN = (KazooTimeoutError, ConnectionLoss, ConnectionClosedError, SessionExpiredError,
            OperationTimeoutError)


class Database:
    """The PostgreSQL stand-in: one row per service name, optionally persisted to a JSON file."""

    def __init__(self, path: Path | None) -> None:
        self.path = Path(path) if path else None
        self._lock = threading.Lock()
        self._rows: dict[str, dict] = {}
        if self.path and self.path.exists():
            try:
                data = json.loads(self.path.read_text() or "{}")
                rows = data.get("services", data) if isinstance(data, dict) else {}
                if isinstance(rows, dict):
                    self._rows = {k: v for k, v in rows.items() if isinstance(v, dict)}
            except (OSError, ValueError) as exc:
                log.warning("database file %s unreadable, starting empty: %s", self.path, exc)

    def upsert(self, row: dict) -> None:
        with self._lock:
            self._rows[row["service_name"]] = dict(row)
            self._save()

    def set_status(self, name: str, status: str) -> None:
        with self._lock:
            if name in self._rows:
                self._rows[name]["status"] = status
                self._save()

    def rows(self) -> list[dict]:
        with self._lock:
            return [dict(r) for r in self._rows.values()]

    def _save(self) -> None:
        if not self.path:
            return
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps({"services": self._rows}, indent=1))
        os.replace(tmp, self.path)


class RegistryServer:
    """The registry API on ``http://host:port``; see the module docstring for the behaviour.

    ``self_url=None`` registers the server under its own real URL. ``simulate`` maps
    components (``redis``, ``postgres``, ``kafka``, ``zookeeper``) to the status
    ``/health`` reports; ``{"health_check": "broken"}`` makes ``/health`` answer 503;
    ``{"delay": "1.5"}`` delays every answer by that many seconds. It is read on
    every request, so tests may change ``server.simulate`` while it runs.

    Gateway and TLS stand-ins (tests of regctl's auth and TLS options):
    ``required_headers={"Authorization": "Bearer s3cret"}`` answers every request
    that lacks one of them (exact value; names case-insensitive) with
    ``401 {"detail": "Not authenticated"}``, like a FastAPI security dependency;
    ``ssl_context`` (an :class:`ssl.SSLContext`) or ``certfile``/``keyfile`` (PEM)
    serve HTTPS instead of HTTP (``url`` starts with ``https://``).
    ``seen_headers`` keeps the headers of the last 100 requests.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, zk_hosts: str = "127.0.0.1:2181",
                 base_path: str = "/services", db_path: str | Path | None = None,
                 instance_id: str = "config-service-1", self_url: str | None = "http://config-service:8082",
                 cache_ttl: float = 60.0, zk_timeout: float = 5.0, *, detailed_health: bool = True,
                 health_timeout: float = 2.0, simulate: dict | None = None, verbose: bool = False,
                 required_headers: dict | None = None, ssl_context: Any = None,
                 certfile: str | Path | None = None, keyfile: str | Path | None = None) -> None:
        self.host = host
        self._requested_port = port
        self.zk_hosts = zk_hosts
        self.base_path = "/" + base_path.strip("/") if base_path.strip("/") else "/"
        self.db = Database(Path(db_path) if db_path else None)
        self.instance_id = instance_id
        self._self_url = self_url
        self.cache_ttl = cache_ttl
        self.zk_timeout = zk_timeout
        self.detailed_health = detailed_health
        self.health_timeout = health_timeout
        self.simulate: dict = dict(simulate or {})
        self.verbose = verbose
        self.required_headers: dict = dict(required_headers or {})
        self.seen_headers: list[dict] = []
        if ssl_context is None and certfile:
            import ssl

            ssl_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ssl_context.load_cert_chain(str(certfile), str(keyfile) if keyfile else None)
        self.ssl_context = ssl_context
        self._cache: dict[str, tuple[float, list[dict]]] = {}
        self._cache_lock = threading.Lock()
        self._zk: KazooClient | None = None
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._stopped = threading.Event()

    # ------------------------------------------------------------------ lifecycle
    @property
    def port(self) -> int:
        if self._httpd is None:
            return self._requested_port
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        scheme = "https" if self.ssl_context is not None else "http"
        return f"{scheme}://{self.host}:{self.port}"

    @property
    def self_url(self) -> str:
        return self._self_url or self.url

    @property
    def session_id(self) -> int | None:
        """The kazoo session id: every instance node's ``ephemeralOwner``."""
        if self._zk is None or self._zk.client_id is None:
            return None
        return self._zk.client_id[0]

    @property
    def zk_connected(self) -> bool:
        return self._zk is not None and self._zk.state == KazooState.CONNECTED

    def start(self) -> "RegistryServer":
        """Connect to ZooKeeper, register itself, serve HTTP in a background thread."""
        zk = KazooClient(hosts=self.zk_hosts, timeout=max(self.zk_timeout, 4.0),
                         connection_retry=KazooRetry(max_tries=-1, delay=0.2, max_delay=2.0),
                         logger=logging.getLogger("regctl.sandbox.registry.kazoo"))
        try:
            zk.start(timeout=self.zk_timeout)
        except Exception as exc:  # KazooTimeoutError and friends
            zk.stop()
            zk.close()
            raise SandboxError(f"registry could not connect to ZooKeeper at {self.zk_hosts}: {exc}",
                               where=self.zk_hosts, hint="start ZooKeeper first") from exc
        self._zk = zk
        try:
            self._call(zk.ensure_path_async, self.base_path)
            handler = type("Handler", (Handler,), {"registry": self})
            self._httpd = ThreadingHTTPServer((self.host, self._requested_port), handler)
            if self.ssl_context is not None:
                # the handshake happens in the request's thread (first read), not in accept()
                self._httpd.socket = self.ssl_context.wrap_socket(self._httpd.socket, server_side=True,
                                                                  do_handshake_on_connect=False)
                self._httpd.handle_error = lambda request, address: log.debug(  # type: ignore[method-assign]
                    "TLS/connection error from %s", address, exc_info=True)
        except Exception:
            self._zk = None
            zk.stop()
            zk.close()
            raise
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                        name=f"registry-http-{self.port}", daemon=True)
        self._thread.start()
        self.register({"service_name": "config-service", "service_url": self.self_url,
                       "health_check_url": self.self_url.rstrip("/") + "/health",
                       "service_metadata": {"instance_id": self.instance_id, "status": "healthy",
                                            "version": VERSION}})
        log.info("registry serving on %s (ZooKeeper %s, base %s, session 0x%x)",
                 self.url, self.zk_hosts, self.base_path, self.session_id or 0)
        return self

    def stop(self) -> None:
        """Stop serving and close the ZooKeeper session (all its ephemeral nodes vanish). Idempotent."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._zk is not None:
            try:
                self._zk.stop()
                self._zk.close()
            except Exception as exc:  # pragma: no cover - best effort
                log.warning("closing the ZooKeeper session failed: %s", exc)

    def __enter__(self) -> "RegistryServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------------ ZooKeeper
    def _call(self, fn: Callable, *args, **kwargs):
        """Run a kazoo ``*_async`` call bounded by ``zk_timeout``; ZooKeeper down -> ZkUnavailable."""
        if not self.zk_connected:
            raise ZkUnavailable(f"not connected to ZooKeeper at {self.zk_hosts}")
        try:
            return fn(*args, **kwargs).get(timeout=self.zk_timeout)
        except _ZK_DOWN as exc:
            raise ZkUnavailable(f"ZooKeeper at {self.zk_hosts}: {type(exc).__name__} {exc}".strip()) from exc

    def _instances_path(self, name: str) -> str:
        return f"{self.base_path.rstrip('/')}/{name}/instances"

    def clear_cache(self, name: str | None = None) -> None:
        with self._cache_lock:
            if name is None:
                self._cache.clear()
            else:
                self._cache.pop(name, None)

    def register(self, req: dict) -> str:
        name = req["service_name"]
        meta = dict(req.get("service_metadata") or {})
        instance_id = meta.get("instance_id") or str(uuid.uuid4())
        instance_id = str(instance_id)
        payload = dict(meta)
        payload.setdefault("health_check_url", req.get("health_check_url"))
        payload["instance_id"] = instance_id
        payload["service_url"] = req["service_url"]
        data = json.dumps(payload).encode("utf-8")
        path = f"{self._instances_path(name)}/{instance_id}"
        zk = self._zk
        if self._call(zk.exists_async, path) is not None:
            self._call(zk.set_async, path, data)
        else:
            try:
                self._call(zk.create_async, path, data, ephemeral=True, makepath=True)
            except NodeExistsError:
                self._call(zk.set_async, path, data)
        status = meta.get("status") or "unknown"
        self.db.upsert({"service_name": name, "service_url": req["service_url"],
                        "health_check_url": req.get("health_check_url"), "status": status,
                        "service_metadata": req.get("service_metadata"), "registered_at": utc_now_str()})
        self.clear_cache(name)
        log.debug("registered %s/%s at %s", name, instance_id, req["service_url"])
        return instance_id

    def deregister(self, name: str, instance_id: str) -> None:
        path = f"{self._instances_path(name)}/{instance_id}"
        try:
            self._call(self._zk.delete_async, path)
        except (NoNodeError, BadArgumentsError, NotEmptyError):
            pass
        self.db.set_status(name, "unknown")
        self.clear_cache(name)
        log.debug("deregistered %s/%s", name, instance_id)

    def instances(self, name: str) -> list[dict]:
        """Live instances (cached up to ``cache_ttl``); raises InvalidStatus / ZkUnavailable."""
        now = time.monotonic()
        with self._cache_lock:
            hit = self._cache.get(name)
        if hit is not None and now - hit[0] < self.cache_ttl:
            return [dict(i) for i in hit[1]]
        result = self._read_instances(name)
        if self.cache_ttl > 0:
            with self._cache_lock:
                self._cache[name] = (now, result)
        return [dict(i) for i in result]

    def _read_instances(self, name: str) -> list[dict]:
        parent = self._instances_path(name)
        try:
            children = self._call(self._zk.get_children_async, parent)
        except (NoNodeError, BadArgumentsError):
            return []
        result = []
        for child in sorted(children):
            try:
                data, _stat = self._call(self._zk.get_async, f"{parent}/{child}")
            except NoNodeError:
                continue
            try:
                payload = json.loads((data or b"").decode("utf-8"))
            except (UnicodeDecodeError, ValueError):
                payload = None
            if not isinstance(payload, dict):
                log.warning("skipping %s/%s: data is not a JSON object", parent, child)
                continue
            status = payload.get("status")
            if status is None:
                status = "unknown"
            if status not in VALID_STATUSES:
                raise InvalidStatus(f"{status!r} is not a valid ServiceStatus")
            result.append({"instance_id": payload.get("instance_id", child), "service_name": name,
                           "service_url": payload.get("service_url"),
                           "health_check_url": payload.get("health_check_url"),
                           "status": status, "service_metadata": payload})
        return result

    def probe(self, instances: list[dict]) -> list[dict]:
        """GET every instance's health URL in parallel; one check result per instance."""
        def one(inst: dict) -> dict:
            url = inst.get("health_check_url")
            started = time.monotonic()
            result = {"endpoint_url": url, "is_healthy": False, "response_time_ms": 0.0,
                      "status_code": None, "error_message": None, "timestamp": iso_now()}
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
                result["error_message"] = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            result["response_time_ms"] = round((time.monotonic() - started) * 1000, 2)
            return result

        if not instances:
            return []
        with httpx.Client(timeout=self.health_timeout, trust_env=False) as client, \
                ThreadPoolExecutor(max_workers=min(16, len(instances))) as pool:
            return list(pool.map(one, instances))

    def health_report(self) -> dict:
        sim = self.simulate
        if str(sim.get("health_check", "")).lower() in ("broken", "error", "fail", "503"):
            raise HTTPError(503, "Service unhealthy")
        report: dict[str, Any] = {}
        for comp in COMPONENTS:
            default = "healthy"
            if comp == "zookeeper":
                default = "healthy" if self.zk_connected else "unhealthy"
            report[comp] = str(sim.get(comp, default))
        overall = "healthy" if all(report[c] == "healthy" for c in COMPONENTS) else "unhealthy"
        return {"status": overall, **report, "timestamp": iso_now()}


# ---------------------------------------------------------------------- command line

def _parse_simulate(items: list[str]) -> dict:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise argparse.ArgumentTypeError(f"--simulate wants COMPONENT=STATE, got {item!r}")
        out[key.strip()] = value.strip()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m regctl.sandbox.registry",
                                     description="A Config Service look-alike registry (sandbox/tests).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8082)
    parser.add_argument("--zk", default=os.environ.get("ZOOKEEPER_HOSTS", "127.0.0.1:2181"))
    parser.add_argument("--base", default=os.environ.get("ZOOKEEPER_BASE_PATH", "/services"))
    parser.add_argument("--db", default=None, help="JSON file for the service rows (survives restarts)")
    parser.add_argument("--instance-id", default=os.environ.get("SERVICE_INSTANCE_ID", "config-service-1"))
    parser.add_argument("--self-url", default=None, help="URL it registers itself under (default: its own)")
    parser.add_argument("--cache-ttl", type=float, default=60.0)
    parser.add_argument("--zk-timeout", type=float, default=5.0)
    parser.add_argument("--no-detailed-health", action="store_true", help="behave like old versions")
    parser.add_argument("--simulate", action="append", default=[], metavar="COMPONENT=STATE")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every request")
    args = parser.parse_args(argv)
    try:
        simulate = _parse_simulate(args.simulate)
    except argparse.ArgumentTypeError as exc:
        parser.error(str(exc))
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not args.verbose:
        logging.getLogger("kazoo").setLevel(logging.WARNING)
        logging.getLogger("regctl.sandbox.registry.kazoo").setLevel(logging.WARNING)
        logging.getLogger("httpx").setLevel(logging.WARNING)
    server = RegistryServer(args.host, args.port, args.zk, args.base, args.db, args.instance_id,
                            args.self_url, args.cache_ttl, args.zk_timeout,
                            detailed_health=not args.no_detailed_health, simulate=simulate,
                            verbose=args.verbose)
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda *_: done.set())
    try:
        server.start()
    except (SandboxError, OSError) as exc:
        log.error("cannot start: %s", exc)
        return 3
    try:
        while not done.wait(0.5):
            pass
    finally:
        log.info("stopping")
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
