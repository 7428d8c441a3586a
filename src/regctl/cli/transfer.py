"""``regctl export`` and ``regctl import``: save every registration, restore what a restart lost.

The format is documented in :mod:`regctl.transfer.file`, the import plan in :mod:`regctl.transfer.restore`.
"""

import dataclasses
import os
import sys
from typing import Annotated, Any, List, Optional

import typer

from regctl.cli.options import ServiceNamesArg
from regctl.cli.options import DryRun, SourceOpt, Yes, command
from regctl.cli.render import Column, Result, Table, confirm, stdin_is_tty
from regctl.errors import BadResponse, ExitCode, NotFound, RegctlError, UsageError


def register(app: typer.Typer) -> None:
    command(app, "export")(export_registry)
    command(app, "import")(import_registry)


# ---------------------------------------------------------------------------
# export
# ---------------------------------------------------------------------------

def export_registry(
    rc,
    names: ServiceNamesArg = None,
    file: Annotated[Optional[str], typer.Option(
        "--file", "-f", metavar="FILE", show_default=False,
        help="Write to FILE (atomically, mode 0600) instead of stdout; .json means JSON, else YAML.")] = None,
    source: SourceOpt = "auto",
) -> Result:
    """Write every live service instance (URL, health URL, metadata) as YAML or JSON.

    Read from ZooKeeper when configured (the truth), else from the API. Format
    (version 1): version, kind, exported_at, source, services[{name,
    instances[{instance_id, service_url, health_check_url, service_metadata}]}].
    JSON with -o json or a .json file name; YAML otherwise. The text is plain
    ASCII (other characters are escapes), so every name and string survives.

    Nothing live is dropped silently: an instance that cannot be exported (data
    that is not a JSON object, a service the API answers 500 for) and a named
    service with no live instance are listed on stderr with the reason, and the
    exit code is 1 (the file still holds everything else). A base path that is
    missing or holds no services is a warning.

    Example: regctl export -f registry-backup.yaml
    """
    from regctl.transfer import file as transfer
    from regctl.transfer.live import Skipped

    for n in names or []:
        problem = transfer.zk_name_problem(n, "service name")
        if problem:
            raise UsageError(problem, hint="give the name of a service directory")
    instances, skipped, src, warnings = _read_live(rc, source, list(names) if names else None)
    doc = transfer.export_document(instances, src)
    got = {i.service_name for i in instances}
    for n in names or []:
        if n not in got and not any(s.path.endswith("/" + n) for s in skipped):
            skipped.append(Skipped(n, "no live instance of this service (mistyped?)"))
    n_services, n_instances = len(doc["services"]), sum(len(s["instances"]) for s in doc["services"])
    fmt = transfer.format_for(file, rc.settings.output)
    text = transfer.dump_document(doc, fmt)
    said = f"exported {n_instances} instance(s) of {n_services} service(s) from {_src_text(src)}"
    warnings += [f"not exported: {s.path}: {s.reason}" for s in skipped]
    if file is None or file == "-":
        rc.out.stdout.write(text)
        rc.out.stdout.flush()
        result = Result(notes=[said], warnings=warnings)
    else:
        _write_atomic(file, text)
        summary = {"file": file, "format": fmt, "services": n_services, "instances": n_instances, "source": src,
                   "exported_at": doc["exported_at"], "not_exported": [s.to_dict() for s in skipped]}
        result = Result(data=summary, notes=[f"{said} to {file} ({fmt})"], warnings=warnings)
    if skipped:
        result.error = NotFound(f"{len(skipped)} live instance(s) or named service(s) not exported (listed above)",
                                hint="fix or deregister them, or export without them")
    return result


def _src_text(src: dict) -> str:
    if src.get("type") == "zookeeper":
        return f"ZooKeeper {src['hosts']} {src['base_path']}"
    return f"API {src.get('url')}"


def _write_atomic(path: str, text: str) -> None:
    import tempfile

    target = os.path.abspath(os.path.expanduser(path))
    directory = os.path.dirname(target)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(target)}.", suffix=".tmp", dir=directory)
    except OSError as exc:
        raise UsageError(f"cannot write {path} ({exc.strerror or exc})", where=directory,
                         hint="check that the directory exists and is writable") from None
    try:
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except OSError as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise UsageError(f"cannot write {path} ({exc.strerror or exc})", hint="check the path and free space") from None


