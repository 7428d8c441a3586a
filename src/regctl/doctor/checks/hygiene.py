"""Registry hygiene over every service (area ``hygiene``, ``regctl doctor --all``).

One read of everything (:func:`regctl.doctor.facts.registry_view`), one round of
health probes, then one row per problem found, each with its own fix; a single
passing row when there is none. Without ``--all`` these checks are skipped unless
named explicitly.
"""

from __future__ import annotations

from regctl.doctor.base import Check, CheckResult, CheckRun, given
from regctl.doctor.checks.service import _generation_skip, monitor_row, server_deadline_cap
from regctl.doctor.facts import (
    RegistryView,
    api_client,
    api_failure,
    config_answers,
    docker_hint,
    generation,
    is_docker_name,
    is_seeded,
    probe,
    registry_view,
    url_parts,
    zk_dir,
)
from regctl.errors import RegctlError
from regctl.prober import targets_for
from regctl.monitor import monitor_verdicts, run_server_checks

CONFIG_SERVICE = "config-service"


def hygiene_applies(run: CheckRun) -> tuple[RegistryView | None, CheckResult | None]:
    if not run.config.all_services and run.check.name not in run.config.explicit:
        return None, run.no_input("registry-wide; runs with --all", "regctl doctor --all")
    try:
        return registry_view(run), None
    except RegctlError as exc:
        return None, run.fail(f"cannot read the registry: {exc.message}", exc.hint or "fix config.* / zookeeper.*",
                              **api_failure(exc))


#: run a check with what :func:`hygiene_applies` found, or return its skip/fail row
on_registry_view = given(hygiene_applies)


def _need_zk(run: CheckRun, view: RegistryView) -> CheckResult | None:
    if view.snapshot is not None:
        return None
    if not run.config.endpoint.zk_hosts:
        return run.skip("needs ZooKeeper (not configured)", "pass --zk HOST:PORT or set ZOOKEEPER_HOSTS")
    return run.skip(f"ZooKeeper unreadable ({view.zk_error.message if view.zk_error else '?'})",
                    "fix zookeeper.session first")


def _when(stamp) -> str:
    """A row's registered_at to the second, without the fraction and time zone noise."""
    if not stamp:
        return "?"
    text = str(stamp)
    return text[:19] if len(text) >= 19 and text[10] in " T" else text


def _src(view: RegistryView) -> str:
    return "ZooKeeper" if view.source == "zookeeper" else "the API"


# ---------------------------------------------------------------------------

@on_registry_view
def check_zombies(run: CheckRun, view: RegistryView) -> list[CheckResult] | CheckResult:
    instances = view.all_instances()
    if not instances and view.api_errors:
        return run.skip(f"could not read the instances of {len(view.api_errors)} service(s) from the API",
                        "see hygiene.undiscoverable and the cause.* rows")
    if not instances:
        return run.skip(f"no live instance in {_src(view)}", "nothing to probe")
    results = probe(run, "probe:all", targets_for(instances))
    rows = []
    unverifiable = []
    own_checked = False
    for inst, res in zip(instances, results):
        if res.healthy:
            continue
        target = f"{inst.service_name}/{inst.instance_id}"
        host = url_parts(res.url)[1] if res.url else ""
        details = {"probe": res.to_dict(), "instance_status": inst.status}
        if inst.service_name == CONFIG_SERVICE:
            # its own node: never a zombie to deregister (it writes it only at start-up); checked at --config-url
            if config_answers(run):
                own_checked = True
                continue
            rows.append(run.warn(f"the Config Service's own node: {res.url or 'no URL'} does not answer from here "
                                 f"({res.error or res.status_code}), nor does --config-url",
                                 "see config.*; never deregister this node: the Config Service registers itself "
                                 "only when it starts", target=target, own_node=True, **details))
            continue
        if res.error == "DNS" and is_docker_name(host) and not run.ctx.in_container:
            unverifiable.append(target)
            rows.append(run.warn(f"cannot check from here: {host!r} resolves only inside the Docker network "
                                 "(not a sign that it is dead)", docker_hint(host, res.url), target=target,
                                 unreachable_from_here=True, **details))
            continue
        said = f"HTTP {res.status_code}" if res.status_code is not None else (res.error or "no answer")
        dereg = f"regctl deregister {inst.service_name} {inst.instance_id}"
        kind = (f"HTTP {res.status_code}" if res.status_code is not None else res.error or "no answer") \
            if res.url else "no URL"
        details["kind"] = kind
        if res.url is None:
            finding, hint = "no health URL or service URL registered", f"re-register it with its URL, or: {dereg}"
        elif res.status_code is not None:
            finding = f"{res.url} answers {said}"
            hint = f"it reports itself broken: read its logs; if it is gone for good: {dereg}"
        elif res.error in ("refused", "DNS"):
            finding = f"{res.url}: {said}"
            hint = ("the process is gone but its instance stays registered (instances belong to the Config "
                    f"Service's ZooKeeper session, not the service's): {dereg}")
        else:
            finding = f"{res.url}: {said} within {run.config.endpoint.timeout:g}s"
            hint = f"the service hangs or packets are dropped: check it runs; if it is dead: {dereg}"
        if inst.discoverable:
            rows.append(run.fail(f"says 'healthy' (so /url hands it out) but {finding}", hint,
                                 target=target, **details))
        else:
            rows.append(run.warn(f"{finding} (status {inst.status!r}: /url does not return it)", hint,
                                 target=target, **details))
    if not rows:
        own = (" (the Config Service's own node through --config-url: its registered URL is its Docker name)"
               if own_checked else "")
        return run.passed(f"all {len(instances)} instances answer their health check{own}",
                          instances=len(instances), source=view.source)
    return rows


