"""``regctl doctor``: the integration guide's debug checklist and common issues, as named checks."""

import json
import os
import shutil
import textwrap
from pathlib import Path
from typing import Annotated, List, Optional

import typer

from regctl.cli.live import CountLine
from regctl.cli.options import command
from regctl.cli.render import Column, Result, Table, status_mark

SELECT = "Selection"

CHECK_COLUMNS = [
    Column("status", "", mark=True),
    Column("name", "check"),
    Column("target", "target"),
    Column("finding", "finding"),
    Column("duration_ms", "ms", wide=True, justify="right"),
]

LIST_COLUMNS = [
    Column("name", "check"),
    Column("area", "area"),
    Column("catches", "catches"),
]

def register(app: typer.Typer) -> None:
    command(app, "doctor")(doctor)


def doctor(
    rc,
    checks: Annotated[Optional[List[str]], typer.Argument(
        metavar="[CHECK...]", show_default=False,
        help="Run only these checks (names, areas like 'zookeeper', or globs like 'config.*').")] = None,
    service: Annotated[Optional[str], typer.Option(
        "--service", metavar="NAME", rich_help_panel=SELECT, show_default=False,
        help="The service to check in depth [default: SERVICE_NAME].")] = None,
    env_file: Annotated[Optional[Path], typer.Option(
        "--env-file", metavar="FILE", rich_help_panel=SELECT, show_default=False,
        help="The service's KEY=VALUE environment (its .env); values override the process environment.")] = None,
    all_: Annotated[bool, typer.Option(
        "--all", rich_help_panel=SELECT, help="Registry hygiene over every service (hygiene.* checks).")] = False,
    skip: Annotated[Optional[List[str]], typer.Option(
        "--skip", metavar="CHECK", rich_help_panel=SELECT, show_default=False,
        help="Leave a check (or area, or glob) out; repeatable.")] = None,
    ignore: Annotated[Optional[List[str]], typer.Option(
        "--ignore", metavar="CHECK[:TARGET]", rich_help_panel=SELECT, show_default=False,
        help="Acknowledge a known finding (a check name or glob, optionally one target, e.g. "
             "hygiene.stale-rows:legacy-billing): still reported, counted apart, failing nothing; repeatable; "
             "adds to the context's ignore: list.")] = None,
    strict: Annotated[bool, typer.Option("--strict", help="Warnings fail too (exit 1); acknowledged ones "
                                         "do not.")] = False,
    server_timeout: Annotated[Optional[float], typer.Option(
        "--server-timeout", metavar="SECONDS", min=0.1, show_default=False,
        help="How long the Config Service's own health call (service.server-health, which WRITES the row's "
             "status and runs only when named) may take [default: derived: --timeout + 12 s per instance on the later generation, "
             "+ 5 s per instance on the earlier one; at most 600 s].")] = None,
    list_checks: Annotated[bool, typer.Option("--list-checks", help="List the checks and exit.")] = False,
) -> Result:
    """Diagnose the registry setup: the guide's debug checklist and common issues, as named checks.

    Areas, in order: config (Config Service reachable and healthy, per component,
    and its generation), zookeeper (each ensemble member, quorum, session, base
    path), cause (what broke: Redis, PostgreSQL, the Config Service's own ZooKeeper
    client, a restart, a bad status, a stale cache; the rows a found cause explains
    become skips saying so), env (the guide's SERVICE_* variables, when SERVICE_NAME
    is set or --env-file is given), service (registration, reachability,
    discoverability, the server's monitor and health call for --service NAME /
    SERVICE_NAME), hygiene (--all: zombies, duplicate URLs, stale and seeded rows,
    layout, session ownership, the monitor's verdicts; the server's health call for
    every service only when named: hygiene.server-health, which writes every row).

    Each row: pass, warn, fail or skip, a one-line finding and, when not passing,
    what to do. Checks run concurrently, each under its own deadline, so doctor ends
    within about one --timeout even when hosts drop packets. -v shows what each
    check did. With --service, rows skipped for lack of input are hidden unless -v.
    Exit 0 when nothing fails (warnings too, with --strict), 1 otherwise.

    Example: regctl doctor --service asr-service -v
    """
    from regctl import doctor as core  # httpx: not on the start-up path

    if list_checks:
        return _list_result(core)
    s = rc.settings
    plan = core.plan_doctor(s.endpoint, core.DoctorRequest(
        checks=tuple(checks or ()), skip=tuple(skip or ()), service=service, env_file=env_file, all_services=all_,
        ignore=tuple(ignore or ()), server_timeout=server_timeout, context=s.context,
        config_url_source=_source_text(s, "config_url")))
    if s.verbose:
        rc.out.debug(f"doctor: {len(plan.checks)} checks, Config Service {s.endpoint.config_url}, ZooKeeper "
                     f"{s.endpoint.zk_hosts or 'not configured'}, timeout {s.endpoint.timeout:g}s")
    with CountLine(rc.out, "doctor", len(plan.checks), "checks") as progress:
        report = plan.run(on_result=progress.done)
    return _report_result(report, strict, rc.out.fancy(), bool(s.verbose), width=_wrap_width(rc))