def _read_live(rc, source: str, names: "list | None") -> tuple:
    """(instances, skipped, source description, warnings): ZooKeeper when configured (or asked), else the API."""
    from dataclasses import replace

    from regctl.transfer import file as transfer
    from regctl.transfer import live as tl
    source = (source or "auto").lower()
    if source not in ("auto", "api", "zk"):
        raise UsageError(f"--source {source!r} is unknown", hint="use auto, api or zk")
    s = rc.settings
    warnings: list = []
    if source == "zk" or (source == "auto" and s.endpoint.zk_configured):
        reader = rc.zk()
        exists, present = tl.base_state(reader)
        if not exists:
            warnings.append(f"the base path {reader.base_path} does not exist in ZooKeeper {s.endpoint.zk_hosts}: "
                            "nothing to export (check --zk-base / ZOOKEEPER_BASE_PATH)")
        elif not present:
            warnings.append(f"the base path {reader.base_path} holds no services (check --zk-base / "
                            "ZOOKEEPER_BASE_PATH)")
        nodes, skipped = tl.read_zk(reader, names)
        instances = []
        for node in nodes:
            if node.problem is None and transfer.depth(node.data) > transfer.MAX_DEPTH:
                node = replace(node, problem=f"node data is nested {transfer.depth(node.data)} levels deep "
                                            f"(export writes at most {transfer.MAX_DEPTH})")
            if node.problem:
                skipped.append(tl.Skipped(node.path, node.problem))
                continue
            pid = (node.data or {}).get("instance_id")
            if pid != node.instance_id:
                warnings.append(f"{node.path}: payload instance_id {pid!r} differs from the node name; "
                                "exported under the node name")
            instances.append(node.instance())
        return instances, skipped, {"type": "zookeeper", "hosts": s.endpoint.zk_hosts, "base_path": s.endpoint.zk_base}, warnings
    instances, skipped, asked = tl.read_api(rc.api(), names)
    too_deep = [i for i in instances if transfer.depth(i.metadata) > transfer.MAX_DEPTH]
    skipped += [tl.Skipped(f"{i.service_name}/{i.instance_id}", f"node data is nested more than "
                           f"{transfer.MAX_DEPTH} levels deep") for i in too_deep]
    instances = [i for i in instances if all(i is not d for d in too_deep)]
    if not asked:
        warnings.append(f"the Config Service at {s.endpoint.config_url} lists no services")
    return instances, skipped, {"type": "api", "url": s.endpoint.config_url}, warnings


# ---------------------------------------------------------------------------
# import
# ---------------------------------------------------------------------------

_STYLE = {"add": "green", "restore": "cyan", "overwrite": "magenta", "live": "dim", "differs": "yellow",
          "self": "dim", "down": "red"}
PLAN_COLUMNS = [
    Column("action", "action", style=lambda v: _STYLE.get(v)),
    Column("service", "service"),
    Column("instance_id", "instance"),
    Column("service_url", "url"),
    Column("note", "note"),
]
RESULT_COLUMNS = [
    Column("service", "service"),
    Column("instance_id", "instance"),
    Column("result", "result", style=lambda v: {"registered": "green", "restored": "green", "failed": "red",
                                                "skipped": "yellow", "interrupted": "red"}.get(v)),
    Column("detail", "detail"),
    Column("error", "error"),
]

_SIGNS = {"add": "+ add      ", "restore": "^ restore  ", "overwrite": "! overwrite", "live": "= live     ",
          "differs": "~ differs  ", "self": "= self     ", "down": "x down     "}
_VERB = {"add": "register", "restore": "restore (deregister + register)", "overwrite": "overwrite"}

Only = Annotated[Optional[List[str]], typer.Option(
    "--only", metavar="NAME", show_default=False,
    help="Import only these services (repeatable, or comma-separated).")]
SkipInvalid = Annotated[bool, typer.Option(
    "--skip-invalid", help="Report every entry the Config Service would not accept, import the rest, exit 1.")]
Probe = Annotated[bool, typer.Option(
    "--probe", help="Write only instances whose health URL answers (2xx) now; the others are planned 'down'.")]
Force = Annotated[bool, typer.Option(
    "--force", help="Overwrite live instances whose data differs (and restore lingering ones whose data "
                    "differs); import into a base path that does not exist or holds no services.")]
ConfigInstance = Annotated[Optional[str], typer.Option(
    "--config-instance", metavar="ID", show_default=False,
    help="The Config Service's own instance id (its SERVICE_INSTANCE_ID) [default: config-service-1, "
         "else the only node under config-service].")]


