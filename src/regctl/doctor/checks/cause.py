"""What broke (area ``cause``): one row per cause of the Config Service's failures, not one per symptom.

From outside, most failures look like "HTTP 500". Which part broke decides the fix,
and the evidence to tell them apart is reachable (the contract's "How it fails"):

========================  ==================================================================
``cause.redis``           every sampled per-service read answers 500 (they read Redis first) while
                          ``/health`` answers a bare 503 or reports redis unhealthy
``cause.postgres``        ``GET /services`` (the database) answers 500 while per-service reads work
``cause.zk-client``       ``/health`` says zookeeper unhealthy while regctl's own ZooKeeper session works
``cause.restart``         the Config Service's own node rewritten in place (its old session lingers), or
                          gone (its session was lost: every instance went with it); instance nodes of an
                          older session; rows registered before it with no live instance left
``cause.bad-status``      an instance node's status the Config Service cannot parse (500 for that service)
``cause.stale-cache``     the API's list of a service differs from ZooKeeper's
========================  ==================================================================

The real ``/health`` answers a bare ``503 {"detail": "Service unhealthy"}`` when Redis *or*
PostgreSQL is down, with no component at all; the API's own answers tell them apart
(``GET /services`` needs the database, ``GET /services/{name}`` needs Redis). A row passes
only on what was observed healthy; without the evidence it is a skip "could not check".

A cause row that warns or fails lists, in ``details["explains"]``, the symptom rows
its cause explains; :func:`regctl.doctor.registry.attribute` turns those into skips
saying "explained by <cause>". The decisions are pure functions of :class:`Evidence`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from regctl.doctor.base import Check, CheckResult, CheckRun, log
from regctl.doctor.checks.config import health_document
from regctl.doctor.facts import (
    api_reads,
    api_rows,
    is_seeded,
    parallel,
    settled,
    zk_dir,
    zk_reader,
    zk_snapshot,
)
from regctl.errors import RegctlError
from regctl.names import VALID_STATUSES
from regctl.transfer.live import current_session
from regctl.views import instances_differ

CONFIG_SERVICE = "config-service"
#: per-service reads sampled to tell "every service fails" from "one service fails"
SAMPLE = 4
_LIST_MAX = 8


@dataclass
class Evidence:
    """What the cause checks look at, gathered once per run."""
    #: ``/health``'s document (component -> state), None when there is no usable answer
    health: dict | None = None
    rows: list | None = None
    rows_error: RegctlError | None = None
    zk_configured: bool = False
    #: regctl's own ZooKeeper session (or snapshot) failed
    zk_error: RegctlError | None = None
    snapshot: Any = None
    #: service -> instances from ``GET /services/{name}``, or the RegctlError it raised
    reads: dict = field(default_factory=dict)
    #: the services the per-service causes look at (selected, or all with --all); empty: none selected
    targets: list = field(default_factory=list)
    #: :func:`regctl.transfer.live.current_session` when ZooKeeper was read (None: not asked or failed)
    session: Any = None
    #: whether the Config Service answered ``GET /health`` (None: not known)
    answers: bool | None = None

    def component(self, name: str) -> str | None:
        if not isinstance(self.health, dict) or "status" not in self.health:
            return None
        value = self.health.get(name)
        return None if value is None else str(value)

    @property
    def bare_503(self) -> bool:
        """``/health`` answered ``503 {"detail": ...}`` without components: Redis or PostgreSQL, not which."""
        return isinstance(self.health, dict) and "status" not in self.health and "detail" in self.health

    def other_failed_reads(self) -> list[str]:
        """Reads that failed without an HTTP 500 (a connection reset, a timeout): they tell nothing."""
        return [n for n, r in self.reads.items() if isinstance(r, RegctlError) and _status(r) != 500]

    def failed_reads(self, code: int = 500) -> list[str]:
        return [n for n, r in self.reads.items() if isinstance(r, RegctlError) and _status(r) == code]

    def ok_reads(self) -> list[str]:
        return [n for n, r in self.reads.items() if not isinstance(r, RegctlError)]

    def zk_instances(self, name: str) -> list | None:
        if self.snapshot is None:
            return None
        svc = self.snapshot.service(name)
        return list(svc.instances) if svc is not None else []


def _status(exc: BaseException) -> int | None:
    return getattr(exc, "status_code", None)


def _cut(text: object, limit: int = 80) -> str:
    """Registry data is untrusted: what a finding quotes of it is bounded."""
    s = str(text)
    return s if len(s) <= limit else s[:limit] + "..."


def _names(names: list, limit: int = _LIST_MAX) -> str:
    names = [_cut(n) for n in names]
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


def gather(run: CheckRun) -> Evidence:
    """The evidence, read once per run (shared by every cause check)."""
    def compute() -> Evidence:
        ev = Evidence(zk_configured=bool(run.config.endpoint.zk_hosts))
        doc, _row = health_document(run)
        ev.health = doc
        answers = doc is not None  # no /health answer: the API is not asked again (it would only wait)

        def read_rows():
            return api_rows(run) if answers else None

        def read_snapshot():
            if not run.config.endpoint.zk_hosts:
                return None
            zk_reader(run)
            return zk_snapshot(run)

        ev.answers = answers
        rows, snap = parallel(read_rows, read_snapshot)
        ev.rows, ev.rows_error = settled(rows)
        ev.snapshot, ev.zk_error = settled(snap)
        if ev.snapshot is not None:
            ev.session = _current_session(run, answers)
        known = list(dict.fromkeys([*(r.service_name for r in ev.rows or []),
                                    *(s.name for s in (ev.snapshot.services if ev.snapshot else ()))]))
        if run.config.selected_service:
            ev.targets = [run.config.selected_service]
        elif run.config.all_services:
            ev.targets = known
        live = [s.name for s in ev.snapshot.services if s.instances] if ev.snapshot else known
        sample = list(dict.fromkeys([*ev.targets, CONFIG_SERVICE, *live[:SAMPLE]]))
        if answers:
            ev.reads = dict(zip(sample, api_reads(run, sample)))
        return ev

    return run.fact("cause_evidence", compute)


def _current_session(run: CheckRun, answers: bool) -> Any:
    """Which session the Config Service holds, as :mod:`regctl.transfer.live` tells it (None when unreadable).

    ``answers``: whether its ``/health`` answered this run; a never-rewritten own node tells the
    current session only while a Config Service answers.
    """

    answering = (True, "GET /health answered") if answers else (False, "GET /health did not answer")
    try:
        return current_session(zk_reader(run), answering=answering)
    except Exception:  # extra evidence only: the snapshot already holds the own node's stat
        log.debug("could not tell the Config Service's session", exc_info=True)
        return None


def on_evidence(fn):
    """Run ``fn(run, evidence)``; evidence that cannot be gathered in time is "could not tell", a skip."""
    def check(run: CheckRun):
        try:
            ev = gather(run)
        except RegctlError as exc:
            return run.skip(f"could not tell: {exc.message}", exc.hint or "see config.* / zookeeper.*")
        return fn(run, ev)

    check.__name__ = fn.__name__
    check.__doc__ = fn.__doc__
    check.__wrapped__ = fn  # type: ignore[attr-defined]
    return check


def _no_health(run: CheckRun) -> CheckResult:
    return run.skip("no usable /health answer (see config.http): cannot tell", "fix config.* first")


def on_health_evidence(fn):
    """:func:`on_evidence` for causes read off ``/health``: without its answer, skip at once."""
    inner = on_evidence(fn)

    def check(run: CheckRun):
        doc, _row = health_document(run)
        return _no_health(run) if doc is None else inner(run)

    check.__name__ = fn.__name__
    check.__wrapped__ = fn  # type: ignore[attr-defined]
    return check


# ---------------------------------------------------------------------------

REDIS_FIX = ("restart or fix Redis (docker compose ps redis; docker compose logs redis): until it is back no client "
             "can discover any service (every /services/{name}, /url and /discover answers 500), and register/"
             "deregister answer 500 although their ZooKeeper and database writes happened")

#: what Redis being down explains: the component rows, /health's 503, every per-service read's 500
REDIS_EXPLAINS = [{"check": ["config.redis", "config.health"]},
                  {"api_status": 500, "api_read": ["instances", "url", "discover", "health"]},
                  {"check": "*.monitor", "api_status": 503}]
BARE_503 = "/health answers a bare 503 'Service unhealthy' (Redis or PostgreSQL, it cannot say which)"


def _rows_said(ev: Evidence) -> str:
    if ev.rows is not None:
        return "GET /services (the database) answers"
    if ev.rows_error is not None:
        return f"GET /services answers {_status(ev.rows_error) or ev.rows_error.message}"
    return "GET /services not read"


@on_health_evidence
def check_redis(run: CheckRun, ev: Evidence) -> CheckResult:
    state = ev.component("redis")
    if ev.health is None:
        return _no_health(run)
    failed, ok, other = ev.failed_reads(), ev.ok_reads(), ev.other_failed_reads()
    details = {"redis": state, "bare_503": ev.bare_503 or None, "reads_500": failed, "reads_ok": ok,
               "reads_failed_otherwise": other or None}
    if state is not None and state != "healthy":  # a Config Service that reports the component
        if ok:
            return run.warn(f"/health says redis {state!r}, but GET /services/{ok[0]} answers: the cache is "
                            "not in the way of reads here", "check Redis anyway: docker compose logs redis",
                            **details)
        said = (f"GET /services/NAME answers 500 for every service read ({_names(failed)})" if failed
                else "per-service reads not tried")
        rows = "; GET /services (the database) still answers" if ev.rows is not None else ""
        return run.fail(f"Redis is down: /health says redis {state!r} and {said}{rows}", REDIS_FIX,
                        **details, explains=REDIS_EXPLAINS)
    if ok:  # a per-service read reads the cache first: it answered, so Redis did
        return run.passed(f"not Redis: GET /services/{_cut(ok[0])} answers (every per-service read goes through "
                          "Redis first)", **details)
    if failed and ev.bare_503:
        return run.fail(f"Redis is down: GET /services/NAME answers 500 for every service read "
                        f"({_names(failed)}) while {_rows_said(ev)}; {BARE_503}", REDIS_FIX, **details,
                        explains=REDIS_EXPLAINS)
    if state == "healthy":
        return run.passed("not Redis: /health says redis healthy (the Config Service pinged it)", **details)
    if failed:
        return run.skip(f"could not check: every per-service read answers 500 ({_names(failed)}), but /health "
                        "does not say whether Redis answers", "see the other cause.* rows", **details)
    return run.skip("could not check: no per-service read answered" + (f" ({_names(other)} failed without an HTTP "
                    "answer)" if other else " (none was made)") + " and /health does not report redis",
                    "see config.* and the other cause.* rows", **details)


POSTGRES_FIX = ("fix PostgreSQL (docker compose ps postgres; docker compose logs postgres); meanwhile register "
                "answers 500 with the instance live in ZooKeeper and deregister 500 with the node gone: see what "
                "the writes did in ZooKeeper (regctl list --source zk)")


@on_health_evidence
def check_postgres(run: CheckRun, ev: Evidence) -> CheckResult:
    if ev.health is None:
        return _no_health(run)
    state = ev.component("postgres")
    rows_500 = ev.rows_error is not None and _status(ev.rows_error) == 500
    ok, failed = ev.ok_reads(), ev.failed_reads()
    details = {"postgres": state, "bare_503": ev.bare_503 or None,
               "rows_error": ev.rows_error.message if ev.rows_error else None, "reads_ok": ok}
    # POST .../health writes the row's status, so it answers 500 too while the database is down
    explains = [{"check": ["config.postgres", "config.health"]}, {"api_status": 500, "api_read": ["rows", "health"]}]
    if state is not None and state != "healthy":  # a Config Service that reports the component
        said = "GET /services answers 500" if rows_500 else \
            "GET /services still answers" if ev.rows is not None else "GET /services not read"
        also = f" while GET /services/{ok[0]} answers" if ok and rows_500 else ""
        return run.fail(f"PostgreSQL is down: /health says postgres {state!r}; {said}{also}", POSTGRES_FIX,
                        **details, explains=explains)
    if rows_500 and ok:
        if state == "healthy":  # the database answers the health check's SELECT 1, yet its read of rows fails
            return run.warn(f"GET /services answers 500 while GET /services/{_cut(ok[0])} answers, though /health "
                            "says postgres healthy: the database read of the rows fails", POSTGRES_FIX, **details,
                            explains=explains)
        why = BARE_503 if ev.bare_503 else "/health does not report postgres"
        return run.fail(f"PostgreSQL is down: GET /services answers 500 (the services list comes from the "
                        f"database) while GET /services/{_cut(ok[0])} answers; {why}", POSTGRES_FIX, **details,
                        explains=explains)
    if ev.rows is not None:
        return run.passed("not PostgreSQL: GET /services (read from the database) answers", **details)
    if state == "healthy":
        return run.passed("not PostgreSQL: /health says postgres healthy (the Config Service queried it)",
                          **details)
    if rows_500 and failed:
        return run.skip("could not check: GET /services answers 500, and so does every per-service read (see "
                        "cause.redis): PostgreSQL may be down as well", "fix what cause.redis names, then run "
                        "regctl doctor again", **details)
    return run.skip(f"could not check: {_rows_said(ev)}" + (f" ({ev.rows_error.message})" if ev.rows_error and
                    not rows_500 else ""), "see config.* and the other cause.* rows", **details)


ZK_CLIENT_FIX = ("restart the Config Service (docker compose restart config-service): its ZooKeeper client gave up "
                 "and does not reconnect by itself; its instances vanish with its old session, so then restart the "
                 "services or restore them: regctl import FILE")


@on_health_evidence
def check_zk_client(run: CheckRun, ev: Evidence) -> CheckResult:
    if ev.health is None:
        return _no_health(run)
    state = ev.component("zookeeper")
    details = {"zookeeper": state, "reads_500": ev.failed_reads()}
    if state is None:
        if ev.bare_503:
            return run.skip(f"could not check: {BARE_503}, without a word on ZooKeeper", "see cause.redis / "
                            "cause.postgres; run regctl doctor again once they pass", **details)
        return run.skip("could not check: /health does not report zookeeper", "see config.health", **details)
    if state == "healthy":
        return run.passed("not its ZooKeeper client: /health says zookeeper healthy", **details)
    if not ev.zk_configured:
        return run.warn(f"/health says zookeeper {state!r}; regctl has no ZooKeeper to compare with",
                        "pass --zk HOST:PORT (or set ZOOKEEPER_HOSTS): if ZooKeeper answers regctl, the Config "
                        "Service's own client gave up and the fix is to restart the Config Service", **details)
    if ev.zk_error is not None:
        return run.skip(f"not its client alone: ZooKeeper does not answer regctl either ({ev.zk_error.message})",
                        "see zookeeper.*: ZooKeeper itself is down or unreachable", **details)
    return run.fail(f"the Config Service's own ZooKeeper client gave up: /health says zookeeper {state!r} while "
                    f"ZooKeeper answers regctl ({run.config.endpoint.zk_hosts})", ZK_CLIENT_FIX, **details,
                    explains=[{"check": ["config.zookeeper", "config.health"]},
                              {"api_status": 500, "api_read": ["instances", "url", "discover", "health"]},
                              # its abandoned session takes every instance with it, its own node included
                              {"check": ["service.registered", "hygiene.stale-rows", "cause.restart",
                                         "cause.stale-cache"]}])


def parse_time(text: str | None) -> float | None:
    """Epoch seconds of a ``registered_at`` (``2026-11-29 03:46:59.109964+00:00``), None when unreadable."""
    if not text or not isinstance(text, str):
        return None
    t = text.strip().replace("Z", "+00:00")
    try:
        dt = datetime.fromisoformat(t)
    except ValueError:
        try:
            dt = datetime.fromisoformat(t[:26])
        except ValueError:
            return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


RESTART_FIX = ("restore from an export: regctl import FILE --dry-run, then regctl import FILE --yes (it re-adds what "
               "vanished and deregisters-then-registers nodes still owned by the old session; see docs/reliability.md, "
               "restoring after a Config Service restart), or restart the services so they register again; "
               "registering an id again while its old node lingers does not save it (the node keeps the old session)")
LINGER_FIX = ("import now, before they vanish: regctl import FILE --dry-run, then regctl import FILE --yes (it "
              "deregisters then registers each node, so the current session owns it), or restart the services; "
              "registering an id again does not save it (the node is updated in place and keeps the old session)")
LOST_FIX = ("restore with regctl import FILE (--dry-run first; it re-adds every instance from an export) and restart "
            "the services so they register again; restart the Config Service too (docker compose restart "
            "config-service): it writes its own node only at start-up")
SELF_LOST_FIX = ("restart the Config Service (docker compose restart config-service) so it registers itself again; "
                 "any instance registered before the loss is gone: restart those services, or regctl import FILE")

#: how long the Config Service's session outlives it by default (ZOOKEEPER_SESSION_TIMEOUT)
DEFAULT_SESSION_S = 30


def own_nodes(ev: Evidence) -> list:
    """The Config Service's own ephemeral nodes (``{base}/config-service/instances/*``)."""
    return [i for i in ev.zk_instances(CONFIG_SERVICE) or [] if i.stat is not None and i.stat.ephemeral]


