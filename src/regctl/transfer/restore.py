"""Plan and apply an import: re-register what a restart lost, and nothing an operator did since.

Planning (:func:`plan_import`) compares each file entry with its node now:

* ``add``: no node; it will be registered.
* ``live``: a node owned by the Config Service's current session, same data.
* ``differs``: live with other data: **never touched** without ``--force``
  (then ``overwrite``: registered again with the file's data).
* ``restore``: a node owned by *another* session: it was made before the Config
  Service restarted and vanishes when that old session expires. Registering the
  id again would only update that doomed node in place (it keeps its owner), so
  a restore is **deregister, then register**: the new node belongs to the current
  session and stays. A lingering node whose data differs from the file is
  ``differs`` (the live data is newer than the backup) unless ``--force``.
  When nothing tells the current session (see :mod:`regctl.transfer.live`), every
  node present is planned ``restore`` too (``unsure``): the safe path. The first
  write then tells it (the node the Config Service creates is its current
  session's), and an unsure node that the current session turns out to own is
  left as it is (result ``kept``).
* ``self``: the Config Service's own node; it manages that itself.
* ``down``: with ``--probe``, an entry to write whose health URL does not answer now.

Applying (:func:`apply_plan`) writes, in this order: one write alone when the
current session is unknown (an ``add`` if there is one), to learn it; then the first
instance of each service that has no node yet, alone for its service (two first
registrations of a service at once make the Config Service fail one of them on its
unique row, after writing its node); then the rest, ``concurrency`` at a time. It
re-reads each node right before writing it and
skips (and reports) any that changed since the plan: a registration made while
the operator was reading the plan always survives. Every write is read back from
ZooKeeper (in batches, off the writers' path): one the API answered OK counts only
when its node holds the file's data under the current session, and after an error
answer (or a timeout) the node alone says whether the write happened. Progress is
appended to a list the caller owns, so an interrupt or a failure midway can say
exactly what was done and what was not.
"""

from __future__ import annotations

import functools
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

import httpx

from regctl import deadline
from regctl.errors import RegctlError
from regctl.prober import ProbeTarget
from regctl.http.api import RegistryApi, register_call
from regctl.http.config import http_options
from regctl.transfer import live as tl
from regctl.transfer.file import Entry, canonical, differences, expected_node
from regctl.transfer.live import Session
from regctl.zookeeper.reader import node_stat

WRITES = ("add", "restore", "overwrite")
ACTIONS = ("add", "restore", "overwrite", "live", "differs", "self", "down")


@dataclass(frozen=True)
class Observed:
    """A node as the plan saw it: its data, its owning session, and a token that changes with any write."""

    data: dict | None
    owner: int | None
    token: Any

    @classmethod
    def from_node(cls, node: Any) -> "Observed":
        st = node.stat
        token = (st.created, st.version, st.ephemeral_owner) if st is not None else canonical(node.data)
        return cls(node.data, node.owner if st is not None else None, token)

    @classmethod
    def from_instance(cls, inst: Any) -> "Observed":
        return cls(dict(inst.metadata or {}), None, canonical(inst.metadata or {}))


@dataclass
class PlanItem:
    action: str
    entry: Entry
    reason: str | None = None
    differences: dict = field(default_factory=dict)
    observed: Observed | None = None
    #: a restore planned only because the current session could not be told (the safe path)
    unsure: bool = False

    @property
    def service(self) -> str:
        return self.entry.service

    @property
    def instance_id(self) -> str:
        return self.entry.instance_id

    def to_dict(self) -> dict:
        reg = self.entry.registration
        d: dict[str, Any] = {"action": self.action, "service": reg.service_name, "instance_id": reg.instance_id,
                             "service_url": reg.service_url, "health_check_url": reg.health_check_url,
                             "reason": self.reason}
        if self.observed is not None and self.observed.owner:
            d["node_owner"] = hex(self.observed.owner)
        if self.unsure:
            d["unsure"] = True
        if self.differences:
            d["differences"] = self.differences
        if self.entry.warnings:
            d["warnings"] = list(self.entry.warnings)
        return d


