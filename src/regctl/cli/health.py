"""Health commands: ``health`` (probe instances) and ``wait`` (block until instances are up)."""

import sys
from typing import Annotated, Any, List, Optional

import typer

from regctl.cli.completion.lookup import complete_service_names
from regctl.cli.options import command
from regctl.cli.render import Column, Result, Table, status_style
from regctl.errors import NotFound, UsageError

#: more targets than this get a progress bar (on a terminal)
PROGRESS_THRESHOLD = 20


def register(app: typer.Typer) -> None:
    command(app, "health")(health)
    command(app, "wait")(wait)


def parse_expect(text: Optional[str]) -> Optional[list]:
    """``"200,204"`` -> ``[200, 204]``; UsageError for anything else."""
    if text is None or not text.strip():
        return None
    codes = []
    for part in text.split(","):
        part = part.strip()
        try:
            code = int(part)
        except ValueError:
            raise UsageError(f"--expect {text!r}: {part!r} is not an HTTP status",
                             hint="give codes like --expect 200,204") from None
        if not 100 <= code <= 599:
            raise UsageError(f"--expect {text!r}: {code} is not an HTTP status", hint="use codes from 100 to 599")
        codes.append(code)
    return codes


# ---------------------------------------------------------------------------
# health
# ---------------------------------------------------------------------------

HEALTH_COLUMNS = [
    Column("service_name", "service"),
    Column("instance_id", "instance"),
    Column("url", "url"),
    Column("status_code", "http", justify="right"),
    Column("latency_ms", "ms", justify="right"),
    Column("verdict", "verdict", style=status_style),
    Column("error", "error"),
    Column("server", "server says", style=status_style),
    Column("attempts", "tries", wide=True, justify="right"),
]

SERVER_COLUMNS = [
    Column("service", "service"),
    Column("regctl", "regctl"),
    Column("server_status", "server status", style=status_style),
    Column("detailed", "server detailed"),
    Column("deadline", "waited up to", wide=True, justify="right"),
]


