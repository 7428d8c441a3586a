"""``regctl sandbox up|status|down``: a local ZooKeeper plus a contract-compatible registry."""

from pathlib import Path
from typing import Annotated, Optional

import typer

from regctl.cli.options import command
from regctl.cli.render import Column, Result, Table
from regctl.errors import NotFound, UsageError
from regctl.names import parse_port
from regctl.sandbox.zookeeper import parse_four_letter_words

DirOpt = Annotated[Optional[Path], typer.Option(
    "--dir", metavar="PATH", show_default=False,
    help="State and logs [env REGCTL_SANDBOX_DIR; default ~/.local/state/regctl/sandbox].")]

COMPONENT_COLUMNS = [
    Column("name", "component"),
    Column("running", "running"),
    Column("pid", "pid", justify="right"),
    Column("port", "port", justify="right"),
    Column("log", "log", wide=True),
]


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="Run a local registry (ZooKeeper + Config Service stand-in) on 127.0.0.1.",
                        no_args_is_help=True)
    command(group, "up")(sandbox_up)
    command(group, "status")(sandbox_status)
    command(group, "down")(sandbox_down)
    app.add_typer(group, name="sandbox")


def _dir(path: "Path | None") -> Path:
    from regctl.sandbox.stack import default_dir  # httpx: off the start-up path

    return (path or default_dir()).expanduser()


def _info_result(info, lines: "list[str] | None" = None) -> Result:
    data = info.to_dict()
    rows = [{"name": c.name, "running": c.running, "pid": c.pid, "port": c.port, "log": c.log}
            for c in info.components]
    return Result(data=data, tables=[] if lines else [Table(COMPONENT_COLUMNS, rows)], lines=lines)


def sandbox_up(rc, dir: DirOpt = None,
               demo: Annotated[bool, typer.Option("--demo", help="Also start demo services and register them.")] = False,
               api_port: Annotated[int, typer.Option("--api-port", metavar="N", help="Registry port (0 = any free).")] = 8082,
               zk_port: Annotated[int, typer.Option("--zk-port", metavar="N", help="ZooKeeper port (0 = any free); "
                                                    "an ensemble uses N, N+1 and N+2.")] = 2181,
               ensemble: Annotated[Optional[int], typer.Option(
                   "--ensemble", metavar="1|3", show_default=False,
                   help="ZooKeeper members: 1 (standalone) or 3 (an ensemble on loopback, for failover "
                        "drills) [default: 1, or what already runs].")] = None,
               generation: Annotated[Optional[str], typer.Option(
                   "--generation", metavar="earlier|later", show_default=False,
                   help="Config Service generation to behave like: earlier, or later (health monitor, "
                        "/internal/health-status, /health/detailed, a dozen seeded rows) "
                        "[default: earlier, or what already runs].")] = None,
               four_letter_words: Annotated[Optional[str], typer.Option(
                   "--four-letter-words", metavar="all|LIST", show_default=False,
                   help="ZooKeeper's four-letter-word whitelist: all, or a comma-separated list "
                        "(e.g. ruok,mntr,cons; srvr is always allowed) [default: srvr alone, as deployments "
                        "run; or what already runs].")] = None,
               ) -> Result:
    """Start ZooKeeper and the registry in the background; print the export line to use them.

    ZooKeeper allows only the srvr four-letter word, as a deployment's does;
    --four-letter-words opens more. With --ensemble 3, ZooKeeper is a
    three-member ensemble and the export line lists every member (stop one with 'kill' to rehearse a failover; 'sandbox up'
    brings it back). When the registry has to be started again (after it or
    ZooKeeper died), the demo services are restarted so that they register again;
    a warning names what did not come back.

    Progress goes to stderr and the export line to stdout, so this works:
    eval "$(regctl sandbox up --demo)"
    """
    from regctl.sandbox.stack import SandboxShape, up  # httpx and kazoo: off the start-up path

    for port, what in ((api_port, "--api-port"), (zk_port, "--zk-port")):
        if port != 0:
            parse_port(port, what)
    if ensemble is not None and ensemble not in (1, 3):
        raise UsageError(f"--ensemble {ensemble} is not supported", hint="use --ensemble 1 or --ensemble 3")
    if generation is not None and generation not in ("earlier", "later"):
        raise UsageError(f"--generation {generation!r} is not known", hint="use --generation earlier or later")
    if four_letter_words is not None:
        try:
            parse_four_letter_words(four_letter_words)
        except ValueError as exc:
            raise UsageError(f"--four-letter-words {four_letter_words!r}: {exc}",
                             hint="use --four-letter-words all, or a list such as ruok,mntr,cons") from None
    if ensemble == 3 and zk_port and zk_port + 2 > 65535:
        raise UsageError(f"--zk-port {zk_port} leaves no room for three members", hint="use a lower port, or 0")
    info = up(_dir(dir), api_port=api_port, zk_port=zk_port, demo=demo,
              shape=SandboxShape(ensemble, generation, four_letter_words),
              timeout=max(60.0, rc.settings.endpoint.timeout), progress=rc.out.note)
    result = _info_result(info, lines=[info.env_line()])
    result.warnings.extend(info.warnings)
    result.notes.append(f"sandbox is up in {info.dir}; stop it with: regctl sandbox down"
                        + (f" --dir {info.dir}" if dir else ""))
    return result


def sandbox_status(rc, dir: DirOpt = None) -> Result:
    """Show the sandbox's components, their pids, ports and whether they run. Exit 1 if not up."""
    from regctl.sandbox.stack import status

    d = _dir(dir)
    info = status(d)
    if info is None:
        return Result(data={"dir": str(d), "components": []},
                      error=NotFound(f"no sandbox in {d}", hint="start one with: regctl sandbox up --demo"))
    result = _info_result(info)
    result.notes.append(info.env_line())
    if not all(c.running for c in info.components):
        result.exit_code = 1
        result.warnings.append("some components are not running; restart with: regctl sandbox up")
    return result


def sandbox_down(rc, dir: DirOpt = None) -> Result:
    """Stop every sandbox process (logs are kept). Safe to run twice.

    Only processes this sandbox started are signalled (each carries a random token and
    its start time is recorded); any other process its state names is left alone, with
    a warning.
    """
    from regctl.sandbox.stack import down

    d = _dir(dir)
    refused: list = []
    stopped = down(d, refused)
    result = Result(data={"dir": str(d), "stopped": stopped, "refused": refused})
    result.warnings.extend(refused)
    result.notes.append(f"stopped: {', '.join(stopped)}" if stopped else f"nothing was running in {d}")
    return result
