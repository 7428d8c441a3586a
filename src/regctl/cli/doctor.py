"""``regctl doctor``: the integration guide's debug checklist and common issues, as named checks."""

import os
from pathlib import Path
from typing import Annotated, List, Optional

import typer

from regctl.cli.options import command
from regctl.cli.render import Column, Result, Table
from regctl.errors import UsageError

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

#: environment variable forcing container detection on (1) or off (0)
CONTAINER_ENV = "REGCTL_DOCTOR_IN_CONTAINER"


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
    strict: Annotated[bool, typer.Option("--strict", help="Warnings fail too (exit 1).")] = False,
    server_timeout: Annotated[Optional[float], typer.Option(
        "--server-timeout", metavar="SECONDS", min=0.1, show_default=False,
        help="How long the Config Service's own health call (service.server-health, which WRITES the row's "
             "status) may take [default: derived: --timeout + 12 s per instance on the later generation, "
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
    from regctl import doctor as core

    if list_checks:
        return _list_result(core)
    selected = core.select_checks(checks or None, skip or None)
    if not selected:
        raise UsageError("every check was skipped", hint="see: regctl doctor --list-checks")
    env = dict(os.environ)
    env_source = "environment"
    if env_file is not None:
        from regctl.registration import parse_env_file

        from regctl.bounded import CONFIG_FILE_MAX_BYTES, read_file_text

        try:
            text = read_file_text(env_file, CONFIG_FILE_MAX_BYTES, "env file")
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"cannot read the env file ({exc.__class__.__name__}: "
                             f"{getattr(exc, 'strerror', None) or exc})", where=str(env_file),
                             hint="check the path") from None
        env.update(parse_env_file(text, str(env_file)))
        env_source = f"env file {env_file}"
    s = rc.settings
    explicit = frozenset(c.name for c in core.select_checks(checks)) if checks else frozenset()
    config = core.DoctorConfig(
        config_url=s.config_url, zk_hosts=s.zk_hosts, zk_base=s.zk_base, timeout=s.timeout,
        headers=dict(s.headers), verify=s.extra.get("verify", True), env=env, env_source=env_source,
        zk_auth_data=s.extra.get("zk_auth_data"), zk_client_kwargs=s.extra.get("zk_client_kwargs") or {},
        service=service, all_services=all_, in_container=_container_override(),
        config_url_source=_source_text(s, "config_url"), explicit=explicit, server_timeout=server_timeout)
    if s.verbose:
        rc.out.debug(f"doctor: {len(selected)} checks, Config Service {s.config_url}, ZooKeeper "
                     f"{s.zk_hosts or 'not configured'}, timeout {s.timeout:g}s")
    report = core.run_checks(config, selected)
    return _report_result(report, strict, rc.out.fancy(), bool(s.verbose), width=_wrap_width(rc),
                          hide_no_input=bool(service) and not s.verbose)


def _container_override() -> "bool | None":
    value = os.environ.get(CONTAINER_ENV, "").strip().lower()
    if value in ("1", "true", "yes"):
        return True
    if value in ("0", "false", "no"):
        return False
    return None


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
    import shutil

    if not rc.out.is_tty(rc.out.stdout) and not os.environ.get("COLUMNS", "").strip():
        return None
    return shutil.get_terminal_size((100, 24)).columns


def _wrap(text: str, width: "int | None", indent: str = "") -> list:
    import textwrap

    if not width or len(text) <= width:
        return [text]
    return textwrap.wrap(text, width, subsequent_indent=indent, break_long_words=True,
                         break_on_hyphens=False) or [text]


def _detail_lines(r, fancy: bool, verbose: bool, width: "int | None" = None) -> list:
    lines = []
    if r.hint and (r.status != "pass" or verbose or r.name == "hygiene.sessions"):
        arrow = "\u2192" if fancy else "->"
        style = {"fail": "red", "warn": "yellow"}.get(r.status, "cyan")
        lines += [(style, part) for part in _wrap(f"{arrow} {r.hint}", width, "  ")]
    if verbose:
        for key, value in r.details.items():
            lines.append(("dim", f"  {key}: {_short(value)}"))
        if r.duration_ms is not None:
            lines.append(("dim", f"  took {r.duration_ms:g} ms"))
    return lines


def _short(value, limit: int = 300) -> str:
    import json

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


def _report_result(report, strict: bool, fancy: bool, verbose: bool, width: "int | None" = None,
                   hide_no_input: bool = False) -> Result:
    from regctl.doctor import AREAS

    data = report.to_dict(strict)
    tables = []
    hidden = 0
    for area, title in AREAS.items():
        rows = []
        for r in report.results:
            if r.area != area:
                continue
            if hide_no_input and r.status == "skip" and r.details.get("no_input"):
                hidden += 1
                continue
            d = r.to_dict()
            d["target"] = r.target or ""
            rows.append((r, d))
        if not rows:
            continue
        avail = _finding_width([d for _r, d in rows], width)
        out, last_hint = [], None
        for r, d in rows:
            parts = _wrap(r.finding, avail, "")
            d["finding"] = parts[0]
            lines = [("", p) for p in parts[1:]]
            hint_lines = _detail_lines(r, fancy, verbose, avail)
            if r.hint and r.hint == last_hint and not verbose:  # the same hint as the row above: say it once
                hint_lines = []
            last_hint = r.hint
            d["_lines"] = lines + hint_lines
            out.append(d)
        tables.append(Table(CHECK_COLUMNS, out, title=title, details_key="_lines",
                            details_column="finding", hide_empty=True))
    code = data["exit_code"]
    footer = [""] if tables else []
    text = report.summary_line()
    if strict and report.counts()["warn"]:
        text += " (--strict: warnings fail)"
    if hidden:
        text += f" ({hidden} skipped for lack of input not shown; -v shows them)"
    footer.append(text)
    return Result(data=data, tables=tables, footer=footer, exit_code=code)