def import_registry(
    rc,
    file: Annotated[str, typer.Argument(metavar="FILE", show_default=False,
                                        help="An export (YAML or JSON); '-' reads stdin.")],
    yes: Yes = False,
    dry_run: DryRun = False,
    only: Only = None,
    skip_invalid: SkipInvalid = False,
    probe: Probe = False,
    force: Force = False,
    config_instance: ConfigInstance = None,
) -> Result:
    """Re-register through the API every instance of FILE that is not live, and restore the ones a restart dooms.

    The plan comes first, one action per instance: add (no node), restore (a node
    left by the Config Service's previous session: it vanishes when that session
    expires, so it is deregistered, then registered under the current session),
    live (identical), differs (live with other data: never touched without
    --force), self (the Config Service's own node). The current session is the
    owner of {base}/config-service/instances/ID only while that node was never
    rewritten (version 0; a crash-restart rewrites it in place and it keeps the
    dead session) and a Config Service answers, or what ZooKeeper's 'cons' lists
    where allowed, or the owner of the first node this import creates. When
    nothing tells, every node present is restored (the safe path; a warning says
    why), and one the first write shows to be current is kept. An emptied
    registry needs no session: every line is an add. A new service's first
    instance is written alone before the rest.

    Right before each write the node is read again: one that changed since the
    plan (say, re-registered while you read the plan) is skipped and reported.
    After each write ZooKeeper is read back: it, not the API's answer, says
    whether the write happened (the API can answer 500 after writing).
    Asks first (--yes skips the question and is required without a terminal).
    Without ZooKeeper, live state comes from the API and ownership is not checked.
    Exit 0 when done or nothing to do; 1 when a write failed (ZooKeeper does not
    show it) or invalid entries were skipped; 2 for a bad file or flag, or a base
    path that does not exist (unless --force); 3 when what is live could not be
    read (nothing written); 130 on Ctrl-C (what was done and what was not is
    printed first).

    Example: regctl import registry-backup.yaml --dry-run
    """
    from regctl.transfer import restore
    from regctl.transfer import file as transfer
    text, name = _read_input(file)
    parsed = transfer.parse_document(text, name)
    entries, invalid = _select(parsed, only)
    warnings = [f"{i.where}: {i.reason}" for i in invalid]
    if invalid and not skip_invalid:
        raise _invalid_error(rc, invalid)
    for e in entries:
        warnings += [f"{e.service}/{e.instance_id}: {w} (imported anyway: the Config Service accepts it)"
                     for w in e.warnings]
    live, source, session, own_key, live_warnings = _live_state(rc, sorted({e.service for e in entries}),
                                                                force, config_instance)
    warnings += live_warnings
    plan = restore.plan_import(entries, live, source, session, force=force, own_key=own_key)
    if probe and plan.writes:
        from regctl import health

        restore.mark_down(plan, lambda targets: health.probe_many(
            targets, timeout=rc.settings.endpoint.timeout, verify=rc.settings.endpoint.verify))
    data: dict[str, Any] = {"file": name, "dry_run": dry_run, "plan": plan.to_dict(),
                            "invalid": [i.to_dict() for i in invalid], "results": [], "not_done": []}
    warnings += [f"{i.service}/{i.instance_id}: {i.reason}" for i in plan.with_action("differs")]
    tables = [Table(PLAN_COLUMNS, [_plan_row(i) for i in plan.items], title="import plan",
                    empty="nothing in the file")]
    summary = _summary(plan)
    writes = plan.writes

    def finish(result: Result) -> Result:
        if invalid and result.error is None:
            result.error = NotFound(f"{len(invalid)} invalid entr{'y was' if len(invalid) == 1 else 'ies were'} "
                                    "skipped (listed above)", hint="fix them in the file and import again")
        return result

    if not writes:
        return finish(Result(data=data, tables=tables, notes=[summary, "nothing to import"], warnings=warnings))
    if dry_run:
        return finish(Result(data=data, tables=tables, warnings=warnings,
                             notes=[summary, f"dry run: would write {len(writes)} instance(s); nothing sent"]))
    if not yes:
        if not stdin_is_tty():
            raise UsageError("refusing to import without confirmation: stdin is not a terminal",
                             hint="pass --yes (see the plan first with --dry-run)")
        for item in plan.items:
            rc.out.note(f"  {_SIGNS[item.action]} {item.service}/{item.instance_id}"
                        + (f" {item.entry.registration.service_url}" if item.action in restore.WRITES else "")
                        + (f" ({item.reason})" if item.action not in ("add", "live") else ""))
        rc.out.note(summary)
        if not confirm(f"Write {len(writes)} instance(s) to {rc.target}?"):
            return Result(data=data, error=NotFound("not confirmed; nothing was imported",
                                                    hint="answer y, or pass --yes"))
    results: list = []
    reader = rc.zk() if rc.settings.endpoint.zk_configured else None
    try:
        restore.apply_plan(plan, rc.api(), restore.Live(reader=reader, api=rc.api()), results)
    except KeyboardInterrupt:
        return _report(data, plan, results, tables, warnings, interrupted=True)
    return finish(_report(data, plan, results, tables, warnings, interrupted=False))


