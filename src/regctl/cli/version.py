"""``regctl version``: regctl's own version, the Config Service generation, ZooKeeper's version."""

import platform
from typing import Annotated

import typer

from regctl import __version__
from regctl.cli.render import Column, Result, Table
from regctl.errors import Unreachable

VERSION_COLUMNS = [
    Column("component", "component"),
    Column("where", "where"),
    Column("version", "version"),
    Column("detail", "detail"),
]


def version_info(rc, client: Annotated[bool, typer.Option(
        "--client", help="Only regctl's own version: ask no server.")] = False) -> Result:
    """regctl's version, which Config Service generation answers, and ZooKeeper's version.

    The generation is told as docs/generations.md says (GET /internal/health-status: 404 on the
    earlier generation, 422 on the later one); ZooKeeper's version comes from each member's
    ``srvr`` answer (asked only when ZooKeeper is configured). Exit 3 when a server could not be
    asked (the rows that were read are still shown); --timeout bounds each request.

    Example: regctl version -o json
    """


    rows = [{"component": "regctl", "where": f"Python {platform.python_version()}", "version": __version__,
             "detail": "client"}]
    data: dict = {"client": {"version": __version__, "python": platform.python_version()},
                  "server": None, "zookeeper": None}
    failed: list = []
    if not client:
        from regctl.monitor import UNKNOWN, detect_generation

        s = rc.settings
        info = detect_generation(rc.api())
        data["server"] = {"url": s.endpoint.config_url, **info.to_dict()}
        rows.append({"component": "config-service", "where": s.endpoint.config_url,
                     "version": f"{info.generation} generation" if info.generation != UNKNOWN else "could not tell",
                     "detail": info.evidence})
        if info.generation == UNKNOWN:
            failed.append(("Config Service", s.endpoint.config_url, info.evidence))
        if s.endpoint.zk_configured:
            from regctl.zookeeper.admin import check_ensemble

            members = check_ensemble(s.endpoint.zk_hosts, timeout=s.endpoint.timeout, session_fallback=False,
                                     zk_options=s.endpoint.zk_options())
            data["zookeeper"] = []
            for m in members:
                version = m.srvr.version if m.srvr is not None else None
                why = m.error or (None if version else m.words_text())
                data["zookeeper"].append({"address": m.address, "version": version, "mode": m.mode,
                                          "error": why})
                rows.append({"component": "zookeeper", "where": m.address, "version": version or "could not tell",
                             "detail": m.mode if version else why})
                if not version:
                    failed.append(("ZooKeeper", m.address, why))
    result = Result(data=data, tables=[Table(VERSION_COLUMNS, rows)])
    if failed:
        what, where, why = failed[0]
        more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
        result.error = Unreachable(f"could not tell the {what} version: {why}{more}", where=where,
                                   hint="check --config-url and --zk, or show only regctl's with --client")
    return result