@dataclass
class ImportPlan:
    items: list[PlanItem]
    live_source: str
    session: Session | None = None

    def with_action(self, *actions: str) -> list[PlanItem]:
        return [i for i in self.items if i.action in actions]

    @property
    def writes(self) -> list[PlanItem]:
        return self.with_action(*WRITES)

    def counts(self) -> dict:
        return {a: len(self.with_action(a)) for a in ACTIONS}

    def to_dict(self) -> dict:
        return {"live_source": self.live_source, "session": self.session.to_dict() if self.session else None,
                "counts": self.counts(), "items": [i.to_dict() for i in self.items]}


def plan_import(entries: Iterable[Entry], live: Mapping[tuple[str, str], Observed], live_source: str,
                session: Session | None = None, *, force: bool = False,
                own_key: tuple[str, str] | None = None) -> ImportPlan:
    """Decide per entry (see the module docstring). ``session`` None: ownership not checked (API only)."""
    items = []
    for e in entries:
        obs = live.get(e.key)
        if obs is None:
            items.append(PlanItem("add", e, "no node: will be registered"))
            continue
        verdict = session.judge(obs.owner) if session is not None else "current"
        if own_key is not None and e.key == own_key and verdict != "dead":
            items.append(PlanItem("self", e, "the Config Service's own node: it registers itself", {}, obs))
            continue
        diff = (differences(expected_node(e.registration), obs.data) if obs.data is not None
                else {"(node)": ["JSON object", "unreadable data"]})
        if verdict in ("dead", "unknown"):
            if verdict == "dead":
                current = f" current session {hex(session.owner)}" if session and session.owner else " current session"
                why = (f"node owned by session {hex(obs.owner or 0)}, not the Config Service's{current}: it "
                       "vanishes when that session expires")
            else:
                why = (f"node owned by session {hex(obs.owner or 0)}, and which session is current cannot be told "
                       f"({session.how if session else 'not checked'}): the safe path")
            unsure = verdict == "unknown"
            if not diff:
                tail = "; deregister, then register" + (" (left as it is if the first write shows the current "
                                                         "session owns it)" if unsure else "")
                items.append(PlanItem("restore", e, why + tail, diff, obs, unsure))
            elif force:
                items.append(PlanItem("restore", e, why + "; --force: the file's data replaces it", diff, obs, unsure))
            else:
                items.append(PlanItem("differs", e, why + "; its data differs from the file: not touched "
                                      "(export now to keep it, or --force to restore the file's data)", diff, obs))
        elif not diff:
            items.append(PlanItem("live", e, "already live", diff, obs))
        elif force:
            items.append(PlanItem("overwrite", e, "live with different data; --force: the file's data replaces it",
                                  diff, obs))
        else:
            items.append(PlanItem("differs", e, "live with different data: not touched (--force replaces it)",
                                  diff, obs))
    return ImportPlan(items, live_source, session)


def mark_down(plan: ImportPlan, probe: Callable[[list], list]) -> None:
    """``--probe``: turn every write whose health URL does not answer now into ``down``.

    ``probe(targets)`` gets :class:`regctl.prober.ProbeTarget` objects and returns results in order.
    """
    todo = plan.writes
    targets = []
    for item in todo:
        reg = item.entry.registration
        url = reg.health_check_url or (reg.service_url.rstrip("/") + "/health")
        targets.append(ProbeTarget(item.service, item.instance_id, url))
    for item, res in zip(todo, probe(targets)):
        if not res.healthy:
            item.action = "down"
            item.reason = f"--probe: {res.url} did not answer healthy ({res.error or res.status_code}): not written"


# ---------------------------------------------------------------------------
# apply
# ---------------------------------------------------------------------------

