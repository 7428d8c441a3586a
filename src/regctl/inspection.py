"""What the registry holds, read from both sources: ``list`` and ``inspect`` as reports.

:func:`list_services` and :func:`inspect_service` read the sources an operator asks
for (the Config Service's API, ZooKeeper, or both side by side, see
:func:`regctl.discovery.read_registry`), join them (:mod:`regctl.views`), judge each
service's discoverability (:mod:`regctl.discovery`), ask the later generation's
health monitor (:mod:`regctl.monitor`) and return a frozen report: what was asked,
what was read, the warnings, and the error the answer stands for (never an absence
that was not observed). Read-only; no printing; the CLI renders the reports and the
library can call the same functions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from regctl.connections import Clients, connections
from regctl.discovery import (
    DiscoveryVerdict,
    RegistryRead,
    api_failure_cause,
    did_you_mean,
    failure_counts,
    fetch_health,
    known_names,
    read_registry,
)
from regctl.errors import NotAuthorized, NotFound, RegctlError, Unreachable, UsageError
from regctl.models import ServiceRow, ZkService
from regctl.monitor import (
    COULD_NOT_CHECK,
    SKIPPED,
    MonitorVerdict,
    contradiction,
    contradiction_warning,
    describe,
    monitor_view,
    service_monitor,
    skipped,
)
from regctl.names import validate_service_name
from regctl.prober import probe_many, targets_for
from regctl.settings import Endpoint
from regctl.views import ServiceDetail, ServiceSummary, detail, summarize

SOURCES = ("auto", "api", "zk")


# ---------------------------------------------------------------------------
# reading the two sources
# ---------------------------------------------------------------------------

def check_source(endpoint: Endpoint, source: str) -> tuple:
    """(want_api, want_zk) for ``source`` (auto, api, zk); UsageError for bad combinations."""
    source = source.lower()
    if source not in SOURCES:
        raise UsageError(f"--source {source!r} is unknown", hint="use auto, api or zk")
    if source == "zk" and not endpoint.zk_configured:
        raise UsageError("--source zk needs ZooKeeper", hint="pass --zk HOST:PORT or set ZOOKEEPER_HOSTS")
    return source in ("auto", "api"), source == "zk" or (source == "auto" and endpoint.zk_configured)


def read_sources(endpoint: Endpoint, clients: Clients, source: str, names: list | None = None) -> RegistryRead:
    """Read the sources ``source`` asks for; raise when nothing could be read (the one source's error, or
    one line naming both)."""
    want_api, want_zk = check_source(endpoint, source)
    read = read_registry(clients.api if want_api else None, clients.zk if want_zk else None, names=names)
    if not read.any_read:
        raise unreadable_error(read)
    return read


def unreadable_error(read: RegistryRead) -> RegctlError:
    """The error when no source could be read: the one that failed, or both in one line."""
    api_err = read.rows_error
    if api_err is None:
        api_err = next((v for v in read.instances.values() if isinstance(v, RegctlError)), None)
    failed = [(what, e) for what, e in (("API", api_err), ("ZooKeeper", read.zk_error)) if e is not None]
    if len(failed) == 1:
        return failed[0][1]
    if not failed:
        return Unreachable("nothing was read", hint="check --config-url and --zk")
    if all("refused" in e.message for _, e in failed):  # nothing listens at either: say it short
        parts = urlsplit(api_err.where or "")
        api_at = f"{parts.scheme}://{parts.netloc}" if parts.netloc else (api_err.where or "?")
        return Unreachable(f"could not read either source: the Config Service ({api_at}) and ZooKeeper "
                           f"({read.zk_error.where or '?'}) refused the connection",
                           hint="are they running? check --config-url and --zk")
    text = "; ".join(f"{what}: {e.message}" + (f" ({e.where})" if e.where else "") for what, e in failed)
    hint = "; ".join(dict.fromkeys(e.hint for _, e in failed if e.hint)) or "check --config-url and --zk"
    return Unreachable(f"could not read either source: {text}", hint=hint)


def source_note(endpoint: Endpoint, read: RegistryRead) -> str:
    """``read: API http://... and ZooKeeper host:2181 /services``, each marked when it failed."""
    parts = []
    if read.want_api:
        parts.append(f"API {endpoint.config_url}" + ("" if read.api_read else " (failed)"))
    if read.want_zk:
        parts.append(f"ZooKeeper {endpoint.zk_hosts} {endpoint.zk_base}"
                     + ("" if read.snapshot is not None else " (failed)"))
    return "read: " + " and ".join(parts)