def health(
    rc,
    names: Annotated[Optional[List[str]], typer.Argument(metavar="NAME...", show_default=False,
                                                         help="Services to probe.",
                                                         autocompletion=complete_service_names)] = None,
    all_: Annotated[bool, typer.Option("--all", help="Probe every registered service.")] = False,
    concurrency: Annotated[int, typer.Option("--concurrency", metavar="N", min=1, max=65536,
                                             help="Probes open at once, one socket each (at most the file "
                                                  "limit, raised to its hard limit); an endpoint that never "
                                                  "answers holds its slot for --timeout.")
                 ] = 1024,  # regctl.health.DEFAULT_CONCURRENCY (not imported here: it pulls in httpx)
    retries: Annotated[int, typer.Option("--retries", metavar="N", min=0, max=10,
                                         help="Retries per failing probe, with backoff 0.2s, 0.4s, ...")] = 0,
    expect: Annotated[Optional[str], typer.Option("--expect", metavar="CODES", show_default=False,
                                                  help="Healthy HTTP statuses, e.g. 200,204 [default: any 2xx].")] = None,
    server: Annotated[bool, typer.Option("--server", help="Also ask the Config Service's own health check "
                                                          "(which WRITES each service's row status) and show "
                                                          "it alongside.")] = False,
    server_timeout: Annotated[Optional[float], typer.Option(
        "--server-timeout", metavar="SECONDS", min=0.1, show_default=False,
        help="With --server: how long the Config Service's own call may take, per service [default: derived: "
             "--timeout + 12 s per endpoint on the later generation (3 tries of 3 s, 1 s and 2 s back-off; an "
             "instance without a health_check_url is 2 endpoints), + 5 s per instance on the earlier one; "
             "at most 600 s].")] = None,
) -> Result:
    """Probe every instance's health_check_url (else service URL + /health).

    Instances come from ZooKeeper when configured, else from the API. Each probe
    gets --timeout seconds; probes run concurrently (--concurrency). Verdict:
    healthy for a 2xx answer (or a status in --expect). --server adds the Config
    Service's POST /services/NAME/health (and /health/detailed where it exists),
    one call per service, all at once; the server WRITES its verdict into the
    service's database row (what GET /services and list show afterwards). Those
    calls get their own deadline (--server-timeout); one cut there is reported
    as still running on the server, not as unreachable.

    An instance whose URL's host does not resolve on this machine (a Docker-network
    name such as tts-service, seen from the host) gets the verdict
    unreachable-from-here: could not check, never counted as unhealthy.

    Exit 0 when every instance that could be checked is healthy; 1 when any checked
    instance is not, a named service has no live instance, or there is nothing to
    probe; 3 when the instances could not be read, or none could be checked from here.

    Example: regctl health asr-service nmt-service --retries 1
    """
    from regctl.health import probe_many, targets_for
    from regctl.names import validate_service_name

    wanted = list(names or [])
    if not wanted and not all_:
        raise UsageError("no service named", hint="give NAME... or --all")
    if wanted and all_:
        raise UsageError("--all cannot be combined with names", hint="give names or --all, not both")
    for n in wanted:
        validate_service_name(n)
    codes = parse_expect(expect)

    instances_by_service, source, layout_warnings = _read_instances(rc, wanted if wanted else None)
    targets = targets_for([i for insts in instances_by_service.values() for i in insts])
    result = Result()
    result.warnings.extend(layout_warnings)
    empty = [n for n, insts in instances_by_service.items() if not insts]
    hints = {}
    if wanted and empty:
        from regctl.cli.services import suggest

        hints = {n: suggest(rc, n) for n in empty}
    # with nothing to probe the error line carries the first did-you-mean: the warning does not repeat it
    error_hint = None if targets else next((h for h in hints.values() if h), None)
    for n in empty:
        hint = hints.get(n) if hints.get(n) != error_hint else None
        if targets or hint:  # with nothing to probe the error names them: a warning only for its own hint
            result.warnings.append(f"{n}: no live instances" + (f"; {hint}" if hint else ""))

    pool = server_future = None
    if server:  # the Config Service probes too: ask it while regctl probes, not after
        from concurrent.futures import ThreadPoolExecutor

        pool = ThreadPoolExecutor(max_workers=1)
        server_future = pool.submit(_server_view, rc, dict(instances_by_service), result, server_timeout)
    probed: list = []  # as they finish: what a Ctrl-C leaves to show
    bar = _progress(rc, len(targets))

    def on_result(res: Any) -> None:
        probed.append(res)
        if bar is not None:
            bar(res)

    interrupted = False
    try:
        results = probe_many(targets, timeout=rc.settings.endpoint.timeout, concurrency=concurrency, retries=retries,
                             expect=codes, verify=rc.settings.endpoint.verify,
                             on_result=on_result) if targets else []
    except KeyboardInterrupt:  # Ctrl-C: show what was probed so far, marked partial, and exit 130
        interrupted = True
        order = {(t.service_name, t.instance_id): i for i, t in enumerate(targets)}
        results = sorted(probed, key=lambda r: order.get((r.service_name, r.instance_id), 0))
        server = False
        server_future = None
    finally:
        _stop_progress()
        if pool is not None:
            pool.shutdown(wait=False)
    server_rows, server_by_url, server_generation = ([], {}, None)
    if server_future is not None:
        server_rows, server_by_url, server_generation = server_future.result()
        for row in server_rows:
            mine = [r for r in results if r.service_name == row["service"]]
            row["regctl"] = f"{sum(1 for r in mine if r.healthy)}/{len(mine)} healthy"
    rows = []
    for r in results:
        d = r.to_dict()
        d["server"] = server_by_url.get(r.url) if server else None
        rows.append(d)
    healthy = sum(1 for r in results if r.healthy)
    unchecked = [r for r in results if not r.checked]
    unhealthy = len(results) - healthy - len(unchecked)
    result.data = {"results": [{**r.to_dict(), **({"server": server_by_url.get(r.url)} if server else {})}
                               for r in results],
                   "summary": {"total": len(results), "healthy": healthy, "unhealthy": unhealthy,
                               "unreachable_from_here": len(unchecked),
                               "services_without_instances": empty},
                   "source": source,
                   "server": server_rows if server else None,
                   **({"generation": server_generation} if server_generation else {})}
    columns = HEALTH_COLUMNS if server else [c for c in HEALTH_COLUMNS if c.key != "server"]
    result.tables.append(Table(columns, rows, empty="no instances to probe", data_key="results"))
    if server:
        result.tables.append(Table(SERVER_COLUMNS, server_rows, title="Config Service's own check"
                                   + (f" ({result.data['generation']['generation']} generation)"
                                      if result.data.get("generation") else "")))
        result.notes.append("the Config Service's own check writes its verdict into each service's row status "
                            "(what GET /services and list show)")
    if interrupted:
        from regctl.errors import ExitCode

        result.data["partial"] = True
        result.notes.append(f"{healthy} of {len(results)} healthy (instances read from {source})")
        result.warnings.append(f"interrupted: partial results, {len(results)} of {len(targets)} instance(s) "
                               f"probed before Ctrl-C")
        result.exit_code = int(ExitCode.INTERRUPTED)
        return result
    note = f"{healthy} of {len(results)} healthy"
    if unchecked:
        note += f", {len(unchecked)} could not be checked from here"
    result.notes.append(note + f" (instances read from {source})")
    if unchecked:
        result.warnings.append(_unchecked_warning(unchecked))
    if not results:
        result.error = NotFound("nothing to probe: no live instances"
                                + (f" of {', '.join(wanted)}" if wanted else " in the registry"),
                                hint=next((h for h in hints.values() if h), None)
                                or "see what is registered with: regctl list")
    elif unhealthy or empty:
        result.exit_code = 1
    elif not healthy:
        from regctl.errors import Unreachable

        result.error = Unreachable(f"could not check any of the {len(results)} instance(s) from here: "
                                   f"their hosts do not resolve on this machine",
                                   hint=UNCHECKED_HINT)
    return result


