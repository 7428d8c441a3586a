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

It fails the way the contract's "How it fails" table says, on demand: the
``faults`` set (``"redis"``, ``"postgres"``), :meth:`RegistryServer.lose_zk_client`
and :meth:`RegistryServer.restart` (the old session abandoned, its nodes lingering
until its timeout). The server reaches ZooKeeper through a loopback relay
(:mod:`regctl.sandbox.zkrelay`) so that a session can be abandoned without closing it.

Two generations: ``earlier`` (the default) and ``later`` (a background health
monitor, ``/internal/health-status``, ``/health/detailed``, the slow retrying health
call, seeded rows; see :mod:`regctl.sandbox.registry_monitor`).

Health probes of the earlier generation (``POST /services/{name}/health``): every
instance's ``health_check_url`` is fetched (GET, ``health_timeout`` seconds, in
parallel); the service is **healthy when at least one instance answers 2xx**,
unhealthy when none does, unknown when it has no instances; the verdict is written
to the service's row. An instance without a health URL counts as failed.

The HTTP routing lives in :mod:`regctl.sandbox.registry_http`. Stdlib
``ThreadingHTTPServer`` + kazoo + httpx only. Runnable::

    python -m regctl.sandbox.registry --port 8082 --zk 127.0.0.1:2181 --db db.json [--fault redis]
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
import uuid
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterable

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
from regctl.sandbox.registry_db import Database  # noqa: F401  (re-exported)
from regctl.sandbox.registry_http import (  # noqa: F401  (re-exported)
    BackendDown,
    Handler,
    HTTPError,
    InvalidStatus,
    ZkUnavailable,
    iso_now,
    utc_now_str,
)
from regctl.sandbox.zkrelay import Relay

log = logging.getLogger("regctl.sandbox.registry")

PREFIX = "/api/v1/registry"
COMPONENTS = ("redis", "postgres", "kafka", "zookeeper")
VERSION = "sandbox"
#: what ``faults`` may hold
FAULTS = ("redis", "postgres")
GENERATIONS = ("earlier", "later")
#: what the real service's clients say when their backend is gone
REDIS_DOWN = "Error 111 connecting to redis:6379. Connection refused."
POSTGRES_DOWN = ('(psycopg2.OperationalError) connection to server at "postgres", port 5432 failed: '
                 "Connection refused")
ZK_CLIENT_CLOSED = "Connection has been closed"

_ZK_DOWN = (KazooTimeoutError, ConnectionLoss, ConnectionClosedError, SessionExpiredError,
            OperationTimeoutError)


