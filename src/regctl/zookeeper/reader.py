"""Read the registry's layout straight from ZooKeeper (kazoo).

Layout (see ``registry-contract.md``)::

    {base}/{service}/instances/{instance_id}    EPHEMERAL, data = UTF-8 JSON object

Anything that does not fit comes back as a :class:`~regctl.models.Problem`, never
as an exception. Connection failures become :class:`~regctl.errors.Unreachable`
naming the hosts, the timeout and the phase. Every wait is bounded by the
reader's timeout.

Bulk reads (``bulk_children``/``bulk_get``, hence ``snapshot``) go through
ZooKeeper's multiRead (3.6+, :mod:`regctl.zookeeper.multi`): up to 1,000 paths per request,
batches sized by :class:`regctl.zookeeper.multi.ByteBudget` so that the answers ZooKeeper builds
in its heap for regctl stay near 16 MiB at once (a few requests in flight). Reading 11,000 nodes this way takes about a tenth
of the time kazoo needs with all ``*_async`` calls in flight, because kazoo's cost
is per request (queue, wake its connection thread, one reply and one AsyncResult
each), not ZooKeeper's. Per path the answers are the same as single reads: None
for NONODE, :class:`NotAuthorized` for NOAUTH, the kazoo exception otherwise. A
server without multiRead answers UNIMPLEMENTED (and drops the connection, which
kazoo re-opens in the same session); the reader then remembers
``use_multi_read = False`` and fans out node by node as before.
"""

from __future__ import annotations

import json
import logging
import os
import random
import ssl
import threading
import time
from collections import deque
from typing import Any, Iterable

from kazoo.client import KazooClient
from kazoo.exceptions import (
    BadArgumentsError,
    ConnectionLoss,
    KazooException,
    MarshallingError,
    NoAuthError,
    NoNodeError,
    SessionExpiredError,
    UnimplementedError,
)
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.protocol.connection import ConnectionDropped
from kazoo.protocol.serialization import Connect
from kazoo.retry import KazooRetry

from regctl.deadline import Cut, run_with_deadline
from regctl.errors import NotAuthorized, Unreachable, UsageError
from regctl.models import Instance, NodeStat, Problem, ZkService, ZkSnapshot
from regctl.names import normalize_base_path, parse_zk_hosts, zk_child
from regctl.zookeeper import multi as zk_multi
from regctl.zookeeper.multi import IN_FLIGHT_BYTES, MAX_REQUEST_BYTES

log = logging.getLogger(__name__)

#: Instance payloads bigger than this are reported, not parsed.
MAX_PAYLOAD_BYTES = 512 * 1024
INSTANCES = "instances"
#: bulk reads of at least this many paths go through multiRead (see :mod:`regctl.zookeeper.multi`)
MULTI_READ_MIN_PATHS = 2


def node_stat(stat: Any) -> NodeStat:
    """kazoo ``ZnodeStat`` -> :class:`NodeStat`."""
    return NodeStat(created=stat.ctime / 1000.0, modified=stat.mtime / 1000.0,
                    ephemeral_owner=int(stat.ephemeralOwner or 0), version=int(stat.version),
                    data_length=int(stat.dataLength))