UNCHECKED_HINT = ("probe from inside their network (docker compose exec SERVICE regctl health ...) "
                  "or register URLs this machine can reach (published ports)")


def _unchecked_warning(unchecked: list) -> str:
    hosts = []
    for r in unchecked:
        from urllib.parse import urlsplit

        host = urlsplit(r.url or "").hostname or "?"
        if host not in hosts:
            hosts.append(host)
    shown = ", ".join(hosts[:5]) + (f" and {len(hosts) - 5} more" if len(hosts) > 5 else "")
    return (f"{len(unchecked)} instance(s) could not be checked from here: {shown} does not resolve on "
            f"this machine (a Docker-network name?); not counted as unhealthy; try: {UNCHECKED_HINT}")


def _read_instances(rc, names: Optional[list]) -> tuple:
    """{service: [Instance]} from ZooKeeper when configured, else the API; errors propagate (exit 3)."""
    warnings: list = []
    if rc.settings.endpoint.zk_configured:
        snap = rc.zk().snapshot(names)
        out = {s.name: list(s.instances) for s in snap.services}
        for p in snap.all_problems():
            if p.kind != "base-missing":
                warnings.append(f"{p.path}: {p.detail}")
        for n in names or []:
            out.setdefault(n, [])
        return out, "zookeeper", warnings
    from regctl.http import api as api_mod
    api = rc.api()
    if names is None:
        names = [row.service_name for row in api.list_services()]
    answers = api.map([api_mod.instances_call(n) for n in names], concurrency=16)
    return dict(zip(names, answers)), "api", warnings


_PROGRESS: dict = {}


