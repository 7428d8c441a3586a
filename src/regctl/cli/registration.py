"""Commands that change the registry: ``register``, ``deregister``."""

import json
import sys
from pathlib import Path
from typing import Annotated, Any, List, Optional

import typer

from regctl.cli.completion.lookup import complete_instance_ids, complete_service_names
from regctl.cli.options import DryRun, Yes, command
from regctl.cli.render import Column, Result, Table, confirm, status_style, stdin_is_tty
from regctl.errors import ExitCode, NotFound, RegctlError, Unreachable, UsageError

INPUT = "Registration"


def register(app: typer.Typer) -> None:
    command(app, "register")(register_service)
    command(app, "deregister")(deregister_service)


# ---------------------------------------------------------------------------
# register
# ---------------------------------------------------------------------------

REGISTER_COLUMNS = [
    Column("service_name", "service"),
    Column("instance_id", "instance"),
    Column("service_url", "url"),
    Column("status", "status", style=status_style),
    Column("zookeeper", "in zookeeper"),
]


def register_service(
    rc,
    name: Annotated[Optional[str], typer.Option("--name", "-n", metavar="NAME", rich_help_panel=INPUT,
                                                help="Service name.")] = None,
    url: Annotated[Optional[str], typer.Option("--url", metavar="URL", rich_help_panel=INPUT,
                                               help="Service URL (instead of --host/--port/--public-url).")] = None,
    host: Annotated[Optional[str], typer.Option("--host", metavar="HOST", rich_help_panel=INPUT,
                                                help="Host for http://HOST:PORT [default: --name, as the guide].")] = None,
    port: Annotated[Optional[str], typer.Option("--port", metavar="PORT", rich_help_panel=INPUT,
                                                help="Port for http://HOST:PORT.")] = None,
    public_url: Annotated[Optional[str], typer.Option("--public-url", metavar="URL", rich_help_panel=INPUT,
                                                      help="Public URL; wins over --host/--port, as the guide's "
                                                           "SERVICE_PUBLIC_URL.")] = None,
    health_url: Annotated[Optional[str], typer.Option("--health-url", metavar="URL", rich_help_panel=INPUT,
                                                      help="Health check URL [default: service URL + /health].")] = None,
    no_health_url: Annotated[bool, typer.Option("--no-health-url", rich_help_panel=INPUT,
                                                help="Send health_check_url null.")] = False,
    instance_id: Annotated[Optional[str], typer.Option("--instance-id", metavar="ID", rich_help_panel=INPUT,
                                                       help="Instance id [default: the registry makes a UUID].")] = None,
    meta: Annotated[Optional[List[str]], typer.Option("--meta", metavar="KEY=VALUE", rich_help_panel=INPUT,
                                                      help="Metadata, repeatable; a value that parses as JSON "
                                                           "is sent as JSON (3, true, [\"a\"]).")] = None,
    status: Annotated[Optional[str], typer.Option("--status", metavar="STATUS", rich_help_panel=INPUT,
                                                  help="healthy, unhealthy, unknown, starting or stopping "
                                                       "[default: healthy; only healthy instances are returned "
                                                       "by /url].")] = None,
    from_env: Annotated[bool, typer.Option("--from-env", rich_help_panel=INPUT,
                                           help="Build the registration from SERVICE_* variables, exactly "
                                                "as the integration guide does.")] = False,
    env_file: Annotated[Optional[Path], typer.Option("--env-file", metavar="FILE", rich_help_panel=INPUT,
                                                     help="With --from-env: KEY=VALUE file whose values "
                                                          "override the environment.")] = None,
    file: Annotated[Optional[str], typer.Option("--file", "-f", metavar="FILE", rich_help_panel=INPUT,
                                                help="YAML/JSON file with one or many registrations "
                                                     "('-' = stdin).")] = None,
    dry_run: DryRun = False,
) -> Result:
    """Register one or many instances through POST /api/v1/registry/register.

    Three ways to say what to register (pick one):

    * flags: --name and --url, or --port [--host] or --public-url (the guide's rules);

    * --from-env [--env-file FILE]: SERVICE_NAME, SERVICE_PORT, SERVICE_HOST,
    SERVICE_PUBLIC_URL, SERVICE_INSTANCE_ID, exactly as the guide's client builds them;

    * -f FILE: a mapping, a list, or {"registrations": [...]}; keys service_name,
    service_url, health_check_url, service_metadata (or name, url, health_url, meta,
    plus instance_id and status).

    Everything is validated before anything is sent. Prints each instance id
    (-o json: the requests and the ids). --dry-run prints the exact requests.
    When ZooKeeper is configured each new node is confirmed there.

    Example: regctl register --name asr-service --url http://asr:8090 --meta version=1.2.3
    """
    from regctl import registration as regmod
    from regctl.http.api import register_call

    flag_given = any(v not in (None, False, []) for v in (name, url, host, port, public_url, health_url,
                                                          no_health_url, instance_id))
    if sum([bool(from_env), file is not None, flag_given]) > 1:
        raise UsageError("--from-env, -f FILE and --name/--url flags are separate ways to register",
                         hint="use one of them")
    if env_file is not None and not from_env:
        raise UsageError("--env-file needs --from-env", hint="add --from-env")
    meta_values = regmod.parse_meta(meta or [])
    warnings: list = []
    if file is not None:
        if meta_values or status:
            raise UsageError("--meta and --status do not apply to -f FILE", hint="put them in the file")
        text, where = _read_input(file)
        regs = regmod.load_registrations(text, where)
    elif from_env:
        values = None
        if env_file is not None:
            from regctl.http.bounded import CONFIG_FILE_MAX_BYTES, read_file_text

            try:
                text = read_file_text(env_file, CONFIG_FILE_MAX_BYTES, "env file")
            except (OSError, UnicodeDecodeError) as exc:
                raise UsageError(f"cannot read env file ({exc.__class__.__name__}: {exc})",
                                 where=str(env_file), hint="check the path") from None
            values = regmod.parse_env_file(text, str(env_file))
        import os

        merged = {**os.environ, **(values or {})}
        regs = [regmod.from_env(merged, None, extra_metadata=meta_values, status=status)]
        if not merged.get("SERVICE_INSTANCE_ID", "").strip():
            warnings.append(f"SERVICE_INSTANCE_ID is not set: the guide's default {regs[0].instance_id!r} "
                            f"uses regctl's own pid")
    else:
        regs = [regmod.from_flags(name=name, url=url, host=host, port=port, public_url=public_url,
                                  health_url=health_url, no_health_url=no_health_url, instance_id=instance_id,
                                  meta=meta_values, status=status)]

    requests = [regmod.describe_request(rc.settings.endpoint.config_url, register_call(r.payload())) for r in regs]
    if dry_run:
        lines = []
        for req in requests:
            lines.append(f"{req['method']} {req['url']}")
            lines.extend(json.dumps(req["json"], indent=2, ensure_ascii=False).splitlines())
        # the same keys as a real run (docs/commands.md); nothing was sent, so no ids and nothing confirmed
        return Result(data={"dry_run": True,
                            "registrations": [{"request": r, "instance_id": None, "zookeeper": None}
                                              for r in requests],
                            "instance_ids": [], "verified_after_error": []},
                      lines=lines, notes=[f"dry run: {len(requests)} request(s) not sent"], warnings=warnings)

    api = rc.api()
    done: list = []
    checks: list = []
    error: Optional[RegctlError] = None
    for reg, req in zip(regs, requests):
        try:
            iid = api.register(reg.payload())
        except RegctlError as exc:
            check = _verify_register(rc, reg, exc)
            if check is None:
                error = exc
                break
            checks.append(check)
            if not check.happened:  # the error line says it; a warning too would say it twice
                error = _write_error(check)
                break
            warnings.append(check.sentence())
            iid = check.instance_id
        done.append({"request": req, "instance_id": iid, "zookeeper": None,
                     "service_name": reg.service_name, "service_url": reg.service_url,
                     "status": reg.metadata.get("status")})
    notes: list = []
    if done:
        _confirm_in_zk(rc, done, notes, warnings)
    if error is not None and done:
        notes.append(f"registered {len(done)} of {len(regs)} before the failure")
    data = {"dry_run": False,
            "registrations": [{"request": d["request"], "instance_id": d["instance_id"],
                               "zookeeper": d["zookeeper"]} for d in done],
            "instance_ids": [d["instance_id"] for d in done],
            "verified_after_error": [c.to_dict() for c in checks]}
    if error is not None and not done and not checks:
        raise error
    return Result(data=data, lines=[d["instance_id"] for d in done], notes=notes, warnings=warnings, error=error)


