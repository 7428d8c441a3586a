"""Read commands: ``list``, ``inspect``, ``url``, ``discover``."""

from typing import Annotated, Any, List, Optional

import typer

from regctl.cli.completion.lookup import complete_service_names
from regctl.cli.options import ServiceNameArg, SourceOpt, command
from regctl.cli.render import Column, Result, Table, flag_style, status_style
from regctl.models import ZkService
from regctl.errors import NotFound, RegctlError, Unreachable, UsageError

NameArg = ServiceNameArg  # NAME with live completion of service names


def register(app: typer.Typer) -> None:
    command(app, "list")(list_services)
    command(app, "inspect")(inspect_service)
    command(app, "url")(service_url)
    command(app, "discover")(discover_service)
    from regctl.cli.version import version_info

    command(app, "version")(version_info)


# ---------------------------------------------------------------------------
# reading the two sources
# ---------------------------------------------------------------------------

def check_source(rc, source: str) -> tuple:
    """(want_api, want_zk) for ``--source``; UsageError for bad combinations."""
    source = source.lower()
    if source not in ("auto", "api", "zk"):
        raise UsageError(f"--source {source!r} is unknown", hint="use auto, api or zk")
    if source == "zk" and not rc.settings.endpoint.zk_configured:
        raise UsageError("--source zk needs ZooKeeper", hint="pass --zk HOST:PORT or set ZOOKEEPER_HOSTS")
    return source in ("auto", "api"), source == "zk" or (source == "auto" and rc.settings.endpoint.zk_configured)


def read_for(rc, source: str, names=None, per_service: bool = True):
    """Read the sources ``--source`` asks for (:func:`regctl.discovery.read_registry`).

    Raises when nothing could be read: the one source's error, or one line naming both.
    """
    from regctl.discovery import read_registry

    want_api, want_zk = check_source(rc, source)
    read = read_registry(rc.api if want_api else None, rc.zk if want_zk else None, names=names,
                         per_service=per_service)
    if not read.any_read:
        raise unreadable_error(read)
    return read


def unreadable_error(read) -> RegctlError:
    """The error when no source could be read: the one that failed, or both in one line."""
    api_err = read.rows_error
    if api_err is None:
        api_err = next((v for v in read.instances.values() if isinstance(v, RegctlError)), None)
    failed = [(what, e) for what, e in (("API", api_err), ("ZooKeeper", read.zk_error)) if e is not None]
    if len(failed) == 1:
        return failed[0][1]
    if not failed:
        return Unreachable("nothing was read", hint="check --config-url and --zk")
    if all("refused" in e.message for _, e in failed):  # nothing listens at either: say it short
        from urllib.parse import urlsplit

        parts = urlsplit(api_err.where or "")
        api_at = f"{parts.scheme}://{parts.netloc}" if parts.netloc else (api_err.where or "?")
        return Unreachable(f"could not read either source: the Config Service ({api_at}) and ZooKeeper "
                           f"({read.zk_error.where or '?'}) refused the connection",
                           hint="are they running? check --config-url and --zk")
    text = "; ".join(f"{what}: {e.message}" + (f" ({e.where})" if e.where else "") for what, e in failed)
    hint = "; ".join(dict.fromkeys(e.hint for _, e in failed if e.hint)) or "check --config-url and --zk"
    return Unreachable(f"could not read either source: {text}", hint=hint)


def source_note(rc, read) -> str:
    s = rc.settings
    parts = []
    if read.want_api:
        parts.append(f"API {s.endpoint.config_url}" + ("" if read.api_read else " (failed)"))
    if read.want_zk:
        parts.append(f"ZooKeeper {s.endpoint.zk_hosts} {s.endpoint.zk_base}" + ("" if read.snapshot is not None else " (failed)"))
    return "read: " + " and ".join(parts)


