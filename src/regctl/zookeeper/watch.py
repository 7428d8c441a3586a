"""Live registrations and removals from ZooKeeper watches, as a stream of events.

:class:`RegistryWatcher` keeps a snapshot of every instance under the base path
(``{base}/{service}/instances/{id}``) current with one-shot ZooKeeper watches:
children watches on the base path and on each service's ``instances`` node, a
data watch on each instance node. Every watch firing re-reads the node and diffs
it against the snapshot, so a spurious or duplicate firing is harmless.

Events (:class:`WatchEvent`, ``to_dict()`` for JSON):

``added`` / ``removed`` / ``changed``
    an instance appeared, vanished, or its node data changed (``changes`` lists
    the keys, old and new values);
``disconnected``
    the ZooKeeper connection was lost (``reason``: ``connection lost`` or
    ``session expired``); nothing is seen until it comes back;
``reconnected``
    the connection is back: ``gap_seconds`` it was away, ``session`` ``same`` or
    ``new``. It is followed by the ``added``/``removed``/``changed`` events that
    happened during the gap (``"during_gap": true``, a diff of the snapshots before
    and after) and a ``resync`` event;
``resync``
    the snapshot was read afresh (``reason``: ``start`` or ``reconnect``), with
    ``services``/``instances`` counts and how many changed.

The watcher keeps reconnecting for as long as it runs. Core module: no printing,
every ZooKeeper wait bounded by ``timeout``.
"""

from __future__ import annotations

import logging
import queue
import signal
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Protocol

from kazoo.client import KazooClient, KazooState
from kazoo.exceptions import (
    ConnectionClosedError,
    ConnectionLoss,
    KazooException,
    NoAuthError,
    NoNodeError,
    SessionExpiredError,
)
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.retry import KazooRetry

from regctl.errors import NotAuthorized, NotFound, Unreachable, UsageError
from regctl.models import Instance
from regctl.names import normalize_base_path, validate_service_name
from regctl.settings import Endpoint
from regctl.zookeeper.reader import INSTANCES, _close, harden, instance_from_node, start as zk_start

log = logging.getLogger(__name__)

INSTANCE_EVENTS = ("added", "removed", "changed")
CONNECTION_EVENTS = ("disconnected", "reconnected", "resync")

Key = tuple  # (service, instance_id)


def iso_time(ts: float) -> str:
    """``2026-11-29T03:46:59.109Z``"""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts * 1000) % 1000:03d}Z"


@dataclass(frozen=True)
class WatchEvent:
    event: str
    time: float
    service: str | None = None
    instance_id: str | None = None
    instance: Instance | None = None
    changes: dict | None = None
    during_gap: bool = False
    detail: dict = field(default_factory=dict)

    @property
    def is_instance_event(self) -> bool:
        return self.event in INSTANCE_EVENTS

    def to_dict(self) -> dict:
        d: dict[str, Any] = {"event": self.event, "time": iso_time(self.time)}
        if self.is_instance_event:
            d["service"] = self.service
            d["instance_id"] = self.instance_id
            inst = self.instance
            if inst is not None:
                d["service_url"] = inst.service_url
                d["health_check_url"] = inst.health_check_url
                d["status"] = inst.status
            if self.changes is not None:
                d["changes"] = self.changes
            if self.during_gap:
                d["during_gap"] = True
        d.update(self.detail)
        return d


class _Disconnected(Exception):
    """A read failed because the connection is gone (or stalled)."""


def _payload(inst: Instance) -> dict:
    return dict(inst.metadata) if inst.metadata else {
        "service_url": inst.service_url, "health_check_url": inst.health_check_url, "status": inst.status}


def diff_instance(old: Instance, new: Instance) -> dict:
    """Keys of the node data that differ: ``{key: [old, new]}``."""
    a, b = _payload(old), _payload(new)
    return {k: [a.get(k), b.get(k)] for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)}