def _source_text(settings, name: str) -> "str | None":
    src = settings.sources.get(name)
    return {"flag": "from --config-url", "env": "from CONFIG_SERVICE_URL", "default": "the default",
            "context": f"from context {settings.context!r}"}.get(src)


def _list_result(core) -> Result:
    checks = core.list_checks()
    rows = [c.to_dict() for c in checks]
    return Result(data={"checks": rows, "areas": dict(core.AREAS)}, tables=[Table(LIST_COLUMNS, rows)])


def _wrap_width(rc) -> "int | None":
    """The terminal's width when stdout is one (or COLUMNS is set), else None: no wrapping."""
    if not rc.out.is_tty(rc.out.stdout) and not os.environ.get("COLUMNS", "").strip():
        return None
    return shutil.get_terminal_size((100, 24)).columns


def _wrap(text: str, width: "int | None", indent: str = "") -> list:
    if not width or len(text) <= width:
        return [text]
    return textwrap.wrap(text, width, subsequent_indent=indent, break_long_words=True,
                         break_on_hyphens=False) or [text]


def _detail_lines(r) -> list:
    """With -v: a row's details and how long it took, indented under it."""
    lines = [f"  {key}: {_short(value)}" for key, value in r.details.items()]
    if r.duration_ms is not None:
        lines.append(f"  took {r.duration_ms:g} ms")
    return lines


def _short(value, limit: int = 300) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= limit else text[:limit] + "..."


def _finding_width(rows: list, width: "int | None") -> "int | None":
    """What is left of the terminal for the finding column, after the mark, check and target columns."""
    if not width:
        return None
    used = 4 + 2 + max(len("check"), *(len(r["name"]) for r in rows)) + 2
    targets = [len(r["target"]) for r in rows if r["target"]]
    if targets:
        used += max(len("target"), *targets) + 2
    return max(30, width - used - 1)


#: check -> (roll-up phrase for N rows of one status, hint for all of them), for --all's many findings
ROLLUPS = {
    "hygiene.zombies": ("instances fail their health check",
                        "read their logs; deregister the dead ones: regctl deregister SERVICE INSTANCE_ID"),
    "hygiene.undiscoverable": ("services have no instance /url can return",
                               "register their instances with status 'healthy'"),
    "hygiene.duplicate-urls": ("URLs are registered under several instance ids",
                               "give each service a stable SERVICE_INSTANCE_ID; deregister the stale ids"),
    "hygiene.stale-rows": ("services have rows without instances",
                           "restart the ones that should run; acknowledge the retired ones: "
                           "--ignore hygiene.stale-rows:NAME or the context's ignore: list"),
    "hygiene.layout": ("nodes do not fit the registry layout", "inspect them with zkCli.sh"),
    "hygiene.monitor": ("services the monitor finds unhealthy or degraded", "see each with: regctl doctor "
                        "--service NAME"),
    "service.reachable": ("instances do not answer from here", "see each with -v"),
}
#: more rows than this of one check and status become one roll-up line
ROLLUP_AT = 5
#: names listed in a roll-up line
ROLLUP_NAMES = 8


def _block(mark: str, head: str, text: str, hint: "str | None", width: "int | None", arrow: str) -> list:
    """One finding: ``mark  head: text`` then ``-> hint``, each wrapped at ``width`` under the text."""
    pad = " " * 6
    lines = _wrap(f"{mark:<4}  {head}: {text}" if head else f"{mark:<4}  {text}", width, pad)
    if hint:
        lines += _wrap(f"{pad}{arrow} {hint}", width, pad + "   ")
    return lines


def _rollup(check: str, status: str, rows: list, fancy: bool, width, arrow: str, kind: str = "") -> list:
    what, hint = ROLLUPS.get(check, ("findings", "see them all with -o json, or -v"))
    what += f" ({kind})" if kind else ""
    targets = [r.target or "-" for r in rows]
    shown = ", ".join(targets[:ROLLUP_NAMES]) + (", ..." if len(targets) > ROLLUP_NAMES else "")
    return _block(status_mark(status, fancy), check, f"{len(rows)} {what}: {shown} (-o json for all)", hint,
                  width, arrow)


def _merge_alike(rows: list) -> list:
    """Rows of several checks saying the same thing (one cause, e.g. the registry unreadable) as one row
    naming them all: (names, first row)."""
    out: list = []
    for r in rows:
        same = next((m for m in out if m[1].status == r.status and m[1].finding == r.finding
                     and m[1].hint == r.hint and not r.target and not m[1].target), None)
        if same is not None:
            same[0].append(r.name)
        else:
            out.append(([r.name], r))
    return out