@on_registry_view
def check_undiscoverable(run: CheckRun, view: RegistryView) -> list[CheckResult] | CheckResult:
    rows = []
    ok = 0
    for name in sorted(view.instances):
        insts = view.instances[name]
        if not insts:
            continue
        bad = [i for i in insts if not i.discoverable]
        if not bad:
            ok += 1
            continue
        unset = {i.instance_id for i in bad if view.source == "zookeeper" and "status" not in i.metadata}
        statuses = ", ".join(f"{i.instance_id}: {i.status}" + (", registered without a status"
                                                              if i.instance_id in unset else "") for i in bad)
        why = ""
        hint = ("register it with status 'healthy': regctl register --name "
                f"{name} --url URL --instance-id {bad[0].instance_id} --status healthy")
        if len(bad) == len(insts):
            rows.append(run.fail(f"/url finds nothing: no instance is 'healthy' ({statuses}){why}", hint,
                                 target=name, statuses={i.instance_id: i.status for i in insts}))
        else:
            rows.append(run.warn(f"/url skips {statuses}{why}; {len(insts) - len(bad)} healthy instance(s) "
                                 "serve", hint + " (ignore if it is still starting)", target=name,
                                 statuses={i.instance_id: i.status for i in insts}))
    for name, exc in sorted(view.api_errors.items()):
        rows.append(run.warn(f"could not check: GET /services/{name} failed ({exc.message})",
                             "see the cause.* rows for why the Config Service fails (Redis, its ZooKeeper client, "
                             "a status it cannot parse)", target=name, **api_failure(exc)))
    if not rows:
        return run.passed(f"every service with live instances ({ok}) has an instance /url can return")
    return rows


@on_registry_view
def check_duplicate_urls(run: CheckRun, view: RegistryView) -> list[CheckResult] | CheckResult:
    by_url: dict[str, list] = {}
    for inst in view.all_instances():
        if inst.service_url:
            by_url.setdefault(inst.service_url.rstrip("/"), []).append(inst)
    rows = []
    for url, insts in sorted(by_url.items()):
        if len(insts) < 2:
            continue
        ids = [f"{i.service_name}/{i.instance_id}" for i in insts]
        old = insts[0]
        rows.append(run.warn(
            f"{url} is registered {len(insts)} times: {', '.join(ids)}",
            "usually a restart registered a new id (the guide's default id is NAME-PID) while the old one stays: "
            f"set SERVICE_INSTANCE_ID to a stable id, and remove the stale one, e.g. regctl deregister "
            f"{old.service_name} {old.instance_id}", target=url, instances=ids))
    if not rows:
        return run.passed(f"no URL is registered under more than one instance id ({len(by_url)} URLs)")
    return rows