def diff_snapshots(before: dict, after: dict, now: float, during_gap: bool = False) -> list[WatchEvent]:
    """added/removed/changed events turning ``before`` into ``after`` (both ``{(svc, id): Instance}``)."""
    events = []
    for key in sorted(set(before) | set(after)):
        svc, iid = key
        if key not in before:
            events.append(WatchEvent("added", now, svc, iid, after[key], during_gap=during_gap))
        elif key not in after:
            events.append(WatchEvent("removed", now, svc, iid, before[key], during_gap=during_gap))
        else:
            changes = diff_instance(before[key], after[key])
            if changes:
                events.append(WatchEvent("changed", now, svc, iid, after[key], changes, during_gap=during_gap))
    return events


class RegistryWatcher:
    """Watch ``{base}/*/instances/*`` (or only ``names``) and yield :class:`WatchEvent` s.

    ``with RegistryWatcher(hosts, "/services", timeout=5) as w: for ev in w.events(): ...``
    """

    def __init__(self, hosts: str, base_path: str = "/services", *, timeout: float = 5.0,
                 names: Iterable[str] | None = None, auth_data: Iterable[tuple[str, str]] | None = None,
                 client_kwargs: dict | None = None) -> None:
        self.hosts = hosts
        self.base = normalize_base_path(base_path)
        self.timeout = timeout
        self.names = set(names) if names else None
        self._auth = list(auth_data or [])
        self._kwargs = dict(client_kwargs or {})
        self.client: KazooClient | None = None
        self._q: queue.Queue = queue.Queue()
        #: (service, instance_id) -> Instance: what is live now, as far as we know
        self.snapshot: dict[Key, Instance] = {}
        self._services: set[str] = set()
        self.connected = False
        self.disconnected_since: float | None = None
        self._session_lost = False
        self._need_resync = False
        self._session_id: int | None = None
        self._pending: list[WatchEvent] = []

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> "RegistryWatcher":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> dict[Key, Instance]:
        """Connect within ``timeout`` (else :class:`Unreachable`), read the snapshot, set the watches."""
        client = KazooClient(hosts=self.hosts, timeout=max(self.timeout, 4.0),
                             connection_retry=KazooRetry(max_tries=-1, delay=0.1, max_delay=1.0),
                             command_retry=KazooRetry(max_tries=0),
                             auth_data=self._auth or None, **self._kwargs)
        harden(client, self.timeout)
        try:
            zk_start(client, self.timeout)
        except KazooTimeoutError:
            _close(client)
            raise Unreachable(f"ZooKeeper did not accept a session within {self.timeout:g}s", where=self.hosts,
                              hint="check --zk or ZOOKEEPER_HOSTS and that ZooKeeper is running") from None
        except Exception as exc:
            _close(client)
            raise Unreachable(f"cannot start a ZooKeeper session ({exc})", where=self.hosts,
                              hint="check --zk or ZOOKEEPER_HOSTS") from None
        self.client = client
        self.connected = True
        self._session_id = client.client_id[0] if client.client_id else None
        client.add_listener(self._on_state)
        try:
            self.snapshot = self._read_all()
        except _Disconnected as exc:
            self.close()
            raise Unreachable(f"ZooKeeper stopped answering while reading {self.base} ({exc})", where=self.hosts,
                              hint="check that ZooKeeper is up") from None
        self._pending.append(WatchEvent("resync", time.time(), detail={
            "reason": "start", **self._counts()}))
        return dict(self.snapshot)

    def close(self) -> None:
        if self.client is not None:
            try:
                self.client.remove_listener(self._on_state)
            except Exception:
                pass
            _close(self.client)
            self.client = None
        self.connected = False

    # ------------------------------------------------------------------ callbacks (kazoo's thread)
    def _on_state(self, state: str) -> None:
        self._q.put(("state", state, time.time()))

    def _on_watch(self, event: Any) -> None:
        if getattr(event, "path", None):
            self._q.put(("path", event.path, getattr(event, "type", None)))

    # ------------------------------------------------------------------ the stream
    def events(self, until: float | None = None, poll: float = 0.2,
               stop: Callable[[], bool] | None = None) -> Iterator[WatchEvent]:
        """Yield events as they happen until ``until`` (``time.monotonic()``) or ``stop()``.

        Starts with the ``resync`` event of :meth:`start`.
        """
        if self.client is None:
            self.start()
        while True:
            while self._pending:
                yield self._pending.pop(0)
            if stop is not None and stop():
                return
            left = None if until is None else until - time.monotonic()
            if left is not None and left <= 0:
                return
            wait = poll if left is None else max(0.0, min(poll, left))
            try:
                item = self._q.get(timeout=wait)
            except queue.Empty:
                item = None
            items = [] if item is None else [item]
            while True:  # coalesce what is queued already
                try:
                    items.append(self._q.get_nowait())
                except queue.Empty:
                    break
            self._handle(items)
            if self._need_resync and self.client is not None and self.client.state == KazooState.CONNECTED \
                    and not any(i[0] == "state" for i in items):
                self._resync()

    def _handle(self, items: list) -> None:
        paths: list[str] = []
        for item in items:
            if item[0] == "state":
                if paths:
                    self._read_paths(paths)
                    paths = []
                self._state(item[1], item[2])
            else:
                if item[1] not in paths:
                    paths.append(item[1])
        if paths:
            self._read_paths(paths)

    def _state(self, state: str, at: float) -> None:
        if state in (KazooState.SUSPENDED, KazooState.LOST):
            self._need_resync = True
            if state == KazooState.LOST:
                self._session_lost = True
            if self.connected:
                self.connected = False
                self.disconnected_since = at
                self._pending.append(WatchEvent("disconnected", at, detail={
                    "reason": "session expired" if state == KazooState.LOST else "connection lost"}))
            elif state == KazooState.LOST:
                self._pending.append(WatchEvent("disconnected", at, detail={"reason": "session expired"}))
        elif state == KazooState.CONNECTED and (not self.connected or self._need_resync):
            self._resync()

    def _resync(self) -> None:
        """Read everything again (new watches), report the gap and what changed during it."""
        try:
            fresh = self._read_all()
        except _Disconnected:
            self._need_resync = True
            return
        now = time.time()
        events = diff_snapshots(self.snapshot, fresh, now, during_gap=self.disconnected_since is not None)
        if not self.connected:
            sid = self.client.client_id[0] if self.client is not None and self.client.client_id else None
            gap = now - (self.disconnected_since or now)
            self._pending.append(WatchEvent("reconnected", now, detail={
                "gap_seconds": round(gap, 3), "since": iso_time(self.disconnected_since or now),
                "session": "same" if (sid == self._session_id and not self._session_lost) else "new"}))
            self._session_id = sid
        self._pending.extend(events)
        counts = {k: sum(1 for e in events if e.event == k) for k in INSTANCE_EVENTS}
        self._pending.append(WatchEvent("resync", now, detail={
            "reason": "reconnect" if not self.connected else "retry", **self._counts(fresh),
            **{f"{k}_during_gap": n for k, n in counts.items()}}))
        self.snapshot = fresh
        self.connected = True
        self.disconnected_since = None
        self._session_lost = False
        self._need_resync = False

    def _counts(self, snap: dict | None = None) -> dict:
        snap = self.snapshot if snap is None else snap
        return {"services": len(self._services), "instances": len(snap)}

    # ------------------------------------------------------------------ reads
    def _wanted(self, name: str) -> bool:
        return self.names is None or name in self.names

    def _wait(self, async_result: Any, deadline: float) -> Any:
        try:
            return async_result.get(timeout=max(0.05, deadline - time.monotonic()))
        except (KazooTimeoutError, ConnectionLoss, ConnectionClosedError, SessionExpiredError) as exc:
            raise _Disconnected(type(exc).__name__) from None
        except NoAuthError:
            raise NotAuthorized(f"ZooKeeper refused to read under {self.base} (NOAUTH)", where=self.hosts,
                                hint="the nodes have an ACL: configure zk_auth in the context") from None

    def _children(self, path: str, deadline: float) -> list[str] | None:
        assert self.client is not None
        for _ in range(5):
            try:
                return list(self._wait(self.client.get_children_async(path, watch=self._on_watch), deadline))
            except NoNodeError:
                pass
            # learn when it appears; if it appeared in between, list it (and watch its children) after all
            if self._wait(self.client.exists_async(path, watch=self._on_watch), deadline) is None:
                return None
        return None

    def _read_all(self) -> dict[Key, Instance]:
        """The whole snapshot, setting a watch on every node read."""
        if self.client is None:
            raise _Disconnected("no client")
        client = self.client
        deadline = time.monotonic() + self.timeout
        listed = self._children(self.base, deadline)
        #: for the caller's warning: a missing or empty base path is usually a mistyped --zk-base
        self.base_exists = listed is not None
        self.base_empty = not [n for n in listed or [] if not (self.base == "/" and n == "zookeeper")]
        names = [n for n in listed or [] if self._wanted(n) and not (self.base == "/" and n == "zookeeper")]
        pending = {n: client.get_children_async(self._ipath(n), watch=self._on_watch) for n in names}
        ids: dict[str, list[str]] = {}
        for n, res in pending.items():
            try:
                ids[n] = list(self._wait(res, deadline))
            except NoNodeError:
                ids[n] = self._children(self._ipath(n), deadline) or []  # sets an exists or children watch
            except KazooException as exc:
                log.debug("cannot list %s: %s", self._ipath(n), exc)
                ids[n] = []
        datas = {(n, i): client.get_async(f"{self._ipath(n)}/{i}", watch=self._on_watch)
                 for n, lst in ids.items() for i in lst}
        snap: dict[Key, Instance] = {}
        for (n, i), res in datas.items():
            try:
                data, stat = self._wait(res, deadline)
            except NoNodeError:
                continue
            except KazooException as exc:
                log.debug("cannot read %s/%s: %s", n, i, exc)
                continue
            snap[(n, i)] = self._instance(n, i, data, stat)
        self._services = set(names)
        return snap

    def _ipath(self, name: str) -> str:
        return f"{self.base.rstrip('/')}/{name}/{INSTANCES}"

    def _instance(self, name: str, iid: str, data: bytes | None, stat: Any) -> Instance:
        path = f"{self._ipath(name)}/{iid}"
        inst, _problems = instance_from_node(name, iid, path, data, stat)
        if inst is None:  # unreadable payload: still an instance that exists
            inst = Instance(name, iid, None, None, "unknown", {}, None, path)
        return inst

    def _classify(self, path: str) -> tuple:
        prefix = self.base.rstrip("/") + "/"
        if path == self.base:
            return ("base",)
        if not path.startswith(prefix):
            return ("other",)
        parts = path[len(prefix):].split("/")
        if len(parts) == 1:
            return ("service", parts[0])
        if len(parts) == 2 and parts[1] == INSTANCES:
            return ("service", parts[0])
        if len(parts) == 3 and parts[1] == INSTANCES:
            return ("instance", parts[0], parts[2])
        return ("other",)

    def _read_paths(self, paths: list[str]) -> None:
        if not self.connected:
            return  # the resync after reconnecting reads everything
        try:
            for path in paths:
                kind = self._classify(path)
                if kind[0] == "base":
                    self._reread_base()
                elif kind[0] == "service" and self._wanted(kind[1]):
                    self._reread_service(kind[1])
                elif kind[0] == "instance" and self._wanted(kind[1]):
                    self._reread_instance(kind[1], kind[2])
        except _Disconnected:
            self._need_resync = True

    def _reread_base(self) -> None:
        deadline = time.monotonic() + self.timeout
        names = [n for n in (self._children(self.base, deadline) or []) if self._wanted(n)]
        for gone in sorted(self._services - set(names)):
            self._drop_service(gone)
        for new in sorted(set(names) - self._services):
            self._services.add(new)
            self._reread_service(new)

    def _drop_service(self, name: str) -> None:
        now = time.time()
        self._services.discard(name)
        for key in sorted(k for k in self.snapshot if k[0] == name):
            inst = self.snapshot.pop(key)
            self._pending.append(WatchEvent("removed", now, name, key[1], inst))

    def _reread_service(self, name: str) -> None:
        deadline = time.monotonic() + self.timeout
        ids = self._children(self._ipath(name), deadline)
        self._services.add(name)
        live = set(ids or [])
        known = {k[1] for k in self.snapshot if k[0] == name}
        now = time.time()
        for iid in sorted(known - live):
            inst = self.snapshot.pop((name, iid))
            self._pending.append(WatchEvent("removed", now, name, iid, inst))
        for iid in sorted(live - known):
            self._reread_instance(name, iid)

    def _reread_instance(self, name: str, iid: str) -> None:
        assert self.client is not None
        deadline = time.monotonic() + self.timeout
        key = (name, iid)
        try:
            data, stat = self._wait(self.client.get_async(f"{self._ipath(name)}/{iid}", watch=self._on_watch),
                                    deadline)
        except NoNodeError:
            if key in self.snapshot:
                self._pending.append(WatchEvent("removed", time.time(), name, iid, self.snapshot.pop(key)))
            return
        new = self._instance(name, iid, data, stat)
        old = self.snapshot.get(key)
        self.snapshot[key] = new
        if old is None:
            self._pending.append(WatchEvent("added", time.time(), name, iid, new))
        else:
            changes = diff_instance(old, new)
            if changes:
                self._pending.append(WatchEvent("changed", time.time(), name, iid, new, changes))



