"""ZooKeeper checks (area ``zookeeper``): each ensemble member, quorum, a session, the base path."""

from __future__ import annotations

from regctl.doctor.base import Check, CheckResult, CheckRun
from regctl.doctor.facts import is_docker_name, is_loopback, zk_members, zk_reader
from regctl.errors import RegctlError
from regctl.zookeeper.admin import quorum


def zk_not_configured(run: CheckRun) -> CheckResult | None:
    if run.config.endpoint.zk_hosts:
        return None
    return run.no_input("ZooKeeper is not configured",
                    "pass --zk HOST:PORT or set ZOOKEEPER_HOSTS (the Config Service's value; from the host "
                    "usually localhost:2181)")


def _member_hint(rep, in_container: bool) -> str:
    host = rep.host
    if rep.error == "DNS":
        if is_docker_name(host) and not in_container:
            return (f"{host!r} only resolves inside the Docker network; from the host use the published port, "
                    f"e.g. --zk localhost:{rep.port}")
        return "check the host name in --zk / ZOOKEEPER_HOSTS"
    if rep.error == "refused":
        if is_loopback(host) and in_container:
            return (f"nothing listens on {rep.address} in this container: inside a container 'localhost' is the "
                    "container itself; if ZooKeeper runs in another container use its Docker name, e.g. "
                    "--zk zookeeper:2181")
        return (f"nothing listens on {rep.address}: start ZooKeeper (docker compose up -d zookeeper) or fix the "
                f"port in --zk / ZOOKEEPER_HOSTS (default 2181)")
    if rep.error == "timeout":
        return "a firewall drops packets or the host is down; check the address, or raise --timeout"
    return "check the member's address and ZooKeeper's log (docker compose logs zookeeper)"


def check_zk_members(run: CheckRun) -> list[CheckResult] | CheckResult:
    skip = zk_not_configured(run)
    if skip:
        return skip
    rows = []
    for rep in zk_members(run):
        d = rep.to_dict()
        if rep.error:
            rows.append(run.fail(f"{rep.error}: no answer from {rep.address}", _member_hint(rep, run.ctx.in_container),
                                 target=rep.address, **d))
            continue
        if rep.srvr is not None and rep.srvr.mode:
            info = rep.srvr
            parts = [info.mode]
            if info.latency_text():
                parts.append(f"latency {info.latency_text()}")
            if info.node_count is not None:
                parts.append(f"{info.node_count} nodes")
            if info.version:
                parts.append(f"version {info.version}")
            if rep.serving:
                rows.append(run.passed(", ".join(parts), target=rep.address, **d))
            else:
                rows.append(run.fail(f"mode {info.mode!r}: not serving", "check ZooKeeper's log",
                                     target=rep.address, **d))
            continue
        if rep.srvr is not None and not rep.srvr.serving:
            rows.append(run.fail("answers, but is not currently serving requests (no quorum, or still starting)",
                                 "check that a majority of the ensemble runs and can reach each other (ports "
                                 "2888/3888); read ZooKeeper's log", target=rep.address, **d))
            continue
        words = rep.words_text()
        if rep.session_ok:
            rows.append(run.passed(f"{words}; a session to this member works", target=rep.address, **d))
        elif rep.session_ok is False:
            rows.append(run.fail(f"{words}; no session to this member either ({rep.session_error})",
                                 "the member runs but does not serve: check ZooKeeper's log; to see mode and "
                                 "latency here, add srvr to 4lw.commands.whitelist",
                                 target=rep.address, **d))
        else:
            rows.append(run.warn(f"{words}; could not tell whether it serves",
                                 "add srvr to 4lw.commands.whitelist, or raise --timeout",
                                 target=rep.address, **d))
    return rows


def check_zk_quorum(run: CheckRun) -> CheckResult:
    skip = zk_not_configured(run)
    if skip:
        return skip

    reports = zk_members(run)
    q = quorum(reports)
    details = {**q.to_dict(), "modes": {r.address: r.mode for r in reports}}
    down = [r.address for r in reports if not r.serving]
    if q.standalone:
        if q.members > 1:
            return run.warn(f"a member runs standalone while the connection string lists {q.members} members",
                            "the ensemble is misconfigured (or the string lists unrelated servers): check each "
                            "server's zoo.cfg server.N lines and ZOOKEEPER_HOSTS", **details)
        return run.passed("1 of 1 serves (standalone: no redundancy)", **details)
    if q.members == 1:
        if q.serving:
            return run.passed("1 of 1 serves", **details)
        return run.fail("0 of 1 serves", "start ZooKeeper (see zookeeper.members)", **details)
    text = f"{q.voters_serving} of {q.members} serve"
    if not q.has_quorum:
        return run.fail(f"{text}: no quorum, ZooKeeper refuses all requests",
                        f"bring back a majority ({q.members // 2 + 1} of {q.members}); down: {', '.join(down)}",
                        **details)
    if q.leaders > 1:
        return run.warn(f"{text}, but {q.leaders} members say they lead",
                        "the connection string mixes two ensembles; check ZOOKEEPER_HOSTS", **details)
    if down:
        return run.warn(f"{text}: quorum holds, {q.tolerates} more failure(s) tolerated",
                        f"bring back {', '.join(down)} (see zookeeper.members)", **details)
    return run.passed(f"{text} (quorum; {q.tolerates} failure(s) tolerated)", **details)


def check_zk_session(run: CheckRun) -> CheckResult:
    skip = zk_not_configured(run)
    if skip:
        return skip
    try:
        reader = zk_reader(run)
    except RegctlError as exc:
        return run.fail(f"no session with {run.config.endpoint.zk_hosts}: {exc.message}",
                        exc.hint or "check --zk / ZOOKEEPER_HOSTS and that ZooKeeper runs",
                        hosts=run.config.endpoint.zk_hosts)
    sid = reader.session_id
    ms = getattr(reader, "connect_ms", None)
    return run.passed(f"session 0x{sid or 0:x} established" + (f" in {ms:g} ms" if ms is not None else ""),
                      hosts=run.config.endpoint.zk_hosts, session_id=hex(sid or 0), elapsed_ms=ms)


def check_zk_base(run: CheckRun) -> CheckResult:
    skip = zk_not_configured(run)
    if skip:
        return skip
    base = run.config.endpoint.zk_base
    try:
        reader = zk_reader(run)
    except RegctlError as exc:
        return run.skip(f"no ZooKeeper session ({exc.message})", "fix zookeeper.session first")
    names = reader.service_names()
    if names is None:
        return run.fail(f"base path {base} does not exist",
                        "the Config Service creates it when it starts: use the same ZOOKEEPER_BASE_PATH (and "
                        "chroot in ZOOKEEPER_HOSTS) as the Config Service (--zk-base)", base_path=base)
    return run.passed(f"{base} exists with {len(names)} service director{'y' if len(names) == 1 else 'ies'}",
                      base_path=base, services=names[:50])


CHECKS: tuple[Check, ...] = (
    Check("zookeeper.members", "zookeeper", "an ensemble member down or not serving (asks srvr, the word "
          "every ZooKeeper whitelist allows; a member refusing it gets a session instead); shows mode, latency, node count",
          check_zk_members),
    Check("zookeeper.quorum", "zookeeper", "too few members serve (no quorum), or one failure from losing it",
          check_zk_quorum),
    Check("zookeeper.session", "zookeeper", "no ZooKeeper session can be opened with the connection string",
          check_zk_session),
    Check("zookeeper.base", "zookeeper", "the registry's base path (ZOOKEEPER_BASE_PATH) does not exist",
          check_zk_base),
)