def registered_rows(ev: Evidence) -> list:
    """Rows (other than the Config Service's) that show a registration: not seeded by the deployment."""
    return [r for r in ev.rows or [] if r.service_name != CONFIG_SERVICE
            and not is_seeded(r, zk_dir(ev.snapshot, r.service_name))]


def _lost(ev: Evidence, since: float | None) -> list[str]:
    """Registered services with no live instance whose row does not read ``unknown`` (deregistration writes
    it), registered before ``since`` when the row says when (a row rewritten over a seeded one does not)."""
    out = []
    for row in registered_rows(ev):
        if (row.status or "unknown") == "unknown" or ev.zk_instances(row.service_name):
            continue
        at = parse_time(row.registered_at)
        if since is not None and at is not None and at >= since:
            continue
        out.append(row.service_name)
    return out


def restart_finding(ev: Evidence) -> dict | None:
    """What says the Config Service restarted or lost its session, or None.

    ``kind`` is ``rewritten`` (its own node rewritten in place at a start while the old
    session lived: that session and every node it owns are doomed), ``lingering`` (nodes
    of an older session than its own node's), ``emptied`` (registered services with no
    instance left since its own node appeared) or ``self-lost`` (its own node is gone:
    its session expired or was lost, and every node it held went with it).
    """
    if ev.snapshot is None:
        return None
    own = own_nodes(ev)
    dead = {int(o) for o in getattr(ev.session, "dead", None) or () if o}
    others = [i for svc in ev.snapshot.services if svc.name != CONFIG_SERVICE for i in svc.instances
              if i.stat is not None and i.stat.ephemeral]
    if not own:
        every_row = registered_rows(ev)
        return {"kind": "self-lost", "lost": _lost(ev, None),
                "unknown": [r.service_name for r in every_row if (r.status or "unknown") == "unknown"
                            and not ev.zk_instances(r.service_name)],
                "live": others, "owners": sorted({hex(i.stat.ephemeral_owner) for i in others}),
                "seeded": sum(1 for r in ev.rows or [] if r not in every_row and r.service_name != CONFIG_SERVICE),
                "lingering": [], "old_owners": []}
    # rewritten in place at a start (only its start-up writes that node), or owned by a session known gone
    rewritten = [i for i in own if i.stat.version > 0 or i.stat.ephemeral_owner in dead]
    dead |= {i.stat.ephemeral_owner for i in rewritten}
    owners = {i.stat.ephemeral_owner for i in own} - dead
    since_zk = max(i.stat.created for i in own)
    own_row = next((r for r in ev.rows or [] if r.service_name == CONFIG_SERVICE), None)
    since_db = parse_time(own_row.registered_at) if own_row else None
    lingering = [i for i in others if i.stat.ephemeral_owner in dead
                 or (i.stat.ephemeral_owner not in owners and i.stat.created < since_zk)]
    lost = [] if rewritten else _lost(ev, since_db if since_db is not None else since_zk)
    if not rewritten and not lingering and not lost:
        return None
    kind = "rewritten" if rewritten else "lingering" if lingering else "emptied"
    restarted = max(i.stat.modified for i in rewritten) if rewritten else since_zk
    return {"kind": kind, "since": restarted, "owners": sorted(hex(o) for o in owners),
            "rewritten": rewritten, "lingering": lingering, "lost": lost,
            "old_owners": sorted({hex(i.stat.ephemeral_owner) for i in lingering + rewritten})}


