"""One-service checks (area ``service``): registration, the API's view, reachability, discoverability.

They apply to ``--service NAME`` (else ``SERVICE_NAME``) and are skipped, saying
how to pick one, otherwise.
"""

from __future__ import annotations

from regctl.doctor.base import FAIL, WARN, Check, CheckResult, CheckRun, given
from regctl.doctor.facts import (
    api_client,
    api_failure,
    api_instances,
    api_rows,
    config_answers,
    docker_hint,
    generation,
    is_docker_name,
    is_loopback,
    is_seeded,
    live_instances,
    probe,
    url_parts,
    zk_reader,
)
from regctl.errors import NotFound, RegctlError, UsageError
from regctl.prober import ProbeTarget
from regctl.monitor import MAX_SERVER_DEADLINE, contradiction, monitor_verdict, run_server_checks
from regctl.names import VALID_STATUSES, validate_service_name
from regctl.views import instances_differ


def service_applies(run: CheckRun) -> tuple[str | None, CheckResult | None]:
    name = run.config.selected_service
    if not name:
        if run.config.all_services:
            return None, run.no_input("no service selected (--all checks every service in the hygiene.* rows)",
                                      "to check one service in depth: regctl doctor --service NAME")
        return None, run.no_input("no service selected",
                              "pick one: regctl doctor --service NAME (or set SERVICE_NAME, or --env-file FILE); "
                              "--all checks every service")
    try:
        validate_service_name(name)
    except UsageError as exc:
        return None, run.fail(f"service name {name!r}: {exc.message}", exc.hint or "fix the name")
    return name, None


#: run a check with what :func:`service_applies` found, or return its skip/fail row
on_selected_service = given(service_applies)


def expected_instance_id(run: CheckRun, name: str) -> str | None:
    env = run.config.env
    if (env.get("SERVICE_NAME") or "").strip() == name:
        return (env.get("SERVICE_INSTANCE_ID") or "").strip() or None
    return None


def _row_for(run: CheckRun, name: str):
    try:
        return next((r for r in api_rows(run) if r.service_name == name), None), None
    except RegctlError as exc:
        return None, exc


@on_selected_service
def check_service_registered(run: CheckRun, name: str) -> CheckResult:
    try:
        live = live_instances(run, name)
    except RegctlError as exc:
        return run.fail(f"cannot read the instances of {name}: {exc.message}",
                        exc.hint or "fix config.* / zookeeper.* first", target=name, **api_failure(exc))
    db_row, _err = _row_for(run, name)
    ids = [i.instance_id for i in live.instances]
    details = {"source": live.source, "instances": ids,
               "db_row": db_row.to_dict() if db_row else None,
               "zk_error": live.zk_error.message if live.zk_error else None}
    if not ids:
        if db_row is not None and is_seeded(db_row):
            return run.fail(f"no live instance of {name}; its database row is seeded (no registered_at): it was "
                            "put there by the deployment and has never registered", "start the service so it "
                            "registers (it registers at startup), or register it by hand: regctl register "
                            "--from-env --env-file FILE", target=name, seeded=True, **details)
        if db_row is not None:
            why = ("it was deregistered (deregistration marks the row 'unknown')" if (db_row.status or "unknown")
                   == "unknown" else "its node vanished without a deregistration (see the cause.* rows: a "
                   "Config Service restart, or a node deleted in ZooKeeper)")
            return run.fail(f"no live instance of {name}; its database row says {db_row.status or '?'!r} "
                            f"(registered {db_row.registered_at or '?'}): {why}",
                            "restart the service so it registers again (it registers at startup), or register it "
                            "by hand: regctl register --from-env --env-file FILE", target=name, **details)
        return run.fail(f"{name} never registered with this Config Service (no instance, no database row)",
                        "registration fails silently in the guide's client: read the service's logs for "
                        "'Service registry registration skipped/failed', and check its CONFIG_SERVICE_URL "
                        "(regctl doctor --env-file FILE)", target=name, **details)
    want = expected_instance_id(run, name)
    if want and want not in ids:
        return run.fail(f"SERVICE_INSTANCE_ID {want!r} is not among the live instances ({', '.join(ids)})",
                        "this instance did not register (or registered under another name or registry): read "
                        "its logs for 'Registered ... as instance'", target=name, **details)
    extra = f"; {want} is among them" if want else ""
    src = " (from the API: ZooKeeper not read)" if live.source == "api" else ""
    return run.passed(f"{len(ids)} live instance{'s' if len(ids) != 1 else ''}: {', '.join(ids[:5])}"
                      f"{' ...' if len(ids) > 5 else ''}{extra}{src}", target=name, **details)