class RegistryServer:
    """The registry API on ``http://host:port``; see the module docstring for the behaviour.

    ``self_url=None`` registers the server under its own real URL. ``simulate`` maps
    components (``redis``, ``postgres``, ``kafka``, ``zookeeper``) to the status
    ``/health`` reports; ``{"health_check": "broken"}`` makes ``/health`` answer 503;
    ``{"delay": "1.5"}`` delays every answer by that many seconds. It is read on
    every request, so tests may change ``server.simulate`` while it runs.

    Failures as the contract describes them (read on every request, change them at will):
    ``faults`` is a set holding ``"redis"`` (the cache is unreachable: instance reads
    answer 500, writes happen and then answer 500) and/or ``"postgres"`` (the
    database is unreachable: ``GET /services`` 500, writes touch ZooKeeper and then
    answer 500). See :meth:`lose_zk_client` and :meth:`restart` for the others.

    ``generation``: ``"earlier"`` (no ``/health/detailed``, no monitor) or ``"later"``
    (see :mod:`regctl.sandbox.registry_monitor` for ``monitor_interval``,
    ``monitor_ttl``, ``retry_delays``, ``probe_timeout`` and ``seed_rows``).
    ``detailed_health`` forces ``/health/detailed`` on or off (None: the generation decides).

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
                 cache_ttl: float = 60.0, zk_timeout: float = 5.0, *, detailed_health: bool | None = None,
                 health_timeout: float = 2.0, simulate: dict | None = None, verbose: bool = False,
                 required_headers: dict | None = None, ssl_context: Any = None,
                 certfile: str | Path | None = None, keyfile: str | Path | None = None,
                 faults: Iterable[str] = (), generation: str = "earlier", monitor_interval: float = 30.0,
                 monitor_ttl: float = 60.0, retry_delays: tuple[float, ...] = (1.0, 2.0),
                 probe_timeout: float = 3.0, seed_rows: bool = False) -> None:
        if generation not in GENERATIONS:
            raise ValueError(f"generation must be one of {GENERATIONS}, not {generation!r}")
        self.host = host
        self._requested_port = port
        self.zk_hosts = zk_hosts
        self.base_path = "/" + base_path.strip("/") if base_path.strip("/") else "/"
        self.db = Database(Path(db_path) if db_path else None)
        self.instance_id = instance_id
        self._self_url = self_url
        self.cache_ttl = cache_ttl
        self.zk_timeout = zk_timeout
        self.generation = generation
        self._detailed_health = detailed_health
        self.health_timeout = health_timeout
        self.simulate: dict = dict(simulate or {})
        self.faults: set[str] = set(faults)
        self.verbose = verbose
        self.required_headers: dict = dict(required_headers or {})
        self.seen_headers: list[dict] = []
        if ssl_context is None and certfile:
            import ssl

            ssl_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ssl_context.load_cert_chain(str(certfile), str(keyfile) if keyfile else None)
        self.ssl_context = ssl_context
        self.monitor_interval = monitor_interval
        self.monitor_ttl = monitor_ttl
        self.retry_delays = tuple(retry_delays)
        self.probe_timeout = probe_timeout
        self.seed_rows = seed_rows
        self.monitor = None  # a registry_monitor.Monitor in the later generation, once started
        #: session ids given up by lose_zk_client()/restart(), oldest first
        self.abandoned_sessions: list[int] = []
        self._cache: dict[str, tuple[float, list[dict]]] = {}
        self._cache_lock = threading.Lock()
        self._redis_was_down = False
        self._zk: KazooClient | None = None
        self._relay: Relay | None = None
        self._zk_lost = False
        self._zk_lock = threading.RLock()
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
    def detailed_health(self) -> bool:
        """Whether ``POST /services/{name}/health/detailed`` exists."""
        if self._detailed_health is not None:
            return self._detailed_health
        return self.generation == "later"

    @detailed_health.setter
    def detailed_health(self, value: bool | None) -> None:
        self._detailed_health = value

    @property
    def session_id(self) -> int | None:
        """The current kazoo session id: every instance node it creates has it as ``ephemeralOwner``."""
        zk = self._zk
        if zk is None or zk.client_id is None:
            return None
        return zk.client_id[0]

    @property
    def zk_connected(self) -> bool:
        zk = self._zk
        return zk is not None and not self._zk_lost and zk.state == KazooState.CONNECTED

    def start(self) -> "RegistryServer":
        """Connect to ZooKeeper, register itself, serve HTTP in a background thread."""
        self._connect()
        try:
            self._call("ensure_path", self.base_path)
            handler = type("Handler", (Handler,), {"registry": self})
            self._httpd = ThreadingHTTPServer((self.host, self._requested_port), handler)
            if self.ssl_context is not None:
                # the handshake happens in the request's thread (first read), not in accept()
                self._httpd.socket = self.ssl_context.wrap_socket(self._httpd.socket, server_side=True,
                                                                  do_handshake_on_connect=False)
                self._httpd.handle_error = lambda request, address: log.debug(  # type: ignore[method-assign]
                    "TLS/connection error from %s", address, exc_info=True)
        except Exception:
            self._disconnect(close=True)
            raise
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                        name=f"registry-http-{self.port}", daemon=True)
        self._thread.start()
        self._register_self()
        if self.generation == "later":
            from regctl.sandbox.registry_monitor import Monitor, seed

            if self.seed_rows:
                seed(self.db)
            self.monitor = Monitor(self).start()
        log.info("registry (%s generation) serving on %s (ZooKeeper %s, base %s, session 0x%x)",
                 self.generation, self.url, self.zk_hosts, self.base_path, self.session_id or 0)
        return self

    def stop(self) -> None:
        """Stop serving and close the ZooKeeper session (all its ephemeral nodes vanish). Idempotent."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        if self.monitor is not None:
            self.monitor.stop()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._disconnect(close=True)

    def __enter__(self) -> "RegistryServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------------ failure switches
    def lose_zk_client(self) -> None:
        """The service's own kazoo client gives up for good, as after a long ZooKeeper outage.

        Its session is abandoned, not closed (its nodes vanish when it times out);
        ``/health`` shows ``zookeeper`` unhealthy while ZooKeeper is fine; register,
        deregister and per-service reads answer 500 until :meth:`restart`. The cache
        is emptied (its entries would have expired during such an outage).
        """
        with self._zk_lock:
            self._zk_lost = True
            self._disconnect(close=False)
            self.clear_cache()
        log.warning("the ZooKeeper client gave up (session abandoned)")

    def restart(self, linger: bool = True) -> None:
        """A process restart on the same port and database: new session, cache emptied, itself re-registered.

        ``linger=True`` abandons the old session without closing it, so its nodes stay
        visible (owned by a session nobody holds) until ``zk_timeout`` and then vanish;
        ``linger=False`` closes it (they vanish at once). Rows remain; nothing but
        the server's own node is registered again.
        """
        with self._zk_lock:
            self._disconnect(close=not linger)
            self.clear_cache()
            if self.monitor is not None:
                self.monitor.reset()
            self._zk_lost = False
            self._connect()
        self._register_self()
        log.info("restarted: new ZooKeeper session 0x%x", self.session_id or 0)

    def _connect(self) -> None:
        relay = Relay(self.zk_hosts).start()
        zk = KazooClient(hosts=relay.hosts, timeout=max(self.zk_timeout, 4.0),
                         connection_retry=KazooRetry(max_tries=-1, delay=0.2, max_delay=2.0),
                         logger=logging.getLogger("regctl.sandbox.registry.kazoo"))
        try:
            zk.start(timeout=self.zk_timeout)
        except Exception as exc:  # KazooTimeoutError and friends
            relay.cut()
            zk.stop()
            zk.close()
            raise SandboxError(f"registry could not connect to ZooKeeper at {self.zk_hosts}: {exc}",
                               where=self.zk_hosts, hint="start ZooKeeper first") from exc
        self._zk, self._relay = zk, relay

    def _disconnect(self, close: bool) -> None:
        """Close the session (``close``) or abandon it: cut the relay first so the goodbye never arrives."""
        zk, relay = self._zk, self._relay
        self._zk = self._relay = None
        if zk is None:
            return
        if zk.client_id is not None and not close:
            self.abandoned_sessions.append(zk.client_id[0])
        if relay is not None and not close:
            relay.cut()
        try:
            zk.stop()
            zk.close()
        except Exception as exc:  # pragma: no cover - best effort
            log.warning("closing the ZooKeeper client failed: %s", exc)
        if relay is not None:
            relay.cut()

    # ------------------------------------------------------------------ ZooKeeper
    def _call(self, method: str, *args, **kwargs):
        """Run kazoo's ``<method>_async`` bounded by ``zk_timeout``; ZooKeeper down -> ZkUnavailable."""
        if self._zk_lost:
            raise BackendDown("zookeeper", ZK_CLIENT_CLOSED)
        zk = self._zk
        if zk is None or zk.state != KazooState.CONNECTED:
            raise ZkUnavailable(f"not connected to ZooKeeper at {self.zk_hosts}")
        try:
            return getattr(zk, method + "_async")(*args, **kwargs).get(timeout=self.zk_timeout)
        except _ZK_DOWN as exc:
            raise ZkUnavailable(f"ZooKeeper at {self.zk_hosts}: {type(exc).__name__} {exc}".strip()) from exc

    def _instances_path(self, name: str) -> str:
        return f"{self.base_path.rstrip('/')}/{name}/instances"

    # ------------------------------------------------------------------ the backends' faults
    def check_redis(self) -> None:
        """BackendDown while the ``redis`` fault is on; a cache that comes back is empty (it restarted)."""
        if "redis" in self.faults:
            self._redis_was_down = True
            raise BackendDown("redis", REDIS_DOWN)
        if self._redis_was_down:
            self._redis_was_down = False
            self.clear_cache()

    def check_postgres(self) -> None:
        """BackendDown while the ``postgres`` fault is on."""
        if "postgres" in self.faults:
            raise BackendDown("postgres", POSTGRES_DOWN)

    def clear_cache(self, name: str | None = None) -> None:
        with self._cache_lock:
            if name is None:
                self._cache.clear()
            else:
                self._cache.pop(name, None)

    def list_rows(self) -> list[dict]:
        """``GET /services``: the database rows."""
        self.check_postgres()
        return self.db.rows()

    def record_verdict(self, name: str, status: str, last_health_check: str | None = None) -> None:
        """A health verdict written to the service's row; skipped (logged) while the database is down."""
        if "postgres" in self.faults:
            log.warning("could not write %s's health verdict %r: %s", name, status, POSTGRES_DOWN)
            return
        self.db.set_status(name, status, last_health_check)

    def register(self, req: dict) -> str:
        """Write the node (create, or ``set`` in place), then the row, then evict the cache."""
        name = req["service_name"]
        meta = dict(req.get("service_metadata") or {})
        instance_id = str(meta.get("instance_id") or uuid.uuid4())
        path = f"{self._instances_path(name)}/{instance_id}"
        self._write_node(path, self._payload(req, meta, instance_id), replace_foreign=False)
        self.check_postgres()
        self.db.upsert(self._row(req, meta))
        self.check_redis()
        self.clear_cache(name)
        log.debug("registered %s/%s at %s", name, instance_id, req["service_url"])
        return instance_id

    def deregister(self, name: str, instance_id: str) -> None:
        """Delete the node (absent is fine), then mark the row ``unknown``, then evict the cache."""
        path = f"{self._instances_path(name)}/{instance_id}"
        try:
            self._call("delete", path)
        except (NoNodeError, BadArgumentsError, NotEmptyError):
            pass
        self.check_postgres()
        self.db.set_status(name, "unknown")
        self.check_redis()
        self.clear_cache(name)
        log.debug("deregistered %s/%s", name, instance_id)

    @staticmethod
    def _payload(req: dict, meta: dict, instance_id: str) -> bytes:
        payload = dict(meta)
        payload.setdefault("health_check_url", req.get("health_check_url"))
        payload["instance_id"] = instance_id
        payload["service_url"] = req["service_url"]
        return json.dumps(payload).encode("utf-8")

    @staticmethod
    def _row(req: dict, meta: dict) -> dict:
        return {"service_name": req["service_name"], "service_url": req["service_url"],
                "health_check_url": req.get("health_check_url"), "status": meta.get("status") or "unknown",
                "service_metadata": req.get("service_metadata"), "registered_at": utc_now_str()}

    def _write_node(self, path: str, data: bytes, replace_foreign: bool) -> None:
        stat = self._call("exists", path)
        if stat is not None and replace_foreign and stat.ephemeralOwner != self.session_id:
            try:  # a node left by an earlier session of ours would vanish with it
                self._call("delete", path)
            except NoNodeError:
                pass
            stat = None
        if stat is not None:
            self._call("set", path, data)
            return
        try:
            self._call("create", path, data, ephemeral=True, makepath=True)
        except NodeExistsError:
            self._call("set", path, data)

    def _register_self(self) -> None:
        """Its own node, always under the current session; its row when the database is there."""
        req = {"service_name": "config-service", "service_url": self.self_url,
               "health_check_url": self.self_url.rstrip("/") + "/health",
               "service_metadata": {"instance_id": self.instance_id, "status": "healthy", "version": VERSION}}
        path = f"{self._instances_path('config-service')}/{self.instance_id}"
        self._write_node(path, self._payload(req, req["service_metadata"], self.instance_id), replace_foreign=True)
        if "postgres" not in self.faults:
            self.db.upsert(self._row(req, req["service_metadata"]))
        self.clear_cache("config-service")

    def instances(self, name: str) -> list[dict]:
        """Live instances (cached up to ``cache_ttl``); raises InvalidStatus / ZkUnavailable / BackendDown."""
        self.check_redis()
        now = time.monotonic()
        with self._cache_lock:
            hit = self._cache.get(name)
        if hit is not None and now - hit[0] < self.cache_ttl:
            result = hit[1]
        else:
            result = self._read_instances(name)
            if self.cache_ttl > 0:
                with self._cache_lock:
                    self._cache[name] = (now, result)
        bad = next((i["status"] for i in result if i["status"] not in VALID_STATUSES), None)
        if bad is not None:
            raise InvalidStatus(f"{bad!r} is not a valid ServiceStatus")
        return [dict(i) for i in result]

    def _read_instances(self, name: str) -> list[dict]:
        parent = self._instances_path(name)
        try:
            children = self._call("get_children", parent)
        except (NoNodeError, BadArgumentsError):
            return []
        result = []
        for child in sorted(children):
            try:
                data, _stat = self._call("get", f"{parent}/{child}")
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
            result.append({"instance_id": payload.get("instance_id", child), "service_name": name,
                           "service_url": payload.get("service_url"),
                           "health_check_url": payload.get("health_check_url"),
                           "status": status, "service_metadata": payload})
        return result

    def read_raw_instances(self, name: str) -> list[dict]:
        """Straight from ZooKeeper: no cache, no status check (the monitor's view)."""
        return self._read_instances(name)

    def service_names(self) -> list[str]:
        """The service directories under the base path."""
        return sorted(self._call("get_children", self.base_path))

    @property
    def stopping(self) -> bool:
        return self._stopped.is_set()

    def probe(self, instances: list[dict]) -> list[dict]:
        """GET every instance's health URL once, in parallel; one check result per instance."""
        from regctl.sandbox.registry_monitor import probe_parallel

        return probe_parallel(self, instances)

    def health_check(self, name: str) -> str:
        """``POST /services/{name}/health`` in this server's generation (writes the row's status)."""
        from regctl.sandbox.registry_monitor import health_call

        return health_call(self, name)

    def health_detailed(self, name: str) -> dict:
        """``POST /services/{name}/health/detailed``."""
        from regctl.sandbox.registry_monitor import detailed_call

        return detailed_call(self, name)

    def monitor_status(self, name: str) -> dict:
        """``GET /internal/health-status?service_id=NAME`` (later generation)."""
        if self.monitor is None:
            raise HTTPError(404, "Not Found")
        return self.monitor.status(name)

    def health_report(self) -> dict:
        sim = self.simulate
        if str(sim.get("health_check", "")).lower() in ("broken", "error", "fail", "503"):
            raise HTTPError(503, "Service unhealthy")
        report: dict[str, Any] = {}
        for comp in COMPONENTS:
            if comp in self.faults:
                report[comp] = "unhealthy"
                continue
            default = "healthy"
            if comp == "zookeeper":
                default = "healthy" if self.zk_connected else "unhealthy"
            report[comp] = str(sim.get(comp, default))
        overall = "healthy" if all(report[c] == "healthy" for c in COMPONENTS) else "unhealthy"
        return {"status": overall, **report, "timestamp": iso_now()}


# ---------------------------------------------------------------------- command line

def main(argv: list[str] | None = None) -> int:
    """``python -m regctl.sandbox.registry``: see :mod:`regctl.sandbox.registry_cli`."""
    from regctl.sandbox.registry_cli import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