@dataclass
class ApplyResult:
    item: PlanItem
    result: str  # registered | restored | kept | skipped | failed | interrupted | not-done
    detail: str | None = None
    error: RegctlError | None = None
    #: written and answered OK; the read-back from ZooKeeper is still to come (see :func:`apply_plan`)
    unverified: bool = field(default=False, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        return self.result in ("registered", "restored")

    def to_dict(self) -> dict:
        return {"service": self.item.service, "instance_id": self.item.instance_id, "action": self.item.action,
                "result": self.result, "detail": self.detail,
                "error": str(self.error) if self.error else None}


@dataclass
class Live:
    """How to read a node again right before writing it: ZooKeeper (``reader``) or the API."""

    reader: Any = None
    api: Any = None

    def observe(self, service: str, instance_id: str) -> Observed | None:
        if self.reader is not None:
            node = tl.read_node(self.reader, service, instance_id)
            return None if node is None else Observed.from_node(node)
        for inst in self.api.execute(tl.instances_call(service)):
            if inst.instance_id == instance_id:
                return Observed.from_instance(inst)
        return None

    def observe_many(self, keys: list) -> dict:
        """{(service, id): Observed, None when absent, or the RegctlError} read from ZooKeeper at once."""
        paths = {tl.join(self.reader.base_path, s, "instances", i): (s, i) for s, i in keys}
        try:
            got = self.reader.bulk_get(list(paths))
        except RegctlError as exc:
            return {k: exc for k in keys}
        out: dict = {}
        for path, (s, i) in paths.items():
            res = got.get(path)
            if res is None:
                out[(s, i)] = None
            elif isinstance(res, Exception):
                out[(s, i)] = res if isinstance(res, RegctlError) else RegctlError(f"{type(res).__name__}: {res}")
            else:
                data, problem = tl.decode(res[0])
                out[(s, i)] = Observed.from_node(tl.LiveNode(s, i, path, data, node_stat(res[1]), problem))
        return out


#: writes in flight at once (each one: read again, [deregister,] register; the read-back is batched)
CONCURRENCY = 8


def write_order(plan: ImportPlan) -> list[list[PlanItem]]:
    """The plan's writes in phases (see the module docstring): [learn], [first of new services], [the rest]."""
    rest = list(plan.writes)
    phases: list[list[PlanItem]] = []
    started: set = set()
    session = plan.session
    if session is not None and not session.known and any(i.unsure for i in rest):
        first = next((i for i in rest if i.action == "add"), None) or next(i for i in rest if i.unsure)
        phases.append([first])
        rest.remove(first)
        started.add(first.service)
    with_node = {i.service for i in plan.items if i.observed is not None}
    firsts = []
    for item in rest:
        if item.service in with_node or item.service in started:
            continue
        started.add(item.service)
        if sum(1 for j in rest if j.service == item.service) > 1:
            firsts.append(item)
    if firsts:
        phases.append(firsts)
        rest = [i for i in rest if not any(i is f for f in firsts)]
    if rest:
        phases.append(rest)
    return phases


def apply_plan(plan: ImportPlan, api: Any, live: Live, results: list[ApplyResult],
               on_result: Callable[[ApplyResult], None] | None = None,
               concurrency: "int | None" = None) -> list[ApplyResult]:
    """Write every ``add``/``restore``/``overwrite`` item in :func:`write_order`, appending to ``results``.

    When the current session was unknown and the first write shows it, ``plan.session``
    is replaced by the learned one. On KeyboardInterrupt the writes in flight are
    recorded as ``interrupted``, the ones not started get no result (see
    :func:`not_done`), and it is re-raised.
    """
    def record(res: ApplyResult) -> None:
        results.append(res)
        if on_result is not None:
            on_result(res)

    todo = plan.writes
    if not todo:
        return results
    concurrency = CONCURRENCY if concurrency is None else concurrency
    pool = deadline.Pool(min(concurrency, len(todo)), "regctl-import")
    jobs: dict[deadline.Running, PlanItem] = {}
    # the pool hands over the calls as they end: O(1) each (waiting on the whole pending set, and finding each
    # item's place by list.index, were O(n) per completion: ~1.5 s of one CPU over 1,000 writes)
    position = {id(item): n for n, item in enumerate(todo)}
    # written, answered OK, not yet read back: read back here in batches (one multi-read), not by the writers
    held: list[ApplyResult] = []
    sender = _Sender(api)

    def flush() -> None:
        held.sort(key=lambda r: position[id(r.item)])
        _read_back(held, live, plan.session)
        while held:
            record(held.pop(0))

    try:
        for phase in write_order(plan):
            batch = {pool.submit(functools.partial(_apply_one, item, api, live, plan.session, False, sender)): item
                     for item in phase}
            jobs.update(batch)
            left = len(batch)
            while left:
                done = pool.ended(timeout=0.2)  # a short wait keeps Ctrl-C prompt
                if not done:
                    if held:
                        flush()  # nothing finished for a while: read back what is held
                    continue
                left -= len(done)
                for job in sorted(done, key=lambda j: position[id(jobs[j])]):
                    res = _written(job)
                    if res.unverified:
                        held.append(res)
                    else:
                        record(res)
                if len(held) >= READ_BACK_BATCH or (held and not left):
                    flush()
            if plan.session is not None and not plan.session.known:
                _learn(plan, phase, live, results)
    except KeyboardInterrupt:
        while held:
            record(_unread(held.pop(0)))
        for job, item in jobs.items():
            if any(r.item is item for r in results):
                continue
            if job.done and isinstance(job.outcome(0), deadline.Value):
                record(_unread(_written(job)))
            elif not job.cancel():
                record(ApplyResult(item, "interrupted", "Ctrl-C while writing it: it may or may not be "
                                   "registered; check with: regctl inspect " + item.service))
        raise
    finally:
        pool.close()
        if all(job.done for job in jobs):
            sender.close()  # (after Ctrl-C, writes still running may need it: left to the garbage collector)
    return results


def _written(job: deadline.Running) -> ApplyResult:
    """What an ended write came to (an exception it raised is raised here)."""
    outcome = job.outcome(0)
    if isinstance(outcome, deadline.Raised):
        raise outcome.error
    assert isinstance(outcome, deadline.Value)
    return outcome.value


def _unread(res: ApplyResult) -> ApplyResult:
    """A write Ctrl-C kept from being read back: said so, no longer waiting for it."""
    if res.unverified:
        res.unverified = False
        res.detail = "; ".join(x for x in (res.detail, "not read back (Ctrl-C)") if x)
    return res


#: writes read back from ZooKeeper at once (one multi-read) once they are done
READ_BACK_BATCH = 32


def _read_back(batch: list[ApplyResult], live: Live, session: Session | None) -> None:
    """Read the nodes of written ``batch`` items at once; each one's detail says what differs, if anything."""
    if not batch:
        return
    now = live.observe_many([(r.item.service, r.item.instance_id) for r in batch])
    for r in batch:
        _judge_read_back(r, _check(r.item, now.get((r.item.service, r.item.instance_id)), session))


def _judge_read_back(res: ApplyResult, check: str | None) -> ApplyResult:
    """A write the API answered OK counts only when ZooKeeper shows it (a Config Service whose own
    ZooKeeper client gave up answers 201 and writes nothing)."""
    res.unverified = False
    if check is not None:
        res.result = "failed"
        check = f"the API answered OK, but {check}"
    res.detail = "; ".join(x for x in (res.detail, check) if x) or None
    return res


def _learn(plan: ImportPlan, phase: list[PlanItem], live: Live, results: list[ApplyResult]) -> None:
    """After a write, the node's owner is the Config Service's current session (it created the node just now)."""
    if live.reader is None or plan.session is None:
        return
    for item in phase:
        if item.action not in ("add", "restore"):
            continue  # an overwrite sets a node in place: it keeps whatever session owned it
        res = next((r for r in results if r.item is item), None)
        if res is None or not res.ok:
            continue
        try:
            now = live.observe(item.service, item.instance_id)
        except RegctlError:
            continue
        if now is not None and now.owner:
            plan.session = plan.session.learned(
                now.owner, f"owner of {item.service}/{item.instance_id}, which the Config Service created just now")
            res.detail = "; ".join(x for x in (res.detail, f"the current session is {hex(now.owner)}: it owns "
                                               "the node this write created") if x)
            return


def not_done(plan: ImportPlan, results: list[ApplyResult]) -> list[PlanItem]:
    """The writes of ``plan`` that have no result yet."""
    reached = {id(r.item) for r in results}
    return [i for i in plan.writes if id(i) not in reached]


def _changed(before: Observed | None, now: Observed | None) -> str | None:
    if before is None and now is None:
        return None
    if before is None:
        return "registered by someone else since the plan"
    if now is None:
        return "deregistered since the plan"
    if before.token != now.token or canonical(before.data) != canonical(now.data):
        return "re-registered or changed since the plan"
    return None


def _apply_one(item: PlanItem, api: Any, live: Live, session: Session | None,
               read_back: bool = True, sender: "_Sender | None" = None) -> ApplyResult:
    """Read again, [deregister,] register; read back now, or leave that to the caller (``read_back`` False:
    the result comes back ``unverified``, see :func:`_read_back`). ZooKeeper is read at once after an error."""
    sender = sender or _Sender(api)
    reg = item.entry.registration
    try:
        now = live.observe(item.service, item.instance_id)
    except RegctlError as exc:
        return ApplyResult(item, "failed", "could not read the node again before writing; nothing written", exc)
    change = _changed(item.observed, now)
    if (item.unsure and change is None and now is not None and session is not None and session.known
            and now.owner == session.owner and now.data is not None
            and not differences(expected_node(reg), now.data)):
        return ApplyResult(item, "kept", f"owned by the current session {hex(session.owner or 0)} with the file's "
                                         "data: nothing written")
    note = None
    if change is not None:
        if item.action == "restore" and now is None:
            note = "the old node expired before the write"
        else:
            detail = change + ": left as it is (the newer registration wins)"
            current = session.owner if session is not None else None
            if now is not None and current and now.owner and now.owner != current:
                detail += ("; its node still belongs to an old session and vanishes when that expires: "
                           "export again now, or import again after the expiry")
            return ApplyResult(item, "skipped", detail)
    if item.action == "restore" and now is not None:
        try:
            sender.send(tl.deregister_call(item.service, item.instance_id))
        except RegctlError as exc:
            # the registry deletes the node first, then writes its row: after an error only the node tells
            gone = _gone_after_error(item, live, now)
            if gone is not True:
                return ApplyResult(item, "failed", "deregistering the old node failed; nothing registered "
                                                   "(the old node still vanishes when its session expires)"
                                   + (f"; {gone}" if gone else ""), exc)
            note = f"the API answered an error to the deregistration ({exc.message}) but the old node is gone"
    try:
        sender.send(register_call(reg.payload()))
    except RegctlError as exc:
        # the registry writes ZooKeeper first, so after an error only the node says what happened
        if live.reader is not None and _verify(item, live, session) is None:
            return ApplyResult(item, "restored" if item.action == "restore" else "registered",
                               "; ".join(x for x in (note, f"the API answered an error ({exc.message}) but the "
                                                     "node is in ZooKeeper with the file's data") if x))
        detail = "register failed"
        if item.action == "restore":
            detail = "the old node was deregistered but the registration failed: the instance is NOT live"
        return ApplyResult(item, "failed", detail, exc)
    verdict = "restored" if item.action == "restore" else "registered"
    if not read_back and live.reader is not None:
        return ApplyResult(item, verdict, note, unverified=True)
    return _judge_read_back(ApplyResult(item, verdict, note), _verify(item, live, session))


class _Sender:
    """Sends register/deregister calls; one the server never saw (a dropped kept-alive connection)
    is sent again over a new connection.

    uvicorn closes the connection right after an unhandled 500 (the Config Service's answer
    when Redis or PostgreSQL is down, or when two first registrations of a service race),
    and a request that took that connection from the pool before the close arrived fails
    unsent ("connection reset"; with Redis down, most requests on a pooled connection do).
    Register and deregister are idempotent (an existing id is overwritten in place, a
    missing one is 200), so sending again is safe. The new connections come from a client
    that keeps none alive, made on the first need and closed by :meth:`close`.
    """

    def __init__(self, api: Any) -> None:
        self.api = api
        self._fresh: Any = None
        self._lock = threading.Lock()

    def send(self, call: Any) -> Any:
        try:
            return self.api.execute(call)
        except RegctlError as exc:
            if not _dropped_connection(exc):
                raise
        fresh = self._fresh_api()
        for pause in SEND_PAUSES:
            try:
                return fresh.execute(call)
            except RegctlError as exc:
                if not _dropped_connection(exc):
                    raise
            time.sleep(pause)
        return fresh.execute(call)

    def _fresh_api(self) -> Any:
        with self._lock:
            if self._fresh is None:
                if not isinstance(self.api, RegistryApi):
                    self._fresh = self.api  # someone else's client: sent again through it
                else:
                    a = self.api
                    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=0)
                    client = httpx.Client(**http_options(a.timeout, a.headers, a.verify), limits=limits)
                    self._fresh = RegistryApi(a.base_url, timeout=a.timeout, headers=a.headers, verify=a.verify,
                                              client=client)
                    self._fresh_client = client
            return self._fresh

    def close(self) -> None:
        client = getattr(self, "_fresh_client", None)
        if client is not None:
            client.close()