@on_registry_view
def check_stale_rows(run: CheckRun, view: RegistryView) -> list[CheckResult] | CheckResult:
    if view.rows is None:
        return run.skip(f"database rows unreadable ({view.rows_error.message if view.rows_error else '?'})",
                        "fix config.http first")
    rows, seeded = [], []
    for r in view.rows:
        name = r.service_name
        if name in view.api_errors:
            continue
        if view.instances.get(name):
            continue
        if is_seeded(r, zk_dir(view.snapshot, name)):
            seeded.append(name)
            continue
        rows.append(run.warn(
            f"database row (status {r.status or '?'!r}, registered {_when(r.registered_at)}) but no live instance",
            f"restart it if it should run; if retired: --ignore hygiene.stale-rows:{name} (the API cannot "
            "delete rows)", target=name, row=r.to_dict()))
    if seeded:
        rows.append(run.passed(f"seeded: {len(seeded)} row(s) without registered_at or a registration's metadata "
                               "that never had an instance "
                               f"({', '.join(seeded[:8])}{' ...' if len(seeded) > 8 else ''}): put there by the "
                               "deployment's database migrations, not stale registrations", target="seeded",
                               seeded=seeded))
    if not rows:
        return run.passed(f"every database row ({len(view.rows)}) has live instances")
    return rows


@on_registry_view
def check_layout(run: CheckRun, view: RegistryView) -> list[CheckResult] | CheckResult:
    skip = _need_zk(run, view)
    if skip:
        return skip
    problems = view.snapshot.all_problems()
    hints = {
        "base-missing": "the Config Service creates the base path on start: check --zk-base / ZOOKEEPER_BASE_PATH",
        "no-instances-node": "not a registry service (other software shares the path?) or a half-created one; "
                             "remove it if nothing uses it",
        "persistent-instance": "a persistent node never vanishes by itself: delete it (zkCli.sh delete PATH) and "
                               "register the instance through the API",
        "not-json": "written by something other than the Config Service: delete the node, re-register through the API",
        "not-utf8": "written by something other than the Config Service: delete the node, re-register through the API",
        "not-an-object": "written by something other than the Config Service: delete the node, re-register "
                         "through the API",
        "too-large": "an oversized payload slows every read: re-register with smaller metadata",
        "bad-field": "re-register the instance through the API so its data is complete",
        "unreadable": "a ZooKeeper ACL blocks reading it: pass credentials, or ask who created it",
        "bad-name": "a directory name the registry cannot use safely: remove it if nothing uses it",
    }
    rows = [run.warn(f"{p.kind}: {p.detail}", hints.get(p.kind, "inspect the node with zkCli.sh"),
                     target=p.path, kind=p.kind) for p in problems]
    if not rows:
        return run.passed(f"every node under {view.snapshot.base_path} fits the registry layout "
                          f"({len(view.snapshot.services)} services)")
    return rows


@on_registry_view
def check_sessions(run: CheckRun, view: RegistryView) -> CheckResult:
    skip = _need_zk(run, view)
    if skip:
        return skip
    owners: dict[str, list] = {}
    for inst in view.all_instances():
        if inst.stat is not None and inst.stat.owner_hex:
            owners.setdefault(inst.stat.owner_hex, []).append(f"{inst.service_name}/{inst.instance_id}")
    total = sum(len(v) for v in owners.values())
    if not owners:
        return run.skip("no ephemeral instance nodes to look at", "nothing to do")
    details = {"owners": {k: len(v) for k, v in owners.items()}}
    own_nodes = [i for i in view.instances.get(CONFIG_SERVICE, []) if i.stat is not None]
    own = next((i.stat.owner_hex for i in own_nodes), None)
    rewritten = any(i.stat.version > 0 for i in own_nodes)
    if len(owners) == 1:
        sid = next(iter(owners))
        whose = ", the Config Service's" if own == sid else ""
        if own == sid and rewritten:  # rewritten in place at a restart: the node keeps the previous session
            whose = (", its own node's, which it rewrote in place when it restarted: its previous session, doomed "
                     "(see cause.restart)")
        return run.passed(
            f"all {total} instances are owned by one ZooKeeper session ({sid}{whose}): if it "
            "restarts or loses its session the registry empties at once",
            "services do not re-register by themselves: after a Config Service restart, restart them (or give "
            "them periodic re-registration); see what vanished with regctl list", **details)
    whose = f"; the Config Service's own node is owned by {own}" if own else ""
    return run.passed(f"{total} instances are owned by {len(owners)} ZooKeeper sessions{whose} (the others: "
                      "a restart's old session, see cause.restart; Config Service replicas; or registrations made "
                      "directly in ZooKeeper)",
                      "each session's instances vanish together when it ends", **details)


