"""``regctl export`` and ``regctl import``: save every registration, restore what a restart lost.

The format is documented in :mod:`regctl.transfer.file`, the import plan in :mod:`regctl.transfer.restore`.
"""

import os
import sys
from typing import Annotated, Any, List, Optional

import typer

from regctl.cli.options import DryRun, ServiceNamesArg, SourceOpt, Yes, command
from regctl.cli.render import Column, Result, Table, confirm, stdin_is_tty
from regctl.errors import ExitCode, NotFound, UsageError
from regctl.http.bounded import DATA_FILE_MAX_BYTES, read_file_text, read_stream_text


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
    from regctl.transfer import operations as ops  # httpx and kazoo: off the start-up path

    request = ops.ExportRequest(tuple(names) if names else None, source, file, rc.settings.output)
    return _export_result(ops.run_export(request, rc.settings.endpoint, rc))


def _export_result(report: Any) -> Result:
    """An :class:`regctl.transfer.operations.ExportReport` as the command shows it."""
    said = (f"exported {report.instances} instance(s) of {report.services} service(s) "
            f"from {_src_text(report.source)}")
    warnings = list(report.warnings) + [f"not exported: {s.path}: {s.reason}" for s in report.skipped]
    if not report.to_file:
        result = Result(text=report.text, notes=[said], warnings=warnings)
    else:
        file, fmt = report.request.file, report.format
        summary = {"file": file, "format": fmt, "services": report.services, "instances": report.instances,
                   "source": report.source, "exported_at": report.document["exported_at"],
                   "not_exported": [s.to_dict() for s in report.skipped]}
        result = Result(data=summary, notes=[f"{said} to {file} ({fmt})"], warnings=warnings)
    if report.skipped:
        result.error = NotFound(f"{len(report.skipped)} live instance(s) or named service(s) not exported "
                                "(listed above)", hint="fix or deregister them, or export without them")
    return result


def _src_text(src: dict) -> str:
    if src.get("type") == "zookeeper":
        return f"ZooKeeper {src['hosts']} {src['base_path']}"
    return f"API {src.get('url')}"


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
    from regctl.transfer import operations as ops  # httpx and kazoo: off the start-up path

    text, name = _read_input(file)
    request = ops.ImportRequest(tuple(only) if only else None, skip_invalid, probe, force, config_instance, dry_run)
    try:
        report = ops.run_import(text, name, request, rc.settings.endpoint, rc, None if yes else _asker(rc))
    except ops.InvalidEntries as exc:  # several: each named first; the error is a UsageError like any other
        for i in exc.invalid if len(exc.invalid) > 1 else ():
            rc.out.warn(f"{i.where}: {i.reason}")
        raise UsageError(exc.message, where=exc.where, hint=exc.hint_template) from None
    return _import_result(report)


def _asker(rc) -> Any:
    """The question asked before an import writes: the plan on stderr, then y/N on the terminal."""
    from regctl.transfer.restore import WRITES

    def ask(plan: Any) -> bool:
        if not stdin_is_tty():
            raise UsageError("refusing to import without confirmation: stdin is not a terminal",
                             hint="pass --yes (see the plan first with --dry-run)")
        for item in plan.items:
            rc.out.note(f"  {_SIGNS[item.action]} {item.service}/{item.instance_id}"
                        + (f" {item.entry.registration.service_url}" if item.action in WRITES else "")
                        + (f" ({item.reason})" if item.action not in ("add", "live") else ""))
        rc.out.note(_summary(plan))
        return confirm(f"Write {len(plan.writes)} instance(s) to {rc.target}?")

    return ask


def _import_result(report: Any) -> Result:
    """An :class:`regctl.transfer.operations.ImportReport` as the command shows it."""
    plan = report.plan
    data: dict[str, Any] = {"file": report.name, "dry_run": report.request.dry_run, "plan": plan.to_dict(),
                            "invalid": [i.to_dict() for i in report.invalid], "results": [], "not_done": []}
    if not report.confirmed:
        return Result(data=data, error=NotFound("not confirmed; nothing was imported", hint="answer y, or pass --yes"))
    tables = [Table(PLAN_COLUMNS, [_plan_row(i) for i in plan.items], title="import plan",
                    empty="nothing in the file")]
    warnings = list(report.warnings)
    if not plan.writes:
        result = Result(data=data, tables=tables, notes=[_summary(plan), "nothing to import"], warnings=warnings)
    elif not report.attempted:
        result = Result(data=data, tables=tables, warnings=warnings,
                        notes=[_summary(plan), f"dry run: would write {len(plan.writes)} instance(s); nothing sent"])
    else:
        result = _report(data, report, tables, warnings)
    if report.invalid and result.error is None and not report.interrupted:
        n = len(report.invalid)
        result.error = NotFound(f"{n} invalid entr{'y was' if n == 1 else 'ies were'} skipped (listed above)",
                                hint="fix them in the file and import again")
    return result


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


def _report(data: dict, report: Any, tables: list, warnings: list) -> Result:
    """What was done and what was not, for a finished, failed or interrupted import."""
    plan, results, left, session = report.plan, report.results, report.not_done, report.session
    data["results"] = [r.to_dict() for r in results]
    data["not_done"] = [{"service": i.service, "instance_id": i.instance_id, "action": i.action} for i in left]
    data["interrupted"] = report.interrupted
    rows = data["results"] + [{"service": i.service, "instance_id": i.instance_id, "result": "not-done",
                               "detail": "not reached"} for i in left]
    result = Result(data=data, tables=tables + [Table(RESULT_COLUMNS, rows, title="writes")], warnings=list(warnings))
    done, failed = report.verified, report.failed
    skipped = [r for r in results if r.result == "skipped"]
    kept = [r for r in results if r.result == "kept"]
    result.warnings += [f"{r.item.service}/{r.item.instance_id}: skipped: {r.detail}" for r in skipped]
    data["session"] = session.to_dict() if session is not None else None
    note = (f"written {len(done)} of {len(plan.writes)} instance(s); {len(skipped)} skipped, "
            f"{len(failed)} failed, {len(left)} not done")
    if kept:
        note += f"; {len(kept)} kept (already owned by the current session {hex(session.owner or 0)})"
    result.notes.append(note)
    if report.interrupted:
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
    """(text, name) of the import file, or of stdin for '-'."""
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


__all__ = ["register", "export_registry", "import_registry", "ExitCode"]
