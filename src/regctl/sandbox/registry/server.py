"""A Config Service look-alike: the registry HTTP API over a real ZooKeeper.

It behaves as the real service's code does (``shared/config-service``, both
generations; ``registry-contract.md`` describes it), quirks and failures included, so
that regctl's tests mean something against it; ``tests/test_real_parity.py`` holds
it against the real service scenario by scenario:

* instances are EPHEMERAL nodes owned by *this server's* kazoo session (stop the
  server and they all vanish; a crashed microservice's instance stays: a zombie);
  a node is written exists-then-``set``: registering an existing id rewrites it in
  place, keeping the session that created it;
* the "database" (PostgreSQL in production) keeps one row per service name, the
  last registration wins (status always ``healthy``, ``registered_at`` from the
  first), deregistration only sets ``status`` to ``unknown``; rows are persisted to
  ``db_path`` (JSON) when given, so they survive a restart;
* instance lists are cached in "Redis" (:class:`regctl.sandbox.registry.db.Cache`,
  kept in ``cache_path`` when given) for ``cache_ttl`` seconds; only register and
  deregister through the API evict them, and a restart of the registry does not;
* an instance's ``status`` is what it registered (``unknown`` when absent); a status
  the real service's enum cannot parse (``UP``, ``null``) makes every read of that
  service answer 500;
* ``/services/{name}/url`` only returns instances whose status is ``healthy``;
* at start it registers itself through the same exists-then-``set`` path (no row):
  after a crash its own node still exists, so it is rewritten in place
  (``stat.version`` 0 -> 1, ``ephemeralOwner`` the old session) and vanishes with the
  old session; a graceful stop deregisters it and closes the session.

It fails the way the real one does, on demand: the ``faults`` set (``"redis"``,
``"postgres"``), :meth:`RegistryServer.lose_zk_client` and
:meth:`RegistryServer.restart` (``linger=True``: a crash, the old session abandoned,
its nodes lingering until its timeout). Anything the real service leaves unhandled
answers Starlette's plain-text ``500 Internal Server Error``; ``/health`` answers a
bare ``503 {"detail": "Service unhealthy"}`` while Redis or PostgreSQL is down. The
server reaches ZooKeeper through a loopback relay (:mod:`regctl.sandbox.zkrelay`) so
that a session can be abandoned without closing it.

Two generations: ``earlier`` (the default) and ``later`` (a background health
monitor, ``/internal/health-status``, ``/health/detailed``, the slow retrying health
call, seeded rows; see :mod:`regctl.sandbox.registry.monitor`).

The HTTP routing lives in :mod:`regctl.sandbox.registry.http`. Stdlib
``ThreadingHTTPServer`` + kazoo + httpx only. Runnable::

    python -m regctl.sandbox.registry --port 8082 --zk 127.0.0.1:2181 --db db.json [--fault redis]
"""

from __future__ import annotations

import json
import logging
import ssl
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterable, Mapping

from kazoo.client import KazooClient, KazooState
from kazoo.exceptions import (
    ConnectionClosedError,
    ConnectionLoss,
    NoNodeError,
    OperationTimeoutError,
    SessionExpiredError,
)
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.retry import KazooRetry

from regctl.errors import SandboxError
from regctl.names import VALID_STATUSES  # the real service's ServiceStatus enum
from regctl.sandbox.registry.db import INSERT_WINDOW, Cache, Database
from regctl.sandbox.registry.http import (
    BackendDown,
    Handler,
    HTTPError,
    InvalidNode,
    InvalidStatus,
    ZkUnavailable,
)
from regctl.sandbox.registry.monitor import Monitor, detailed_call, health_call, health_status_key, seed
from regctl.sandbox.statedir import write_atomic
from regctl.sandbox.zkrelay import Relay

log = logging.getLogger("regctl.sandbox.registry")

PREFIX = "/api/v1/registry"
COMPONENTS = ("redis", "postgres", "kafka", "zookeeper")
#: what ``faults`` may hold
FAULTS = ("redis", "postgres")
GENERATIONS = ("earlier", "later")
#: what the real service's clients say when their backend is gone (logged, never sent)
REDIS_DOWN = "Error 111 connecting to 127.0.0.1:6379. Connection refused."
POSTGRES_DOWN = "[Errno 111] Connect call failed ('127.0.0.1', 5432)"
ZK_CLIENT_CLOSED = "Connection has been closed"