def source_warnings(read: RegistryRead) -> list:
    """One warning per source that failed, saying what is not shown because of it."""
    out = []
    if read.zk_error is not None and read.api_read:
        out.append(f"ZooKeeper could not be read: {read.zk_error} -- showing the API's view only")
    if read.rows_error is not None and read.any_read:
        out.append(f"the services list could not be read: {read.rows_error} -- database rows not shown")
    return out


def read_sources_doc(endpoint: Endpoint, read: RegistryRead) -> dict:
    """The ``sources`` object of ``-o json``."""
    return read.sources(endpoint.config_url, endpoint.zk_hosts if read.want_zk else None, endpoint.zk_base)


def explained_failures(read: RegistryRead, verdicts: dict) -> list:
    """Services whose failed API read is itself the answer, seen in ZooKeeper: a status the Config Service
    cannot parse, or nodes that do not fit the layout (both are shown; neither is "could not check")."""
    out = []
    for name, verdict in verdicts.items():
        svc = read.snapshot.service(name) if read.snapshot is not None else None
        if verdict.reason == "bad-status" or (svc is not None and svc.problems):
            out.append(name)
    return out


def read_failure_cause(clients: Clients, read: RegistryRead, explained: Any = ()) -> str | None:
    """What broke, when an API read failed: from which reads failed, and ``GET /health`` (asked only then)."""
    if not read.want_api or read.instances_skipped is not None:
        return None
    if read.rows_error is None and not read.failed_reads(explained):
        return None
    skip = set(explained)
    return api_failure_cause(read.rows_error is None, {n: v for n, v in read.instances.items() if n not in skip},
                             fetch_health(clients.api()))


def instance_read_warnings(read: RegistryRead, cause: str | None = None) -> list:
    """Per-service read failures: one line when they all failed (with the cause), else one each."""
    failed = read.failed_reads()
    if read.instances_skipped is not None and read.any_read:
        return [f"the per-service instance lists were not read (the API is down): {read.instances_skipped.message}"]
    if not failed:
        return []
    if len(failed) >= 2 and len(failed) == len(read.instances):
        return [f"every service's instance list failed ({failure_counts(failed.values())})"
                + (f": {cause}" if cause else "")]
    out = [f"instances of {n}: {e}" for n, e in sorted(failed.items())[:5]]
    if len(failed) > 5:
        out.append(f"... and {len(failed) - 5} more services whose instance list failed")
    return out


def noauth_error(endpoint: Endpoint, clients: Clients, problems: list) -> tuple:
    """(a NotAuthorized for the nodes a ZooKeeper ACL hid, the other problems).

    Counting a service whose instances ZooKeeper refused to show as "0 live" would be
    a wrong answer: what could be read is still shown, then the answer fails with
    one line (exit 3) saying how to pass credentials.
    """
    denied = [p for p in problems if p.kind == "unreadable" and "(NOAUTH)" in p.detail]
    if not denied:
        return None, problems
    more = f" and {len(denied) - 1} more node(s)" if len(denied) > 1 else ""
    err = NotAuthorized(f"ZooKeeper refused to read {denied[0].path} (NOAUTH){more}",
                        where=endpoint.zk_hosts, hint=getattr(clients.zk(), "noauth_hint", None))
    return err, [p for p in problems if p not in denied]