# ---------------------------------------------------------------------------
# following the registry: one call from a request to a report
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class WatchRequest:
    """What a watch asks: which services, for how long, how many events, whether to start with what is live."""

    #: only these services (empty: every service)
    names: tuple = ()
    #: stop after this many seconds (None: until stopped)
    seconds: float | None = None
    #: stop after this many added/removed/changed events
    count: int | None = None
    #: start with an ``added`` event (``initial: true``) for every instance live now
    initial: bool = False

    def check(self, endpoint: Endpoint) -> None:
        """:class:`UsageError` when the request cannot be watched (no ZooKeeper, a bad name or bound)."""
        if not endpoint.zk_configured:
            raise UsageError("watch needs ZooKeeper: the API has no change feed",
                             hint="pass --zk HOST:PORT, set ZOOKEEPER_HOSTS, or add zk_hosts to the context")
        for n in self.names:
            validate_service_name(n)
        if self.seconds is not None and self.seconds <= 0:
            raise UsageError(f"--for {self.seconds:g} must be more than 0 seconds", hint="e.g. --for 30")
        if self.count is not None and self.count < 1:
            raise UsageError(f"--count {self.count} must be at least 1", hint="e.g. --count 1")


@dataclass(frozen=True)
class WatchReport:
    """How a watch ended: the events counted, whether it was interrupted, and where it watched."""

    request: WatchRequest
    #: added/removed/changed events seen (the initial ones not counted)
    seen: int
    #: stopped by Ctrl-C (or the caller's ``stop``)
    interrupted: bool
    hosts: str
    base: str

    @property
    def error(self) -> NotFound | None:
        """NotFound (exit 1) when ``count`` events were asked and the time ran out first."""
        count = self.request.count
        if self.interrupted or count is None or self.seen >= count:
            return None
        return NotFound(f"saw {self.seen} of {count} events within {self.request.seconds or 0:g}s",
                        hint=f"raise --for, or check that something changes under {self.base} on {self.hosts}")