def _invalid_error(rc, invalid: list) -> RegctlError:
    hint = "fix the file, or pass --skip-invalid to import the rest"
    if len(invalid) == 1:
        return UsageError(f"an entry the Config Service would not accept: {invalid[0].reason}; nothing imported",
                          where=invalid[0].where, hint=hint)
    for i in invalid:
        rc.out.warn(f"{i.where}: {i.reason}")
    return UsageError(f"{len(invalid)} entries the Config Service would not accept (listed above); nothing imported",
                      hint=hint)


def _select(parsed, only: "list | None") -> tuple:
    if not only:
        return parsed.entries, parsed.invalid
    wanted = {n.strip() for item in only for n in item.split(",") if n.strip()}
    known = {e.service for e in parsed.entries} | {i.service for i in parsed.invalid}
    missing = sorted(wanted - known)
    if missing:
        raise UsageError(f"--only {', '.join(map(repr, missing))}: not in the file",
                         hint="services in the file: " + (", ".join(sorted(map(str, known)))[:300] or "none"))
    return [e for e in parsed.entries if e.service in wanted], [i for i in parsed.invalid if i.service in wanted]


def _summary(plan) -> str:
    c = plan.counts()
    parts = [f"{c['add']} to add", f"{c['restore']} to restore"]
    if c["overwrite"]:
        parts.append(f"{c['overwrite']} to overwrite")
    parts += [f"{c['live']} already live", f"{c['differs']} live with different data (not touched)"]
    if c["down"]:
        parts.append(f"{c['down']} not answering (--probe: not written)")
    if c["self"]:
        parts.append("the Config Service's own node left to it")
    text = ", ".join(parts) + f"; live state from {plan.live_source}"
    if plan.session is not None and plan.session.known:
        text += f", current session {hex(plan.session.owner)}"
    elif plan.session is not None:
        text += ", current session not known (found by the first write)"
    return text


def _report(data: dict, plan, results: list, tables: list, warnings: list, interrupted: bool) -> Result:
    """What was done and what was not, for a finished, failed or interrupted apply."""
    from regctl.transfer import restore
    left = restore.not_done(plan, results)
    data["results"] = [r.to_dict() for r in results]
    data["not_done"] = [{"service": i.service, "instance_id": i.instance_id, "action": i.action} for i in left]
    data["interrupted"] = interrupted
    rows = data["results"] + [{"service": i.service, "instance_id": i.instance_id, "result": "not-done",
                               "detail": "not reached"} for i in left]
    result = Result(data=data, tables=tables + [Table(RESULT_COLUMNS, rows, title="writes")], warnings=list(warnings))
    done = [r for r in results if r.ok]
    failed = [r for r in results if r.result in ("failed", "interrupted")]
    skipped = [r for r in results if r.result == "skipped"]
    kept = [r for r in results if r.result == "kept"]
    result.warnings += [f"{r.item.service}/{r.item.instance_id}: skipped: {r.detail}" for r in skipped]
    data["session"] = plan.session.to_dict() if plan.session is not None else None
    note = (f"written {len(done)} of {len(plan.writes)} instance(s); {len(skipped)} skipped, "
            f"{len(failed)} failed, {len(left)} not done")
    if kept:
        note += f"; {len(kept)} kept (already owned by the current session {hex(plan.session.owner or 0)})"
    result.notes.append(note)
    if interrupted:
        unsure = [f"{r.item.service}/{r.item.instance_id}" for r in results if r.result == "interrupted"]
        result.warnings.append(
            f"interrupted: written {', '.join(f'{r.item.service}/{r.item.instance_id}' for r in done) or 'none'}; "
            f"in flight (may or may not be written) {', '.join(unsure) or 'none'}; "
            f"not done {', '.join(f'{i.service}/{i.instance_id}' for i in left) or 'none'}; "
            "run the same import again: it plans only what is still missing")
        result.exit_code = int(ExitCode.INTERRUPTED)
    elif failed:
        first = failed[0]
        result.error = NotFound(f"{len(failed)} of {len(plan.writes)} writes failed; first: "
                                f"{first.item.service}/{first.item.instance_id}: {first.detail}"
                                + (f": {first.error.message}" if first.error else ""),
                                where=first.error.where if first.error else None,
                                hint="fix the cause and run the import again (it only writes what is missing)")
    return result