def _problem_lines(rows: list, fancy: bool, width, arrow: str, verbose: bool) -> list:
    """The rows that need action, failures first; many of one check rolled up, one finding of several
    checks said once."""
    out, last_hint = [], None
    for status in ("fail", "warn"):
        groups: dict = {}
        for r in rows:
            if r.status == status:  # one kind of finding per group: the one zombie that refused among
                # hundreds that hang is shown on its own row
                groups.setdefault((r.name, str(r.details.get("kind") or "")), []).append(r)
        singles = []
        for (name, kind), group in groups.items():
            if len(group) > ROLLUP_AT and not verbose:
                out += _rollup(name, status, group, fancy, width, arrow, kind)
                last_hint = None
            else:
                singles += group
        for names, r in (_merge_alike(singles) if not verbose else [([r.name], r) for r in singles]):
            hint = None if (r.hint == last_hint and not verbose) else r.hint
            last_hint = r.hint
            head = ", ".join(names) + (f" {r.target}" if r.target else "")
            out += _block(status_mark(status, fancy), head, r.finding, hint, width, arrow)
            if verbose:
                out += _detail_lines(r)
    return out


def _waits_on_a_failure(row) -> bool:
    """A skip that only waits for another check to pass ("fix config.http first")."""
    hint = (row.hint or "").strip()
    return hint.startswith("fix ") and hint.endswith(" first")


def _report_result(report, strict: bool, fancy: bool, verbose: bool, width: "int | None" = None) -> Result:
    """Problems first (failures, then warnings; many of one kind rolled up), then one line of what passed
    per area, then the skips that found something to say; skips for lack of input, acknowledged rows and
    passing rows' details only with -v."""
    from regctl.doctor import AREAS  # httpx: not on the start-up path

    data = report.to_dict(strict)
    arrow = "\u2192" if fancy else "->"
    results = report.results
    problems = [r for r in results if r.problem]
    lines = _problem_lines(problems, fancy, width, arrow, verbose)
    hide = not verbose
    waiting = 0
    if verbose:
        lines += _area_lines(results, AREAS, fancy, width, arrow)
    else:
        passed: dict = {}
        for r in results:
            if r.status == "pass":
                passed[r.area] = passed.get(r.area, 0) + 1
        if passed:
            text = ", ".join(f"{AREAS.get(a, a)} {n}" for a, n in passed.items())
            lines += _wrap(f"{status_mark('pass', fancy):<4}  passed: {text}", width, " " * 6)
        skips, waiting = _skip_lines(results, bool(problems), hide, fancy, width, arrow)
        lines += skips
    hidden = sum(1 for r in results if r.status == "skip" and r.details.get("no_input")) if hide else 0
    lines += _wrap(_summary_text(report, strict, verbose, hidden, waiting), width, "")
    return Result(data=data, lines=lines, exit_code=data["exit_code"])


def _area_lines(results: list, areas: dict, fancy: bool, width, arrow: str) -> list:
    """-v: every row that is not a problem, under its area's title, with its details."""
    lines = []
    for area, title in areas.items():
        rows = [r for r in results if r.area == area and not r.problem]
        if not rows:
            continue
        lines.append(title)
        for r in rows:
            head = r.name + (f" {r.target}" if r.target else "")
            text = r.finding + (f" (acknowledged: {r.details['acknowledged']})" if r.acknowledged else "")
            lines += _block(status_mark(r.status, fancy), head, text, r.hint, width, arrow)
            lines += _detail_lines(r)
    return lines


def _skip_lines(results: list, problems: bool, hide: bool, fancy: bool, width, arrow: str) -> tuple:
    """(the skips that found something to say, how many only wait on a failure and are left out)."""
    lines: list = []
    waiting = 0
    for r in results:
        if r.status != "skip" or (hide and r.details.get("no_input")):
            continue
        if _waits_on_a_failure(r) and problems:
            waiting += 1
            continue
        head = r.name + (f" {r.target}" if r.target else "")
        lines += _block(status_mark("skip", fancy), head, r.finding,
                        None if r.details.get("explained_by") else r.hint, width, arrow)
    return lines, waiting


def _summary_text(report, strict: bool, verbose: bool, hidden: int, waiting: int) -> str:
    """The counts, and what -v would show besides (``hidden``: skips for lack of input left out)."""
    text = report.summary_line()
    if strict and report.counts()["warn"]:
        text += " (--strict: warnings fail)"
    notes = []
    if hidden:
        notes.append(f"{hidden} without input")
    acked = report.counts()["acknowledged"]
    if waiting:
        notes.append(f"{waiting} waiting on a failure")
    if acked and not verbose:
        notes.append(f"{acked} acknowledged")
    if notes:
        text += " (-v shows " + ", ".join(notes) + ")"
    return text
