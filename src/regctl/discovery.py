"""Would a client that follows the integration guide find a working instance right now?

The guide's client asks ``GET /services/{name}/url`` and uses the answer. That call
reads the same (cached) instance list as ``GET /services/{name}`` and picks one whose
``status`` is ``healthy``, so its outcome follows from that list: 500 when the list
answers 500, 404 when no listed instance has status ``healthy``. This module judges
each service from what was read (no printing, no typer/rich):

* what ZooKeeper holds (the truth about which instances are live),
* what the API's per-service read answered (what clients are actually handed),
* optionally whether the instances answer their health URL (probes).

:func:`read_registry` reads the sources (the services list and ZooKeeper side by
side, then every service's instance list concurrently and bounded);
:func:`judge` turns one service's evidence into a :class:`DiscoveryVerdict`:
``discoverable`` is True (yes), False (no, with the reason observed) or None (could
not check, with what could not be read).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

from regctl.deadline import Raised, run_all
from regctl.errors import BadResponse, RegctlError, Unreachable, UsageError
from regctl.models import Instance, ServiceRow, ZkSnapshot

#: the statuses the Config Service's enum accepts; any other makes its reads of that service answer 500
VALID_STATUSES = ("healthy", "unhealthy", "unknown", "starting", "stopping")

#: the name under which the Config Service registers itself
CONFIG_SERVICE = "config-service"

#: reason -> meaning (docs/output.md lists the same; a test keeps them in step)
REASONS = {
    "no-instances": "no instance is live, so /url answers 404",
    "no-healthy-status": "instances are live but none registered status 'healthy', so /url answers 404",
    "bad-status": "an instance registered a status the Config Service cannot parse: every read of the "
                  "service answers 500",
    "api-500": "the API's read of the service answered HTTP 500 (also api-502, api-503, api-504)",
    "stale-cache": "the API hands out only instances ZooKeeper no longer holds (its cache lasts up to 60 s)",
    "api-differs": "ZooKeeper holds an instance with status 'healthy' but the API lists none",
    "orphaned-session": "(a caveat on OK) the instances are owned by a ZooKeeper session other than the Config "
                        "Service's current one: they vanish when it expires",
    "not-answering": "with --probe: no instance with status 'healthy' answers its health URL",
    "unreachable-from-here": "with --probe: the health URLs could not be checked from this machine "
                             "(their host does not resolve here)",
    "api-unreachable": "could not check: the Config Service could not be reached",
    "api-bad-answer": "could not check: the API answered something unusable (HTML, wrong shape, refused)",
    "zk-unreadable": "could not check: ZooKeeper could not be read and the API was not asked",
    "not-read": "could not check: no source was read for this service",
}


@dataclass(frozen=True)
class DiscoveryVerdict:
    """One service's answer: discoverable True/False/None, why, and one readable sentence.

    ``reason`` is None when discoverable and nothing is off; a discoverable service
    may carry a caveat reason (``stale-cache``, ``api-differs``) when some of what the
    API hands out is wrong.
    """

    service: str
    discoverable: bool | None
    reason: str | None
    detail: str
    #: where the verdict came from: "api", "zookeeper" (predicted), or "none"
    judged_from: str = "api"
    #: instances a client can be handed (status healthy, live); None when not known
    candidates: int | None = None
    #: candidates that answered a probe; None without probes
    answering: int | None = None

    @property
    def label(self) -> str:
        """The DISCOVERY cell: ``OK``, ``OK (caveat)``, or the reason."""
        if self.discoverable:
            return "OK" if not self.reason else f"OK ({self.reason})"
        return self.reason or ("no" if self.discoverable is False else "unknown")

    def to_dict(self) -> dict:
        return {"discoverable": self.discoverable, "reason": self.reason, "detail": self.detail,
                "judged_from": self.judged_from, "candidates": self.candidates, "answering": self.answering}


def api_reason(err: RegctlError) -> tuple[bool | None, str]:
    """(discoverable, reason) for a failed per-service API read."""
    code = getattr(err, "status_code", None)
    if isinstance(code, int) and 500 <= code < 600:
        return False, f"api-{code}"
    if isinstance(err, Unreachable):
        return None, "api-unreachable"
    return None, "api-bad-answer"


#: metadata keys a registration through the API writes into the service's row (the guide's client sends both)
REGISTRATION_KEYS = ("instance_id", "status")


def is_seeded(row: ServiceRow, zk_dir: bool | None = None) -> bool:
    """Whether a database row was seeded by the deployment and never had an instance here.

    The later generation's migrations insert rows with status ``healthy``, no
    ``registered_at`` and metadata of their own (``version``, ``environment``). A
    registration leaves marks a seeded row does not have: ``registered_at`` on a new
    name, the metadata it sent (``instance_id``, ``status``) over an existing row, and
    the service's directory in ZooKeeper (``{base}/{name}``, created on the first
    registration and never removed). ``zk_dir``: whether that directory exists (None:
    ZooKeeper not read, so the row alone decides).
    """
    if (row.registered_at or "").strip():
        return False
    meta = row.metadata if isinstance(row.metadata, Mapping) else {}
    if any(k in meta for k in REGISTRATION_KEYS):
        return False
    return not zk_dir


def bad_statuses(instances: Iterable[Instance]) -> list[Instance]:
    return [i for i in instances if i.status not in VALID_STATUSES]


def judge(service: str, *, zk: Sequence[Instance] | None = None, zk_error: str | None = None,
          api: "Sequence[Instance] | RegctlError | None" = None,
          probes: Mapping[str, Any] | None = None,
          owners: "frozenset[int] | None" = None, dead: "frozenset[int]" = frozenset()) -> DiscoveryVerdict:
    """The verdict for one service.

    ``zk``: the live instances ZooKeeper holds (None: not read; ``zk_error`` says why).
    ``api``: what ``GET /services/{name}`` answered (a list, the error, or None: not asked).
    ``probes``: instance id -> :class:`regctl.prober.ProbeResult`, when probing was asked.
    ``owners``: the ZooKeeper sessions that own the Config Service's own nodes; a
    candidate owned by another session is on borrowed time (``orphaned-session``), and so is one
    owned by a session in ``dead`` (known gone: see :func:`regctl.transfer.live.current_session`).
    """
    zk_list = list(zk) if zk is not None else None
    if isinstance(api, RegctlError):
        found, reason = api_reason(api)
        bad = bad_statuses(zk_list or [])
        if found is False and bad:
            shown = ", ".join(f"{i.instance_id}={i.status!r}" for i in bad[:3])
            return DiscoveryVerdict(service, False, "bad-status",
                                    f"{shown}: not a status the Config Service accepts, so every read of "
                                    f"{service} answers HTTP {api.status_code}", "api")
        return DiscoveryVerdict(service, found, reason, f"the API's read of {service} failed: {api.message}", "api")
    api_list = list(api) if api is not None else None
    if api_list is None and zk_list is None:
        if zk_error:
            return DiscoveryVerdict(service, None, "zk-unreadable", f"ZooKeeper could not be read: {zk_error}",
                                    "none")
        return DiscoveryVerdict(service, None, "not-read", "nothing was read for this service", "none")
    judged_from = "api" if api_list is not None else "zookeeper"
    view = api_list if api_list is not None else zk_list
    assert view is not None
    if api_list is None:  # ZooKeeper alone: predict what the API would answer
        bad = bad_statuses(view)
        if bad:
            shown = ", ".join(f"{i.instance_id}={i.status!r}" for i in bad[:3])
            return DiscoveryVerdict(service, False, "bad-status",
                                    f"{shown}: not a status the Config Service accepts; its reads of "
                                    f"{service} answer 500 (judged from ZooKeeper)", judged_from, 0)
    healthy = [i for i in view if i.discoverable]
    zk_healthy = [i for i in zk_list or [] if i.discoverable]
    if not healthy:
        if api_list is not None and zk_healthy:
            return DiscoveryVerdict(service, False, "api-differs",
                                    f"ZooKeeper holds {_ids(zk_healthy)} with status 'healthy' but the API "
                                    f"lists {'none' if not api_list else 'no healthy one'} (its cache is behind)",
                                    judged_from, 0)
        if not view:
            where = "the API lists none" if api_list is not None else "ZooKeeper holds none"
            return DiscoveryVerdict(service, False, "no-instances", f"no live instance ({where})", judged_from, 0)
        statuses = ", ".join(f"{i.instance_id}={i.status}" for i in view[:5])
        return DiscoveryVerdict(service, False, "no-healthy-status",
                                f"{len(view)} live, none with status 'healthy' ({statuses})", judged_from, 0)
    caveat = None
    detail = f"{len(healthy)} instance(s) with status 'healthy'"
    candidates = healthy
    if zk_list is not None and api_list is not None:
        zk_ids = {i.instance_id for i in zk_list}
        gone = [i for i in healthy if i.instance_id not in zk_ids]
        if len(gone) == len(healthy):
            return DiscoveryVerdict(service, False, "stale-cache",
                                    f"/url hands out {_ids(gone)} which ZooKeeper no longer holds "
                                    f"(the API's cache lasts up to 60 s)", judged_from, 0)
        zk_by_id = {i.instance_id: i for i in zk_list}
        candidates = [zk_by_id[i.instance_id] for i in healthy if i.instance_id in zk_by_id]
        if gone:
            caveat = "stale-cache"
            detail += f"; /url may also hand out {_ids(gone)}, which ZooKeeper no longer holds"
        elif {i.instance_id for i in zk_healthy} - {i.instance_id for i in healthy}:
            caveat = "api-differs"
            detail += "; ZooKeeper holds more instances with status 'healthy' than the API lists"
    if (owners or dead) and caveat is None:
        # a persistent node (no owner) belongs to no session: it never expires (its own problem says so)
        orphaned = [i for i in candidates if i.stat is not None and i.stat.ephemeral_owner and (
            i.stat.ephemeral_owner in dead or (owners and i.stat.ephemeral_owner not in owners))]
        if orphaned:
            caveat = "orphaned-session"
            detail += (f"; {_ids(orphaned)} {'is' if len(orphaned) == 1 else 'are'} owned by session "
                       f"{orphaned[0].stat.owner_hex}, not the Config Service's current one: gone when it "
                       f"expires (the Config Service restarted?)")
    answering = None
    if probes is not None:
        results = [probes.get(i.instance_id) for i in candidates]
        ok = [r for r in results if r is not None and r.healthy]
        answering = len(ok)
        if not ok:
            unchecked = [r for r in results if r is None or not getattr(r, "checked", True)]
            if len(unchecked) == len(results):
                return DiscoveryVerdict(service, None, "unreachable-from-here",
                                        f"could not check from here: {_probe_errors(results)}", judged_from,
                                        len(candidates), 0)
            return DiscoveryVerdict(service, False, "not-answering",
                                    f"{len(candidates)} with status 'healthy', none answers its health URL "
                                    f"({_probe_errors(results)})", judged_from, len(candidates), 0)
        detail += f", {len(ok)} answering"
    if judged_from == "zookeeper":
        detail += " (judged from ZooKeeper; the API was not read)"
    return DiscoveryVerdict(service, True, caveat, detail, judged_from, len(candidates), answering)


def _ids(instances: Sequence[Instance]) -> str:
    shown = ", ".join(i.instance_id for i in instances[:3])
    return shown + (f" and {len(instances) - 3} more" if len(instances) > 3 else "")


def _probe_errors(results: Sequence[Any]) -> str:
    parts = [f"{r.instance_id}: {r.error or 'unhealthy'}" for r in results if r is not None][:3]
    return ", ".join(parts) or "not probed"


# ---------------------------------------------------------------------------
# reading the sources
# ---------------------------------------------------------------------------

@dataclass
class RegistryRead:
    """What was read from each source, and what failed (never a guess)."""

    want_api: bool
    want_zk: bool
    rows: list[ServiceRow] | None = None
    rows_error: RegctlError | None = None
    snapshot: ZkSnapshot | None = None
    zk_error: RegctlError | None = None
    #: per-service answers of GET /services/{name}: the list, or the error
    instances: dict[str, Any] = field(default_factory=dict)
    #: the error that kept the per-service reads from being sent (the API is unreachable)
    instances_skipped: RegctlError | None = None

    @property
    def api_read(self) -> bool:
        """Whether the API answered anything usable (the list or any service's instances)."""
        return self.rows is not None or any(isinstance(v, list) for v in self.instances.values())

    @property
    def api_answered(self) -> bool:
        """Whether the Config Service answered any call over HTTP (a list, or an HTTP error status);
        False when it is down as a whole (unreachable, or a gateway's 502/503/504 to the services list)."""
        if self.instances_skipped is not None:
            return False

        def http(v: Any) -> bool:
            return isinstance(v, list) or isinstance(getattr(v, "status_code", None), int)

        return self.rows is not None or http(self.rows_error) or any(http(v) for v in self.instances.values())

    @property
    def any_read(self) -> bool:
        return self.api_read or self.snapshot is not None

    def names(self) -> list[str]:
        names = {r.service_name for r in self.rows or []}
        if self.snapshot is not None:
            names |= {s.name for s in self.snapshot.services if s.exists}
        return sorted(names | set(self.instances))

    def api_answer(self, name: str) -> "list[Instance] | RegctlError | None":
        """GET /services/{name}'s answer: the list, its error, or None (not asked)."""
        if name in self.instances:
            return self.instances[name]
        if self.want_api and self.instances_skipped is not None:
            return self.instances_skipped
        return None

    def zk_instances(self, name: str) -> list[Instance] | None:
        """ZooKeeper's live instances of ``name`` ([] when ZooKeeper was read and has none)."""
        if self.snapshot is None:
            return None
        svc = self.snapshot.service(name)
        if svc is None:
            return []
        if any(p.kind == "unreadable" for p in svc.problems) and not svc.instances:
            return None
        return list(svc.instances)

    def verdict(self, name: str, probes: Mapping[str, Any] | None = None) -> DiscoveryVerdict:
        zk_error = str(self.zk_error) if self.zk_error else None
        zk = self.zk_instances(name)
        if zk is None and self.snapshot is not None:
            zk_error = "its nodes could not be read"
        api = self.api_answer(name)
        if api is not None and api is self.instances_skipped:  # not asked: could not check, not "no"
            api = Unreachable(f"not asked, the Config Service is down ({api.message})", where=api.where)
        current, dead = self.config_sessions()
        return judge(name, zk=zk, zk_error=zk_error, api=api, probes=probes, owners=current, dead=dead)

    def row(self, name: str) -> ServiceRow | None:
        return next((r for r in self.rows or [] if r.service_name == name), None)

    def seeded(self, name: str) -> bool:
        """A seeded database row (:func:`is_seeded`) whose service shows no live instance in what was read."""
        row = self.row(name)
        if row is None:
            return False
        zk_dir = None
        if self.snapshot is not None:
            svc = self.snapshot.service(name)
            zk_dir = svc is not None and svc.exists
        if not is_seeded(row, zk_dir):
            return False
        api = self.instances.get(name)
        return not (isinstance(api, list) and api)

    def failed_reads(self, explained: Iterable[str] = ()) -> dict[str, RegctlError]:
        """Per-service API reads that failed, less those ``explained`` (e.g. by a status seen in ZooKeeper)."""
        skip = set(explained)
        return {n: e for n, e in self.instances.items() if isinstance(e, RegctlError) and n not in skip}

    def api_unread(self, explained: Iterable[str] = (), cause: str | None = None) -> RegctlError | None:
        """The could-not-check error when an API read failed (exit 3), naming each call; None when all answered.

        ``explained``: services whose failed read is itself the answer (a bad status
        seen in ZooKeeper). ``cause``: what broke, when known (:func:`api_failure_cause`).
        """
        if not self.want_api or not self.api_answered:
            return None  # not asked, or not reachable at all: --source auto shows ZooKeeper's view and warns
        parts = []
        where = None
        if self.rows_error is not None:
            parts.append(f"GET /services (the services list, read from the database) failed: "
                         f"{short_error(self.rows_error)}")
            where = self.rows_error.where
        failed = self.failed_reads(explained)
        if failed:
            total = len(self.instances)
            parts.append(f"GET /services/NAME (a service's instance list) failed for {len(failed)} of {total} "
                         f"service(s) ({failure_counts(failed.values())}): {_names_of(sorted(failed))}")
            where = where or next(iter(failed.values())).where
        if not parts:
            return None
        hint = (f"{cause}; see: regctl doctor cause" if cause else
                "what was read is shown above; find what broke with: regctl doctor cause")
        return Unreachable("could not read everything from the API: " + "; ".join(parts), where=where, hint=hint)

    def config_sessions(self) -> "tuple[frozenset[int] | None, frozenset[int]]":
        """(current, dead) sessions, from the Config Service's own nodes (``config-service``).

        A node never rewritten (``stat.version`` 0) is owned by the current session. One
        rewritten in place was re-registered by a restart while its old session lived:
        that owner is dead (it keeps the node and vanishes with it). Current is None
        when no node tells.
        """
        if self.snapshot is None:
            return None, frozenset()
        svc = self.snapshot.service(CONFIG_SERVICE)
        nodes = [i for i in (svc.instances if svc else ()) if i.stat is not None and i.stat.ephemeral_owner]
        dead = frozenset(i.stat.ephemeral_owner for i in nodes if i.stat.version > 0)
        current = frozenset(i.stat.ephemeral_owner for i in nodes if i.stat.version == 0) - dead
        return current or None, dead

    def sources(self, config_url: str, zk_hosts: str | None, zk_base: str) -> dict:
        """The ``sources`` object of ``-o json``: per source whether it was read, and the error."""
        failed = sorted(n for n, v in self.instances.items() if isinstance(v, RegctlError))
        api = None
        if self.want_api:
            err = self.rows_error
            api = {"url": config_url, "read": self.api_read,
                   "error": str(err) if err else None, "error_code": _code(err),
                   "services_list": {"read": self.rows is not None, "error": str(err) if err else None},
                   "instances": {"read": sum(1 for v in self.instances.values() if isinstance(v, list)),
                                 "failed": failed,
                                 "skipped": str(self.instances_skipped) if self.instances_skipped else None}}
        zk = None
        if self.want_zk:
            zk = {"hosts": zk_hosts, "base_path": zk_base, "read": self.snapshot is not None,
                  "error": str(self.zk_error) if self.zk_error else None, "error_code": _code(self.zk_error)}
        return {"api": api, "zookeeper": zk}


def short_error(err: RegctlError) -> str:
    """``HTTP 500`` for an HTTP error, else the error's text without the call's name."""
    code = getattr(err, "status_code", None)
    if isinstance(code, int):
        return f"HTTP {code}"
    text = err.message
    return text.split(": ", 1)[1] if ": " in text else text


def failure_counts(errors: Iterable[RegctlError]) -> str:
    """``HTTP 500 for 12, [Errno 104] Connection reset by peer for 2``."""
    counts: dict[str, int] = {}
    for e in errors:
        key = short_error(e)
        counts[key] = counts.get(key, 0) + 1
    return ", ".join(f"{k} for {v}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1]))


def _names_of(names: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _code(err: RegctlError | None) -> int | None:
    return None if err is None else int(err.exit_code)


def read_registry(api: Callable[[], Any] | None, zk: Callable[[], Any] | None, *,
                  names: Sequence[str] | None = None, per_service: bool = True,
                  concurrency: int = 16) -> RegistryRead:
    """Read the services list and ZooKeeper side by side, then each service's instances.

    ``api``/``zk`` return a :class:`regctl.http.api.RegistryApi` / connected
    :class:`regctl.zookeeper.reader.ZkReader` (None: that source is not used). A source that
    fails is recorded, not raised (:class:`UsageError` and bugs are raised).
    ``names`` limits everything to those services. The per-service reads run
    concurrently, at most ``concurrency`` at once, and are skipped when the API
    could not be reached at all.
    """
    read = RegistryRead(want_api=api is not None, want_zk=zk is not None)
    wanted = list(names) if names else None

    def read_rows() -> None:
        try:
            rows = api().list_services()
        except RegctlError as exc:
            read.rows_error = exc
            return
        read.rows = [r for r in rows if wanted is None or r.service_name in wanted]

    def read_zk() -> None:
        try:
            # the Config Service's own node too: its session tells orphaned nodes apart
            read.snapshot = zk().snapshot(None if wanted is None else list(dict.fromkeys(wanted + [CONFIG_SERVICE])))
        except RegctlError as exc:
            read.zk_error = exc

    jobs = ([read_rows] if api is not None else []) + ([read_zk] if zk is not None else [])
    run_side_by_side(jobs)
    for err in (read.rows_error, read.zk_error):
        if isinstance(err, UsageError):
            raise err
    if api is None or not per_service:
        return read
    if isinstance(read.rows_error, Unreachable) or (
            isinstance(read.rows_error, BadResponse) and read.rows_error.status_code in (502, 503, 504)):
        read.instances_skipped = read.rows_error  # the Config Service is down: N more timeouts tell nothing
        return read
    targets = list(wanted) if wanted else read.names()
    if not targets:
        return read
    read.instances = dict(zip(targets, api().instances_of(targets, concurrency)))
    return read


def run_side_by_side(jobs: list) -> None:
    """Run the callables at once in daemon threads (Ctrl-C never waits for a request in flight).

    A job that raises (a bug: the jobs record what they expect) has it raised again here, in the caller's thread.
    """
    if len(jobs) <= 1:
        for job in jobs:
            job()
        return
    for got in run_all(jobs, name="regctl-read"):
        if isinstance(got, Raised):
            raise got.error


# ---------------------------------------------------------------------------
# the cause behind a 5xx, from the Config Service's own /health
# ---------------------------------------------------------------------------

#: /health component -> what it means for the registry
COMPONENT_EFFECTS = {
    "redis": "Redis is down: every read of instances answers 500 and writes fail after they happened",
    "postgres": "PostgreSQL is down: the services list answers 500 and writes fail after the node changed",
    # /health's "zookeeper" is the Config Service's own client: ZooKeeper down looks the same
    "zookeeper": ("the Config Service cannot reach ZooKeeper: if ZooKeeper is down, bring it back "
                  "(regctl doctor zookeeper); if it answers, the Config Service's own client gave up: "
                  "restart the Config Service"),
}


def health_cause(health: Mapping[str, Any] | None) -> str | None:
    """A short cause from ``GET /health``'s components (``Redis is down``), or None."""
    if not isinstance(health, Mapping):
        return None
    down = [name for name in ("redis", "postgres", "zookeeper")
            if str(health.get(name, "")).lower() == "unhealthy"]
    if not down:
        return None
    return "; ".join(COMPONENT_EFFECTS[name] for name in down)


def api_failure_cause(rows_ok: bool | None, reads: Mapping[str, Any], health: Mapping[str, Any] | None = None
                      ) -> str | None:
    """What broke, from the API's own answers (the contract's "How it fails"), or None when they do not say.

    ``rows_ok``: whether ``GET /services`` answered (None: not asked); ``reads``:
    name -> what ``GET /services/{name}`` answered (a list or the error); ``health``:
    ``GET /health``'s document when asked. The real ``/health`` answers a bare 503
    for Redis *or* PostgreSQL, so the two are told apart by which reads fail: the
    services list comes from the database, a service's instance list through Redis.
    """
    named = health_cause(health)
    if named:
        return named
    ok = [n for n, v in reads.items() if isinstance(v, list)]
    failed_500 = [n for n, v in reads.items() if isinstance(v, RegctlError) and getattr(v, "status_code", None) == 500]
    bare_503 = isinstance(health, Mapping) and health.get("http_status") == 503 and "redis" not in health
    also = "; /health answers a bare 503 (Redis or PostgreSQL)" if bare_503 else ""
    if rows_ok is False and ok:
        return ("PostgreSQL is down: GET /services (the database) answers 500 while GET /services/NAME answers"
                + also)
    if rows_ok and failed_500 and not ok:
        if isinstance(health, Mapping) and str(health.get("zookeeper", "")).lower() == "unhealthy":
            return COMPONENT_EFFECTS["zookeeper"]
        reported = isinstance(health, Mapping) and "redis" in health  # a report saying redis healthy
        if bare_503 or (len(failed_500) >= 2 and not reported):
            return ("Redis is down: every GET /services/NAME answers 500 while GET /services (the database) "
                    "answers" + also)
    return None


def fetch_health(api: Any) -> Mapping[str, Any] | None:
    """``GET /health``'s document (a bare 503 included), or None when it answers nothing usable."""
    try:
        return api.config_health()
    except RegctlError:
        return None


# ---------------------------------------------------------------------------
# did you mean
# ---------------------------------------------------------------------------

def did_you_mean(name: str, known: Iterable[str]) -> str | None:
    """``did you mean: asr-service?`` from names just read, or None when nothing is close."""
    close = difflib.get_close_matches(name, sorted(set(known) - {name}), n=3, cutoff=0.75)
    return f"did you mean: {', '.join(close)}?" if close else None


def known_names(api: Callable[[], Any] | None, zk: Callable[[], Any] | None) -> list[str]:
    """Service names ZooKeeper (else the API's services list) knows; [] when neither can be read."""
    if zk is not None:
        try:
            names = zk().service_names()
            if names is not None:
                return list(names)
        except RegctlError:
            pass
    if api is not None:
        try:
            return [r.service_name for r in api().list_services()]
        except RegctlError:
            pass
    return []
