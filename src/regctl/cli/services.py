"""Read commands: ``list``, ``inspect``, ``url``, ``discover``."""

import threading
from typing import Annotated, Any

import typer

from regctl.cli.completion import ServiceNameArg
from regctl.cli.options import SourceOpt, command
from regctl.cli.render import Column, Result, Table, flag_style, status_style
from regctl.errors import NotFound, RegctlError, UsageError

NameArg = ServiceNameArg  # NAME with live completion of service names


def register(app: typer.Typer) -> None:
    command(app, "list")(list_services)
    command(app, "inspect")(inspect_service)
    command(app, "url")(service_url)
    command(app, "discover")(discover_service)


# ---------------------------------------------------------------------------
# reading the two sources
# ---------------------------------------------------------------------------

class Reading:
    """What was read from each source, and what failed."""

    def __init__(self) -> None:
        self.rows = None
        self.snapshot = None
        self.api_instances = None
        self.api_error: "RegctlError | None" = None
        self.zk_error: "RegctlError | None" = None
        self.used_api = False
        self.used_zk = False

    def sources(self, rc) -> dict:
        s = rc.settings
        return {
            "api": {"url": s.config_url, "read": self.used_api and self.api_error is None,
                    "error": str(self.api_error) if self.api_error else None} if self.used_api else None,
            "zookeeper": {"hosts": s.zk_hosts, "base_path": s.zk_base,
                          "read": self.used_zk and self.zk_error is None,
                          "error": str(self.zk_error) if self.zk_error else None} if self.used_zk else None,
        }

    def note(self, rc) -> str:
        parts = []
        if self.used_api:
            parts.append(f"API {rc.settings.config_url}" + (" (failed)" if self.api_error else ""))
        if self.used_zk:
            parts.append(f"ZooKeeper {rc.settings.zk_hosts} {rc.settings.zk_base}"
                         + (" (failed)" if self.zk_error else ""))
        return "read: " + " and ".join(parts)


def check_source(rc, source: str) -> tuple:
    """(want_api, want_zk) for ``--source``; UsageError for bad combinations."""
    source = source.lower()
    if source not in ("auto", "api", "zk"):
        raise UsageError(f"--source {source!r} is unknown", hint="use auto, api or zk")
    if source == "zk" and not rc.settings.zk_configured:
        raise UsageError("--source zk needs ZooKeeper", hint="pass --zk HOST:PORT or set ZOOKEEPER_HOSTS")
    return source in ("auto", "api"), source == "zk" or (source == "auto" and rc.settings.zk_configured)


def read_sources(rc, source: str, api_part, zk_part) -> Reading:
    """Run ``api_part(reading)`` and ``zk_part(reading)`` side by side as ``--source`` asks.

    In ``auto`` mode one failing source becomes a warning; when every source
    fails (or the one asked for fails) its error is raised.
    """
    want_api, want_zk = check_source(rc, source)
    reading = Reading()
    reading.used_api, reading.used_zk = want_api, want_zk

    def run_api():
        try:
            api_part(reading)
        except RegctlError as exc:
            reading.api_error = exc

    def run_zk():
        try:
            zk_part(reading)
        except RegctlError as exc:
            reading.zk_error = exc

    jobs = ([run_api] if want_api else []) + ([run_zk] if want_zk else [])
    if len(jobs) == 1:
        jobs[0]()
    else:
        # daemon threads, not a pool: Ctrl-C must not wait for a request in flight to end
        bugs: list = []

        def guarded(job):
            try:
                job()
            except Exception as exc:  # a bug: re-raised below, in the main thread
                bugs.append(exc)

        threads = [threading.Thread(target=guarded, args=(j,), daemon=True, name=f"regctl-read-{j.__name__}")
                   for j in jobs]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if bugs:
            raise bugs[0]
    failed = [e for e in (reading.api_error, reading.zk_error) if e is not None]
    if len(failed) == len(jobs):
        if len(failed) == 2:
            rc.out.warn(str(reading.zk_error))
        raise failed[0]
    for err in failed:
        if isinstance(err, UsageError):
            raise err
        rc.out.warn(f"{err} -- showing the other source only")
    return reading


