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
    list_checks: Annotated[bool, typer.Option("--list-checks", help="List the checks and exit.")] = False,
) -> Result:
    """Diagnose the registry setup: the guide's debug checklist and common issues, as named checks.

    Areas, in order: config (Config Service reachable and healthy, per component),
    zookeeper (each ensemble member, quorum, session, base path), env (the guide's
    SERVICE_* variables, when SERVICE_NAME is set or --env-file is given), service
    (registration, reachability, discoverability of --service NAME / SERVICE_NAME),
    hygiene (--all: zombies, unparseable statuses, duplicate URLs, stale rows,
    layout, session ownership).

    Each row: pass, warn, fail or skip, a one-line finding and, when not passing,
    what to do. Checks run concurrently, each under its own deadline, so doctor ends
    within about one --timeout even when hosts drop packets. -v shows what each
    check did. Exit 0 when nothing fails (warnings too, with --strict), 1 otherwise.

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

        try:
            text = env_file.read_text(encoding="utf-8")
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
        config_url_source=_source_text(s, "config_url"), explicit=explicit)
    if s.verbose:
        rc.out.debug(f"doctor: {len(selected)} checks, Config Service {s.config_url}, ZooKeeper "
                     f"{s.zk_hosts or 'not configured'}, timeout {s.timeout:g}s")
    report = core.run_checks(config, selected)
    return _report_result(report, strict, rc.out.fancy(), bool(s.verbose))


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


def _detail_lines(r, fancy: bool, verbose: bool) -> list:
    lines = []
    if r.hint and (r.status != "pass" or verbose or r.name == "hygiene.sessions"):
        arrow = "\u2192" if fancy else "->"
        style = {"fail": "red", "warn": "yellow"}.get(r.status, "cyan")
        lines.append((style, f"{arrow} {r.hint}"))
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


def _report_result(report, strict: bool, fancy: bool, verbose: bool) -> Result:
    from regctl.doctor import AREAS

    data = report.to_dict(strict)
    tables = []
    for area, title in AREAS.items():
        rows = []
        last_hint = None
        for r in report.results:
            if r.area != area:
                continue
            d = r.to_dict()
            d["target"] = r.target or ""
            lines = _detail_lines(r, fancy, verbose)
            if r.hint and r.hint == last_hint and not verbose:  # the same hint as the row above: say it once
                lines = lines[1:]
            last_hint = r.hint
            d["_lines"] = lines
            rows.append(d)
        if rows:
            tables.append(Table(CHECK_COLUMNS, rows, title=title, details_key="_lines",
                                details_column="finding", hide_empty=True))
    code = data["exit_code"]
    footer = [""] if tables else []
    text = report.summary_line()
    if strict and report.counts()["warn"]:
        text += " (--strict: warnings fail)"
    footer.append(text)
    return Result(data=data, tables=tables, footer=footer, exit_code=code)