def _api_500_hint(run: CheckRun, name: str) -> str:
    """The hint for a 500 on a read of ``name``: a bad status only when one was seen in ZooKeeper."""
    bad = None
    if run.config.endpoint.zk_hosts:
        try:
            bad = next((i for i in live_instances(run, name).instances if i.status not in VALID_STATUSES), None)
        except RegctlError:
            bad = None
    if bad is not None:
        return (f"instance {bad.instance_id} has status {bad.status!r}, which the Config Service cannot parse: "
                f"re-register it with --status healthy, or deregister it: regctl deregister {name} {bad.instance_id}")
    return ("the Config Service fails reading it: see the cause.* rows (Redis down, its ZooKeeper client lost, "
            "a status it cannot parse): regctl doctor cause --service " + name)


@on_selected_service
def check_service_api_view(run: CheckRun, name: str) -> CheckResult:
    try:
        api_list = api_instances(run, name)
    except RegctlError as exc:
        if getattr(exc, "status_code", None) == 500:
            return run.fail(f"GET /services/{name} fails: {exc.message}", _api_500_hint(run, name), target=name,
                            **api_failure(exc))
        return run.fail(f"the API cannot list {name}: {exc.message}", exc.hint or "see config.*", target=name,
                        **api_failure(exc))
    db_row, row_err = _row_for(run, name)
    notes = []
    if row_err is not None:
        notes.append(f"database rows unreadable ({row_err.message})")
    elif db_row is None and api_list:
        return run.warn(f"the API lists {len(api_list)} instance(s) of {name} but has no database row for it",
                        "it was registered straight into ZooKeeper or the database lost the row; re-register "
                        "through the API to restore it", target=name)
    elif db_row is not None:
        notes.append(f"database row status {db_row.status or '?'!r}")
    if not run.config.endpoint.zk_hosts:
        return run.passed(f"the API lists {len(api_list)} instance(s); " + "; ".join(notes)
                          + " (ZooKeeper not configured: nothing to compare with)", target=name,
                          api_instances=[i.instance_id for i in api_list])
    try:
        svc = zk_reader(run).service(name)
    except RegctlError as exc:
        return run.skip(f"ZooKeeper unreadable ({exc.message}): cannot compare", "fix zookeeper.session first",
                        target=name)
    zk_list = list(svc.instances)
    api_ids = {i.instance_id for i in api_list}
    zk_ids = {i.instance_id for i in zk_list}
    details = {"api_instances": sorted(api_ids), "zk_instances": sorted(zk_ids)}
    if instances_differ(api_list, zk_list):
        diff = []
        if api_ids - zk_ids:
            diff.append("only in the API: " + ", ".join(sorted(api_ids - zk_ids)))
        if zk_ids - api_ids:
            diff.append("only in ZooKeeper: " + ", ".join(sorted(zk_ids - api_ids)))
        if not diff:
            diff.append("same ids, different data")
        return run.warn(f"the API's list differs from ZooKeeper ({'; '.join(diff)})",
                        "the API serves a cached list (up to 60 s, Redis); wait a minute, or register/deregister "
                        "through the API, which clears it", target=name, **details)
    return run.passed(f"the API agrees with ZooKeeper ({len(zk_ids)} instance(s)); " + "; ".join(notes),
                      target=name, **details)