def source_warnings(read) -> list:
    """One warning per source that failed, saying what is not shown because of it."""
    out = []
    if read.zk_error is not None and read.api_read:
        out.append(f"ZooKeeper could not be read: {read.zk_error} -- showing the API's view only")
    if read.rows_error is not None and read.any_read:
        out.append(f"the services list could not be read: {read.rows_error} -- database rows not shown")
    return out


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
    from regctl.names import validate_service_name
    from regctl.views import summarize

    wanted = list(dict.fromkeys(names or []))
    for n in wanted:
        validate_service_name(n)
    read = read_for(rc, source, names=wanted or None)
    all_names = wanted or read.names()
    probes_by_service = _probe_services(rc, read, all_names) if probe else None
    verdicts = {n: read.verdict(n, (probes_by_service or {}).get(n) if probe else None) for n in all_names}
    answering = None
    if probes_by_service is not None:
        answering = {n: sum(1 for r in probes_by_service.get(n, {}).values() if r.healthy) for n in all_names}
    api_lists = {n: v for n, v in read.instances.items() if isinstance(v, list)}
    unread = [n for n, v in read.instances.items() if isinstance(v, RegctlError)]
    summaries = summarize(read.rows, read.snapshot, api_lists if read.instances else None, verdicts,
                          answering, unread)
    if wanted:
        summaries = [s for s in summaries if s.name in wanted]
    seeded = {x.name for x in summaries if read.seeded(x.name)}
    problems = read.snapshot.all_problems() if read.snapshot else []
    s = rc.settings
    docs = []
    for x in summaries:
        doc = x.to_dict()
        doc["seeded"] = x.name in seeded
        if doc["seeded"]:
            doc["flags"] = seeded_flags(doc["flags"])
        docs.append(doc)
    data = {
        "services": docs,
        "sources": read.sources(s.endpoint.config_url, s.endpoint.zk_hosts if read.want_zk else None, s.endpoint.zk_base),
        "problems": [p.to_dict() for p in problems],
        "probed": probe,
    }
    rows = []
    for x, doc in zip(summaries, docs):
        d = dict(doc)
        d["registered"] = short_time(x.registered_at)
        d["discovery_label"] = x.discovery.label if x.discovery else None
        d["discovery_detail"] = x.discovery.detail if x.discovery else None
        rows.append(d)
    columns = LIST_COLUMNS if probe else [c for c in LIST_COLUMNS if c.key != "answering_instances"]
    empty = "no services registered" if read.api_read else "no live instances in ZooKeeper (the API could not be read)"
    result = Result(data=data)
    shown = add_monitor_view(rc, read.api_read, summaries, rows, data, result)
    if not shown:
        columns = [c for c in columns if not c.key.startswith("monitor_")]
    result.tables.append(Table(columns, rows, empty=empty, data_key="services"))
    result.notes.append(source_note(rc, read))
    explained = explained_failures(read, verdicts)
    cause = read_failure_cause(rc, read, explained)
    result.warnings.extend(source_warnings(read))
    result.warnings.extend(_instance_read_warnings(read, cause))
    for x in summaries:
        if wanted and read.rows is not None and read.snapshot is not None and x.live == 0 and x.db_status is None \
                and x.api_live in (None, 0):
            hint = suggest(rc, x.name)
            result.warnings.append(f"{x.name}: neither ZooKeeper nor the API knows it" + (f"; {hint}" if hint else ""))
    noauth, problems = _noauth_error(rc, problems)
    for p in problems:
        result.warnings.append(f"{p.path}: {p.detail}")
    gate = _gate_error(summaries, not_counted=seeded - set(wanted)) if fail_undiscoverable else None
    unread = read.api_unread(explained, cause)
    if noauth is not None:
        result.error = noauth
    elif isinstance(gate, NotFound):  # a service observed undiscoverable: the gate's "no" stands
        result.error = gate
    else:
        result.error = unread or gate
    return result


def explained_failures(read, verdicts: dict) -> list:
    """Services whose failed API read is itself the answer, seen in ZooKeeper: a status the Config Service
    cannot parse, or nodes that do not fit the layout (both are shown; neither is "could not check")."""
    out = []
    for name, verdict in verdicts.items():
        svc = read.snapshot.service(name) if read.snapshot is not None else None
        if verdict.reason == "bad-status" or (svc is not None and svc.problems):
            out.append(name)
    return out


def seeded_flags(flags: list) -> list:
    """A seeded row's flags: ``seeded`` in place of ``no-live-instance`` (it never had one)."""
    out = [f for f in flags if f != "no-live-instance"]
    return ["seeded", *out]


def read_failure_cause(rc, read, explained=()) -> "str | None":
    """What broke, when an API read failed: from which reads failed, and ``GET /health`` (asked only then)."""
    from regctl.discovery import api_failure_cause, fetch_health

    if not read.want_api or read.instances_skipped is not None:
        return None
    if read.rows_error is None and not read.failed_reads(explained):
        return None
    return api_failure_cause(read.rows_error is None, {n: v for n, v in read.instances.items() if n not in set(explained)},
                             fetch_health(rc.api()))


def _probe_services(rc, read, names: list) -> dict:
    """{service: {instance id: ProbeResult}}: every live instance (ZooKeeper's view, else the API's)."""
    from regctl.health import probe_many, targets_for

    instances = []
    for n in names:
        live = read.zk_instances(n)
        if live is None:
            answer = read.api_answer(n)
            live = answer if isinstance(answer, list) else []
        instances.extend(live)
    results = probe_many(targets_for(instances), timeout=rc.settings.endpoint.timeout,
                         verify=rc.settings.endpoint.verify) if instances else []
    out: dict = {}
    for r in results:
        out.setdefault(r.service_name, {})[r.instance_id] = r
    return out