def suggest(endpoint: Endpoint, clients: Clients, name: str) -> str | None:
    """A did-you-mean from the names the registry holds now (read once more, on a failure path only)."""
    return did_you_mean(name, known_names(clients.api, clients.zk if endpoint.zk_configured else None))


# ---------------------------------------------------------------------------
# list
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class ListQuery:
    """What ``list`` asks."""

    #: only these services (empty: every service)
    names: tuple = ()
    #: auto (the API, plus ZooKeeper when configured), api or zk
    source: str = "auto"
    #: also probe every live instance's health URL
    probe: bool = False
    #: the CI gate: an error when a listed service is not discoverable (1) or could not be checked (3)
    fail_undiscoverable: bool = False
    #: also ask the later generation's health monitor for each service's verdict
    monitor: bool = False


@dataclass(frozen=True)
class ListedService:
    """One service as ``list`` shows it."""

    summary: ServiceSummary
    #: a seeded row (not gated unless named)
    seeded: bool
    #: its flags: the summary's, ``seeded`` in place of ``no-live-instance``, the monitor's contradiction
    flags: tuple
    #: the health monitor's verdict (None: not asked, or none)
    monitor: MonitorVerdict | None = None
    #: the monitor has nothing to say about it (e.g. a seeded row): its state reads "skipped"
    monitor_skipped: bool = False

    @property
    def name(self) -> str:
        return self.summary.name

    def to_dict(self) -> dict:
        doc = self.summary.to_dict()
        doc["seeded"] = self.seeded
        doc["flags"] = list(self.flags)
        if self.monitor is not None:
            doc["monitor"] = self.monitor.to_dict()
            if self.monitor_skipped:
                doc["monitor"]["detail"] = SKIPPED
        return doc


@dataclass(frozen=True)
class ListReport:
    """``list``'s answer: one entry per service, what was read from where, and what failed."""

    query: ListQuery
    services: tuple
    #: the ``sources`` object: per source whether it was read, and the error
    sources: dict
    #: every layout problem ZooKeeper showed
    problems: tuple
    #: the Config Service generation, when the monitor was asked
    generation: dict | None
    #: whether the monitor's verdicts are part of the answer (the later generation, asked)
    monitor_shown: bool
    #: whether the API answered anything usable
    api_read: bool
    #: ``read: API ... and ZooKeeper ...``
    read_note: str
    warnings: tuple
    #: the error the answer stands for (exit code), shown after what was read
    error: RegctlError | None
    #: what was learnt on the way (-v)
    debug: tuple = ()

    def to_dict(self) -> dict:
        return {
            "services": [s.to_dict() for s in self.services],
            "sources": self.sources,
            "problems": [p.to_dict() for p in self.problems],
            "probed": self.query.probe,
            "generation": self.generation,
        }


def seeded_flags(flags: Any) -> list:
    """A seeded row's flags: ``seeded`` in place of ``no-live-instance`` (it never had one)."""
    out = [f for f in flags if f != "no-live-instance"]
    return ["seeded", *out]


def list_services(endpoint: Endpoint, query: ListQuery = ListQuery(), clients: Clients | None = None) -> ListReport:
    """One entry per service: live instances, statuses registered, whether a client would discover it.

    ``clients``: the caller's (:class:`regctl.connections.Clients`); default: a
    :class:`regctl.connections.Connections` to ``endpoint``, closed before returning.
    """
    with connections(endpoint, clients) as opened:
        return _list(endpoint, query, opened)