def _probe_hint(run: CheckRun, url: str | None, error: str | None, code: int | None, what: str,
                inst) -> tuple[str, str]:
    """(status, hint) for a failed probe of ``url``."""
    host = url_parts(url)[1] if url else ""
    svc, iid = inst.service_name, inst.instance_id
    dereg = f"regctl deregister {svc} {iid}"
    if error == "DNS":
        if is_docker_name(host) and not run.ctx.in_container:
            return WARN, docker_hint(host, url)
        return FAIL, (f"{host!r} does not resolve: the registered URL is wrong. Inside Docker set "
                      "SERVICE_HOST to the container's service name; for external access set SERVICE_PUBLIC_URL")
    if error == "refused":
        return FAIL, (f"nothing listens on {host}:{url_parts(url)[2] if url else '?'}: the service is down or "
                      f"SERVICE_PORT is wrong; if it crashed, its instance stays registered (a zombie): {dereg}")
    if error == "timeout":
        return FAIL, ("no answer in time: the service hangs, or a firewall drops packets; check it runs "
                      f"(docker compose ps), or remove a dead instance: {dereg}")
    if error == "TLS":
        return FAIL, "TLS failed: register http:// if the service has no TLS, or fix its certificate"
    if code == 404 and what == "health":
        return FAIL, ("there is no health endpoint at that path: implement GET /health returning 200 (the guide's "
                      "Step 3), or re-register with the right health_check_url")
    if code is not None and code >= 500:
        return FAIL, (f"the health endpoint answers HTTP {code}: the service reports itself broken; read its "
                      f"logs; if the instance is gone for good: {dereg}")
    if code is not None:
        return FAIL, (f"the health endpoint answers HTTP {code}, not 2xx: make GET /health return 200 when the "
                      "service works")
    return FAIL, f"check that the service runs and its registered URL is right ({error})"


@on_selected_service
def check_service_reachable(run: CheckRun, name: str) -> list[CheckResult] | CheckResult:
    try:
        live = live_instances(run, name)
    except RegctlError as exc:
        return run.skip(f"cannot read the instances ({exc.message})", "see service.registered", target=name)
    if not live.instances:
        return run.skip(f"no live instance of {name} to probe", "see service.registered", target=name)
    targets = []
    for inst in live.instances:
        targets.append(ProbeTarget(name, inst.instance_id + "#url", inst.service_url))
        targets.append(ProbeTarget(name, inst.instance_id + "#health", inst.probe_url()))
    results = probe(run, f"probe:{name}", targets)
    by_key = {r.instance_id: r for r in results}
    cfg_host = url_parts(run.config.endpoint.config_url)[1]
    rows = []
    for inst in live.instances:
        u, h = by_key[inst.instance_id + "#url"], by_key[inst.instance_id + "#health"]
        details = {"service_url": inst.service_url, "health_url": inst.probe_url(),
                   "url_probe": u.to_dict(), "health_probe": h.to_dict()}
        target = f"{name}/{inst.instance_id}"
        if not inst.service_url:
            rows.append(run.fail("no service_url registered", "re-register with the service's URL "
                                 "(regctl register --from-env)", target=target, **details))
            continue
        url_text = f"{inst.service_url} " + (f"answers (HTTP {u.status_code})" if u.status_code is not None
                                             else f"does not answer ({u.error})")
        note = "" if inst.health_check_url else " (no health_check_url registered: tried service_url + /health)"
        if h.healthy:
            health_text = f"health {h.status_code} in {h.latency_ms or 0:.0f} ms"
        elif h.status_code is not None:
            health_text = f"health answers HTTP {h.status_code}"
        else:
            health_text = f"health does not answer ({h.error})"
        finding = f"{url_text}; {health_text}{note}"
        if u.status_code is None or not h.healthy:
            bad = u if u.status_code is None else h
            status, hint = _probe_hint(run, bad.url, bad.error, bad.status_code,
                                       "url" if bad is u else "health", inst)
            rows.append(run.result(status, finding, hint, target=target, **details))
            continue
        host = url_parts(inst.service_url)[1]
        if is_loopback(host) and not is_loopback(cfg_host):
            rows.append(run.warn(finding + ", but the URL is localhost",
                                 "other machines and containers reach their own localhost, not this service: set "
                                 f"SERVICE_HOST to its Docker name (e.g. {name}) or SERVICE_PUBLIC_URL",
                                 target=target, **details))
            continue
        rows.append(run.passed(finding, target=target, **details))
    return rows


