"""Health commands: ``health`` (probe instances) and ``wait`` (block until instances are up)."""

from typing import TYPE_CHECKING, Annotated, List, Optional
from urllib.parse import urlsplit

import typer

from regctl.cli.completion.lookup import complete_service_names
from regctl.cli.live import ProgressBar
from regctl.cli.options import command
from regctl.cli.render import Column, Result, Table, status_style
from regctl.errors import ExitCode, NotFound, Unreachable, UsageError

if TYPE_CHECKING:  # pragma: no cover - the core modules pull in httpx and kazoo: imported when a command runs
    from regctl.health import HealthReport
    from regctl.wait import WaitReport

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
                 ] = 1024,  # regctl.prober.DEFAULT_CONCURRENCY (not imported here: it pulls in httpx)
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
    from regctl.health import HealthInterrupted, HealthRequest, check_health

    wanted = tuple(names or ())
    if not wanted and not all_:
        raise UsageError("no service named", hint="give NAME... or --all")
    if wanted and all_:
        raise UsageError("--all cannot be combined with names", hint="give names or --all, not both")
    request = HealthRequest(wanted, concurrency=concurrency, retries=retries, expect=_codes(expect), server=server,
                            server_timeout=server_timeout)
    with ProgressBar(rc.out, "probing", threshold=PROGRESS_THRESHOLD) as progress:
        try:
            report = check_health(rc.settings.endpoint, request, on_progress=progress, clients=rc)
        except HealthInterrupted as stop:  # Ctrl-C: show what was probed so far, marked partial, and exit 130
            report = stop.report
    if report.server is not None:
        rc.out.debug(f"Config Service generation: {report.server.generation.generation} "
                     f"({report.server.generation.evidence})")
    return health_result(report)


UNCHECKED_HINT = ("probe from inside their network (docker compose exec SERVICE regctl health ...) "
                  "or register URLs this machine can reach (published ports)")


def _codes(expect: Optional[str]) -> Optional[tuple]:
    codes = parse_expect(expect)
    return None if codes is None else tuple(codes)


def health_result(report: "HealthReport") -> Result:
    """The table(s), notes, warnings and verdict for a :class:`regctl.health.HealthReport`."""
    result = Result(data=report.to_dict(), warnings=list(report.problems))
    # with nothing to probe the error line carries the first did-you-mean: the warning does not repeat it
    first_hint, targets = next(iter(report.suggestions.values()), None), report.targets
    error_hint = None if targets else first_hint
    for n in report.missing:
        hint = report.suggestions.get(n) if report.suggestions.get(n) != error_hint else None
        if targets or hint:  # with nothing to probe the error names them: a warning only for its own hint
            result.warnings.append(f"{n}: no live instances" + (f"; {hint}" if hint else ""))
    server = report.server
    rows = report.result_rows()  # the table's own dicts: --filter/--sort-by shape them beside the document's
    columns = HEALTH_COLUMNS if server else [c for c in HEALTH_COLUMNS if c.key != "server"]
    result.tables.append(Table(columns, rows, empty="no instances to probe", data_key="results"))
    if server is not None:
        result.warnings.extend(server.errors)
        result.tables.append(Table(SERVER_COLUMNS, report.server_rows(),
                                   title=f"Config Service's own check ({server.generation.generation} generation)"))
        result.notes.append("the Config Service's own check writes its verdict into each service's row status "
                            "(what GET /services and list show)")
    results, unchecked, where = report.results, report.unchecked, f"(instances read from {report.source})"
    if report.interrupted:
        result.notes.append(f"{report.healthy} of {len(results)} healthy {where}")
        result.warnings.append(f"interrupted: partial results, {len(results)} of {len(targets)} instance(s) "
                               f"probed before Ctrl-C")
        result.exit_code = int(ExitCode.INTERRUPTED)
        return result
    unchecked_note = f", {len(unchecked)} could not be checked from here" if unchecked else ""
    result.notes.append(f"{report.healthy} of {len(results)} healthy{unchecked_note} {where}")
    if unchecked:
        result.warnings.append(_unchecked_warning(unchecked))
    if report.verdict == "nothing-to-probe":
        names = report.request.names
        result.error = NotFound("nothing to probe: no live instances"
                                + (f" of {', '.join(names)}" if names else " in the registry"),
                                hint=first_hint or "see what is registered with: regctl list")
    elif report.verdict == "unhealthy":
        result.exit_code = 1
    elif report.verdict == "could-not-check":
        result.error = Unreachable(f"could not check any of the {len(results)} instance(s) from here: "
                                   f"their hosts do not resolve on this machine", hint=UNCHECKED_HINT)
    return result


def _unchecked_warning(unchecked) -> str:
    hosts: list = []
    for r in unchecked:
        host = urlsplit(r.url or "").hostname or "?"
        if host not in hosts:
            hosts.append(host)
    shown = ", ".join(hosts[:5]) + (f" and {len(hosts) - 5} more" if len(hosts) > 5 else "")
    return (f"{len(unchecked)} instance(s) could not be checked from here: {shown} does not resolve on "
            f"this machine (a Docker-network name?); not counted as unhealthy; try: {UNCHECKED_HINT}")


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
    from regctl.wait import WaitSpec, wait_for_instances

    s = rc.settings
    spec = WaitSpec(name, min_count, healthy=healthy, probe=probe, expect=_codes(expect), interval=interval,
                    deadline_s=s.endpoint.timeout if s.sources.get("timeout") == "flag" else DEFAULT_WAIT,
                    url_check=s.sources.get("config_url", "default") != "default")
    rc.out.debug(f"waiting up to {spec.deadline_s:g}s for {min_count} "
                 f"{'discoverable ' if spec.discoverable else ''}instance(s) of {name}")
    report = wait_for_instances(s.endpoint, spec)
    if report.last_error and not report.ok:
        rc.out.warn(f"last error while waiting: {report.last_error}")
    return wait_result(report)


def wait_result(report: "WaitReport") -> Result:
    """The line (or the one-line error) for a :class:`regctl.wait.WaitReport`."""
    name = report.service
    if report.ok:
        return Result(data=report.to_dict(), lines=[f"{name}: {report.summary()}"])
    hint = "raise --timeout" if report.live else (report.suggestion
                                                  or f"check that {name} is starting and registering")
    return Result(data=report.to_dict(), error=NotFound(f"timed out waiting for {name!r}: {report.summary()}",
                                                        where=f"read from {report.source}", hint=hint))