def _instance_read_warnings(read, cause: "str | None" = None) -> list:
    """Per-service read failures: one line when they all failed (with the cause), else one each."""
    from regctl.discovery import failure_counts

    failed = read.failed_reads()
    if read.instances_skipped is not None and read.any_read:
        return [f"the per-service instance lists were not read (the API is down): {read.instances_skipped.message}"]
    if not failed:
        return []
    if len(failed) >= 2 and len(failed) == len(read.instances):
        return [f"every service's instance list failed ({failure_counts(failed.values())})"
                + (f": {cause}" if cause else "")]
    out = [f"instances of {n}: {e}" for n, e in sorted(failed.items())[:5]]
    if len(failed) > 5:
        out.append(f"... and {len(failed) - 5} more services whose instance list failed")
    return out


def _gate_error(summaries: list, not_counted: "set | frozenset" = frozenset()) -> "RegctlError | None":
    """``--fail-undiscoverable``: NotFound (1) for any not discoverable, else Unreachable (3) for unchecked.

    ``not_counted``: services left out of the gate (seeded rows that were not named).
    """
    left_out = [x for x in summaries if x.name in not_counted]
    summaries = [x for x in summaries if x.name not in not_counted]
    no = [x for x in summaries if x.discovery is not None and x.discovery.discoverable is False]
    unknown = [x for x in summaries if x.discovery is not None and x.discovery.discoverable is None]
    aside = f" ({len(left_out)} seeded row(s) not counted)" if left_out else ""

    def shown(items: list) -> str:
        text = ", ".join(f"{x.name} ({x.discovery.reason})" for x in items[:5])
        return text + (f" and {len(items) - 5} more" if len(items) > 5 else "")

    if no:
        return NotFound(f"{len(no)} of {len(summaries)} service(s) not discoverable{aside}: {shown(no)}",
                        hint=f"see why with: regctl inspect {no[0].name}")
    if unknown:
        return Unreachable(f"could not check whether {len(unknown)} service(s) are discoverable{aside}: "
                           f"{shown(unknown)}",
                           hint="fix the connection to the source named, then run again")
    return None


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
                        where=rc.settings.endpoint.zk_hosts, hint=getattr(reader, "noauth_hint", None))
    return err, [p for p in problems if p not in denied]


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
    from regctl.names import validate_service_name
    from regctl.views import detail

    validate_service_name(name)
    read = read_for(rc, source, names=[name])
    row = read.rows[0] if read.rows else None
    zk_service = read.snapshot.service(name) if read.snapshot else None
    if read.snapshot is not None and zk_service is None:
        zk_service = ZkService(name, (), (), exists=False)
    if zk_service is not None and read.zk_instances(name) is None:
        zk_service = None  # its nodes could not be read: unknown, not empty
    answer = read.api_answer(name)
    api_list = answer if isinstance(answer, list) else None
    d = detail(name, row, zk_service, api_list, rows_read=read.rows is not None)
    raw = read.snapshot.service(name) if read.snapshot else None
    problems = list(raw.problems if raw is not None else ()) + (list(read.snapshot.problems) if read.snapshot else [])
    verdict = read.verdict(name)
    s = rc.settings
    data = {
        "service": name,
        "row": row.to_dict() if row else None,
        "instances": [v.to_dict() for v in d.instances],
        "instances_read": d.instances_known,
        "registered": d.registered,
        "discovery": verdict.to_dict(),
        "warnings": list(d.warnings),
        "problems": [p.to_dict() for p in problems],
        "sources": read.sources(s.endpoint.config_url, s.endpoint.zk_hosts if read.want_zk else None, s.endpoint.zk_base),
    }
    if d.registered is False and not problems:
        why = ("its ZooKeeper directory holds no instance and the Config Service has no row for it"
               if zk_service is not None and zk_service.exists else "neither ZooKeeper nor the API knows it")
        raise NotFound(f"service {name!r} is not registered ({why})",
                       hint=suggest(rc, name) or "list what is registered with: regctl list")
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
    empty = "no live instances" if d.instances_known else "instances could not be read (see the error below)"
    if d.instances_known and zk_service is None and read.want_zk:
        empty = "the API lists no instance (ZooKeeper could not be read)"
    result = Result(data=data)
    discoverable = sum(1 for v in d.instances if v.instance.discoverable)
    title += inspect_monitor(rc, name, read.api_read, discoverable, data, result,
                             live=len(d.instances) if d.instances_known else None)
    result.tables.append(Table(INSTANCE_COLUMNS, rows, title=title, empty=empty, data_key="instances"))
    result.notes.append(source_note(rc, read))
    result.notes.append(f"discovery: {verdict.label} -- {verdict.detail}")
    result.warnings.extend(source_warnings(read))
    if isinstance(answer, RegctlError) and d.instances_known:
        result.warnings.append(f"the API could not list the instances of {name}: {answer}")
    result.warnings.extend(d.warnings)
    result.error, problems = _noauth_error(rc, problems)
    result.warnings.extend(f"{p.path}: {p.detail}" for p in problems)
    if result.error is None:
        result.error = _inspect_unknown(name, read, d, answer)
    if result.error is None:
        explained = explained_failures(read, {name: verdict})
        result.error = read.api_unread(explained, read_failure_cause(rc, read, explained))
    return result


