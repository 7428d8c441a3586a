"""Export and import as operations: each reads, decides and writes, and returns a report.

:func:`run_export` reads every live instance (ZooKeeper when configured, else the API) and
writes the export document to a file, or hands its text back. :func:`run_import` parses a
document, plans it against what is live (:mod:`regctl.transfer.restore`), asks the caller
before writing, applies the plan and reports what was planned, written, verified and failed.
The CLI (``regctl export``, ``regctl import``) and the library call the same functions; they
never print. Clients come from a :class:`Clients` (the CLI's run state is one): the API
client and a connected ZooKeeper reader, each opened only when the operation needs it.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Callable

from regctl import prober
from regctl.connections import Clients
from regctl.errors import BadResponse, UsageError
from regctl.http.bounded import replace_file
from regctl.settings import Endpoint
from regctl.transfer import live as tl
from regctl.transfer import restore
from regctl.transfer.file import (
    MAX_DEPTH,
    ExportFile,
    Invalid,
    depth,
    dump_document,
    export_document,
    format_for,
    parse_document,
    zk_name_problem,
)
from regctl.transfer.live import Session, Skipped
from regctl.transfer.restore import ApplyResult, ImportPlan, PlanItem

# ---------------------------------------------------------------------------
# export
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class ExportRequest:
    """What an export is asked: which services (None: every one), where to read and where to write."""

    names: tuple[str, ...] | None = None
    #: auto (ZooKeeper when configured, else the API), api or zk
    source: str = "auto"
    #: written there atomically (mode 0600); None or "-": the text comes back in the report only
    file: str | None = None
    #: the output format asked for (json or yaml win over the file's extension)
    output: str | None = None


@dataclass(frozen=True)
class ExportReport:
    """What an export read, wrote, and could not export."""

    request: ExportRequest
    document: dict
    #: the document as written (JSON or YAML, ASCII only)
    text: str
    format: str
    #: where it was read: {"type": "zookeeper", "hosts", "base_path"} or {"type": "api", "url"}
    source: dict
    #: live instances, or named services, not exported (and why)
    skipped: tuple[Skipped, ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def to_file(self) -> bool:
        """Whether the text went to ``request.file`` (else it is for the caller to write)."""
        return self.request.file not in (None, "-")

    @property
    def services(self) -> int:
        return len(self.document["services"])

    @property
    def instances(self) -> int:
        return sum(len(s["instances"]) for s in self.document["services"])


def run_export(request: ExportRequest, endpoint: Endpoint, clients: Clients) -> ExportReport:
    """Read every live instance (of ``request.names``) and write the export document (see :class:`ExportReport`).

    Raises :class:`UsageError` for a name no service directory can have, an unknown source,
    or a file that cannot be written.
    """
    for n in request.names or ():
        problem = zk_name_problem(n, "service name")
        if problem:
            raise UsageError(problem, hint="give the name of a service directory")
    instances, skipped, source, warnings = _read_live(request.source, list(request.names or ()) or None,
                                                      endpoint, clients)
    doc = export_document(instances, source)
    got = {i.service_name for i in instances}
    for n in request.names or ():
        if n not in got and not any(s.path.endswith("/" + n) for s in skipped):
            skipped.append(Skipped(n, "no live instance of this service (mistyped?)"))
    fmt = format_for(request.file, request.output)
    text = dump_document(doc, fmt)
    report = ExportReport(request, doc, text, fmt, source, tuple(skipped), tuple(warnings))
    if report.to_file:
        write_atomic(str(request.file), text)
    return report


def write_atomic(path: str, text: str) -> None:
    """Write ``text`` to ``path`` through a new temporary file renamed over it (mode 0600, fsynced)."""
    target = os.path.abspath(os.path.expanduser(path))
    directory = os.path.dirname(target)
    try:
        replace_file(target, text.encode("ascii"), 0o600, durable=True)
    except OSError as exc:
        if not (os.path.isdir(directory) and os.access(directory, os.W_OK)):
            raise UsageError(f"cannot write {path} ({exc.strerror or exc})", where=directory,
                             hint="check that the directory exists and is writable") from None
        raise UsageError(f"cannot write {path} ({exc.strerror or exc})", hint="check the path and free space") from None


def _read_live(source: str, names: "list | None", endpoint: Endpoint, clients: Clients) -> tuple:
    """(instances, skipped, source description, warnings): ZooKeeper when configured (or asked), else the API."""
    source = (source or "auto").lower()
    if source not in ("auto", "api", "zk"):
        raise UsageError(f"--source {source!r} is unknown", hint="use auto, api or zk")
    warnings: list = []
    if source == "zk" or (source == "auto" and endpoint.zk_configured):
        reader = clients.zk()
        exists, present = tl.base_state(reader)
        if not exists:
            warnings.append(f"the base path {reader.base_path} does not exist in ZooKeeper {endpoint.zk_hosts}: "
                            "nothing to export (check --zk-base / ZOOKEEPER_BASE_PATH)")
        elif not present:
            warnings.append(f"the base path {reader.base_path} holds no services (check --zk-base / "
                            "ZOOKEEPER_BASE_PATH)")
        nodes, skipped = tl.read_zk(reader, names, present)
        instances = []
        for node in nodes:
            if node.problem is None and depth(node.data) > MAX_DEPTH:
                node = dataclasses.replace(node, problem=f"node data is nested {depth(node.data)} levels deep "
                                                         f"(export writes at most {MAX_DEPTH})")
            if node.problem:
                skipped.append(Skipped(node.path, node.problem))
                continue
            pid = (node.data or {}).get("instance_id")
            if pid != node.instance_id:
                warnings.append(f"{node.path}: payload instance_id {pid!r} differs from the node name; "
                                "exported under the node name")
            instances.append(node.instance())
        return instances, skipped, {"type": "zookeeper", "hosts": endpoint.zk_hosts,
                                    "base_path": endpoint.zk_base}, warnings
    instances, skipped, asked = tl.read_api(clients.api(), names)
    too_deep = [i for i in instances if depth(i.metadata) > MAX_DEPTH]
    skipped += [Skipped(f"{i.service_name}/{i.instance_id}", f"node data is nested more than "
                        f"{MAX_DEPTH} levels deep") for i in too_deep]
    instances = [i for i in instances if all(i is not d for d in too_deep)]
    if not asked:
        warnings.append(f"the Config Service at {endpoint.config_url} lists no services")
    return instances, skipped, {"type": "api", "url": endpoint.config_url}, warnings


# ---------------------------------------------------------------------------
# import
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class ImportRequest:
    """What an import is asked (``regctl import``'s flags)."""

    #: import only these services (items may be comma-separated lists); None: every one
    only: tuple[str, ...] | None = None
    #: import the valid entries and report the invalid ones (else an invalid entry stops it all)
    skip_invalid: bool = False
    #: write only instances whose health URL answers now (the others are planned ``down``)
    probe: bool = False
    #: overwrite live instances whose data differs; import into a missing or empty base path
    force: bool = False
    #: the Config Service's own instance id (None: config-service-1, else the only one)
    config_instance: str | None = None
    #: plan only, write nothing
    dry_run: bool = False


class InvalidEntries(UsageError):
    """The document holds entries the Config Service would not accept, and they were not to be skipped."""

    def __init__(self, invalid: "list[Invalid]") -> None:
        hint = "fix the file, or pass --skip-invalid to import the rest"
        if len(invalid) == 1:
            super().__init__(f"an entry the Config Service would not accept: {invalid[0].reason}; nothing imported",
                             where=invalid[0].where, hint=hint)
        else:
            super().__init__(f"{len(invalid)} entries the Config Service would not accept (listed above); "
                             "nothing imported", hint=hint)
        #: every one of them, in file order
        self.invalid = tuple(invalid)


@dataclass(frozen=True)
class ImportReport:
    """What an import was asked, planned, wrote, verified and failed."""

    request: ImportRequest
    #: the document's name (its file, or <stdin>)
    name: str
    #: the plan as made, with the session it took for the current one
    plan: ImportPlan
    #: entries skipped as invalid (``skip_invalid``)
    invalid: tuple[Invalid, ...] = ()
    #: the file's, the live state's and the plan's warnings
    warnings: tuple[str, ...] = ()
    #: whether the writes were attempted (not: nothing to write, a dry run, or not confirmed)
    attempted: bool = False
    #: False when the caller's confirmation said no: nothing was written
    confirmed: bool = True
    #: one result per write reached, in the order they finished
    results: tuple[ApplyResult, ...] = ()
    #: the writes never reached (interrupted, or not attempted)
    not_done: tuple[PlanItem, ...] = ()
    #: the current session after the writes (the first write tells it when the plan could not)
    session: Session | None = None
    #: Ctrl-C stopped the writes (``results`` and ``not_done`` say how far they got)
    interrupted: bool = False

    @property
    def verified(self) -> list[ApplyResult]:
        """The writes done and shown by ZooKeeper (or answered OK by the API when ZooKeeper is not configured)."""
        return [r for r in self.results if r.ok]

    @property
    def failed(self) -> list[ApplyResult]:
        """The writes that failed, or were in flight at an interrupt."""
        return [r for r in self.results if r.result in ("failed", "interrupted")]


def run_import(text: str, name: str, request: ImportRequest, endpoint: Endpoint, clients: Clients,
               confirm: "Callable[[ImportPlan], bool] | None" = None) -> ImportReport:
    """Plan the import of an export document against what is live, then write the plan (see :class:`ImportReport`).

    ``confirm(plan)`` is asked before anything is written (None: no question); False
    stops there. A dry run, or a plan with nothing to write, stops before it. Ctrl-C
    during the writes ends them (what was done and what was not is in the report).
    Raises :class:`InvalidEntries` for entries the Config Service would not accept (unless
    ``request.skip_invalid``), :class:`UsageError` for a bad document, ``--only`` name or
    base path, and :class:`BadResponse` when what is live could not be read (nothing written).
    """
    entries, invalid = _select(parse_document(text, name), request.only)
    if invalid and not request.skip_invalid:
        raise InvalidEntries(invalid)
    warnings = [f"{i.where}: {i.reason}" for i in invalid]
    for e in entries:
        warnings += [f"{e.service}/{e.instance_id}: {w} (imported anyway: the Config Service accepts it)"
                     for w in e.warnings]
    live, source, session, own_key, live_warnings = _live_state(sorted({e.service for e in entries}), request,
                                                                endpoint, clients)
    warnings += live_warnings
    plan = restore.plan_import(entries, live, source, session, force=request.force, own_key=own_key)
    if request.probe and plan.writes:
        restore.mark_down(plan, lambda targets: prober.probe_many(targets, timeout=endpoint.timeout,
                                                                  verify=endpoint.verify))
    warnings += [f"{i.service}/{i.instance_id}: {i.reason}" for i in plan.with_action("differs")]
    # writing may replace plan.session by the one it learns: the report keeps the plan as made
    report = ImportReport(request, name, dataclasses.replace(plan), tuple(invalid), tuple(warnings),
                          session=plan.session)
    if not plan.writes or request.dry_run:
        return report
    if confirm is not None and not confirm(plan):
        return dataclasses.replace(report, confirmed=False)
    results: list[ApplyResult] = []
    reader = clients.zk() if endpoint.zk_configured else None
    interrupted = False
    try:
        restore.apply_plan(plan, clients.api(), restore.Live(reader=reader, api=clients.api()), results)
    except KeyboardInterrupt:
        interrupted = True
    return dataclasses.replace(report, attempted=True, results=tuple(results), session=plan.session,
                               not_done=tuple(restore.not_done(plan, results)), interrupted=interrupted)


def _select(parsed: ExportFile, only: "tuple[str, ...] | None") -> tuple:
    """(entries, invalid) of the services ``only`` names (every one without it)."""
    if not only:
        return parsed.entries, parsed.invalid
    wanted = {n.strip() for item in only for n in item.split(",") if n.strip()}
    known = {e.service for e in parsed.entries} | {i.service for i in parsed.invalid}
    missing = sorted(wanted - known)
    if missing:
        raise UsageError(f"--only {', '.join(map(repr, missing))}: not in the file",
                         hint="services in the file: " + (", ".join(sorted(map(str, known)))[:300] or "none"))
    return [e for e in parsed.entries if e.service in wanted], [i for i in parsed.invalid if i.service in wanted]


def _live_state(names: list, request: ImportRequest, endpoint: Endpoint, clients: Clients) -> tuple:
    """(live {(service, id): Observed}, where it was read, Session or None, own key, warnings)."""
    warnings: list = []
    if not endpoint.zk_configured:
        instances, skipped, _ = tl.read_api(clients.api(), names) if names else ([], [], [])
        if skipped:
            raise BadResponse(f"could not read what is live: {skipped[0].reason}", where=skipped[0].path,
                              hint="nothing was imported; fix that first, or configure ZooKeeper (--zk)")
        if names:
            warnings.append("live state from the API (cached up to 60 s) and ownership not checked: nodes left "
                            "by a Config Service restart count as live and vanish later; configure ZooKeeper "
                            "(--zk) so import can restore them")
        live = {(i.service_name, i.instance_id): restore.Observed.from_instance(i) for i in instances}
        return live, "api", None, None, warnings
    reader = clients.zk()
    exists, present = tl.base_state(reader)
    if not exists or not present:
        # the Config Service creates its base path and its own directory there when it starts: a base
        # without them is almost always a wrong --zk-base (an emptied registry still has both)
        what = "does not exist" if not exists else "holds no services"
        text = f"the base path {reader.base_path} {what} in ZooKeeper {endpoint.zk_hosts}"
        if not request.force:
            raise UsageError(f"refusing to import: {text}", where=endpoint.zk_hosts,
                             hint="check --zk-base / ZOOKEEPER_BASE_PATH (the Config Service creates its base "
                                  "path when it starts); pass --force to import into it anyway")
        warnings.append(text + "; importing anyway (--force)")
    if endpoint.zk_client_kwargs.get("use_ssl"):
        connected, why = None, "ZooKeeper over TLS: four-letter words not asked"
    else:
        connected, why = tl.connected_sessions(endpoint.zk_hosts or "", min(2.0, endpoint.timeout))
    # a never-rewritten own node tells the current session only while a Config Service answers (asked first:
    # a Config Service that answers has already rewritten its own node at its start)
    answering = tl.config_service_answers(clients.api()) if connected is None else None
    session = tl.current_session(reader, request.config_instance, connected=connected, answering=answering)
    own_key = (tl.CONFIG_SERVICE, session.node.rsplit("/", 1)[-1]) if session.node else None
    if not session.known:
        session = dataclasses.replace(session, how=f"{session.how}; {why}")
    nodes, skipped = tl.read_zk(reader, [n for n in names if n in present], present)
    if skipped:
        raise BadResponse(f"could not read what is live: {skipped[0].reason}", where=skipped[0].path,
                          hint="nothing was imported; fix that first")
    live = {(n.service, n.instance_id): restore.Observed.from_node(n) for n in nodes}
    if not session.known and any(session.judge(o.owner) == "unknown" for o in live.values()):
        warnings.append(f"cannot tell the Config Service's current session ({session.how}): the file's instances "
                        "that are present are restored (deregister, then register), unless the first write shows "
                        "that the current session owns them")
    return live, "zookeeper", session, own_key, warnings