def _verify_register(rc, reg, exc: RegctlError):
    """After a 5xx/timeout: a WriteCheck saying whether ZooKeeper holds the registration; None when
    the failure cannot have written anything or ZooKeeper is not configured."""
    from regctl import registration as regmod

    if not regmod.write_unverified(exc) or not rc.settings.endpoint.zk_configured:
        return None
    consequence = _consequence(rc, exc, reg.service_name)
    try:
        svc = rc.zk().service(reg.service_name)
    except RegctlError as zk_exc:
        return regmod.WriteCheck("register", reg.service_name, reg.instance_id, None, exc, consequence, zk_exc)
    found = regmod.registered_as_asked(svc.instances, reg)
    return regmod.WriteCheck("register", reg.service_name, found.instance_id if found else reg.instance_id,
                             found is not None, exc, consequence)


def _consequence(rc, exc: RegctlError, service: str) -> "str | None":
    """What broke, from /health and the API's own reads (None when they do not say)."""
    if isinstance(exc, Unreachable):
        return None
    from regctl import registration as regmod

    try:
        return regmod.write_failure_consequence(rc.api(), service)
    except RegctlError:
        return None


def _write_error(check) -> RegctlError:
    """The error for a write that did not happen (exit 3) or whose outcome is unknown (exit 3)."""
    err = check.api_error
    return Unreachable(check.sentence(), where=err.where,
                       hint=err.hint if check.happened is False else "look with: regctl inspect " + check.service)