def _base_missing(ev: Evidence) -> bool:
    return any(p.kind == "base-missing" for p in ev.snapshot.problems)


@on_evidence
def check_restart(run: CheckRun, ev: Evidence) -> CheckResult:
    if not ev.zk_configured:
        return run.no_input("needs ZooKeeper to see which session owns the nodes",
                            "pass --zk HOST:PORT or set ZOOKEEPER_HOSTS")
    if ev.snapshot is None:
        return run.skip(f"ZooKeeper unreadable ({ev.zk_error.message if ev.zk_error else '?'})",
                        "fix zookeeper.session first")
    base = ev.snapshot.base_path
    inst_dir = f"{base.rstrip('/')}/{CONFIG_SERVICE}/instances"
    if _base_missing(ev):
        return run.skip(f"the base path {base} does not exist in ZooKeeper: cannot tell the Config Service's "
                        "session", "check --zk-base / ZOOKEEPER_BASE_PATH: the Config Service creates its base "
                        "path at start-up (the later generation's default is empty, the templates set /services)")
    found = restart_finding(ev)
    if found is None:
        own = own_nodes(ev)
        owner = own[0].stat.owner_hex if own else "?"
        return run.passed(f"no sign of a restart: the Config Service's own node is its start-up's (owned by "
                          f"{owner}, never rewritten), no instance outlives its session and no registered service "
                          "lost its instances")
    kind = found["kind"]
    lingering, lost = found["lingering"], found["lost"]
    services = sorted({i.service_name for i in lingering})
    details = {"kind": kind, "session": found.get("owners"), "old_sessions": found["old_owners"],
               "lingering": [f"{i.service_name}/{i.instance_id}" for i in lingering[:200]], "lost": lost[:200],
               "how": getattr(ev.session, "how", None)}
    claimed = lost + services
    if kind == "self-lost":
        return _self_lost(run, ev, found, inst_dir, details)
    since = _iso(found["since"])
    details["restarted_at"] = since
    explains = [{"check": ["hygiene.stale-rows", "service.registered"], "target": claimed},
                {"check": "hygiene.sessions"},
                # the nodes vanished behind the API's back: its cached lists of them are stale for up to 60 s
                {"check": "cause.stale-cache", "target": claimed}]
    if kind == "rewritten":
        node = found["rewritten"][0]
        old = ", ".join(found["old_owners"])
        if node.stat.version > 0:
            finding = (f"the Config Service restarted at {since} while its previous ZooKeeper session {old} was "
                       f"still open: its own node {node.path or inst_dir} was rewritten in place (version "
                       f"{node.stat.version}) and keeps that session")
        else:
            finding = (f"the Config Service restarted or lost its ZooKeeper session: its own node "
                       f"{node.path or inst_dir} is owned by session {old}, which is gone "
                       f"({getattr(ev.session, 'how', None) or 'known dead'})")
        if lingering:
            finding += (f"; {len(lingering)} instance(s) of {len(services)} service(s) ({_names(services)}) are "
                        "still owned by that session too, and all vanish when that session expires "
                        f"({DEFAULT_SESSION_S} s by default), its own node with them")
            return run.fail(finding, LINGER_FIX, **details, explains=explains)
        finding += (f": it vanishes when that session expires ({DEFAULT_SESSION_S} s by default); no other instance "
                    "is owned by it")
        return run.warn(finding, "restart the Config Service once more after the old session expired, so it "
                                 "registers its own node under its current session", **details, explains=explains)
    if lingering:
        finding = (f"the Config Service restarted at {since} (its own node is owned by session "
                   f"{', '.join(found['owners'])} since then): {len(lingering)} instance(s) of {len(services)} "
                   f"service(s) ({_names(services)}) are still owned by its previous session "
                   f"{', '.join(found['old_owners'])} and vanish when that session expires "
                   f"({DEFAULT_SESSION_S} s by default)")
        if lost:
            finding += f"; {len(lost)} more service(s) already lost every instance ({_names(lost)})"
        return run.fail(finding, LINGER_FIX if not lost else RESTART_FIX, **details, explains=explains)
    finding = (f"the registry emptied at {since}: the Config Service restarted (its own node is new since "
               f"then) and {len(lost)} service(s) registered before have no live instance: {_names(lost)}")
    return run.fail(finding, RESTART_FIX, **details, explains=explains)