class WatchSink(Protocol):
    """Where the events go (the CLI's renderer): opened once the snapshot is read, closed at the end."""

    def open(self, watcher: RegistryWatcher, warnings: list[str]) -> None: ...

    def emit(self, event: WatchEvent) -> None: ...

    def close(self) -> None: ...


class CtrlC:
    """While installed (main thread only), Ctrl-C sets ``pressed``, which the event loop checks: a
    KeyboardInterrupt raised inside kazoo's calls could be swallowed by its bare excepts. A second
    Ctrl-C interrupts at once."""

    def __init__(self) -> None:
        self.pressed = False
        self._previous: Any = None
        self._installed = False

    def _handler(self, signum: int, frame: Any) -> None:
        if self.pressed:
            raise KeyboardInterrupt
        self.pressed = True

    def __enter__(self) -> CtrlC:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handler)
            self._installed = True
        return self

    def __exit__(self, *exc: object) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._previous)
            self._installed = False


def base_warnings(watcher: RegistryWatcher, endpoint: Endpoint) -> list[str]:
    """A missing or empty base path is usually a mistyped base: say so before the first event."""
    if not getattr(watcher, "base_exists", True):
        return [f"the base path {watcher.base} does not exist in ZooKeeper {endpoint.zk_hosts} (yet): check "
                "--zk-base / ZOOKEEPER_BASE_PATH"]
    if getattr(watcher, "base_empty", False):
        return [f"the base path {watcher.base} holds no services: check --zk-base / ZOOKEEPER_BASE_PATH"]
    return []