def short_time(value: "str | None") -> "str | None":
    """``2026-11-29 03:46:59.109964+00:00`` -> ``2026-11-29 03:46:59``."""
    if not value:
        return value
    return value.replace("T", " ")[:19]


def human_age(seconds: "float | None") -> "str | None":
    if seconds is None:
        return None
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    return f"{s // 86400}d{(s % 86400) // 3600:02d}h"


# ---------------------------------------------------------------------------
# list
# ---------------------------------------------------------------------------

LIST_COLUMNS = [
    Column("name", "name"),
    Column("live_instances", "live", justify="right"),
    Column("healthy_instances", "healthy", justify="right"),
    Column("db_status", "db status", style=status_style),
    Column("registered", "registered"),
    Column("flags", "flags", style=flag_style),
    Column("api_live_instances", "api live", wide=True, justify="right"),
    Column("service_url", "url", wide=True),
    # the server's own view (later generation; see add_monitor_view)
    Column("monitor_state", "monitor", wide=True, style=status_style),
    Column("monitor_checked", "checked", wide=True),
    Column("monitor_counts", "mon ok", wide=True, justify="right"),
]


def list_services(rc, source: SourceOpt = "auto") -> Result:
    """One row per service: live and healthy instances, database status, disagreement flags.

    Live counts come from ZooKeeper when it is read, else from the API. Flags:
    no-live-instance, not-in-api, api-differs, none-discoverable, layout-problem; with
    -o wide/json/yaml on the later Config Service generation also the server's
    health monitor (MONITOR, CHECKED, MON OK) and monitor-unhealthy / monitor-degraded
    where /url still hands out instances the monitor found failing.

    Example: regctl list -o json --source zk
    """
    from regctl.views import summarize

    want_api, want_zk = check_source(rc, source)

    def api_part(r: Reading) -> None:
        from regctl import api as api_mod  # here, not above: --source zk never loads httpx (~70 ms)

        api = rc.api()
        r.rows = api.list_services()
        if not want_zk:  # live counts must come from the API: one request per service, concurrently
            names = [row.service_name for row in r.rows]
            results = api.map([api_mod.instances_call(n) for n in names], return_exceptions=True)
            r.api_instances = {}
            for name, res in zip(names, results):
                if isinstance(res, RegctlError):
                    rc.out.warn(f"instances of {name}: {res}")
                else:
                    r.api_instances[name] = res

    def zk_part(r: Reading) -> None:
        r.snapshot = rc.zk().snapshot()

    reading = read_sources(rc, source, api_part, zk_part)
    summaries = summarize(reading.rows if reading.api_error is None else None,
                          reading.snapshot, reading.api_instances)
    problems = reading.snapshot.all_problems() if reading.snapshot else []
    data = {
        "services": [s.to_dict() for s in summaries],
        "sources": reading.sources(rc),
        "problems": [p.to_dict() for p in problems],
    }
    rows = []
    for s in summaries:
        d = s.to_dict()
        d["registered"] = short_time(s.registered_at)
        rows.append(d)
    result = Result(data=data)
    shown = add_monitor_view(rc, reading.used_api and reading.api_error is None, summaries, rows, data, result)
    columns = LIST_COLUMNS if shown else [c for c in LIST_COLUMNS if not c.key.startswith("monitor_")]
    result.tables.append(Table(columns, rows, empty="no services registered"))
    result.notes.append(reading.note(rc))
    result.error, problems = _noauth_error(rc, problems)
    for p in problems:
        result.warnings.append(f"{p.path}: {p.detail}")
    return result


def _noauth_error(rc, problems: list) -> tuple:
    """(a NotAuthorized for the nodes a ZooKeeper ACL hid, the other problems).

    Counting a service whose instances ZooKeeper refused to show as "0 live" would be
    a wrong answer: the command still prints what it could read, then fails with
    one line (exit 3) saying how to pass credentials.
    """
    from regctl.errors import NotAuthorized

    denied = [p for p in problems if p.kind == "unreadable" and "(NOAUTH)" in p.detail]
    if not denied:
        return None, problems
    more = f" and {len(denied) - 1} more node(s)" if len(denied) > 1 else ""
    reader = rc.zk()
    err = NotAuthorized(f"ZooKeeper refused to read {denied[0].path} (NOAUTH){more}",
                        where=rc.settings.zk_hosts, hint=getattr(reader, "noauth_hint", None))
    return err, [p for p in problems if p not in denied]