def _self_lost(run: CheckRun, ev: Evidence, found: dict, inst_dir: str, details: dict) -> CheckResult:
    """The Config Service has no node of its own: its session ended, and every node it held went with it."""
    lost, unknown, live = found["lost"], found["unknown"], found["live"]
    svc = ev.snapshot.service(CONFIG_SERVICE)
    if ev.answers is False:
        return run.skip(f"no Config Service node under {inst_dir}, and the Config Service does not answer (see "
                        "config.*): it is not running, so its nodes are gone with its session", "start the Config "
                        "Service, then run regctl doctor again: its instances do not come back by themselves",
                        **details)
    if (svc is None or not svc.exists) and not ev.snapshot.services:
        return run.skip(f"{ev.snapshot.base_path} holds no service directory, not even the Config Service's "
                        f"({inst_dir}, created when it registers itself at start-up): could not tell its session",
                        "if --zk-base is not the Config Service's ZOOKEEPER_BASE_PATH, pass that one", **details)
    gone = "its own node is gone (it writes it only at start-up)"
    claimed = list(dict.fromkeys([*lost, *unknown, CONFIG_SERVICE,
                                  *(s.name for s in ev.snapshot.services if not s.instances)]))
    explains = [{"check": ["hygiene.stale-rows", "service.registered"], "target": claimed},
                {"check": "hygiene.sessions"},
                {"check": "cause.stale-cache", "target": claimed}]
    details.update(unknown=unknown[:200], live_since=len(live))
    if lost or unknown:
        what = []
        if lost:
            what.append(f"{len(lost)} registered service(s) have no live instance ({_names(lost)}), their database "
                        "rows remain")
        if unknown:
            what.append(f"{len(unknown)} more read 'unknown' with no live instance ({_names(unknown)}: deregistered, "
                        "or marked so by a health call since)")
        if live:
            head = (f"the Config Service lost its ZooKeeper session: {gone}, and so is every instance registered "
                    f"before; {len(live)} instance(s) registered since are owned by {', '.join(found['owners'])}")
        else:
            head = (f"the registry emptied: the Config Service restarted or lost its ZooKeeper session, and every "
                    f"instance is gone; {gone}")
        return run.fail(head + "; " + "; ".join(what), LOST_FIX, **details, explains=explains)
    seeded = (f" ({found['seeded']} seeded row(s) never had any)" if found["seeded"] else "")
    return run.warn(f"the Config Service restarted or lost its ZooKeeper session: {gone}; no registered service had "
                    f"instances to lose{seeded}", SELF_LOST_FIX, **details, explains=explains)