def _progress(rc, total: int):
    """A rich progress bar on stderr for large sets on a terminal; else None."""
    if total <= PROGRESS_THRESHOLD or not rc.out.is_tty(sys.stderr) or rc.settings.machine_output:
        return None
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    progress = Progress(TextColumn("probing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        console=Console(file=sys.stderr), transient=True)
    task = progress.add_task("probe", total=total)
    progress.start()
    _PROGRESS["p"] = progress

    def on_result(_res: Any) -> None:
        progress.advance(task)

    return on_result


def _stop_progress() -> None:
    progress = _PROGRESS.pop("p", None)
    if progress is not None:
        progress.stop()


def _server_view(rc, instances: dict, result: Result, server_timeout: Optional[float]) -> tuple:
    """The Config Service's own verdicts: per service, and per endpoint URL when detailed exists.

    Every service's calls run at once, each under its own deadline (see regctl.monitor).
    """
    from regctl.monitor import run_server_checks

    info, checks = run_server_checks(rc.api(), instances, timeout=rc.settings.endpoint.timeout,
                                     server_timeout=server_timeout)
    rc.out.debug(f"Config Service generation: {info.generation} ({info.evidence})")
    rows, by_url = [], {}
    for check in checks:
        name = check.service
        row = {"service": name, "regctl": None, "server_status": check.status, "detailed": None,
               "deadline": f"{check.deadline:g}s"}
        if check.error is not None:
            row["server_status"] = "still running" if check.still_running else "error"
            row["error"] = str(check.error)
            result.warnings.append(str(check.error))
        if check.still_running:
            row["still_running"] = True
        if check.detailed_error is not None:
            row["detailed"] = "still running" if getattr(check.detailed_error, "still_running_after", None) \
                else "error"
            result.warnings.append(str(check.detailed_error))
        elif check.detailed is None:
            row["detailed"] = "n/a (older server)"
        else:
            detailed = check.detailed
            row["detailed"] = (f"{detailed.get('overall_status')} "
                               f"{detailed.get('healthy_instances')}/{detailed.get('total_instances')}")
            for item in detailed.get("check_results") or []:
                if isinstance(item, dict) and isinstance(item.get("endpoint_url"), str):
                    by_url[item["endpoint_url"]] = "healthy" if item.get("is_healthy") else "unhealthy"
        rows.append(row)
    return rows, by_url, info.to_dict()


# ---------------------------------------------------------------------------
# wait
# ---------------------------------------------------------------------------

DEFAULT_WAIT = 60.0


def wait(
    rc,
    name: Annotated[str, typer.Argument(metavar="NAME", help="Service name.", show_default=False,
                                        autocompletion=complete_service_names)],
    min_count: Annotated[int, typer.Option("--min", metavar="N", min=1, help="Instances needed.")] = 1,
    healthy: Annotated[bool, typer.Option("--healthy", help="Count only discoverable instances: status "
                                                            "'healthy', and the Config Service's /url "
                                                            "answers (when --config-url/CONFIG_SERVICE_URL "
                                                            "is set).")] = False,
    probe: Annotated[bool, typer.Option("--probe", help="With --healthy (implied): also require each "
                                                        "counted instance's health URL to answer.")] = False,
    interval: Annotated[float, typer.Option("--interval", metavar="SECONDS", min=0.05,
                                            help="Seconds between API polls and health re-probes.")] = 1.0,
    expect: Annotated[Optional[str], typer.Option("--expect", metavar="CODES", show_default=False,
                                                  help="With --probe: healthy HTTP statuses [default: 2xx].")] = None,
) -> Result:
    """Wait until NAME has at least --min live instances (with --healthy: discoverable ones).

    --healthy means what a client following the guide would get: instances with
    status 'healthy' (the only ones /url returns) and, when the Config Service URL
    is configured, /url itself answering (it fails while the cache is down or
    another instance has a bad status). --probe also requires the health URL of
    each counted instance to answer.

    For wait, --timeout is the whole wait's deadline (default 60 s; REGCTL_TIMEOUT
    is not used for it); each network call inside the wait gets min(5 s, time
    left). Works before the service exists. Uses a ZooKeeper watch when
    ZooKeeper is configured (reacts at once), else polls the API every --interval.

    Exit 0 as soon as enough are there; 1 on timeout, with what was missing
    (e.g. "2 of 3 instances live, 1 healthy after 30s"); 3 when the registry
    could not be reached at all during the wait.

    Example: regctl wait asr-service --min 2 --healthy --timeout 120
    """
    from regctl.names import validate_service_name
    from regctl.wait import wait_for_instances

    validate_service_name(name)
    codes = parse_expect(expect)
    s = rc.settings
    deadline = s.endpoint.timeout if s.sources.get("timeout") == "flag" else DEFAULT_WAIT
    rc.out.debug(f"waiting up to {deadline:g}s for {min_count} {'discoverable ' if healthy or probe else ''}"
                 f"instance(s) of {name}")
    url_check = s.sources.get("config_url", "default") != "default"
    outcome = wait_for_instances(name, min_count=min_count, healthy=healthy, probe=probe, url_check=url_check,
                                 deadline_s=deadline,
                                 interval=interval, zk_hosts=s.endpoint.zk_hosts, zk_base=s.endpoint.zk_base,
                                 config_url=s.endpoint.config_url, headers=dict(s.endpoint.headers),
                                 verify=s.endpoint.verify, expect=codes,
                                 zk_auth_data=s.endpoint.zk_auth_data,
                                 zk_client_kwargs=dict(s.endpoint.zk_client_kwargs))
    data = outcome.to_dict()
    if outcome.ok:
        return Result(data=data, lines=[f"{name}: {outcome.summary()}"])
    hint = "raise --timeout" if outcome.live else f"check that {name} is starting and registering"
    if not outcome.live:
        from regctl.cli.services import suggest

        hint = suggest(rc, name) or hint
    error = NotFound(f"timed out waiting for {name!r}: {outcome.summary()}",
                     where=f"read from {outcome.source}", hint=hint)
    if outcome.last_error:
        rc.out.warn(f"last error while waiting: {outcome.last_error}")
    return Result(data=data, error=error)
