"""Commands that change the registry: ``register``, ``deregister``."""

import json
from pathlib import Path
from typing import Annotated, List, Optional

import typer

from regctl.cli.completion.lookup import complete_instance_ids, complete_service_names
from regctl.cli.options import DryRun, Yes, command
from regctl.cli.render import Column, Result, Table, confirm, stdin_is_tty
from regctl.errors import ExitCode, NotFound, UsageError

INPUT = "Registration"


def register(app: typer.Typer) -> None:
    command(app, "register")(register_service)
    command(app, "deregister")(deregister_service)


# ---------------------------------------------------------------------------
# register
# ---------------------------------------------------------------------------

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
    # pulls in httpx and kazoo: not on the start-up path
    from regctl.registration.register import register as run_register
    from regctl.registration.register import register_requests
    from regctl.registration.request import RegisterFlags, RegisterInput, read_request  # yaml
    flags = RegisterFlags(name, url, host, port, public_url, health_url, no_health_url, instance_id)
    request = read_request(RegisterInput(flags, tuple(meta or ()), status, from_env, env_file, file))
    if dry_run:
        return _register_dry_run(register_requests(rc.settings.endpoint, request), request.warnings)
    report = run_register(rc.settings.endpoint, request, rc)
    if report.error is not None and report.nothing_happened:
        raise report.error
    notes, warnings = _register_messages(report)
    return Result(data=report.to_dict(), lines=report.instance_ids, notes=notes, warnings=warnings,
                  error=report.error)


def _register_dry_run(requests: list, warnings: tuple) -> Result:
    """The exact requests; the same keys as a real run (docs/commands.md), nothing sent so no ids."""
    lines = []
    for req in requests:
        lines.append(f"{req['method']} {req['url']}")
        lines.extend(json.dumps(req["json"], indent=2, ensure_ascii=False).splitlines())
    return Result(data={"dry_run": True,
                        "registrations": [{"request": r, "instance_id": None, "zookeeper": None} for r in requests],
                        "instance_ids": [], "verified_after_error": []},
                  lines=lines, notes=[f"dry run: {len(requests)} request(s) not sent"], warnings=list(warnings))


def _register_messages(report) -> tuple:
    """(notes, warnings) of a register report, in the order things happened."""
    notes: list = []
    # a check that found the write undone is the error line; a warning too would say it twice
    warnings = [*report.asked.warnings, *(c.sentence() for c in report.verified_after_error if c.happened)]
    zk = report.confirmation
    if zk is not None and not zk.configured:
        notes.append("not confirmed in ZooKeeper (not configured; pass --zk to check)")
    elif zk is not None and zk.error is not None:
        warnings.append(f"could not confirm in ZooKeeper: {zk.error}")
    elif zk is not None:
        for path, state in zk.found.items():
            if state == "unreadable":
                warnings.append(f"could not read {path}: {zk.unreadable[path]}")
            elif state == "missing":
                warnings.append(f"{path} is not in ZooKeeper after registering; is --zk/--zk-base the registry's?")
        if report.confirmed:
            notes.append(f"confirmed in ZooKeeper: {len(report.done)} node(s) under {zk.base}")
    if report.error is not None and report.done:
        notes.append(f"registered {len(report.done)} of {len(report.requests)} before the failure")
    return notes, warnings


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
    # pulls in httpx and kazoo: not on the start-up path
    from regctl.registration.deregister import DeregisterAsk, deregister, deregister_plan, deregister_requests

    ask = DeregisterAsk(name, tuple(instance_ids or ()), all_live=all_, force=force)
    interactive = stdin_is_tty()
    if not dry_run and not yes and not interactive:
        raise UsageError("refusing to deregister without confirmation: stdin is not a terminal",
                         hint="pass --yes")
    endpoint = rc.settings.endpoint
    plan = deregister_plan(endpoint, ask, rc)
    forced = [f"--force: {', '.join(plan.not_live)} not live; sending anyway"] if plan.not_live else []
    if dry_run:
        calls = deregister_requests(endpoint, plan)
        return Result(data={"dry_run": True, "plan": plan.to_dict(), "requests": calls},
                      lines=[f"{c['method']} {c['url']}" for c in calls],
                      notes=[f"dry run: would deregister {len(calls)} instance(s) of {name}; nothing sent"],
                      warnings=forced)
    for w in forced:
        rc.out.warn(w)
    if not yes:
        rc.out.note(f"will deregister {len(plan.instance_ids)} instance(s) of {name}: "
                    + ", ".join(plan.instance_ids))
        if not confirm(f"Deregister them from {rc.target}?"):
            return Result(data={"dry_run": False, "plan": plan.to_dict(), "results": [], "confirmed": False},
                          error=NotFound("not confirmed; nothing was deregistered", hint="answer y, or pass --yes"))
    return _deregister_result(deregister(endpoint, plan, rc))


def _deregister_result(report) -> Result:
    """The table of outcomes, the counts, what ZooKeeper showed after errors, and how far Ctrl-C let it get."""
    rows = [o.to_dict() for o in report.outcomes]
    counts = ", ".join(f"{n} {k}" for k, n in report.counts().items())
    table = Table(DEREGISTER_COLUMNS, rows, title=f"deregister {report.plan.service}")
    result = Result(data=report.to_dict(), tables=[table], notes=[counts + f" (checked in {report.verified_in})"],
                    warnings=[c.sentence() for c in report.verified_after_error], error=report.error)
    if report.interrupted:
        result.warnings.append(f"interrupted: removed {', '.join(report.removed) or 'none'}; "
                               f"not removed {', '.join(report.not_removed) or 'none'}")
        result.exit_code = int(ExitCode.INTERRUPTED)
    return result