def bad_status_fix(name: str, inst) -> str:
    iid = _cut(inst.instance_id, 200)
    return (f"re-register it with a valid status ({', '.join(VALID_STATUSES)}), e.g. regctl register --name {name} "
            f"--url {_cut(inst.service_url or 'URL', 200)} --instance-id {iid} --status healthy, or deregister it: "
            f"regctl deregister {name} {iid}")


@on_evidence
def check_bad_status(run: CheckRun, ev: Evidence) -> list[CheckResult] | CheckResult:
    if not ev.targets:
        return run.no_input("no service selected", "pick one with --service NAME, or check every one with --all")
    if ev.snapshot is None:
        failed = [n for n in ev.targets if n in ev.failed_reads()]
        if not ev.zk_configured and failed:
            return run.warn(f"GET /services/{failed[0]} answers 500; without ZooKeeper regctl cannot see whether an "
                            "instance has a status the Config Service cannot parse",
                            f"pass --zk HOST:PORT to read its nodes (regctl inspect {failed[0]} --source zk)",
                            target=failed[0])
        return run.skip("needs ZooKeeper to read the instances' statuses" if not ev.zk_configured else
                        f"ZooKeeper unreadable ({ev.zk_error.message if ev.zk_error else '?'})",
                        "pass --zk HOST:PORT or set ZOOKEEPER_HOSTS" if not ev.zk_configured else
                        "fix zookeeper.session first", no_input=True if not ev.zk_configured else None)
    rows = []
    for name in ev.targets:
        bad = [i for i in ev.zk_instances(name) or [] if i.status not in VALID_STATUSES]
        if not bad:
            continue
        read = ev.reads.get(name)
        said = ("GET /services/{n} answers 500".format(n=name) if isinstance(read, RegctlError)
                and _status(read) == 500 else f"GET /services/{name}, /url and /discover answer 500")
        statuses = ", ".join(f"{_cut(i.instance_id)}={_cut(i.status, 40)!r}" for i in bad[:_LIST_MAX])
        rows.append(run.fail(f"{said} for the whole service: instance status the Config Service cannot parse "
                             f"({statuses})", bad_status_fix(name, bad[0]), target=name,
                             instances=[i.instance_id for i in bad],
                             explains=[{"target": [name] + [f"{name}/{i.instance_id}" for i in bad],
                                        "api_status": [500, 400]}]))
    if rows:
        return rows
    return run.passed(f"every instance status of {len(ev.targets)} service(s) is one the Config Service can parse")