def parse_payload(data: bytes | None, path: str) -> tuple[dict | None, Problem | None]:
    """Decode an instance node's data: a JSON object, or a Problem saying why not."""
    if data is None or data == b"":
        return None, Problem(path, "not-json", "node has no data (expected a JSON object)")
    if len(data) > MAX_PAYLOAD_BYTES:
        return None, Problem(path, "too-large", f"node data is {len(data)} bytes, over {MAX_PAYLOAD_BYTES}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, Problem(path, "not-utf8", f"node data is not UTF-8 (byte {exc.start})")
    try:
        value = json.loads(text)
    except RecursionError:
        return None, Problem(path, "not-json", "node data is JSON nested too deeply to read")
    except json.JSONDecodeError as exc:
        return None, Problem(path, "not-json", f"node data is not JSON ({exc.msg} at {exc.pos})")
    except ValueError as exc:  # e.g. an integer with more digits than Python converts
        return None, Problem(path, "not-json", f"node data is not readable JSON ({str(exc)[:80]})")
    if not isinstance(value, dict):
        return None, Problem(path, "not-an-object", f"node data is a JSON {type(value).__name__}, not an object")
    return value, None


def instance_from_node(service: str, instance_id: str, path: str, data: bytes | None,
                       stat: Any) -> tuple[Instance | None, list[Problem]]:
    """Build an :class:`Instance` from a node, with the problems found on the way."""
    payload, problem = parse_payload(data, path)
    if problem:
        return None, [problem]
    assert payload is not None
    problems: list[Problem] = []

    def text_field(key: str, required: bool) -> str | None:
        value = payload.get(key)
        if value is None:
            if required:
                problems.append(Problem(path, "bad-field", f"{key} is missing"))
            return None
        if not isinstance(value, str):
            problems.append(Problem(path, "bad-field", f"{key} is a {type(value).__name__}, not a string"))
            return None
        return value

    service_url = text_field("service_url", True)
    health = text_field("health_check_url", False)
    status = payload.get("status", "unknown")
    if not isinstance(status, str):
        problems.append(Problem(path, "bad-field", f"status is a {type(status).__name__}, not a string"))
        status = str(status)
    pid = payload.get("instance_id")
    if pid is not None and pid != instance_id:
        problems.append(Problem(path, "bad-field", f"payload instance_id {pid!r} differs from the node name"))
    st = node_stat(stat) if stat is not None else None
    if st is not None and not st.ephemeral:
        problems.append(Problem(path, "persistent-instance",
                                "instance node is persistent: it will never vanish by itself"))
    return Instance(service_name=service, instance_id=instance_id, service_url=service_url,
                    health_check_url=health, status=status, metadata=payload, stat=st, path=path), problems


#: the largest frame regctl accepts from ZooKeeper: a bounded multi-read batch (:data:`MULTI_READ_BYTES`) or
#: one node read alone (ZooKeeper's own jute.maxbuffer is 1 MiB by default) fits many times over; a length
#: prefix beyond it (a hostile server's 0x7fffffff) drops the connection instead of allocating gigabytes
MAX_FRAME_BYTES = 16 * 1024 * 1024
#: bytes asked of the socket at once while reading one frame
_RECV_STEP = 1024 * 1024


def harden(client: KazooClient, timeout: float) -> KazooClient:
    """Bound what the server can make ``client`` do, whatever it says (private kazoo internals, pinned by
    tests/test_compat_contracts.py):
    * a frame longer than :data:`MAX_FRAME_BYTES` (or negative) drops the connection before any
      allocation; a frame still arriving ``timeout`` seconds after it began drops it too (a
      trickling server cannot hold kazoo's connection thread, hence ``close()``, forever);
    * the negotiated session timeout is capped at the one asked for: kazoo derives its read
      timeout and the wait for a close answer from it, so a server granting a 30 s session
      and then falling silent would otherwise hold ``close()`` for 20 s.
    """

    conn = client._connection
    handler = client.handler
    asked_ms = int(client._session_timeout)

    def read(length: int, read_timeout: float) -> bytes:
        if length < 0 or length > MAX_FRAME_BYTES:
            raise ConnectionDropped(f"ZooKeeper sent a frame of {length} bytes (regctl reads at most "
                                    f"{MAX_FRAME_BYTES})")
        deadline = time.monotonic() + max(timeout, 0.1)
        parts: list[bytes] = []
        remaining = length
        sock = conn._socket
        with conn._socket_error_handling():
            while remaining > 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise handler.timeout_exception(f"a ZooKeeper frame still arriving after {timeout:g}s")
                if not (hasattr(sock, "pending") and sock.pending() > 0):
                    if not handler.select([sock], [], [], min(read_timeout, left))[0]:
                        raise handler.timeout_exception("socket time-out during read")
                try:
                    chunk = sock.recv(min(remaining, _RECV_STEP))
                except ssl.SSLError as exc:
                    if exc.errno in (ssl.SSL_ERROR_WANT_READ, ssl.SSL_ERROR_WANT_WRITE):
                        continue
                    raise
                if chunk == b"":
                    raise ConnectionDropped("socket connection broken")
                parts.append(chunk)
                remaining -= len(chunk)
        return b"".join(parts)

    invoke = conn._invoke

    def capped_invoke(invoke_timeout: float, request: Any, xid: Any = None) -> Any:
        result = invoke(invoke_timeout, request, xid)
        if isinstance(request, Connect) and isinstance(result, tuple) and len(result) == 2 \
                and isinstance(result[0], Connect) and result[0].time_out > asked_ms:
            log.debug("ZooKeeper granted a %d ms session; kazoo's timers use the %d ms asked for",
                      result[0].time_out, asked_ms)
            return result[0]._replace(time_out=asked_ms), result[1]
        return result

    conn._read = read
    conn._invoke = capped_invoke
    return client


def start(client: KazooClient, timeout: float, give_up: threading.Event | None = None) -> None:
    """``client.start(timeout)`` without its blocking parts: kazoo's own ``start`` stops a client that timed
    out by waiting for its connection thread (unbounded against a silent server) and, with a chroot,
    checks the chroot with an ``exists`` that has no timeout. Raises ``KazooTimeoutError``; the caller
    closes the client (:func:`_close`, bounded). ``give_up`` set ends the wait early (every host refused)."""
    event = client.start_async()
    if give_up is None:
        event.wait(timeout=timeout)
    else:
        deadline = time.monotonic() + timeout
        while not event.is_set() and not give_up.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                break
            event.wait(timeout=min(0.05, left))
    if not client.connected:
        raise client.handler.timeout_exception("Connection time-out")


NOAUTH_HINT = ("the node has an ACL: pass ZooKeeper digest credentials with REGCTL_ZK_AUTH=digest:user:password, "
               "--zk-auth-file FILE or zk_auth in the context")


def _host_count(hosts: str) -> int:
    """How many servers a connect string names (``h1:2181,h2:2181/chroot`` -> 2; 1 when it does not parse)."""
    try:
        return len(parse_zk_hosts(hosts).members)
    except UsageError:
        return 1


class _ConnectionErrors(logging.LoggerAdapter):
    """kazoo's logger, remembering why connections dropped (a TLS verification error, say)."""
    def __init__(self, logger: logging.Logger, hosts: int = 1) -> None:
        super().__init__(logger, {})
        self.tls_error: str | None = None
        self.dropped = 0
        #: consecutive "connection refused" drops; past a few per host nothing listens: :attr:`all_refused`
        self.refused = 0
        self._refusals_to_give_up = 3 * max(1, hosts)
        self.all_refused = threading.Event()

    def log(self, level: int, msg: Any, *args: Any, **kwargs: Any) -> None:
        try:
            text = str(msg) % args if args else str(msg)
        except Exception:
            text = str(msg)
        if "Connection dropped" in text or "socket connection error" in text:
            self.dropped += 1
            low = text.lower()
            if "refused" in low:
                self.refused += 1
                if self.refused >= self._refusals_to_give_up:
                    self.all_refused.set()
            else:
                self.refused = 0
            if "ssl" in low or "certificate" in low or "tls" in low:
                reason = text.split("socket connection error:", 1)[-1].strip()
                self.tls_error = reason.split(" (_ssl.c")[0][:200]
        super().log(level, msg, *args, **kwargs)


class ZkReader:
    """A short-lived, read-mostly ZooKeeper session bound to one base path.

    ``with ZkReader(hosts, "/services", timeout=5) as zk: snap = zk.snapshot()``
    """

    def __init__(self, hosts: str, base_path: str = "/services", *, timeout: float = 5.0,
                 auth_data: Iterable[tuple[str, str]] | None = None, client_kwargs: dict | None = None) -> None:
        self.hosts = hosts
        self.base_path = normalize_base_path(base_path)
        self.timeout = timeout
        self._auth = list(auth_data or [])
        self._kwargs = dict(client_kwargs or {})
        self.client: KazooClient | None = None
        #: None: try multiRead (ZooKeeper >= 3.6) and remember; True: it works; False: fan out node by node
        self.use_multi_read: bool | None = None
        #: paths per multiRead request, at most
        self.multi_read_batch = 1000
        #: bytes of answers ZooKeeper may be made to hold at once (:class:`regctl.zookeeper.multi.ByteBudget`);
        #: None reads as regctl did before the bound (fixed batches, every one in flight: bench/zk_list.py)
        self.in_flight_bytes: int | None = _default_in_flight()

    # -- session -----------------------------------------------------------
    def __enter__(self) -> "ZkReader":
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def connect(self) -> KazooClient:
        """Start a session within ``timeout`` seconds or raise :class:`Unreachable`."""
        if self.client is not None:
            return self.client
        tls = bool(self._kwargs.get("use_ssl"))
        kazoo_log = _ConnectionErrors(logging.getLogger("kazoo.client"), hosts=_host_count(self.hosts))
        client = KazooClient(hosts=self.hosts, timeout=max(self.timeout, 4.0),
                             connection_retry=KazooRetry(max_tries=-1, delay=0.1, max_delay=1.0),
                             command_retry=KazooRetry(max_tries=0),
                             auth_data=self._auth or None, logger=kazoo_log, **self._kwargs)
        harden(client, self.timeout)
        try:
            start(client, self.timeout, give_up=kazoo_log.all_refused)
        except KazooTimeoutError:
            _close(client)
            if kazoo_log.all_refused.is_set():
                hint = "is ZooKeeper running there? check --zk or ZOOKEEPER_HOSTS"
                if tls:
                    hint = "with --zk-tls the port must be ZooKeeper's secureClientPort; " + hint
                raise Unreachable("ZooKeeper refused the connection", where=self.hosts, hint=hint) from None
            tls_error = kazoo_log.tls_error
            if tls_error:
                raise Unreachable(f"ZooKeeper TLS handshake failed ({tls_error})", where=self.hosts,
                                  hint="pass the CA that signed ZooKeeper's certificate with --zk-ca PEM "
                                       "(REGCTL_ZK_CA, context zk_ca), and --zk-cert/--zk-key if it wants "
                                       "a client certificate") from None
            hint = "check --zk or ZOOKEEPER_HOSTS and that ZooKeeper is running (regctl doctor zookeeper)"
            if tls:
                hint = "with --zk-tls the port must be ZooKeeper's secureClientPort; " + hint
            elif kazoo_log.dropped:
                hint = ("if that port is ZooKeeper's secureClientPort, pass --zk-tls (and --zk-ca PEM); " + hint)
            raise Unreachable(f"ZooKeeper did not accept a session within {self.timeout:g}s",
                              where=self.hosts, hint=hint) from None
        except Exception as exc:  # kazoo raises odd things for bad host strings
            _close(client)
            raise Unreachable(f"cannot start a ZooKeeper session ({exc})", where=self.hosts,
                              hint="check --zk or ZOOKEEPER_HOSTS") from None
        self.client = client
        return client

    @property
    def noauth_hint(self) -> str:
        """What to try after NOAUTH: give credentials, or other ones when some were given."""
        if self._auth:
            return ("the node's ACL does not let the given ZooKeeper credentials read it; check the user "
                    "and password (REGCTL_ZK_AUTH, --zk-auth-file or zk_auth in the context)")
        return NOAUTH_HINT

    @property
    def session_id(self) -> int | None:
        if self.client is None or self.client.client_id is None:
            return None
        return self.client.client_id[0]

    def close(self) -> None:
        if self.client is not None:
            _close(self.client)
            self.client = None

    # -- raw reads (bounded) -----------------------------------------------
    def _wait(self, async_result: Any, path: str, deadline: float) -> Any:
        remaining = max(0.05, deadline - time.monotonic())
        try:
            return async_result.get(timeout=remaining)
        except KazooTimeoutError:
            raise Unreachable(f"ZooKeeper did not answer within {self.timeout:g}s", where=f"{self.hosts} {path}",
                              hint="the ensemble may have lost quorum; run: regctl doctor zookeeper") from None
        except (ConnectionLoss, SessionExpiredError) as exc:
            # a lost connection: the session may survive on another member (see :meth:`snapshot`)
            raise Unreachable(f"lost the ZooKeeper session ({type(exc).__name__})", where=f"{self.hosts} {path}",
                              hint="check that ZooKeeper is up; run: regctl doctor zookeeper",
                              connection_lost=isinstance(exc, ConnectionLoss)) from None
        except NoAuthError:
            raise NotAuthorized(f"ZooKeeper refused to read {path} (NOAUTH)", where=self.hosts,
                                hint=self.noauth_hint) from None

    def get_children(self, path: str) -> list[str] | None:
        """Children of ``path``, or None when it does not exist."""
        client = self.connect()
        try:
            return sorted(self._wait(client.get_children_async(path), path, time.monotonic() + self.timeout))
        except NoNodeError:
            return None

    def get(self, path: str) -> tuple[bytes, Any] | None:
        """(data, stat) of ``path``, or None when it does not exist."""
        client = self.connect()
        try:
            return self._wait(client.get_async(path), path, time.monotonic() + self.timeout)
        except NoNodeError:
            return None

    def bulk_children(self, paths: list[str]) -> dict[str, list[str] | None | Exception]:
        """``get_children`` of many paths at once; None for a missing node."""
        return self._bulk(paths, "get_children_async")

    def bulk_get(self, paths: list[str]) -> dict[str, tuple[bytes, Any] | None | Exception]:
        """``get`` of many paths at once; None for a missing node."""
        return self._bulk(paths, "get_async")

    def _bulk(self, paths: list[str], method: str) -> dict[str, Any]:
        """Read many paths: multi-read batches when the server has them, else every request in flight.

        Per path: the answer, None for NONODE, a :class:`NotAuthorized` for NOAUTH, the
        kazoo exception for anything else. Losing the session or running out of time
        raises :class:`Unreachable` as the single reads do.
        """
        client = self.connect()
        deadline = time.monotonic() + self.timeout
        if len(paths) >= MULTI_READ_MIN_PATHS and self.use_multi_read is not False:
            out = self._bulk_multi(client, paths, method, deadline)
            if out is not None:
                return out
            try:  # the server just refused multiRead and may be dropping the connection: one retry
                return self._bulk_fanout(client, paths, method, deadline)
            except Unreachable:
                if time.monotonic() >= deadline:
                    raise
                log.debug("fan-out after a refused multiRead lost the connection; retrying once")
                return self._bulk_fanout(client, paths, method, deadline)
        return self._bulk_fanout(client, paths, method, deadline)

    def _bulk_fanout(self, client: KazooClient, paths: list[str], method: str, deadline: float) -> dict[str, Any]:
        fn = getattr(client, method)
        pending = [(p, fn(p)) for p in paths]
        out: dict[str, Any] = {}
        for path, res in pending:
            try:
                out[path] = self._wait(res, path, deadline)
            except NoNodeError:
                out[path] = None
            except NotAuthorized as exc:
                out[path] = exc
            except KazooException as exc:
                out[path] = exc
        return out

    def _bulk_multi(self, client: KazooClient, paths: list[str], method: str,
                    deadline: float) -> dict[str, Any] | None:
        """Read ``paths`` with multiRead requests sized by :class:`regctl.zookeeper.multi.ByteBudget` (what the
        server may be made to hold at once is bounded), a few in flight; None when the server has none."""
        op = zk_multi.GET_CHILDREN if method == "get_children_async" else zk_multi.GET_DATA
        order = list(paths)
        if self.in_flight_bytes is not None:
            _shuffle(order)  # which nodes share an answer is regctl's draw, not the names' order
        if self.in_flight_bytes is None:  # unbounded: fixed batches, all in flight
            budget = zk_multi.ByteBudget(budget=1 << 62, node_max=1, max_batch=self.multi_read_batch)
            most = len(order)
        else:
            budget = zk_multi.ByteBudget(budget=self.in_flight_bytes, max_batch=self.multi_read_batch)
            most = zk_multi.MAX_IN_FLIGHT
        pending: deque = deque()  # (group, async result, estimated bytes)
        held = 0.0
        at = 0
        out: dict[str, Any] = {}
        while at < len(order) or pending:
            while at < len(order) and len(pending) < most:
                size = budget.batch_size()
                estimate = size * budget.per_node()
                if pending and held + estimate > budget.budget:
                    break
                group = _take(order, at, size)
                at += len(group)
                pending.append((group, zk_multi.multi_read_async(client, [(op, p) for p in group]), estimate))
                held += estimate
            group, res, estimate = pending.popleft()
            held -= estimate
            where = f"{group[0]} (+{len(group) - 1} more)" if len(group) > 1 else group[0]
            try:
                results = self._wait(res, where, deadline)
            except (UnimplementedError, MarshallingError, BadArgumentsError) as exc:
                if out or self.use_multi_read:  # worked before on this session: a real error, not an old server
                    raise Unreachable(f"ZooKeeper failed a multi-read ({type(exc).__name__})",
                                      where=f"{self.hosts} {where}",
                                      hint="run: regctl doctor zookeeper") from None
                log.debug("ZooKeeper at %s has no multiRead (%s): reading node by node", self.hosts,
                          type(exc).__name__)
                self.use_multi_read = False
                return None
            if len(results) != len(group):
                raise Unreachable(f"ZooKeeper answered {len(results)} of {len(group)} reads in a multi-read",
                                  where=f"{self.hosts} {where}", hint="run: regctl doctor zookeeper")
            for path, value in zip(group, results):
                budget.observe(zk_multi.answer_size(value))
                if not isinstance(value, Exception):
                    out[path] = value
                elif isinstance(value, NoNodeError):
                    out[path] = None
                elif isinstance(value, NoAuthError):
                    out[path] = NotAuthorized(f"ZooKeeper refused to read {path} (NOAUTH)", where=self.hosts,
                                              hint=self.noauth_hint)
                else:
                    out[path] = value
        self.use_multi_read = True
        return out

    # -- the registry layout -------------------------------------------------
    def service_names(self) -> list[str] | None:
        """Names of the service directories under the base path (None if the base is missing)."""
        names = self.get_children(self.base_path)
        if names is None:
            return None
        return [n for n in names if not (self.base_path == "/" and n == "zookeeper")]

    def snapshot(self, names: Iterable[str] | None = None) -> ZkSnapshot:
        """Read every service (or only ``names``) with its instances and node stats.

        A connection lost in the middle (an ensemble member died; kazoo moves the
        session to another member) is retried once, when the session is back
        within ``timeout`` seconds.
        """
        names = None if names is None else list(names)
        deadline = time.monotonic() + self.timeout
        try:
            return self._snapshot(names)
        except Unreachable as exc:
            if not getattr(exc, "connection_lost", False) or not self._await_connected(deadline):
                raise
            log.debug("ZooKeeper connection lost during a read; session back, reading again")
            return self._snapshot(names)

    def _await_connected(self, deadline: float) -> bool:
        """Wait (until ``deadline``) for the kazoo client to be connected again; whether it is."""
        client = self.client
        while client is not None and time.monotonic() < deadline:
            if client.connected:
                return True
            time.sleep(0.05)
        return client is not None and client.connected

    def _snapshot(self, names: list[str] | None) -> ZkSnapshot:
        problems: list[Problem] = []
        all_names = self.service_names()
        if all_names is None:
            return ZkSnapshot(self.base_path, (), (Problem(self.base_path, "base-missing",
                                                           "the base path does not exist in ZooKeeper"),))
        wanted = list(all_names) if names is None else [n for n in names]
        present = set(all_names)
        svc_paths = {}
        services: dict[str, ZkService] = {}
        for name in wanted:
            if name not in present:
                services[name] = ZkService(name, exists=False)
                continue
            svc_paths[name] = zk_child(self.base_path, name, INSTANCES)  # read from ZooKeeper or validated
        children = self.bulk_children(list(svc_paths.values()))
        inst_paths: dict[str, tuple[str, str]] = {}
        svc_problems: dict[str, list[Problem]] = {n: [] for n in svc_paths}
        for name, path in svc_paths.items():
            kids = children.get(path)
            if kids is None:
                svc_problems[name].append(Problem(zk_child(self.base_path, name), "no-instances-node",
                                                  "service directory has no 'instances' child"))
            elif isinstance(kids, Exception):
                svc_problems[name].append(Problem(path, "unreadable", _exc_text(kids)))
            else:
                for iid in sorted(kids):
                    inst_paths[f"{path}/{iid}"] = (name, iid)
        datas = self.bulk_get(list(inst_paths))
        found: dict[str, list[Instance]] = {n: [] for n in svc_paths}
        for path, (name, iid) in inst_paths.items():
            res = datas.get(path)
            if res is None:
                continue  # vanished between the two reads: it is simply gone
            if isinstance(res, Exception):
                svc_problems[name].append(Problem(path, "unreadable", _exc_text(res)))
                continue
            data, stat = res
            inst, probs = instance_from_node(name, iid, path, data, stat)
            svc_problems[name].extend(probs)
            if inst is not None:
                found[name].append(inst)
        for name in svc_paths:
            services[name] = ZkService(name, tuple(found[name]), tuple(svc_problems[name]))
        ordered = tuple(services[n] for n in wanted if n in services)
        return ZkSnapshot(self.base_path, ordered, tuple(problems))

    def service(self, name: str) -> ZkService:
        """One service's instances (``exists`` False when it has no directory)."""
        snap = self.snapshot([name])
        svc = snap.service(name)
        if svc is None:
            return ZkService(name, exists=False, problems=tuple(snap.problems))
        return svc


def _default_in_flight() -> int:
    return IN_FLIGHT_BYTES


def _shuffle(paths: list[str]) -> None:
    """Shuffle in place with a generator seeded from the OS (an attacker cannot predict the order)."""
    random.Random(os.urandom(16)).shuffle(paths)


def _take(order: list[str], at: int, size: int) -> list[str]:
    """Up to ``size`` paths from ``order[at:]``, within the request size ZooKeeper accepts."""
    group: list[str] = []
    cost = 0
    for path in order[at:at + size]:
        step = len(path) * 4 + 14  # header 9 + length 4 + watch 1 + the path (at most 4 bytes a character)
        if group and cost + step > MAX_REQUEST_BYTES:
            break
        group.append(path)
        cost += step
    return group


def _exc_text(exc: Exception) -> str:
    if isinstance(exc, NotAuthorized):
        return exc.message
    return f"{type(exc).__name__}: {exc}".strip().rstrip(":")


#: how long closing a session may wait for the server's answer before regctl goes on without it
CLOSE_WAIT = 2.0


def _stop_and_close(client: KazooClient) -> None:
    try:
        client.stop()
    except Exception:  # closing must never raise
        log.debug("kazoo stop failed", exc_info=True)
    try:
        client.close()
    except Exception:
        log.debug("kazoo close failed", exc_info=True)


def _close(client: KazooClient, wait: float = CLOSE_WAIT) -> None:
    """Close the session, waiting at most ``wait`` seconds: kazoo's ``stop()`` waits for the server's
    answer to the close request, and a silent server would hold it for the whole read timeout. A
    read-only session left open expires on the server by itself."""
    if isinstance(run_with_deadline(lambda: _stop_and_close(client), wait, name="regctl-zk-close"), Cut):
        log.debug("ZooKeeper did not answer the close within %gs; leaving the session to expire", wait)