#: pauses (seconds) between attempts over new connections (a reset there means the server dropped it)
SEND_PAUSES = (0.05, 0.25)


def _dropped_connection(exc: BaseException) -> bool:
    cause = exc.__cause__
    return isinstance(cause, (httpx.ReadError, httpx.RemoteProtocolError, httpx.WriteError))


def _gone_after_error(item: PlanItem, live: Live, before: Observed) -> "bool | str":
    """After a failed deregistration: True when the node is gone, else why not (or "" when nothing can tell)."""
    if live.reader is None:
        return ""  # the API's list is cached: it cannot say
    try:
        now = live.observe(item.service, item.instance_id)
    except RegctlError as exc:
        return f"whether the node is still there could not be read ({exc.message})"
    if now is None:
        return True
    if now.token != before.token:
        return "the node was written by someone else meanwhile: left as it is"
    return "the old node is still there"


def _verify(item: PlanItem, live: Live, session: Session | None) -> str | None:
    """None when the node now holds the file's data under the current session, else what differs."""
    now: "Observed | RegctlError | None"
    try:
        now = live.observe(item.service, item.instance_id)
    except RegctlError as exc:
        now = exc
    return _check(item, now, session)


def _check(item: PlanItem, now: "Observed | RegctlError | None", session: Session | None) -> str | None:
    """None when ``now`` (the node read back) holds the file's data under the current session, else what not."""
    if isinstance(now, RegctlError):
        return f"it could not be read back ({now.message})"
    if now is None:
        return "the node is not there (does the Config Service's own ZooKeeper client work? regctl doctor)"
    if now.data is None or differences(expected_node(item.entry.registration), now.data):
        return "the node holds other data (another write in between?)"
    if session is not None and session.known and now.owner and now.owner != session.owner:
        return (f"the node is owned by session {hex(now.owner)}, not {hex(session.owner or 0)}, which the plan "
                "took for the current one (did the Config Service restart meanwhile? import again)")
    return None