# ---------------------------------------------------------------------------
# inspect
# ---------------------------------------------------------------------------

INSTANCE_COLUMNS = [
    Column("instance_id", "instance"),
    Column("status", "status", style=status_style),
    Column("service_url", "url"),
    Column("age", "age", justify="right"),
    Column("owner", "owner"),
    Column("where", "seen in"),
    Column("health_check_url", "health url", wide=True),
    Column("version", "node ver", wide=True, justify="right"),
    Column("meta", "metadata", wide=True),
]


def inspect_service(rc, name: NameArg, source: SourceOpt = "auto") -> Result:
    """Every instance of a service: URLs, status, metadata, node age and ephemeral owner.

    Warns about instances /url can never return (status not 'healthy') and when
    the API's cached view differs from ZooKeeper. On the later Config Service
    generation the title also shows its health monitor's verdict, with a warning
    when /url still hands out instances the monitor found failing.

    Example: regctl inspect asr-service -o wide
    """
    from regctl.names import validate_service_name
    from regctl.views import detail

    validate_service_name(name)

    def api_part(r: Reading) -> None:
        api = rc.api()
        rows_call_failed = None
        try:
            r.rows = [row for row in api.list_services() if row.service_name == name]
        except RegctlError as exc:
            rows_call_failed = exc
        try:
            r.api_instances = {name: api.instances(name)}
        except RegctlError as exc:
            if rows_call_failed is not None or not r.used_zk:
                raise
            rc.out.warn(f"the API failed to list instances of {name}: {exc}")
        if rows_call_failed is not None:
            raise rows_call_failed

    def zk_part(r: Reading) -> None:
        r.snapshot = rc.zk().snapshot([name])

    reading = read_sources(rc, source, api_part, zk_part)
    row = reading.rows[0] if reading.rows else None
    zk_service = reading.snapshot.service(name) if reading.snapshot else None
    if zk_service is not None and not zk_service.exists:
        zk_service = zk_service.__class__(name, (), zk_service.problems, exists=False)
    api_list = (reading.api_instances or {}).get(name) if reading.api_instances is not None else None
    d = detail(name, row, zk_service, api_list, rows_read=reading.rows is not None)
    problems = list(d.problems) + (list(reading.snapshot.problems) if reading.snapshot else [])
    data = {
        "service": name,
        "row": row.to_dict() if row else None,
        "instances": [v.to_dict() for v in d.instances],
        "warnings": list(d.warnings),
        "problems": [p.to_dict() for p in problems],
        "sources": reading.sources(rc),
    }
    if not d.registered and not problems:
        raise NotFound(f"service {name!r} is not registered", hint="list what is registered with: regctl list")
    rows = []
    for v in d.instances:
        inst = v.instance
        where = [w for w, flag in (("zk", v.in_zookeeper), ("api", v.in_api)) if flag]
        rows.append({
            "instance_id": inst.instance_id, "status": inst.status, "service_url": inst.service_url,
            "health_check_url": inst.health_check_url,
            "age": human_age(inst.stat.age_seconds()) if inst.stat else None,
            "owner": inst.stat.owner_hex if inst.stat else None,
            "where": "+".join(where) or None,
            "version": inst.stat.version if inst.stat else None,
            "meta": {k: v2 for k, v2 in inst.metadata.items()
                     if k not in ("instance_id", "service_url", "health_check_url", "status")},
        })
    title = f"{name}"
    if row is not None:
        title += f"  (db status {row.status or '-'}, registered {short_time(row.registered_at) or '-'})"
    result = Result(data=data)
    discoverable = sum(1 for v in d.instances if v.instance.discoverable)
    title += inspect_monitor(rc, name, reading.used_api and reading.api_error is None, discoverable, data, result)
    result.tables.append(Table(INSTANCE_COLUMNS, rows, title=title, empty="no live instances"))
    result.notes.append(reading.note(rc))
    result.warnings.extend(d.warnings)
    result.error, problems = _noauth_error(rc, problems)
    result.warnings.extend(f"{p.path}: {p.detail}" for p in problems)
    return result


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
    api = rc.api()
    try:
        url = api.url(name)
    except NotFound as exc:
        raise NotFound(explain_no_url(rc, name), where=exc.where, hint=exc.hint) from None
    if verify:
        return verified_url(rc, name, url)
    return Result(data={"service": name, "url": url}, lines=[url])