_ZK_DOWN = (KazooTimeoutError, ConnectionLoss, ConnectionClosedError, SessionExpiredError,
            OperationTimeoutError)


def instances_key(name: str) -> str:
    """The real service's Redis key for a service's cached instance list."""
    return f"registry:instances:{name}"


@dataclass(frozen=True)
class Identity:
    """How it registers itself: its own node ``{base}/config-service/instances/{instance_id}``.

    ``self_url`` is the URL it registers itself under (the real one uses
    ``http://config-service:8082``); None registers its own real URL.
    """

    instance_id: str = "config-service-1"
    self_url: str | None = "http://config-service:8082"


@dataclass(frozen=True)
class Listener:
    """Where and how it serves HTTP, with the gateway and TLS stand-ins (tests of regctl's auth and TLS options).

    ``required_headers={"Authorization": "Bearer s3cret"}`` answers every request
    that lacks one of them (exact value; names case-insensitive) with
    ``401 {"detail": "Not authenticated"}``, like a FastAPI security dependency;
    ``ssl_context`` (an :class:`ssl.SSLContext`) or ``certfile``/``keyfile`` (PEM)
    serve HTTPS instead of HTTP (``url`` starts with ``https://``).
    """

    host: str = "127.0.0.1"
    #: 0: a free port
    port: int = 0
    required_headers: Mapping[str, str] | None = None
    ssl_context: Any = None
    certfile: str | Path | None = None
    keyfile: str | Path | None = None


@dataclass(frozen=True)
class Storage:
    """Where its stand-ins for PostgreSQL and Redis keep their data, and the sandbox's session file.

    ``db_path`` keeps the rows in a JSON file, ``cache_path`` the cache (both outlive
    the process, as PostgreSQL and Redis do); cached instance lists live ``cache_ttl``
    seconds. ``session_file`` gets the current ZooKeeper session id (hex) whenever one
    starts: the sandbox's own bookkeeping, the real service tells nobody.
    """

    db_path: str | Path | None = None
    cache_path: str | Path | None = None
    session_file: str | Path | None = None
    cache_ttl: float = 60.0


@dataclass(frozen=True)
class Behaviour:
    """Which Config Service generation it behaves like, and the timings of its health calls and monitor.

    ``generation``: ``"earlier"`` (no ``/health/detailed``, no monitor) or ``"later"``
    (see :mod:`regctl.sandbox.registry.monitor` for ``monitor_interval``,
    ``monitor_ttl``, ``retry_delays``, ``probe_timeout`` and ``seed_rows``).
    ``detailed_health`` forces ``/health/detailed`` on or off (None: the generation decides).
    """

    generation: str = "earlier"
    detailed_health: bool | None = None
    health_timeout: float = 3.0
    monitor_interval: float = 30.0
    monitor_ttl: float | None = None
    retry_delays: tuple[float, ...] = (1.0, 2.0)
    probe_timeout: float = 3.0
    seed_rows: bool = False


@dataclass(frozen=True)
class Switches:
    """What it starts with of the switches read on every request (change them on the server at will).

    ``simulate`` maps ``kafka`` and ``zookeeper`` to the status ``/health`` reports
    (``redis`` or ``postgres`` set to anything but ``healthy`` make ``/health`` answer
    the bare 503, as the real one does for them); ``{"health_check": "broken"}`` makes
    ``/health`` answer 503; ``{"delay": "1.5"}`` delays every answer by that many seconds.
    ``faults`` holds ``"redis"`` (the cache is unreachable: instance reads answer 500,
    writes happen and then answer 500) and/or ``"postgres"`` (the database is
    unreachable: ``GET /services`` 500, writes touch ZooKeeper and then answer 500,
    health calls probe and then answer 500). ``verbose`` logs every request.
    """

    simulate: Mapping[str, str] | None = None
    faults: Iterable[str] = ()
    verbose: bool = False