@on_selected_service
def check_service_discoverable(run: CheckRun, name: str) -> CheckResult:
    try:
        url = api_client(run).url(name)
    except NotFound:
        try:
            live = live_instances(run, name)
        except RegctlError as exc:
            return run.fail(f"/url finds no healthy instance of {name}, and its instances are unreadable "
                            f"({exc.message})", exc.hint or "see service.registered", target=name)
        if not live.instances:
            return run.fail(f"/url finds nothing: {name} has no live instance", "see service.registered",
                            target=name)
        statuses = ", ".join(f"{i.instance_id}={i.status}" for i in live.instances)
        missing = [i.instance_id for i in live.instances if "status" not in i.metadata] \
            if live.source == "zookeeper" else []
        why = " (registered without a status)" if missing else ""
        return run.fail(f"/url finds no instance with status 'healthy' ({statuses}){why}",
                        "the status is what the service registered, not a measurement: register with "
                        "service_metadata {'status': 'healthy'} as the guide's client does, e.g. regctl register "
                        f"--name {name} --url URL --instance-id ID --status healthy",
                        target=name, statuses={i.instance_id: i.status for i in live.instances})
    except RegctlError as exc:
        if getattr(exc, "status_code", None) == 500:
            return run.fail(f"/url fails: {exc.message}", _api_500_hint(run, name), target=name, **api_failure(exc))
        return run.fail(f"/url fails: {exc.message}", exc.hint or "see config.*", target=name, **api_failure(exc))
    return run.passed(f"/url returns {url}", target=name, url=url)


# ---------------------------------------------------------------------------
# the Config Service's own view: its health monitor (later generation) and its health call
# ---------------------------------------------------------------------------

def server_side_fix(name: str, url: str | None = None) -> str:
    where = url or f"{name}'s health URL"
    return (f"the service's health endpoint fails on the server's side: the Config Service gets no 2xx/3xx from "
            f"{where} (it tries health_check_url, else /health and /api/v1/health, and /ready and /live, from "
            f"where it runs); check it from the Config Service's network (docker compose exec config-service "
            f"curl -si {where}) and that the service is up")


def _health_url(run: CheckRun, name: str) -> str | None:
    try:
        return next((i.probe_url() for i in live_instances(run, name).instances if i.probe_url()), None)
    except RegctlError:
        return None


def _discoverable(run: CheckRun, name: str) -> int | None:
    try:
        return sum(1 for i in live_instances(run, name).instances if i.discoverable)
    except RegctlError:
        return None


def monitor_row(run: CheckRun, name: str, verdict, discoverable: int | None) -> CheckResult:
    """One row for the monitor's verdict on ``name`` (a :class:`regctl.monitor.MonitorVerdict`)."""
    details = {"monitor": verdict.to_dict()}
    counts = f", {verdict.counts()} healthy" if verdict.counts() else ""
    when = f", last check {verdict.last_check}" if verdict.last_check else ""
    if verdict.state == "healthy":
        return run.passed(f"the server's monitor says 'healthy'{counts}{when}", target=name, **details)
    if verdict.state == "unknown":
        return run.passed(f"the server's monitor says 'unknown': it has no instance to probe{when}", target=name,
                          **details)
    if verdict.state == "not-known-yet":
        return run.skip(f"not known yet: {verdict.detail}", "the monitor runs every 30 s (an entry lives 60 s): "
                        "ask again after its next cycle", target=name, **details)
    if verdict.state == "could-not-check":
        code = 503 if verdict.detail and "503" in verdict.detail else None
        return run.skip(f"could not check the monitor's verdict: {verdict.detail}",
                        "see cause.redis" if code else "see config.*", target=name, api_status=code, **details)
    flag = contradiction(verdict, discoverable)
    handed = "; /url still hands it out (its registered status is 'healthy')" if flag else ""
    hint = server_side_fix(name, _health_url(run, name))
    if verdict.state == "unhealthy":
        return run.fail(f"the server's monitor finds no instance healthy{counts}{when}{handed}", hint, target=name,
                        flag=flag, **details)
    return run.warn(f"the server's monitor says 'degraded': some instances fail{counts}{when}{handed}", hint,
                    target=name, flag=flag, **details)


def _generation_skip(run: CheckRun):
    info = generation(run)
    if info.generation == "earlier":
        return info, run.no_input("the earlier generation has no health monitor (see config.generation)",
                                  "nothing to check")
    if info.generation != "later":
        return info, run.skip(f"cannot tell the generation ({info.evidence})", "see config.generation")
    return info, None