def verified_url(rc, name: str, first_url: str) -> Result:
    """``url --verify``: the /url answer first, then the other healthy-status instances, shuffled."""
    import random

    from regctl.health import ProbeTarget, probe_many

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
    kwargs = {"timeout": rc.settings.timeout, "verify": rc.settings.extra.get("verify", True)}
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


def explain_no_url(rc, name: str) -> str:
    """Why /url found nothing: no instances, or their statuses."""
    try:
        instances = rc.api().instances(name)
    except RegctlError:
        return f"no healthy instance of {name!r}"
    if not instances:
        return f"no instance of {name!r} is registered"
    statuses = ", ".join(f"{i.instance_id}={i.status}" for i in instances)
    return f"no instance of {name!r} has status 'healthy' ({len(instances)} live: {statuses})"


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
    items = rc.api().discover(name)
    data: dict[str, Any] = {"service": name, "instances": items}
    result = Result(data=data, tables=[Table(DISCOVER_COLUMNS, items, empty="no instances")])
    if not items:
        result.error = NotFound(f"no live instance of {name!r}", hint="list what is registered with: regctl list")
    return result


# ---------------------------------------------------------------------------
# the server's own view: the later generation's health monitor (regctl.monitor)
# ---------------------------------------------------------------------------

def add_monitor_view(rc, api_read: bool, summaries: list, rows: list, data: dict, result: Result) -> bool:
    """``list -o wide|json|yaml``: each service's monitor verdict and contradiction flag; True when shown.

    The plain table never asks (it stays one request plus the instance reads);
    nor does anything when the API was not read.
    """
    data["generation"] = None  # not asked
    if not api_read or rc.settings.output not in ("wide", "json", "yaml"):
        return False
    from regctl.monitor import contradiction, contradiction_warning, monitor_view

    view = monitor_view(rc.api(), [x.name for x in summaries])
    data["generation"] = view.info.to_dict()
    rc.out.debug(f"Config Service generation: {view.info.generation} ({view.info.evidence})")
    if not view.info.later:
        return False
    for x, row, doc in zip(summaries, rows, data["services"]):
        verdict = view.get(x.name)
        if verdict is None:
            continue
        doc["monitor"] = verdict.to_dict()
        row.update(monitor_state=verdict.state, monitor_checked=short_time(verdict.last_check),
                   monitor_counts=verdict.counts())
        flag = contradiction(verdict, x.healthy)
        if flag:
            row["flags"] = list(row.get("flags") or []) + [flag]
            doc["flags"] = list(doc.get("flags") or []) + [flag]
            result.warnings.append(contradiction_warning(x.name, flag, verdict))
    return True


def inspect_monitor(rc, name: str, api_read: bool, discoverable: int, data: dict, result: Result) -> str:
    """``inspect``: the monitor's verdict in the data and as a title suffix ("" on the earlier generation)."""
    data["monitor"] = None  # not asked, or no monitor (earlier generation)
    if not api_read:
        return ""
    from regctl.monitor import COULD_NOT_CHECK, contradiction, contradiction_warning, describe, service_monitor

    verdict = service_monitor(rc.api(), name)
    if verdict is None:
        return ""
    flag = contradiction(verdict, discoverable)
    data["monitor"] = {**verdict.to_dict(), "flag": flag}
    if flag:
        result.warnings.append(contradiction_warning(name, flag, verdict))
    elif verdict.state == COULD_NOT_CHECK:
        result.warnings.append(f"the Config Service's monitor verdict for {name} could not be read: "
                               f"{verdict.detail}")
    return f"  monitor: {describe(verdict) if verdict.state != COULD_NOT_CHECK else 'could not check'}"