@on_evidence
def check_stale_cache(run: CheckRun, ev: Evidence) -> list[CheckResult] | CheckResult:
    if not ev.targets:
        return run.no_input("no service selected", "pick one with --service NAME, or check every one with --all")
    if ev.snapshot is None:
        return run.skip("needs ZooKeeper to compare the API's list with" if not ev.zk_configured else
                        f"ZooKeeper unreadable ({ev.zk_error.message if ev.zk_error else '?'})",
                        "pass --zk HOST:PORT or set ZOOKEEPER_HOSTS" if not ev.zk_configured else
                        "fix zookeeper.session first", no_input=True if not ev.zk_configured else None)
    rows, compared = [], 0
    for name in ev.targets:
        api = ev.reads.get(name)
        if api is None or isinstance(api, RegctlError):
            continue
        zk = ev.zk_instances(name) or []
        compared += 1
        if not instances_differ(api, zk):
            continue
        api_ids, zk_ids = {i.instance_id for i in api}, {i.instance_id for i in zk}
        diff = []
        if api_ids - zk_ids:
            diff.append("only in the API: " + _names(sorted(api_ids - zk_ids)))
        if zk_ids - api_ids:
            diff.append("only in ZooKeeper: " + _names(sorted(zk_ids - api_ids)))
        rows.append(run.warn(f"the API serves a stale cached list of {name} ({'; '.join(diff) or 'same ids, other data'})"
                             + (": /url may hand out an instance that is gone" if api_ids - zk_ids else ""),
                             "the Config Service's cache keeps a list up to 60 s when a node changes behind the API's back: "
                             "wait a minute, or register/deregister anything in that service through the API, which "
                             "evicts it", target=name, api_instances=sorted(api_ids), zk_instances=sorted(zk_ids),
                             explains=[{"check": "service.api-view", "target": name}]
                             + ([{"check": ["service.registered", "hygiene.stale-rows"], "target": name}]
                                if not zk else [])))
    if rows:
        return rows
    if not compared:
        return run.skip("the API's lists could not be read (see the other cause rows)", "see cause.redis")
    return run.passed(f"the API's list agrees with ZooKeeper for {compared} service(s)")


# ---------------------------------------------------------------------------

CHECKS: tuple[Check, ...] = (
    Check("cause.redis", "cause", "Redis down: every per-service read answers 500 (the registry is down for "
          "discovery, not just slower)", check_redis, cut_status="skip"),
    Check("cause.postgres", "cause", "PostgreSQL down: GET /services answers 500 while per-service reads work; "
          "writes answer 500 after reaching ZooKeeper", check_postgres, cut_status="skip"),
    Check("cause.zk-client", "cause", "the Config Service's own ZooKeeper client gave up while ZooKeeper itself "
          "answers (restart the Config Service)", check_zk_client, cut_status="skip"),
    Check("cause.restart", "cause", "the Config Service restarted or lost its session: its own node rewritten in "
          "place (everything it holds vanishes soon) or gone (every instance went), nodes of an old session, or "
          "services that lost every instance at once (restore with regctl import)", check_restart,
          cut_status="skip"),
    Check("cause.bad-status", "cause", "an instance status the Config Service cannot parse: 500 for that service "
          "only", check_bad_status, cut_status="skip"),
    Check("cause.stale-cache", "cause", "the API's cached list of a service differs from ZooKeeper (up to 60 s)",
          check_stale_cache, cut_status="skip"),
)