def _list(endpoint: Endpoint, query: ListQuery, clients: Clients) -> ListReport:
    wanted = list(dict.fromkeys(query.names))
    for n in wanted:
        validate_service_name(n)
    read = read_sources(endpoint, clients, query.source, names=wanted or None)
    all_names = wanted or read.names()
    probes = _probe_services(endpoint, read, all_names) if query.probe else None
    verdicts = {n: read.verdict(n, (probes or {}).get(n) if query.probe else None) for n in all_names}
    answering = None
    if probes is not None:
        answering = {n: sum(1 for r in probes.get(n, {}).values() if r.healthy) for n in all_names}
    api_lists = {n: v for n, v in read.instances.items() if isinstance(v, list)}
    unread = [n for n, v in read.instances.items() if isinstance(v, RegctlError)]
    summaries = summarize(read.rows, read.snapshot, api_lists if read.instances else None, verdicts,
                          answering, unread)
    if wanted:
        summaries = [s for s in summaries if s.name in wanted]
    seeded = {x.name for x in summaries if read.seeded(x.name)}
    warnings: list = []
    debug: list = []
    generation, listed, shown = _with_monitor(clients, query.monitor and read.api_read, summaries, seeded,
                                              warnings, debug)
    explained = explained_failures(read, verdicts)
    cause = read_failure_cause(clients, read, explained)
    warnings += source_warnings(read) + instance_read_warnings(read, cause)
    unknown = [x.name for x in summaries if wanted and read.rows is not None and read.snapshot is not None
               and x.live == 0 and x.db_status is None and x.api_live in (None, 0)]
    known = known_names(clients.api, clients.zk if endpoint.zk_configured else None) if unknown else ()
    for name in unknown:  # the registry's names read once for all of them
        hint = did_you_mean(name, known)
        warnings.append(f"{name}: neither ZooKeeper nor the API knows it" + (f"; {hint}" if hint else ""))
    all_problems = read.snapshot.all_problems() if read.snapshot else []
    noauth, problems = noauth_error(endpoint, clients, all_problems)
    warnings += [f"{p.path}: {p.detail}" for p in problems]
    gate = gate_error(summaries, not_counted=seeded - set(wanted)) if query.fail_undiscoverable else None
    unread_error = read.api_unread(explained, cause)
    if noauth is not None:
        error = noauth
    elif isinstance(gate, NotFound):  # a service observed undiscoverable: the gate's "no" stands
        error = gate
    else:
        error = unread_error or gate
    return ListReport(query=query, services=tuple(listed), sources=read_sources_doc(endpoint, read),
                      problems=tuple(all_problems), generation=generation, monitor_shown=shown,
                      api_read=read.api_read, read_note=source_note(endpoint, read), warnings=tuple(warnings),
                      error=error, debug=tuple(debug))


def _with_monitor(clients: Clients, ask: bool, summaries: list, seeded: set, warnings: list, debug: list) -> tuple:
    """(the generation document or None, the listed services with the monitor's verdicts when it has them,
    whether it has them: the later generation). Appends the contradiction warnings and the debug line."""
    plain = [ListedService(x, x.name in seeded, tuple(seeded_flags(x.flags) if x.name in seeded else x.flags))
             for x in summaries]
    if not ask:
        return None, plain, False
    view = monitor_view(clients.api(), [x.name for x in summaries])
    debug.append(f"Config Service generation: {view.info.generation} ({view.info.evidence})")
    generation = view.info.to_dict()
    if not view.info.later:
        return generation, plain, False
    out = []
    for item in plain:
        x = item.summary
        verdict = view.get(x.name)
        if verdict is None:
            out.append(item)
            continue
        flag = contradiction(verdict, x.healthy)
        if flag:
            warnings.append(contradiction_warning(x.name, flag, verdict))
        out.append(ListedService(x, item.seeded, item.flags + ((flag,) if flag else ()), verdict,
                                 skipped(verdict, x.live)))
    return generation, out, True


def _probe_services(endpoint: Endpoint, read: RegistryRead, names: list) -> dict:
    """{service: {instance id: ProbeResult}}: every live instance (ZooKeeper's view, else the API's)."""
    instances = []
    for n in names:
        live = read.zk_instances(n)
        if live is None:
            answer = read.api_answer(n)
            live = answer if isinstance(answer, list) else []
        instances.extend(live)
    results = probe_many(targets_for(instances), timeout=endpoint.timeout,
                         verify=endpoint.verify) if instances else []
    out: dict = {}
    for r in results:
        out.setdefault(r.service_name, {})[r.instance_id] = r
    return out