@on_registry_view
def check_monitor(run: CheckRun, view: RegistryView) -> list[CheckResult] | CheckResult:
    info, row = _generation_skip(run)
    if row is not None:
        return row
    names = sorted(n for n, insts in view.instances.items() if insts) + sorted(view.api_errors)
    if not names:
        return run.skip("no service with live instances: nothing for the monitor to judge", "nothing to do")
    verdicts = monitor_verdicts(api_client(run), names, info)
    rows, tally = [], {}
    for name in names:
        v = verdicts[name]
        tally[v.state] = tally.get(v.state, 0) + 1
        if v.state in ("unhealthy", "degraded"):
            live = view.instances.get(name) or []
            rows.append(monitor_row(run, name, v, sum(1 for i in live if i.discoverable)))
    summary = ", ".join(f"{n} {state}" for state, n in sorted(tally.items()))
    if "could-not-check" in tally and len(tally) == 1:
        return run.skip(f"could not check the monitor's verdicts ({summary}): "
                        f"{verdicts[names[0]].detail}", "see cause.redis / config.*")
    rows.append(run.passed(f"the server's monitor on {len(names)} service(s) with instances: {summary}"
                           + (" ('not-known-yet': no entry before its first cycle or after the 60 s expiry, "
                              "not unhealthy)" if "not-known-yet" in tally else ""),
                           verdicts={n: verdicts[n].state for n in names[:200]}))
    return rows


def check_server_health_all(run: CheckRun) -> list[CheckResult] | CheckResult:
    """The Config Service's own health call for every service with instances, all at once (named explicitly)."""
    if run.check.name not in run.config.explicit:
        return run.no_input("not run unless named: it WRITES every service's row status",
                            "regctl doctor hygiene.server-health --all")
    view, row = hygiene_applies(run)
    if row is not None:
        return row
    if not config_answers(run):
        return run.skip("not tried: the Config Service does not answer GET /health (see config.http)",
                        "fix config.* first")
    counts = {n: len(insts) for n, insts in sorted(view.instances.items()) if insts}
    counts.update({n: 1 for n in view.api_errors})
    if not counts:
        return run.skip("no service with live instances", "nothing to ask")
    info = generation(run)
    _info, checks = run_server_checks(api_client(run), counts, timeout=run.config.endpoint.timeout,
                                      server_timeout=run.config.server_timeout, info=info)
    rows, healthy = [], 0
    for chk in checks:
        details = {"deadline_s": chk.deadline, "instances": counts[chk.service]}
        if chk.still_running:
            rows.append(run.warn(f"the Config Service's health call is still running after {chk.deadline:g} s; "
                                 "it keeps going and writes the row's status when done",
                                 "see hygiene.zombies for the instance that does not answer; to wait longer: "
                                 "--server-timeout SECONDS", target=chk.service, **details))
        elif chk.error is not None:
            rows.append(run.fail(f"POST /services/{chk.service}/health failed: {chk.error.message}",
                                 "see the cause.* rows", target=chk.service, **api_failure(chk.error), **details))
        elif chk.status == "unhealthy":
            from regctl.doctor.checks.service import server_side_fix

            rows.append(run.fail("the Config Service's own health call says 'unhealthy' (and wrote it to the row)",
                                 server_side_fix(chk.service), target=chk.service, **details))
        else:
            healthy += 1
    rows.append(run.passed(f"the Config Service's own health call for {len(checks)} service(s), all at once: "
                           f"{healthy} not unhealthy; each call wrote its verdict to the row",
                           generation=info.generation))
    return rows


CHECKS: tuple[Check, ...] = (
    Check("hygiene.zombies", "hygiene", "instances whose health check fails (crashed but still registered)",
          check_zombies),
    Check("hygiene.undiscoverable", "hygiene", "services /url cannot return: no instance with status 'healthy' "
          "(e.g. registered without a status)", check_undiscoverable),
    Check("hygiene.duplicate-urls", "hygiene", "the same URL registered under several instance ids",
          check_duplicate_urls),
    Check("hygiene.stale-rows", "hygiene", "database rows with no live instance (deregistered, or lost on a "
          "Config Service restart)", check_stale_rows),
    Check("hygiene.layout", "hygiene", "nodes under the base path that do not fit the layout (other software, "
          "bad data, persistent instances)", check_layout),
    Check("hygiene.sessions", "hygiene", "all instances owned by one ZooKeeper session: a Config Service "
          "restart empties the registry (info)", check_sessions),
    Check("hygiene.server-health", "hygiene", "the Config Service's own health call for every service at once, "
          "each with its own deadline (runs only when named: it WRITES every row's status)",
          check_server_health_all, deadline=server_deadline_cap),
    Check("hygiene.monitor", "hygiene", "services the later generation's health monitor finds unhealthy or "
          "degraded; one summary line for the rest ('not known yet' is never unhealthy)", check_monitor),
)