def _read_input(file: str) -> tuple:
    from regctl.http.bounded import DATA_FILE_MAX_BYTES, read_file_text, read_stream_text

    if file == "-":
        try:
            return read_stream_text(sys.stdin, DATA_FILE_MAX_BYTES, "registrations"), "stdin"
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"cannot read stdin ({exc})", hint="pipe a YAML or JSON document") from None
    try:
        return read_file_text(Path(file), DATA_FILE_MAX_BYTES, "registrations file"), file
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read the file ({exc.__class__.__name__}: {getattr(exc, 'strerror', None) or exc})",
                         where=file, hint="check the path") from None


def _confirm_in_zk(rc, done: list, notes: list, warnings: list) -> None:
    """Look for each new node in ZooKeeper; a missing one is a warning, not a failure."""
    if not rc.settings.endpoint.zk_configured:
        notes.append("not confirmed in ZooKeeper (not configured; pass --zk to check)")
        return
    from regctl.names import zk_join

    try:
        zk = rc.zk()
        paths = {zk_join(rc.settings.endpoint.zk_base, d["service_name"], "instances", d["instance_id"]): d for d in done}
        found = zk.bulk_get(list(paths))
    except RegctlError as exc:
        warnings.append(f"could not confirm in ZooKeeper: {exc}")
        return
    for path, d in paths.items():
        res = found.get(path)
        if isinstance(res, Exception):
            d["zookeeper"] = "unreadable"
            warnings.append(f"could not read {path}: {res}")
        elif res is None:
            d["zookeeper"] = "missing"
            warnings.append(f"{path} is not in ZooKeeper after registering; is --zk/--zk-base the registry's?")
        else:
            d["zookeeper"] = "present"
    present = sum(1 for d in done if d["zookeeper"] == "present")
    if present == len(done):
        notes.append(f"confirmed in ZooKeeper: {present} node(s) under {rc.settings.endpoint.zk_base}")


# ---------------------------------------------------------------------------
# deregister
# ---------------------------------------------------------------------------

DEREGISTER_COLUMNS = [
    Column("instance_id", "instance"),
    Column("result", "result", style=lambda v: {"removed": "green", "still-present": "red", "failed": "red",
                                                "not-attempted": "yellow", "unverified": "yellow"}.get(v)),
    Column("error", "error"),
]