def gate_error(summaries: list, not_counted: set | frozenset = frozenset()) -> RegctlError | None:
    """``--fail-undiscoverable``: NotFound (1) for any not discoverable, else Unreachable (3) for unchecked.

    ``not_counted``: services left out of the gate (seeded rows that were not named).
    """
    left_out = [x for x in summaries if x.name in not_counted]
    summaries = [x for x in summaries if x.name not in not_counted]
    no = [x for x in summaries if x.discovery is not None and x.discovery.discoverable is False]
    unknown = [x for x in summaries if x.discovery is not None and x.discovery.discoverable is None]
    aside = f" ({len(left_out)} seeded row(s) not counted)" if left_out else ""

    def shown(items: list) -> str:
        text = ", ".join(f"{x.name} ({x.discovery.reason})" for x in items[:5])
        return text + (f" and {len(items) - 5} more" if len(items) > 5 else "")

    if no:
        return NotFound(f"{len(no)} of {len(summaries)} service(s) not discoverable{aside}: {shown(no)}",
                        hint=f"see why with: regctl inspect {no[0].name}")
    if unknown:
        return Unreachable(f"could not check whether {len(unknown)} service(s) are discoverable{aside}: "
                           f"{shown(unknown)}",
                           hint="fix the connection to the source named, then run again")
    return None


# ---------------------------------------------------------------------------
# inspect
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class InspectReport:
    """``inspect``'s answer: every instance of one service from both sources, and what failed."""

    name: str
    source: str
    #: the database row (None: none, or the services list was not read)
    row: ServiceRow | None
    #: the merged view: instances, whether they are known, whether the service is registered, warnings
    detail: ServiceDetail
    verdict: DiscoveryVerdict
    #: the layout problems ZooKeeper showed (the service's, then the base path's)
    problems: tuple
    sources: dict
    #: the health monitor's verdict with its contradiction ``flag`` (None: not asked, or no monitor)
    monitor: dict | None
    #: the monitor's verdict in words (``could not check`` when it answered nothing usable), None: none
    monitor_text: str | None
    #: ZooKeeper was asked but its view of this service is unknown
    zk_unread: bool
    read_note: str
    warnings: tuple
    error: RegctlError | None
    debug: tuple = ()

    def to_dict(self) -> dict:
        d = self.detail
        return {
            "service": self.name,
            "row": self.row.to_dict() if self.row else None,
            "instances": [v.to_dict() for v in d.instances],
            "instances_read": d.instances_known,
            "registered": d.registered,
            "discovery": self.verdict.to_dict(),
            "warnings": list(d.warnings),
            "problems": [p.to_dict() for p in self.problems],
            "sources": self.sources,
            "monitor": self.monitor,
        }


def inspect_service(endpoint: Endpoint, name: str, source: str = "auto",
                    clients: Clients | None = None) -> InspectReport:
    """Every instance of ``name``: both sources merged, the discovery verdict, the monitor's verdict.

    NotFound (raised) when both sources were read and neither knows the service;
    the report's ``error`` says when what inspect must show could not be read.
    """
    with connections(endpoint, clients) as opened:
        return _inspect(endpoint, name, source, opened)