class RegistryServer:
    """The registry API on ``http://host:port``; see the module docstring for the behaviour.

    It writes to ZooKeeper at ``zk_hosts`` under ``base_path`` (every call bounded by
    ``zk_timeout``) and registers itself as ``identity`` says; ``listener`` says where
    and how it serves HTTP, ``storage`` where its rows, cache and session file live,
    ``behaviour`` which generation it behaves like, and ``switches`` the failures it
    starts with. Each is a small frozen dataclass of this module; their fields stay
    readable (and the switches changeable) as attributes of the server.

    The switches are read on every request, so tests may change ``server.simulate``,
    ``server.faults`` and ``server.verbose`` while it runs. See :meth:`lose_zk_client`
    and :meth:`restart` for the other failures.
    ``seen_headers`` keeps the headers of the last 100 requests.
    """

    def __init__(self, *, zk_hosts: str = "127.0.0.1:2181", base_path: str = "/services",
                 zk_timeout: float = 5.0, identity: Identity = Identity(), listener: Listener = Listener(),
                 storage: Storage = Storage(), behaviour: Behaviour = Behaviour(),
                 switches: Switches = Switches()) -> None:
        if behaviour.generation not in GENERATIONS:
            raise ValueError(f"generation must be one of {GENERATIONS}, not {behaviour.generation!r}")
        self.host = listener.host
        self._requested_port = listener.port
        self.zk_hosts = zk_hosts
        self.base_path = "/" + base_path.strip("/") if base_path.strip("/") else "/"
        self.db = Database(Path(storage.db_path) if storage.db_path else None)
        self.cache = Cache(Path(storage.cache_path) if storage.cache_path else None)
        self.session_file = Path(storage.session_file) if storage.session_file else None
        self.instance_id = identity.instance_id
        self._self_url = identity.self_url
        self.cache_ttl = storage.cache_ttl
        self.zk_timeout = zk_timeout
        self.generation = behaviour.generation
        self._detailed_health = behaviour.detailed_health
        self.health_timeout = behaviour.health_timeout
        self.simulate: dict = dict(switches.simulate or {})
        self.faults: set[str] = set(switches.faults)
        self.verbose = switches.verbose
        self.required_headers: dict = dict(listener.required_headers or {})
        self.seen_headers: list[dict] = []
        ssl_context = listener.ssl_context
        if ssl_context is None and listener.certfile:
            ssl_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ssl_context.load_cert_chain(str(listener.certfile), str(listener.keyfile) if listener.keyfile else None)
        self.ssl_context = ssl_context
        self.monitor_interval = behaviour.monitor_interval
        self._monitor_ttl = behaviour.monitor_ttl
        self.retry_delays = tuple(behaviour.retry_delays)
        self.probe_timeout = behaviour.probe_timeout
        self.seed_rows = behaviour.seed_rows
        #: seconds between a first registration's SELECT and its INSERT (see Database.register)
        self.insert_window = INSERT_WINDOW
        self.monitor = None  # a monitor.Monitor in the later generation, once started
        #: session ids given up by lose_zk_client()/restart(), oldest first
        self.abandoned_sessions: list[int] = []
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
    def own_node(self) -> str:
        """Its own instance node: ``{base}/config-service/instances/{instance_id}``."""
        return f"{self._instances_path('config-service')}/{self.instance_id}"

    @property
    def monitor_ttl(self) -> float:
        """How long a monitor verdict lives: the real ``max(2 x interval, 30 s)`` unless set."""
        if self._monitor_ttl is not None:
            return self._monitor_ttl
        return max(int(self.monitor_interval) * 2, 30)

    @monitor_ttl.setter
    def monitor_ttl(self, value: float | None) -> None:
        self._monitor_ttl = value

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
        """Connect to ZooKeeper, serve HTTP in a background thread, register itself."""
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
            if self.seed_rows:
                seed(self.db)
            self.monitor = Monitor(self).start()
        log.info("registry (%s generation) serving on %s (ZooKeeper %s, base %s, session 0x%x)",
                 self.generation, self.url, self.zk_hosts, self.base_path, self.session_id or 0)
        return self

    def stop(self) -> None:
        """A graceful stop: stop serving, deregister its own node, close the session. Idempotent.

        Every ephemeral node of the session vanishes with it.
        """
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
        self._deregister_self()
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
        deregister and per-service reads that miss the cache answer 500 until
        :meth:`restart`.
        """
        with self._zk_lock:
            self._zk_lost = True
            self._disconnect(close=False)
        log.warning("the ZooKeeper client gave up (session abandoned)")

    def restart(self, linger: bool = True) -> None:
        """A process restart on the same port, database and cache; itself registered again.

        ``linger=True`` is a crash (``kill -9``): the old session is abandoned without
        being closed, so its nodes stay visible (owned by a session nobody holds)
        until ``zk_timeout`` and then vanish, its own node included: the new process
        finds that node and rewrites it in place (``stat.version`` 1, the old owner),
        so from the expiry until the next start it has no node of its own.
        ``linger=False`` is a graceful restart: its own node is deregistered and the
        session closed (every node vanishes at once), then it registers itself anew.
        Rows and the cache ("Redis", another process) remain; a later-generation
        monitor starts a cycle at once, as the real one does at start-up.
        """
        with self._zk_lock:
            if not linger:
                self._deregister_self()
            self._disconnect(close=not linger)
            self._zk_lost = False
            self._connect()
        self._register_self()
        if self.monitor is not None:
            self.monitor.kick()
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
        if self.session_file is not None and zk.client_id is not None:
            try:
                write_atomic(self.session_file, f"0x{zk.client_id[0]:x}\n")
            except (OSError, SandboxError) as exc:
                log.warning("could not write %s: %s", self.session_file, exc)

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
            self.cache.clear()

    def check_postgres(self) -> None:
        """BackendDown while the ``postgres`` fault is on."""
        if "postgres" in self.faults:
            raise BackendDown("postgres", POSTGRES_DOWN)

    def clear_cache(self, name: str | None = None) -> None:
        """Forget cached instance lists (every one, or ``name``'s): a test's shortcut, not an API call."""
        if name is None:
            self.cache.clear()
        else:
            self.cache.delete(instances_key(name))

    def list_rows(self) -> list[dict]:
        """The database rows as stored (raises BackendDown while PostgreSQL is down)."""
        self.check_postgres()
        return self.db.rows()

    def list_services(self) -> list[dict]:
        """``GET /services``: each row as the real ``ServiceInstance`` with nulls left out.

        A status the enum cannot parse reads ``unknown``; ``service_metadata`` is at
        least ``{}``; ``last_health_check`` and ``instance_id`` are never listed.
        """
        out = []
        for row in self.list_rows():
            item: dict[str, Any] = {"service_name": row.get("service_name"), "service_url": row.get("service_url"),
                                    "health_check_url": row.get("health_check_url"),
                                    "status": row.get("status") if row.get("status") in VALID_STATUSES else "unknown",
                                    "service_metadata": row.get("service_metadata") or {},
                                    "registered_at": row.get("registered_at") or None}
            out.append({k: v for k, v in item.items() if v is not None})
        return out

    def record_status(self, name: str, status: str, last_health_check: str | None = None) -> None:
        """A health verdict written to the service's row (raises BackendDown while PostgreSQL is down)."""
        self.check_postgres()
        self.db.set_status(name, status, last_health_check)

    def register(self, req: dict) -> Any:
        """Write the node (exists-then-create/set), then the row, then evict the cache; return the id."""
        name = req["service_name"]
        meta = req.get("service_metadata") or {}
        payload = {"health_check_url": req.get("health_check_url"), **meta}
        instance_id = payload.get("instance_id") or str(uuid.uuid4())
        self._write_node(self._instances_path(name), instance_id,
                         {**payload, "instance_id": instance_id, "service_url": req["service_url"]})
        self.check_postgres()
        self.db.register({"service_name": name, "service_url": req["service_url"],
                          "health_check_url": req.get("health_check_url"), "status": "healthy",
                          "service_metadata": meta}, self.insert_window)
        self.check_redis()
        self.cache.delete(instances_key(name))
        log.debug("registered %s/%s at %s", name, instance_id, req["service_url"])
        return instance_id

    def deregister(self, name: str, instance_id: str) -> None:
        """Delete the node (absent is fine), then mark the row ``unknown``, then evict the cache."""
        try:
            self._call("delete", f"{self._instances_path(name)}/{instance_id}")
        except NoNodeError:
            pass
        self.check_postgres()
        self.db.set_status(name, "unknown")
        self.check_redis()
        self.cache.delete(instances_key(name))
        log.debug("deregistered %s/%s", name, instance_id)

    def _write_node(self, parent: str, instance_id: Any, payload: dict) -> None:
        """The real client's write: ``exists``, then ``create`` (ephemeral) or ``set`` in place."""
        data = json.dumps(payload).encode("utf-8")
        self._call("ensure_path", parent)
        path = f"{parent}/{instance_id}"
        if self._call("exists", path) is None:
            self._call("create", path, data, ephemeral=True, makepath=True)
        else:
            self._call("set", path, data)

    def _register_self(self) -> None:
        """Its own node, through the same exists-then-set path (no row), as the real start-up does.

        Failures are logged, not raised: the real one starts without its node then.
        """
        url = self.self_url.rstrip("/")
        meta = {"instance_id": self.instance_id, "health_check_url": url + "/health", "status": "healthy"}
        try:
            self._write_node(self._instances_path("config-service"), self.instance_id,
                             {**meta, "instance_id": self.instance_id, "service_url": url})
        except Exception as exc:
            log.warning("Failed to register service in ZooKeeper: %s", exc)

    def _deregister_self(self) -> None:
        """What a graceful shutdown does before closing its session; errors are ignored there too."""
        if self._zk is None or self._zk_lost:
            return
        try:
            self._call("delete", self.own_node)
        except Exception:
            pass

    def instances(self, name: str) -> list[dict]:
        """``get_service_instances``: the cached list, else ZooKeeper's (validated, then cached).

        Raises BackendDown (Redis), InvalidStatus / InvalidNode (a node the real models
        reject: nothing is cached then), ZkUnavailable.
        """
        self.check_redis()
        cached = self.cache.get(instances_key(name))
        if cached is not None:
            return cached
        result = [self._instance(name, payload) for payload in self._read_instances(name)]
        if self.cache_ttl > 0:
            self.cache.set(instances_key(name), result, self.cache_ttl)
        return result

    @staticmethod
    def _instance(name: str, payload: Any) -> dict:
        """One node's JSON as the real ``ServiceInstance`` (all fields, nulls included)."""
        if not isinstance(payload, dict):
            raise InvalidNode(f"'{type(payload).__name__}' object has no attribute 'get'")
        status = payload.get("status", "unknown")
        if status not in VALID_STATUSES or not isinstance(status, str):
            raise InvalidStatus(f"{status!r} is not a valid ServiceStatus")
        inst = {"instance_id": payload.get("instance_id"), "service_name": name,
                "service_url": payload.get("service_url"), "health_check_url": payload.get("health_check_url"),
                "status": status, "service_metadata": payload}
        for field, optional in (("instance_id", True), ("service_url", False), ("health_check_url", True)):
            value = inst[field]
            if not isinstance(value, str) and not (optional and value is None):
                raise InvalidStatus(f"1 validation error for ServiceInstance\n{field}\n  Input should be a "
                                    "valid string")
        return inst

    def _read_instances(self, name: str) -> list[Any]:
        """Every instance node's parsed JSON (nodes that are not UTF-8 JSON are skipped, as there)."""
        parent = self._instances_path(name)
        if self._call("exists", parent) is None:
            return []
        out = []
        for child in self._call("get_children", parent):
            data, _stat = self._call("get", f"{parent}/{child}")  # gone meanwhile: NoNodeError, a 500 there too
            try:
                out.append(json.loads((data or b"").decode("utf-8")))
            except (UnicodeDecodeError, ValueError):
                continue
        return out

    def service_names(self) -> list[str]:
        """The service directories under the base path."""
        return sorted(self._call("get_children", self.base_path))

    @property
    def stopping(self) -> bool:
        return self._stopped.is_set()

    def health_check(self, name: str) -> str:
        """``POST /services/{name}/health`` in this server's generation (writes the row's status)."""
        return health_call(self, name)

    def health_detailed(self, name: str) -> dict:
        """``POST /services/{name}/health/detailed``."""
        return detailed_call(self, name)

    def monitor_status(self, name: str) -> dict:
        """``GET /internal/health-status?service_id=NAME`` (later generation): read from the cache only."""
        self.check_redis()
        found = self.cache.get(health_status_key(name))
        if not found:
            raise HTTPError(404, "Health status not found")
        if isinstance(found, dict) and "service_id" not in found:
            found["service_id"] = name
        return found

    def health_report(self) -> dict:
        """``GET /health``: Redis and PostgreSQL are pinged first, and either failing is a bare 503."""
        sim = self.simulate
        if str(sim.get("health_check", "")).lower() in ("broken", "error", "fail", "503"):
            raise HTTPError(503, "Service unhealthy")
        if self.faults & {"redis", "postgres"} or any(
                str(sim.get(c, "healthy")) != "healthy" for c in ("redis", "postgres")):
            raise HTTPError(503, "Service unhealthy")
        report: dict[str, Any] = {"redis": "healthy", "postgres": "healthy",
                                  "kafka": str(sim.get("kafka", "healthy")),
                                  "zookeeper": str(sim.get("zookeeper", "healthy" if self.zk_connected
                                                           else "unhealthy"))}
        overall = "healthy" if all(v == "healthy" for v in report.values()) else "unhealthy"
        # the real timestamp is the event loop's clock: a float of monotonic seconds
        return {"status": overall, **report, "timestamp": time.monotonic()}