def watch_registry(endpoint: Endpoint, request: WatchRequest, sink: WatchSink,
                   stop: Callable[[], bool] | None = None) -> WatchReport:
    """Follow the registry under ``endpoint``'s ZooKeeper base path, handing every event to ``sink``.

    Ends when ``request.seconds`` pass, ``request.count`` events were seen, ``stop()``
    answers True, or Ctrl-C is pressed (on the main thread); :class:`Unreachable` when no
    session can be started.
    """
    request.check(endpoint)
    watcher = RegistryWatcher(endpoint.zk_hosts or "", endpoint.zk_base, timeout=endpoint.timeout,
                              names=request.names or None, **endpoint.zk_options())
    snapshot = watcher.start()
    warnings = base_warnings(watcher, endpoint)
    until = None if request.seconds is None else time.monotonic() + request.seconds
    seen = 0
    interrupted = False
    ctrl_c = CtrlC()

    def done() -> bool:
        return ctrl_c.pressed or (stop is not None and stop()) or (request.count is not None and seen >= request.count)

    try:
        with ctrl_c:
            sink.open(watcher, warnings)
            try:
                if request.initial:
                    now = time.time()
                    for (svc, iid), inst in sorted(snapshot.items()):
                        sink.emit(WatchEvent("added", now, svc, iid, inst, detail={"initial": True}))
                for ev in watcher.events(until=until, stop=done):
                    sink.emit(ev)
                    if ev.is_instance_event and not ev.detail.get("initial"):
                        seen += 1
                    if request.count is not None and seen >= request.count:
                        break
            finally:
                sink.close()
    except KeyboardInterrupt:
        interrupted = True
    finally:
        watcher.close()
    interrupted = interrupted or ctrl_c.pressed or (stop is not None and stop())
    return WatchReport(request, seen, interrupted, endpoint.zk_hosts or "", endpoint.zk_base)


__all__ = ["CtrlC", "RegistryWatcher", "WatchEvent", "WatchReport", "WatchRequest", "WatchSink", "diff_snapshots",
           "diff_instance", "iso_time", "watch_registry"]