def _inspect(endpoint: Endpoint, name: str, source: str, clients: Clients) -> InspectReport:
    validate_service_name(name)
    read = read_sources(endpoint, clients, source, names=[name])
    row = read.rows[0] if read.rows else None
    zk_service = read.snapshot.service(name) if read.snapshot else None
    if read.snapshot is not None and zk_service is None:
        zk_service = ZkService(name, (), (), exists=False)
    if zk_service is not None and read.zk_instances(name) is None:
        zk_service = None  # its nodes could not be read: unknown, not empty
    answer = read.api_answer(name)
    d = detail(name, row, zk_service, answer if isinstance(answer, list) else None, rows_read=read.rows is not None)
    raw = read.snapshot.service(name) if read.snapshot else None
    problems = list(raw.problems if raw is not None else ()) + (list(read.snapshot.problems) if read.snapshot else [])
    if d.registered is False and not problems:
        why = ("its ZooKeeper directory holds no instance and the Config Service has no row for it"
               if zk_service is not None and zk_service.exists else "neither ZooKeeper nor the API knows it")
        raise NotFound(f"service {name!r} is not registered ({why})",
                       hint=suggest(endpoint, clients, name) or "list what is registered with: regctl list")
    verdict = read.verdict(name)
    warnings: list = []
    debug: list = []
    monitor, monitor_text = _service_monitor(clients, name, read.api_read, d, warnings, debug)
    warnings += source_warnings(read)
    if isinstance(answer, RegctlError) and d.instances_known:
        warnings.append(f"the API could not list the instances of {name}: {answer}")
    warnings += d.warnings
    error, shown = noauth_error(endpoint, clients, problems)
    warnings += [f"{p.path}: {p.detail}" for p in shown]
    if error is None:
        error = _inspect_unknown(name, read, d, answer)
    if error is None:
        explained = explained_failures(read, {name: verdict})
        error = read.api_unread(explained, read_failure_cause(clients, read, explained))
    return InspectReport(name=name, source=source, row=row, detail=d, verdict=verdict, problems=tuple(problems),
                         sources=read_sources_doc(endpoint, read), monitor=monitor, monitor_text=monitor_text,
                         zk_unread=zk_service is None and read.want_zk, read_note=source_note(endpoint, read),
                         warnings=tuple(warnings), error=error, debug=tuple(debug))


def _service_monitor(clients: Clients, name: str, api_read: bool, d: ServiceDetail, warnings: list,
                     debug: list) -> tuple:
    """(the monitor's document with its contradiction flag, its verdict in words); (None, None) when the API
    was not read or has no monitor (earlier generation). Appends its warning and debug line."""
    if not api_read:
        return None, None
    verdict = service_monitor(clients.api(), name)
    debug.append("Config Service generation: " + ("earlier (no health monitor endpoint)" if verdict is None
                                                  else f"later or unknown (the monitor endpoint gave: {verdict.state})"))
    if verdict is None:
        return None, None
    discoverable = sum(1 for v in d.instances if v.instance.discoverable)
    flag = contradiction(verdict, discoverable)
    if flag:
        warnings.append(contradiction_warning(name, flag, verdict))
    elif verdict.state == COULD_NOT_CHECK:
        warnings.append(f"the Config Service's monitor verdict for {name} could not be read: {verdict.detail}")
    live = len(d.instances) if d.instances_known else None
    text = describe(verdict, live) if verdict.state != COULD_NOT_CHECK else "could not check"
    return {**verdict.to_dict(), "flag": flag}, text


def _inspect_unknown(name: str, read: RegistryRead, d: ServiceDetail, answer: Any) -> RegctlError | None:
    """Exit 3 when what inspect must say could not be read (never "no instances" unobserved)."""
    if not d.instances_known:
        failed = [f"ZooKeeper: {read.zk_error.message}" if read.zk_error is not None else None,
                  f"API: {answer.message}" if isinstance(answer, RegctlError) else None]
        text = "; ".join(f for f in failed if f) or "no source lists instances"
        return Unreachable(f"could not read the instances of {name!r}: {text}",
                           hint="check the source named, or read the other with --source")
    if d.registered is None and not read.want_api:
        return NotFound(f"service {name!r} has no live instance in ZooKeeper (--source zk: the API and its "
                        f"database rows were not read)", hint=f"read both with: regctl inspect {name}")
    if d.registered is None:
        err = read.rows_error or (answer if isinstance(answer, RegctlError) else None)
        why = f": {err.message}" if err is not None else ""
        return Unreachable(f"no live instance of {name!r} in ZooKeeper; whether it has a database row "
                           f"is unknown, the services list could not be read{why}",
                           hint="check the Config Service (regctl doctor)")
    return None


__all__ = ["InspectReport", "ListQuery", "ListReport", "ListedService", "inspect_service",
           "list_services", "suggest"]
