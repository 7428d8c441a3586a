"""``regctl export`` and ``regctl import``: save every registration, re-register what is missing.

The format is documented in :mod:`regctl.transfer` (version 1, YAML or JSON).
"""

import os
import sys
from typing import Annotated, Any, Optional

import typer

from regctl.cli.completion import ServiceNamesArg
from regctl.cli.options import DryRun, SourceOpt, Yes, command
from regctl.cli.render import Column, Result, Table, confirm, stdin_is_tty
from regctl.errors import ExitCode, NotFound, RegctlError, UsageError


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
    JSON with -o json or a .json file name; YAML otherwise.

    Example: regctl export -f registry-backup.yaml
    """
    from regctl import transfer
    from regctl.names import validate_service_name

    for n in names or []:
        validate_service_name(n)
    instances, src = _read_live(rc, source, names or None)
    doc = transfer.export_document(instances, src)
    n_services, n_instances = len(doc["services"]), sum(len(s["instances"]) for s in doc["services"])
    fmt = transfer.format_for(file, rc.settings.output)
    if file is None or file == "-":
        text = transfer.dump_document(doc, fmt)
        result = Result(data=doc, lines=text.rstrip("\n").splitlines())
        result.notes.append(f"exported {n_instances} instance(s) of {n_services} service(s) from {_src_text(src)}")
        return result
    _write_atomic(file, transfer.dump_document(doc, fmt))
    summary = {"file": file, "format": fmt, "services": n_services, "instances": n_instances, "source": src,
               "exported_at": doc["exported_at"]}
    return Result(data=summary, notes=[f"exported {n_instances} instance(s) of {n_services} service(s) "
                                       f"from {_src_text(src)} to {file} ({fmt})"])


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
        with os.fdopen(fd, "w", encoding="utf-8") as f:
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
    """(instances, source description): ZooKeeper when configured (or asked), else the API."""
    source = (source or "auto").lower()
    if source not in ("auto", "api", "zk"):
        raise UsageError(f"--source {source!r} is unknown", hint="use auto, api or zk")
    s = rc.settings
    if source == "zk" or (source == "auto" and s.zk_configured):
        snap = rc.zk().snapshot(names)
        for p in snap.all_problems():
            if p.kind != "base-missing":
                rc.out.warn(f"{p.path}: {p.detail} (skipped)")
        instances = [i for svc in snap.services for i in svc.instances]
        return instances, {"type": "zookeeper", "hosts": s.zk_hosts, "base_path": s.zk_base}
    from regctl import api as api_mod

    api = rc.api()
    wanted = list(names) if names else sorted({r.service_name for r in api.list_services()})
    answers = api.map([api_mod.instances_call(n) for n in wanted], return_exceptions=True)
    instances = []
    for name, ans in zip(wanted, answers):
        if isinstance(ans, RegctlError):
            raise ans
        instances.extend(ans)
    return instances, {"type": "api", "url": s.config_url}


# ---------------------------------------------------------------------------
# import
# ---------------------------------------------------------------------------

PLAN_COLUMNS = [
    Column("action", "action", style=lambda v: {"add": "green", "live": "dim", "differs": "yellow"}.get(v)),
    Column("service", "service"),
    Column("instance_id", "instance"),
    Column("service_url", "url"),
    Column("note", "note"),
]
RESULT_COLUMNS = [
    Column("service", "service"),
    Column("instance_id", "instance"),
    Column("result", "result", style=lambda v: {"registered": "green", "failed": "red"}.get(v)),
    Column("error", "error"),
]

_SIGNS = {"add": "+ add    ", "live": "= live   ", "differs": "~ differs"}


def import_registry(
    rc,
    file: Annotated[str, typer.Argument(metavar="FILE", show_default=False,
                                        help="An export (YAML or JSON); '-' reads stdin.")],
    yes: Yes = False,
    dry_run: DryRun = False,
) -> Result:
    """Re-register through the API every instance of FILE that is not live.

    Shows the difference first: to add / already live / differs-but-live (never
    touched), then asks (--yes skips the question and is required without a
    terminal). Live state is read from ZooKeeper when configured, else the API.
    Exit 0 when done or when there is nothing to import, 1 if a registration failed.

    Example: regctl import registry-backup.yaml --dry-run
    """
    from regctl import transfer

    text, name = _read_input(file)
    _doc, entries = transfer.parse_document(text, name)
    live, live_source = _live_map(rc, sorted({e.key[0] for e in entries}))
    plan = transfer.plan_import(entries, live, live_source)
    counts = plan.counts()
    summary = (f"{counts['add']} to add, {counts['live']} already live, "
               f"{counts['differs']} live with different data (not touched); live state from {live_source}")
    rows = [_plan_row(i) for i in plan.items]
    data: dict[str, Any] = {"file": name, "dry_run": dry_run, "plan": plan.to_dict(), "results": []}
    warnings = [f"{i.service}/{i.instance_id} is live with different data ({', '.join(i.differences)}); "
                "left as it is" for i in plan.with_action("differs")]

    if not plan.to_add:
        return Result(data=data, tables=[Table(PLAN_COLUMNS, rows, title="import plan", empty="the file is empty")],
                      notes=[summary, "nothing to import"], warnings=warnings)
    if dry_run:
        return Result(data=data, tables=[Table(PLAN_COLUMNS, rows, title="import plan")],
                      notes=[summary, f"dry run: would register {counts['add']} instance(s); nothing sent"],
                      warnings=warnings)
    if not yes:
        if not stdin_is_tty():
            raise UsageError("refusing to import without confirmation: stdin is not a terminal",
                             hint="pass --yes (see the plan first with --dry-run)")
        for item in plan.items:
            rc.out.note(f"  {_SIGNS[item.action]} {item.service}/{item.instance_id}"
                        + (f" {item.entry.registration.service_url}" if item.action == "add" else "")
                        + (f" ({', '.join(item.differences)} differ)" if item.differences else ""))
        rc.out.note(summary)
        if not confirm(f"Register {counts['add']} instance(s) with {rc.target}?"):
            return Result(data=data, error=NotFound("not confirmed; nothing was imported",
                                                    hint="answer y, or pass --yes"))

    results = transfer.apply_plan(plan, rc.api())
    data["results"] = [r.to_dict() for r in results]
    failed = [r for r in results if not r.ok]
    result = Result(data=data, tables=[Table(PLAN_COLUMNS, rows, title="import plan"),
                                       Table(RESULT_COLUMNS, data["results"], title="registrations")],
                    warnings=warnings)
    result.notes.append(f"registered {len(results) - len(failed)} of {len(results)} instance(s)")
    if failed:
        first = failed[0].error
        result.error = NotFound(f"{len(failed)} of {len(results)} registrations failed; first: "
                                f"{failed[0].item.service}/{failed[0].item.instance_id}: "
                                f"{first.message if first else '?'}",
                                where=first.where if first else None,
                                hint="fix the cause and run the import again (it only adds what is missing)")
        result.exit_code = int(ExitCode.NO)
    return result


def _plan_row(item) -> dict:
    note = None
    if item.action == "differs":
        note = "differs: " + ", ".join(item.differences) + " (not touched)"
    elif item.action == "live":
        note = "already live"
    return {"action": item.action, "service": item.service, "instance_id": item.instance_id,
            "service_url": item.entry.registration.service_url, "note": note}


def _read_input(file: str) -> tuple:
    if file == "-":
        return sys.stdin.read(), "<stdin>"
    try:
        with open(os.path.expanduser(file), encoding="utf-8") as f:
            return f.read(), file
    except FileNotFoundError:
        raise UsageError(f"file {file!r} does not exist", hint="give the file written by: regctl export -f FILE") \
            from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {file!r} ({type(exc).__name__})", hint="check the path and its permissions") \
            from None


def _live_map(rc, names: list) -> tuple:
    """{(service, instance_id): Instance} for ``names``, and where it was read."""
    s = rc.settings
    if not names:
        return {}, "zookeeper" if s.zk_configured else "api"
    if s.zk_configured:
        snap = rc.zk().snapshot(names)
        return {(i.service_name, i.instance_id): i for svc in snap.services for i in svc.instances}, "zookeeper"
    from regctl import api as api_mod

    api = rc.api()
    answers = api.map([api_mod.instances_call(n) for n in names], return_exceptions=True)
    live = {}
    for name, ans in zip(names, answers):
        if isinstance(ans, RegctlError):
            raise ans
        live.update({(name, i.instance_id): i for i in ans})
    return live, "api (may be cached up to 60 s; configure ZooKeeper for the truth)"