def deregister_service(
    rc,
    name: Annotated[str, typer.Argument(metavar="NAME", help="Service name.", show_default=False,
                                        autocompletion=complete_service_names)],
    instance_ids: Annotated[Optional[List[str]], typer.Argument(metavar="INSTANCE_ID...", show_default=False,
                                                                autocompletion=complete_instance_ids,
                                                                help="Instances to remove.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Every instance of NAME live now, and only those (instances of this one service, not all services).")] = False,
    force: Annotated[bool, typer.Option("--force", help="Send even for ids that are not live.")] = False,
    yes: Yes = False,
    dry_run: DryRun = False,
) -> Result:
    """Remove instances through POST /api/v1/registry/deregister, one by one, and check they are gone.

    Shows what will be removed and asks first; --yes skips the question and is
    required when stdin is not a terminal. An id that is not live (in ZooKeeper
    when configured, else in the API's list) is refused with exit 1 -- the API
    answers ok for any id -- unless --force. Afterwards each node is checked
    (ZooKeeper, else the API): removed, still-present or failed. Ctrl-C stops
    the batch and reports which were removed (exit 130).

    Example: regctl deregister asr-service asr-1 asr-2 --yes
    """
    from regctl import registration as regmod
    from regctl.http.api import deregister_call
    from regctl.names import validate_instance_id, validate_service_name

    validate_service_name(name)
    ids = list(instance_ids or [])
    for iid in ids:
        validate_instance_id(iid)
    if all_ and ids:
        raise UsageError("--all cannot be combined with instance ids", hint="give ids or --all, not both")
    if not all_ and not ids:
        raise UsageError("no instance ids given", hint="give INSTANCE_ID..., or --all for every live instance")
    interactive = stdin_is_tty()
    if not dry_run and not yes and not interactive:
        raise UsageError("refusing to deregister without confirmation: stdin is not a terminal",
                         hint="pass --yes")

    live_reader, source = _live_reader(rc, name)
    plan = regmod.plan_deregister(name, ids, all_, live_reader(), source, force=force)
    calls = [regmod.describe_request(rc.settings.endpoint.config_url, deregister_call(name, i)) for i in plan.instance_ids]
    warnings = []
    if plan.not_live:
        warnings.append(f"--force: {', '.join(plan.not_live)} not live; sending anyway")
    if dry_run:
        return Result(data={"dry_run": True, "plan": plan.to_dict(), "requests": calls},
                      lines=[f"{c['method']} {c['url']}" for c in calls],
                      notes=[f"dry run: would deregister {len(calls)} instance(s) of {name}; nothing sent"],
                      warnings=warnings)
    for w in warnings:
        rc.out.warn(w)
    warnings = []
    if not yes:
        rc.out.note(f"will deregister {len(plan.instance_ids)} instance(s) of {name}: "
                    + ", ".join(plan.instance_ids))
        if not confirm(f"Deregister them from {rc.target}?"):
            return Result(data={"dry_run": False, "plan": plan.to_dict(), "results": [], "confirmed": False},
                          error=NotFound("not confirmed; nothing was deregistered", hint="answer y, or pass --yes"))

    api = rc.api()
    run = regmod.run_deregister(api.deregister, plan)
    check_error = regmod.verify_gone(run, live_reader, settle_s=min(2.0, rc.settings.endpoint.timeout))
    rows = run.rows()
    data = {"dry_run": False, "plan": plan.to_dict(), "results": rows, "verified_in": source,
            "interrupted": run.interrupted, "confirmed": True}
    result = Result(data=data, tables=[Table(DEREGISTER_COLUMNS, rows, title=f"deregister {name}")],
                    warnings=warnings)
    counts = {}
    for r in rows:
        counts[r["result"]] = counts.get(r["result"], 0) + 1
    result.notes.append(", ".join(f"{n} {k}" for k, n in counts.items()) + f" (checked in {source})")
    data["verified_after_error"] = _deregister_checks(rc, run, name, source, result)
    if run.interrupted:
        removed = [r["instance_id"] for r in rows if r["result"] == "removed"]
        kept = [r["instance_id"] for r in rows if r["result"] != "removed"]
        result.warnings.append(f"interrupted: removed {', '.join(removed) or 'none'}; "
                               f"not removed {', '.join(kept) or 'none'}")
        result.exit_code = int(ExitCode.INTERRUPTED)
        return result
    stopped_in_vain = run.stopped_by is not None and (
        any(r["result"] != "removed" for r in rows) or not run.removed_despite)
    if stopped_in_vain:
        result.error = run.stopped_by
    elif check_error is not None:
        result.error = Unreachable(f"deregistration sent but not verified: {check_error.message}",
                                   where=check_error.where, hint=check_error.hint)
    elif run.errors:
        first = next(iter(run.errors.values()))
        result.error = first if len(run.errors) == 1 else first.__class__(
            f"{len(run.errors)} deregistrations failed; first: {first.message}", where=first.where, hint=first.hint)
    elif any(r["result"] != "removed" for r in rows):
        bad = [f"{r['instance_id']} {r['result']}" for r in rows if r["result"] != "removed"]
        result.error = NotFound("not every instance was removed: " + ", ".join(bad),
                                hint=f"look with: regctl inspect {name}")
    return result




def _deregister_checks(rc, run, name: str, source: str, result: Result) -> list:
    """Say, per instance the API failed on (5xx, timeout), what ZooKeeper shows; the checks as dicts."""
    from regctl import registration as regmod

    suspects = {**run.removed_despite,
                **{i: e for i, e in run.errors.items() if regmod.write_unverified(e)}}
    if not suspects or source != "zookeeper":
        return []
    consequence = _consequence(rc, next(iter(suspects.values())), name)
    checks = []
    for iid, err in suspects.items():
        outcome = run.outcome.get(iid)
        happened = True if outcome == regmod.REMOVED else (None if outcome == regmod.UNVERIFIED else False)
        check = regmod.WriteCheck("deregister", name, iid, happened, err, consequence)
        result.warnings.append(check.sentence())
        checks.append(check.to_dict())
    return checks


def _live_reader(rc, name: str) -> tuple:
    """(callable returning the live instance ids now, "zookeeper" | "api")."""
    if rc.settings.endpoint.zk_configured:
        from regctl.names import zk_join

        path = zk_join(rc.settings.endpoint.zk_base, name, "instances")

        def from_zk() -> Any:
            return rc.zk().get_children(path) or []

        return from_zk, "zookeeper"

    def from_api() -> Any:
        return [i.instance_id for i in rc.api().instances(name)]

    return from_api, "api"