@on_selected_service
def check_service_monitor(run: CheckRun, name: str) -> CheckResult:
    info, row = _generation_skip(run)
    if row is not None:
        return row
    return monitor_row(run, name, monitor_verdict(api_client(run), name, info), _discoverable(run, name))


def server_deadline_cap(config) -> float:
    """How long the runner waits for the server health check: its call's deadline bounds it first."""
    return (config.server_timeout or MAX_SERVER_DEADLINE) + 2 * config.endpoint.timeout + 1.0


@on_selected_service
def check_service_server_health(run: CheckRun, name: str) -> CheckResult:
    if run.check.name not in run.config.explicit:
        return run.no_input("not run unless named: it WRITES the row's status",
                            f"regctl doctor service.server-health --service {name}", target=name)
    if not config_answers(run):  # its long deadline is for a server that answers, not for a dead address
        return run.skip("not tried: the Config Service does not answer GET /health (see config.http)",
                        "fix config.* first", target=name)
    try:
        count = len(live_instances(run, name).instances)
    except RegctlError:
        count = 1
    info = generation(run)
    _info, (chk,) = run_server_checks(api_client(run), {name: count}, timeout=run.config.endpoint.timeout,
                                      server_timeout=run.config.server_timeout, info=info)
    detailed = dict(chk.detailed) if isinstance(chk.detailed, dict) else None
    if detailed and isinstance(detailed.get("check_results"), list):
        detailed["check_results"] = detailed["check_results"][:20]
    details = {"deadline_s": chk.deadline, "instances": count, "generation": info.generation,
               "detailed": detailed}
    if chk.still_running:
        per = "about 12 s per hanging endpoint, 3 s per refused one" if info.generation != "earlier" else             "one try per endpoint"
        return run.warn(f"the Config Service's health call is still running after {chk.deadline:g} s ({count} "
                        f"instance(s); it probes them one by one: {per}); it keeps going and writes the row's "
                        "status when done", "see service.reachable / service.monitor for the instance that does "
                        "not answer; to wait longer: --server-timeout SECONDS", target=name, **details)
    if chk.error is not None:
        exc = chk.error
        hint = _api_500_hint(run, name) if getattr(exc, "status_code", None) == 500 else exc.hint or "see config.*"
        return run.fail(f"POST /services/{name}/health failed: {exc.message}", hint, target=name,
                        **api_failure(exc), **details)
    failing = [r for r in ((chk.detailed or {}).get("check_results") or []) if isinstance(r, dict)
               and not r.get("is_healthy")]
    said = "; ".join(f"{str(r.get('endpoint_url'))[:100]}: {str(r.get('error_message') or r.get('status_code'))[:80]}"
                     for r in failing[:3])
    if chk.status == "healthy":
        return run.passed("the Config Service's own health call says 'healthy' (and wrote it to the row)",
                          target=name, **details)
    if chk.status == "unhealthy":
        url = str(failing[0].get("endpoint_url")) if failing else _health_url(run, name)
        return run.fail("the Config Service's own health call says 'unhealthy' (and wrote it to the row)"
                        + (f": {said}" if said else ""), server_side_fix(name, url), target=name, **details)
    return run.passed(f"the Config Service's own health call says {chk.status!r}", target=name, **details)


CHECKS: tuple[Check, ...] = (
    Check("service.registered", "service", "the service has no live instance (never registered, "
          "deregistered, lost on a Config Service restart); SERVICE_INSTANCE_ID not among them",
          check_service_registered),
    Check("service.api-view", "service", "the API's cached list disagrees with ZooKeeper; no database row; "
          "the API fails for the service", check_service_api_view),
    Check("service.reachable", "service", "a registered service_url or health_check_url does not answer "
          "from here, or health is not 2xx", check_service_reachable),
    Check("service.discoverable", "service", "/url returns nothing: no instance with status 'healthy'",
          check_service_discoverable),
    Check("service.monitor", "service", "the later generation's health monitor finds the service unhealthy or "
          "degraded (while /url may still hand it out); a missing verdict is 'not known yet'",
          check_service_monitor),
    Check("service.server-health", "service", "the Config Service's own health call (POST .../health, which "
          "writes the row's status) says unhealthy, or is still running at its deadline (runs only when named)",
          check_service_server_health, deadline=server_deadline_cap),
)