def _inspect_unknown(name: str, read, d, answer) -> "RegctlError | None":
    """Exit 3 when what inspect must say could not be read (never "no instances" unobserved)."""
    if not d.instances_known:
        failed = [f"ZooKeeper: {read.zk_error.message}" if read.zk_error is not None else None,
                  f"API: {answer.message}" if isinstance(answer, RegctlError) else None]
        text = "; ".join(f for f in failed if f) or "no source lists instances"
        return Unreachable(f"could not read the instances of {name!r}: {text}",
                           hint="check the source named, or read the other with --source")
    if d.registered is None and not read.want_api:
        return NotFound(f"service {name!r} has no live instance in ZooKeeper (--source zk: the API and its "
                        f"database rows were not read)", hint=f"read both with: regctl inspect {name}")
    if d.registered is None:
        err = read.rows_error or (answer if isinstance(answer, RegctlError) else None)
        why = f": {err.message}" if err is not None else ""
        return Unreachable(f"no live instance of {name!r} in ZooKeeper; whether it has a database row "
                           f"is unknown, the services list could not be read{why}",
                           hint="check the Config Service (regctl doctor)")
    return None


def did_you_mean(name: str, known) -> "str | None":
    from regctl.discovery import did_you_mean as dym

    return dym(name, known)


def suggest(rc, name: str) -> "str | None":
    """A did-you-mean from the names the registry holds now (read once more, on a failure path only)."""
    from regctl.discovery import known_names

    return did_you_mean(name, known_names(rc.api, rc.zk if rc.settings.endpoint.zk_configured else None))


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
    from regctl.names import validate_service_name

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
    from regctl.names import validate_service_name

    validate_service_name(name)
    items = rc.api().discover(name)
    data: dict[str, Any] = {"service": name, "instances": items}
    result = Result(data=data, tables=[Table(DISCOVER_COLUMNS, items, empty="no instances", data_key="instances")])
    if not items:
        result.error = NotFound(f"no live instance of {name!r}",
                                hint=suggest(rc, name) or "list what is registered with: regctl list")
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
    from regctl.monitor import SKIPPED, contradiction, contradiction_warning, monitor_view, skipped

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
        if skipped(verdict, x.live):  # e.g. the later generation's seeded rows: never "not known yet"
            doc["monitor"]["detail"] = SKIPPED
            row["monitor_state"] = "skipped"
        flag = contradiction(verdict, x.healthy)
        if flag:
            row["flags"] = list(row.get("flags") or []) + [flag]
            doc["flags"] = list(doc.get("flags") or []) + [flag]
            result.warnings.append(contradiction_warning(x.name, flag, verdict))
    return True


def inspect_monitor(rc, name: str, api_read: bool, discoverable: int, data: dict, result: Result,
                    live: "int | None" = None) -> str:
    """``inspect``: the monitor's verdict in the data and as a title suffix ("" on the earlier generation)."""
    data["monitor"] = None  # not asked, or no monitor (earlier generation)
    if not api_read:
        return ""
    from regctl.monitor import COULD_NOT_CHECK, contradiction, contradiction_warning, describe, service_monitor

    verdict = service_monitor(rc.api(), name)
    rc.out.debug("Config Service generation: " + ("earlier (no health monitor endpoint)" if verdict is None
                                                  else f"later or unknown (the monitor endpoint gave: {verdict.state})"))
    if verdict is None:
        return ""
    flag = contradiction(verdict, discoverable)
    data["monitor"] = {**verdict.to_dict(), "flag": flag}
    if flag:
        result.warnings.append(contradiction_warning(name, flag, verdict))
    elif verdict.state == COULD_NOT_CHECK:
        result.warnings.append(f"the Config Service's monitor verdict for {name} could not be read: "
                               f"{verdict.detail}")
    shown = describe(verdict, live) if verdict.state != COULD_NOT_CHECK else "could not check"
    return f"  monitor: {shown}"