def _plan_row(item) -> dict:
    return {"action": item.action, "service": item.service, "instance_id": item.instance_id,
            "service_url": item.entry.registration.service_url,
            "note": None if item.action == "add" else item.reason}


def _read_input(file: str) -> tuple:
    from regctl.http.bounded import DATA_FILE_MAX_BYTES, read_file_text, read_stream_text

    if file == "-":
        return read_stream_text(sys.stdin, DATA_FILE_MAX_BYTES, "import file", "<stdin>"), "<stdin>"
    try:
        return read_file_text(os.path.expanduser(file), DATA_FILE_MAX_BYTES, "import file", where=file), file
    except FileNotFoundError:
        raise UsageError(f"file {file!r} does not exist", hint="give the file written by: regctl export -f FILE") \
            from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {file!r} ({type(exc).__name__})", hint="check the path and its permissions") \
            from None


def _live_state(rc, names: list, force: bool, config_instance: "str | None") -> tuple:
    """(live {(service, id): Observed}, where it was read, Session or None, own key, warnings)."""
    from regctl.transfer import restore
    from regctl.transfer import live as tl
    s = rc.settings
    warnings: list = []
    if not s.endpoint.zk_configured:
        instances, skipped, _ = tl.read_api(rc.api(), names) if names else ([], [], [])
        if skipped:
            raise BadResponse(f"could not read what is live: {skipped[0].reason}", where=skipped[0].path,
                              hint="nothing was imported; fix that first, or configure ZooKeeper (--zk)")
        if names:
            warnings.append("live state from the API (cached up to 60 s) and ownership not checked: nodes left "
                            "by a Config Service restart count as live and vanish later; configure ZooKeeper "
                            "(--zk) so import can restore them")
        live = {(i.service_name, i.instance_id): restore.Observed.from_instance(i) for i in instances}
        return live, "api", None, None, warnings
    reader = rc.zk()
    exists, present = tl.base_state(reader)
    if not exists or not present:
        # the Config Service creates its base path and its own directory there when it starts: a base
        # without them is almost always a wrong --zk-base (an emptied registry still has both)
        what = "does not exist" if not exists else "holds no services"
        text = f"the base path {reader.base_path} {what} in ZooKeeper {s.endpoint.zk_hosts}"
        if not force:
            raise UsageError(f"refusing to import: {text}", where=s.endpoint.zk_hosts,
                             hint="check --zk-base / ZOOKEEPER_BASE_PATH (the Config Service creates its base "
                                  "path when it starts); pass --force to import into it anyway")
        warnings.append(text + "; importing anyway (--force)")
    if s.endpoint.zk_client_kwargs.get("use_ssl"):
        connected, why = None, "ZooKeeper over TLS: four-letter words not asked"
    else:
        connected, why = tl.connected_sessions(s.endpoint.zk_hosts or "", min(2.0, s.endpoint.timeout))
    # a never-rewritten own node tells the current session only while a Config Service answers (asked first:
    # a Config Service that answers has already rewritten its own node at its start)
    answering = tl.config_service_answers(rc.api()) if connected is None else None
    session = tl.current_session(reader, config_instance, connected=connected, answering=answering)
    own_key = (tl.CONFIG_SERVICE, session.node.rsplit("/", 1)[-1]) if session.node else None
    if not session.known:
        session = dataclasses.replace(session, how=f"{session.how}; {why}")
    nodes, skipped = tl.read_zk(reader, [n for n in names if n in present])
    if skipped:
        raise BadResponse(f"could not read what is live: {skipped[0].reason}", where=skipped[0].path,
                          hint="nothing was imported; fix that first")
    live = {(n.service, n.instance_id): restore.Observed.from_node(n) for n in nodes}
    if not session.known and any(session.judge(o.owner) == "unknown" for o in live.values()):
        warnings.append(f"cannot tell the Config Service's current session ({session.how}): the file's instances "
                        "that are present are restored (deregister, then register), unless the first write shows "
                        "that the current session owns them")
    return live, "zookeeper", session, own_key, warnings


__all__ = ["register", "export_registry", "import_registry", "ExitCode"]
