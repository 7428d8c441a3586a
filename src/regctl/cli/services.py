"""Read commands: ``list``, ``inspect``, ``url``, ``discover``."""

import random
from typing import Annotated, Any, List, Optional

import typer

from regctl.cli.completion.lookup import complete_service_names
from regctl.cli.options import ServiceNameArg, SourceOpt, command
from regctl.cli.render import Column, Result, Table, flag_style, status_style
from regctl.cli.tables import age_text
from regctl.cli.version import version_info
from regctl.errors import NotFound, RegctlError
from regctl.names import validate_service_name

NameArg = ServiceNameArg  # NAME with live completion of service names


def register(app: typer.Typer) -> None:
    command(app, "list")(list_services)
    command(app, "inspect")(inspect_service)
    command(app, "url")(service_url)
    command(app, "discover")(discover_service)
    command(app, "version")(version_info)


def short_time(value: "str | None") -> "str | None":
    """``2026-11-29 03:46:59.109964+00:00`` -> ``2026-11-29 03:46:59``."""
    if not value:
        return value
    return value.replace("T", " ")[:19]


def human_age(seconds: "float | None") -> "str | None":
    return None if seconds is None else age_text(seconds)


# ---------------------------------------------------------------------------
# list
# ---------------------------------------------------------------------------

def discovery_style(value: Any) -> "str | None":
    if value is None:
        return None
    text = str(value)
    if text == "OK":
        return "green"
    if text.startswith("OK"):
        return "yellow"
    return "red"


#: ``list``'s columns, in order (extend here: a column is a row key, a header and a style)
LIST_COLUMNS = [
    Column("name", "name"),
    Column("live_instances", "live", justify="right"),
    Column("healthy_status_instances", "status-healthy", justify="right", short="healthy"),
    Column("answering_instances", "answering", justify="right"),
    Column("discovery_label", "discovery", style=discovery_style, keep=True),
    Column("db_status", "db status", style=status_style, short="db", keep=True),
    Column("registered", "registered"),
    Column("flags", "flags", style=flag_style),
    Column("api_live_instances", "api live", wide=True, justify="right"),
    Column("service_url", "url", wide=True),
    Column("discovery_detail", "discovery detail", wide=True),
    # the server's own view (later generation; see add_monitor_view)
    Column("monitor_state", "monitor", wide=True, style=status_style),
    Column("monitor_checked", "checked", wide=True),
    Column("monitor_counts", "mon ok", wide=True, justify="right"),
]

NamesArg = Annotated[Optional[List[str]], typer.Argument(
    metavar="[NAME...]", show_default=False, help="Only these services [default: every service].",
    autocompletion=complete_service_names)]


def list_services(rc, names: NamesArg = None, source: SourceOpt = "auto",
                  probe: Annotated[bool, typer.Option(
                      "--probe", help="Also probe every live instance's health URL (--timeout each); the "
                                      "ANSWERING column and the discovery verdict then count only instances "
                                      "that answer.")] = False,
                  fail_undiscoverable: Annotated[bool, typer.Option(
                      "--fail-undiscoverable",
                      help="For CI: exit 1 when any listed service is not discoverable, 3 when that could "
                           "not be checked for some.")] = False) -> Result:
    """One row per service: live instances, how many registered status 'healthy', whether it is discoverable.

    DISCOVERY answers "would a client that follows the guide find an instance right now?":
    OK, or the reason it would not (no-instances, no-healthy-status, bad-status, api-500,
    stale-cache, api-differs, not-answering with --probe) or why that could not be checked
    (api-unreachable, zk-unreadable, unreachable-from-here). STATUS-HEALTHY counts the status
    each instance registered, not whether it answers: use --probe (ANSWERING) for that.
    Flags: no-live-instance, seeded (not gated unless named), not-in-api, api-differs,
    none-discoverable, layout-problem, instances-unread; with -o wide/json/yaml on the
    later generation also its health monitor's view (MONITOR, CHECKED, MON OK, flags
    monitor-unhealthy / -degraded). A failed read of the API exits 3 naming the call.

    Example: regctl list asr-service nmt-service --fail-undiscoverable
    """
    from regctl import inspection

    query = inspection.ListQuery(names=tuple(names or ()), source=source, probe=probe,
                                 fail_undiscoverable=fail_undiscoverable,
                                 monitor=rc.settings.output in ("wide", "json", "yaml"))
    report = inspection.list_services(rc.settings.endpoint, query, clients=rc)
    for line in report.debug:
        rc.out.debug(line)
    return list_result(report)


def list_row(item) -> dict:
    """A ``list`` table row: the service's document (less the monitor's), short times, the verdict's words."""
    x = item.summary
    row = {k: v for k, v in item.to_dict().items() if k != "monitor"}
    row["registered"] = short_time(x.registered_at)
    row["discovery_label"] = x.discovery.label if x.discovery else None
    row["discovery_detail"] = x.discovery.detail if x.discovery else None
    verdict = item.monitor
    if verdict is not None:
        row.update(monitor_state="skipped" if item.monitor_skipped else verdict.state,
                   monitor_checked=short_time(verdict.last_check), monitor_counts=verdict.counts())
    return row


def list_result(report) -> Result:
    """``list``'s report as a table (the monitor's columns when it answered, ANSWERING with --probe)."""
    columns = [c for c in LIST_COLUMNS if (report.query.probe or c.key != "answering_instances")
               and (report.monitor_shown or not c.key.startswith("monitor_"))]
    empty = ("no services registered" if report.api_read
             else "no live instances in ZooKeeper (the API could not be read)")
    rows = [list_row(item) for item in report.services]
    return Result(data=report.to_dict(), tables=[Table(columns, rows, empty=empty, data_key="services")],
                  notes=[report.read_note], warnings=list(report.warnings), error=report.error)


# ---------------------------------------------------------------------------
# inspect
# ---------------------------------------------------------------------------

INSTANCE_COLUMNS = [
    Column("instance_id", "instance"),
    Column("status", "status", style=status_style, keep=True),
    Column("service_url", "url"),
    Column("age", "age", justify="right"),
    Column("owner", "owner"),
    Column("where", "seen in"),
    Column("health_check_url", "health url", wide=True),
    Column("version", "node ver", wide=True, justify="right", short="ver"),
    Column("meta", "metadata", wide=True),
]


def inspect_service(rc, name: NameArg, source: SourceOpt = "auto") -> Result:
    """Every instance of a service: URLs, status, metadata, node age and ephemeral owner.

    Warns about instances /url can never return (status not 'healthy') and when
    the API's cached view differs from ZooKeeper; shows the discovery verdict
    (as ``list``). When a source cannot be read it says so and shows the other;
    exit 3 when a read of either source failed (after showing what was read,
    naming the call that failed), 1 when both sources were read and neither
    knows the service.
    On the later Config Service generation the title also shows its health
    monitor's verdict, with a warning when /url still hands out instances the
    monitor found failing.

    Example: regctl inspect asr-service -o wide
    """
    from regctl import inspection

    report = inspection.inspect_service(rc.settings.endpoint, name, source, clients=rc)
    for line in report.debug:
        rc.out.debug(line)
    return inspect_result(report)


def instance_row(view) -> dict:
    """An ``inspect`` table row: one instance, its node's age and owner, where it was seen."""
    inst = view.instance
    where = [w for w, flag in (("zk", view.in_zookeeper), ("api", view.in_api)) if flag]
    return {
        "instance_id": inst.instance_id, "status": inst.status, "service_url": inst.service_url,
        "health_check_url": inst.health_check_url,
        "age": human_age(inst.stat.age_seconds()) if inst.stat else None,
        "owner": inst.stat.owner_hex if inst.stat else None,
        "where": "+".join(where) or None,
        "version": inst.stat.version if inst.stat else None,
        "meta": {k: v for k, v in inst.metadata.items()
                 if k not in ("instance_id", "service_url", "health_check_url", "status")},
    }


def inspect_result(report) -> Result:
    """``inspect``'s report as a titled table of instances, the read and discovery notes, the warnings."""
    d, row = report.detail, report.row
    title = report.name
    if row is not None:
        title += f"  (db status {row.status or '-'}, registered {short_time(row.registered_at) or '-'})"
    if report.monitor_text is not None:
        title += f"  monitor: {report.monitor_text}"
    empty = "no live instances" if d.instances_known else "instances could not be read (see the error below)"
    if d.instances_known and report.zk_unread:
        empty = "the API lists no instance (ZooKeeper could not be read)"
    rows = [instance_row(v) for v in d.instances]
    verdict = report.verdict
    return Result(data=report.to_dict(),
                  tables=[Table(INSTANCE_COLUMNS, rows, title=title, empty=empty, data_key="instances")],
                  notes=[report.read_note, f"discovery: {verdict.label} -- {verdict.detail}"],
                  warnings=list(report.warnings), error=report.error)


def suggest(rc, name: str) -> "str | None":
    """:func:`regctl.inspection.suggest` with the run's clients (a failure path: httpx is loaded by then)."""
    from regctl import inspection

    return inspection.suggest(rc.settings.endpoint, rc, name)


# ---------------------------------------------------------------------------
# url, discover
# ---------------------------------------------------------------------------

def service_url(rc, name: NameArg,
                verify: Annotated[bool, typer.Option(
                    "--verify", help="Probe the instance first; fall through to the next healthy-status "
                                     "instance when it does not answer.")] = False) -> Result:
    """Print one URL of a healthy instance, exactly as the registry's /url picks it.

    For scripts: URL=$(regctl url asr-service). Exit 1 with a one-line reason
    when no instance has status 'healthy'. With --verify the chosen instance's
    health check is probed first (--timeout each); when it does not answer, the
    other instances with status 'healthy' are tried in random order, so a
    script never gets the URL of an instance that is down (exit 1 if none answers).
    """
    validate_service_name(name)  # the operator's name; names read from the registry are never refused
    api = rc.api()
    try:
        url = api.url(name)
    except NotFound as exc:
        text, unknown = explain_no_url(rc, name)
        raise NotFound(text, where=exc.where, hint=(unknown and suggest(rc, name)) or exc.hint) from None
    if verify:
        return verified_url(rc, name, url)
    return Result(data={"service": name, "url": url}, lines=[url])


def verified_url(rc, name: str, first_url: str) -> Result:
    """``url --verify``: the /url answer first, then the other healthy-status instances, shuffled."""
    from regctl.prober import ProbeTarget, probe_many

    instances = [i for i in rc.api().instances(name) if i.discoverable and i.service_url]
    random.SystemRandom().shuffle(instances)  # its own source: never disturbs (or depends on) global state
    order = sorted(instances, key=lambda i: i.service_url != first_url)  # stable: /url's answer first
    if not order or order[0].service_url != first_url:
        order.insert(0, None)  # the /url answer is not in the (cached) list: probe it on its own
    targets = []
    for inst in order:
        if inst is None:
            targets.append(ProbeTarget(name, "?", first_url.rstrip("/") + "/health"))
        else:
            targets.append(ProbeTarget(name, inst.instance_id, inst.probe_url()))
    urls = [first_url if inst is None else inst.service_url for inst in order]
    kwargs = {"timeout": rc.settings.endpoint.timeout, "verify": rc.settings.endpoint.verify}
    results = probe_many(targets[:1], **kwargs)
    if not results[0].healthy and len(targets) > 1:
        results += probe_many(targets[1:], **kwargs)  # the rest at once: one timeout, not one each
    skipped = []
    for res, url in zip(results, urls):
        if res.healthy:
            data = {"service": name, "url": url, "verified": True, "instance_id": res.instance_id,
                    "probe": res.to_dict(), "skipped": skipped}
            warnings = [f"skipped {s['instance_id']} ({s['url']}): {s['error']}" for s in skipped]
            return Result(data=data, lines=[url], warnings=warnings)
        skipped.append({"instance_id": res.instance_id, "url": url, "error": res.error})
    reasons = ", ".join(f"{s['instance_id']}: {s['error']}" for s in skipped)
    raise NotFound(f"no instance of {name!r} with status 'healthy' answers its health check ({reasons})",
                   hint=f"probe them all with: regctl health {name}")


def explain_no_url(rc, name: str) -> tuple:
    """(why /url found nothing: no instances, or their statuses; whether the API lists no instance)."""
    try:
        instances = rc.api().instances(name)
    except RegctlError:
        return f"no healthy instance of {name!r}", False
    if not instances:
        return f"no instance of {name!r} is registered", True
    statuses = ", ".join(f"{i.instance_id}={i.status}" for i in instances)
    return f"no instance of {name!r} has status 'healthy' ({len(instances)} live: {statuses})", False


DISCOVER_COLUMNS = [
    Column("instance_id", "instance"),
    Column("status", "status", style=status_style),
    Column("service_url", "url"),
    Column("health_check_url", "health url"),
    Column("registered_at", "registered", wide=True),
    Column("last_health_check", "last check", wide=True),
]


def discover_service(rc, name: NameArg) -> Result:
    """The registry's /discover list: every live instance, healthy or not (despite the guide).

    Exit 1 when the service has no live instance.
    """
    validate_service_name(name)
    items = rc.api().discover(name)
    data: dict[str, Any] = {"service": name, "instances": items}
    result = Result(data=data, tables=[Table(DISCOVER_COLUMNS, items, empty="no instances", data_key="instances")])
    if not items:
        result.error = NotFound(f"no live instance of {name!r}",
                                hint=suggest(rc, name) or "list what is registered with: regctl list")
    return result
