"""Cause attribution, decided from evidence alone: which cause, its fix, and which symptom rows it claims."""

from __future__ import annotations

import time

from regctl.doctor import FAIL, PASS, SKIP, WARN, Check, CheckResult
from tests.helpers import doctor_config
from regctl.doctor.base import CheckRun, DoctorContext
from regctl.doctor.checks import cause
from regctl.doctor.registry import attribute
from regctl.errors import BadResponse
from regctl.models import Instance, NodeStat, Problem, ServiceRow, ZkService, ZkSnapshot

HEALTHY = {"status": "healthy", "redis": "healthy", "postgres": "healthy", "kafka": "healthy",
           "zookeeper": "healthy"}
API = "http://cs:8082/api/v1/registry"
T0 = 1_800_000_000.0
NEW, OLD = 0x200, 0x100


def err500(path: str) -> BadResponse:
    return BadResponse("HTTP 500: Internal Server Error", status_code=500, where=API + path)


def run_of(fn, **cfg) -> CheckRun:
    cfg.setdefault("config_url", "http://cs:8082")
    cfg.setdefault("in_container", False)
    check = Check("cause.x", "cause", "", fn)
    return CheckRun(check, DoctorContext(doctor_config(**cfg)), time.monotonic())


def decide(check, ev: cause.Evidence, **cfg) -> list[CheckResult]:
    fn = check.__wrapped__
    out = fn(run_of(fn, **cfg), ev)
    return out if isinstance(out, list) else [out]


def inst(name, iid, owner=NEW, created=T0 + 10, status="healthy", version=0, modified=None):
    return Instance(name, iid, f"http://{name}:80", None, status, {"status": status},
                    NodeStat(created, modified or created, owner, version, 10), f"/services/{name}/instances/{iid}")


def snap(*instances, empty=()):
    """A snapshot of ``instances``; ``empty``: service directories that exist with no instance left."""
    by: dict = {}
    for i in instances:
        by.setdefault(i.service_name, []).append(i)
    return ZkSnapshot("/services", tuple(ZkService(n, tuple(v)) for n, v in by.items())
                      + tuple(ZkService(n) for n in empty))


def row(name, status="healthy", at="2027-01-15 08:00:00+00:00", meta=None):
    return ServiceRow(name, f"http://{name}:80", None, status, {} if meta is None else meta, at)


#: what the later generation's migrations seed: no registered_at, metadata of their own
def seeded(name):
    return row(name, at=None, meta={"version": "1.0.0", "environment": "development"})


BARE_503 = {"detail": "Service unhealthy"}  # the real /health when Redis or PostgreSQL is down


# --------------------------------------------------------------------------- Redis / PostgreSQL / ZK client

def test_redis_down_is_named_when_every_per_service_read_fails():
    ev = cause.Evidence(health={**HEALTHY, "status": "unhealthy", "redis": "unhealthy"}, rows=[row("a")],
                        reads={"a": err500("/services/a"), "config-service": err500("/services/config-service")})
    (r,) = decide(cause.check_redis, ev)
    assert r.status == FAIL and "Redis is down" in r.finding and "every service read" in r.finding
    assert r.hint.startswith("restart or fix Redis")
    (p,) = decide(cause.check_postgres, ev)
    (z,) = decide(cause.check_zk_client, ev)
    assert p.status == PASS and z.status == PASS


def test_redis_reported_unhealthy_but_reads_work_is_only_a_warning():
    ev = cause.Evidence(health={**HEALTHY, "redis": "unhealthy"}, reads={"a": []})
    (r,) = decide(cause.check_redis, ev)
    assert r.status == WARN


def test_postgres_down():
    ev = cause.Evidence(health={**HEALTHY, "postgres": "unhealthy"}, rows_error=err500("/services"),
                        reads={"config-service": []})
    (p,) = decide(cause.check_postgres, ev)
    assert p.status == FAIL and "PostgreSQL is down" in p.finding and "GET /services answers 500" in p.finding
    assert "regctl list --source zk" in p.hint
    (r,) = decide(cause.check_redis, ev)
    assert r.status == PASS


def test_own_zookeeper_client_lost_needs_regctl_session_to_work():
    health = {**HEALTHY, "zookeeper": "unhealthy"}
    ok = cause.Evidence(health=health, zk_configured=True, snapshot=snap(inst("config-service", "cs-1")))
    (z,) = decide(cause.check_zk_client, ok, zk_hosts="zk:2181")
    assert z.status == FAIL and "restart the Config Service" in z.hint
    down = cause.Evidence(health=health, zk_configured=True, zk_error=BadResponse("no session"))
    (z,) = decide(cause.check_zk_client, down, zk_hosts="zk:2181")
    assert z.status == SKIP and "zookeeper.*" in z.hint
    blind = cause.Evidence(health=health)
    (z,) = decide(cause.check_zk_client, blind)
    assert z.status == WARN and "--zk" in z.hint


def test_no_health_answer_means_cannot_tell():
    (r,) = decide(cause.check_redis, cause.Evidence())
    assert r.status == SKIP


def test_redis_down_behind_a_bare_503_is_told_by_the_reads():
    ev = cause.Evidence(health=BARE_503, rows=[row("a")],
                        reads={"a": err500("/services/a"), "config-service": err500("/services/config-service")})
    (r,) = decide(cause.check_redis, ev)
    assert r.status == FAIL and "Redis is down" in r.finding and "bare 503" in r.finding
    assert "GET /services (the database) answers" in r.finding
    (p,) = decide(cause.check_postgres, ev)
    assert p.status == PASS and "GET /services" in p.finding  # observed: the database answered
    (z,) = decide(cause.check_zk_client, ev)
    assert z.status == SKIP and "could not check" in z.finding  # /health said nothing about ZooKeeper


def test_postgres_down_behind_a_bare_503_is_a_failure():
    ev = cause.Evidence(health=BARE_503, rows_error=err500("/services"),
                        reads={"a": [inst("a", "a-1")], "config-service": []})
    (p,) = decide(cause.check_postgres, ev)
    assert p.status == FAIL and "PostgreSQL is down" in p.finding and "GET /services answers 500" in p.finding
    (r,) = decide(cause.check_redis, ev)
    assert r.status == PASS and "GET /services/a answers" in r.finding


def test_a_bare_503_without_answered_reads_is_could_not_check_never_a_pass():
    reset = BadResponse("instances of a: [Errno 104] Connection reset by peer")
    ev = cause.Evidence(health=BARE_503, rows_error=BadResponse("list services: timed out"), reads={"a": reset})
    for check in (cause.check_redis, cause.check_postgres, cause.check_zk_client):
        (r,) = decide(check, ev)
        assert r.status == SKIP and r.finding.startswith("could not check"), (check, r)
    # both down: Redis is seen (every read 500); PostgreSQL cannot be told apart then
    both = cause.Evidence(health=BARE_503, rows_error=err500("/services"), reads={"a": err500("/services/a")})
    (r,) = decide(cause.check_redis, both)
    (p,) = decide(cause.check_postgres, both)
    assert r.status == FAIL and p.status == SKIP and "cause.redis" in p.finding


# --------------------------------------------------------------------------- restart

def test_restart_with_lingering_nodes_of_the_old_session():
    ev = cause.Evidence(zk_configured=True, rows=[row("a"), row("b")], snapshot=snap(
        inst("config-service", "cs-1", NEW, T0 + 100), inst("a", "a-1", OLD, T0), inst("b", "b-1", OLD, T0)))
    (r,) = decide(cause.check_restart, ev, zk_hosts="zk")
    assert r.status == FAIL and "restarted" in r.finding and "2 instance(s) of 2 service(s)" in r.finding
    assert hex(OLD) in r.finding and "regctl import FILE" in r.hint


def test_restart_after_the_old_session_expired_names_what_vanished():
    ev = cause.Evidence(zk_configured=True, snapshot=snap(inst("config-service", "cs-1", NEW, T0 + 100)),
                        rows=[row("config-service", at="2027-01-15 08:30:00+00:00"), row("a"), row("b"),
                              row("gone", status="unknown"), row("seed", at=None)])
    (r,) = decide(cause.check_restart, ev, zk_hosts="zk")
    assert r.status == FAIL and "emptied" in r.finding
    assert r.details["lost"] == ["a", "b"]  # not the deregistered row, not the seeded one


def test_nodes_written_after_the_config_service_started_are_no_restart():
    ev = cause.Evidence(zk_configured=True, rows=[], snapshot=snap(
        inst("config-service", "cs-1", NEW, T0), inst("direct", "d-1", OLD, T0 + 50)))
    (r,) = decide(cause.check_restart, ev, zk_hosts="zk")
    assert r.status == PASS


def test_a_crash_restart_rewrites_the_own_node_in_place_and_everything_it_holds_is_doomed():
    # the real service after kill -9 and a start: its own node set in place (version 1), still the old session
    own = inst("config-service", "config-service-1", OLD, T0, version=1, modified=T0 + 100)
    ev = cause.Evidence(zk_configured=True, rows=[row("a"), row("b")], snapshot=snap(
        own, inst("a", "a-1", OLD, T0 + 5), inst("b", "b-1", OLD, T0 + 6), inst("c", "c-1", NEW, T0 + 120)))
    (r,) = decide(cause.check_restart, ev, zk_hosts="zk")
    assert r.status == FAIL and "rewritten in place (version 1)" in r.finding
    assert "2 instance(s) of 2 service(s)" in r.finding and "vanish when that session expires" in r.finding
    assert "import now" in r.hint and r.details["lingering"] == ["a/a-1", "b/b-1"]  # not c, made since
    alone = cause.Evidence(zk_configured=True, rows=[], snapshot=snap(own))
    (r,) = decide(cause.check_restart, alone, zk_hosts="zk")
    assert r.status == WARN and "no other instance" in r.finding


def test_a_session_known_dead_dooms_its_nodes():
    class Session:
        owner, known, how, node = None, False, "owner 0x100 has no connection", None
        dead = frozenset({OLD})

    ev = cause.Evidence(zk_configured=True, rows=[row("a")], session=Session(),
                        snapshot=snap(inst("config-service", "cs-1", OLD, T0), inst("a", "a-1", OLD, T0 + 5)))
    (r,) = decide(cause.check_restart, ev, zk_hosts="zk")
    assert r.status == FAIL and "which is gone" in r.finding and r.details["lingering"] == ["a/a-1"]


def test_after_the_expiry_every_instance_is_gone_and_its_own_node_too():
    ev = cause.Evidence(zk_configured=True, answers=True, snapshot=snap(empty=("config-service", "a", "b", "d")),
                        rows=[row("a"), row("b"), row("d", status="unknown"), seeded("nmt-service"),
                              row("asr-service", at=None, meta={"instance_id": "asr-1", "status": "healthy"})])
    (r,) = decide(cause.check_restart, ev, zk_hosts="zk")
    assert r.status == FAIL and "every instance is gone" in r.finding and "its own node is gone" in r.finding
    # a row rewritten by a registration over a seeded one (no registered_at) was lost too; the seeded one was not
    assert r.details["lost"] == ["a", "b", "asr-service"] and r.details["unknown"] == ["d"]
    assert "regctl import FILE" in r.hint and "--zk-base" not in r.hint
    sels = r.details["explains"]
    assert any(s.get("check") == "cause.stale-cache" and "config-service" in s["target"] for s in sels)


def test_a_lost_session_with_nothing_registered_is_a_warning_and_a_fresh_deployment_passes():
    lost = cause.Evidence(zk_configured=True, answers=True, snapshot=snap(empty=("config-service",)),
                          rows=[seeded("nmt-service"), seeded("config-service")])
    (r,) = decide(cause.check_restart, lost, zk_hosts="zk")
    assert r.status == WARN and "no registered service had instances to lose" in r.finding
    assert "1 seeded row(s)" in r.finding
    fresh = cause.Evidence(zk_configured=True, answers=True, rows=[seeded("nmt-service"), seeded("config-service")],
                           snapshot=snap(inst("config-service", "config-service-1", NEW, T0)))
    (r,) = decide(cause.check_restart, fresh, zk_hosts="zk")
    assert r.status == PASS


def test_the_base_path_hint_only_when_the_base_path_is_missing():
    missing = ZkSnapshot("/services", (), (Problem("/services", "base-missing", "the base path does not exist"),))
    (r,) = decide(cause.check_restart, cause.Evidence(zk_configured=True, snapshot=missing), zk_hosts="zk")
    assert r.status == SKIP and "--zk-base" in r.hint
    down = cause.Evidence(zk_configured=True, answers=False, snapshot=snap(empty=("config-service", "a")),
                          rows=None)
    (r,) = decide(cause.check_restart, down, zk_hosts="zk")
    assert r.status == SKIP and "does not answer" in r.finding and "--zk-base" not in r.hint


def test_parse_time_reads_the_contracts_registered_at():
    assert cause.parse_time("2026-11-29 03:46:59.109964+00:00") == 1795924019.109964
    assert cause.parse_time("2026-11-29T03:46:59Z") == 1795924019.0
    assert cause.parse_time(None) is None and cause.parse_time("yesterday") is None


# --------------------------------------------------------------------------- bad status / stale cache

def test_bad_status_is_blamed_only_when_seen():
    bad = cause.Evidence(zk_configured=True, targets=["odd"], reads={"odd": err500("/services/odd")},
                         snapshot=snap(inst("odd", "odd-1", status="UP")))
    (r,) = decide(cause.check_bad_status, bad, zk_hosts="zk")
    assert r.status == FAIL and "odd-1='UP'" in r.finding and "regctl deregister odd odd-1" in r.hint
    fine = cause.Evidence(zk_configured=True, targets=["ok"], reads={"ok": err500("/services/ok")},
                          snapshot=snap(inst("ok", "ok-1")))
    (r,) = decide(cause.check_bad_status, fine, zk_hosts="zk")
    assert r.status == PASS
    blind = cause.Evidence(targets=["x"], reads={"x": err500("/services/x")})
    (r,) = decide(cause.check_bad_status, blind)
    assert r.status == WARN and "cannot see" in r.finding and "UP" not in r.finding


def test_stale_cache():
    ev = cause.Evidence(zk_configured=True, targets=["c"], reads={"c": [inst("c", "c-1")]}, snapshot=snap())
    (r,) = decide(cause.check_stale_cache, ev, zk_hosts="zk")
    assert r.status == WARN and "only in the API: c-1" in r.finding and "60 s" in r.hint


def test_per_service_causes_skip_without_a_selection_for_lack_of_input():
    (r,) = decide(cause.check_bad_status, cause.Evidence(zk_configured=True, snapshot=snap()), zk_hosts="zk")
    assert r.status == SKIP and r.details.get("no_input") is True


# --------------------------------------------------------------------------- attribution

def test_a_found_cause_turns_its_symptoms_into_explained_skips():
    redis = CheckResult("cause.redis", "cause", FAIL, "Redis is down", "fix Redis",
                        details={"explains": [{"check": ["config.redis"]}, {"api_status": 500, "api_read": "url"}]})
    rows = [CheckResult("config.redis", "config", FAIL, "redis unhealthy", "x"),
            CheckResult("service.discoverable", "service", FAIL, "/url fails", "x", "a",
                        {"api_status": 500, "api_read": "url"}),
            CheckResult("service.reachable", "service", FAIL, "refused", "x", "a/a-1"),
            CheckResult("config.kafka", "config", PASS, "ok"),
            redis]
    out = attribute(rows)
    by = {r.name: r for r in out}
    assert by["config.redis"].status == SKIP and by["config.redis"].finding.startswith("explained by cause.redis")
    assert by["service.discoverable"].status == SKIP and by["service.discoverable"].details["status_before"] == FAIL
    assert by["service.reachable"].status == FAIL  # a refused instance is its own problem
    assert by["cause.redis"].status == FAIL and by["config.kafka"].status == PASS
    assert [r.name for r in out] == [r.name for r in rows]


def test_a_warning_cause_that_explains_a_failure_fails_with_it():
    stale = CheckResult("cause.stale-cache", "cause", WARN, "stale", "wait", "a",
                        details={"explains": [{"check": ["service.api-view", "service.registered"], "target": "a"}]})
    view = CheckResult("service.api-view", "service", WARN, "differs", "wait", "a")
    out = {r.name: r for r in attribute([stale, view])}
    assert out["cause.stale-cache"].status == WARN  # it explains only a warning
    gone = CheckResult("service.registered", "service", FAIL, "no live instance", "restart it", "a")
    out = {r.name: r for r in attribute([stale, view, gone])}
    assert out["cause.stale-cache"].status == FAIL and out["cause.stale-cache"].details["raised_from"] == WARN
    assert out["cause.stale-cache"].details["fails_for"] == ["service.registered a"]
    assert out["service.registered"].status == SKIP


def test_no_cause_no_change():
    rows = [CheckResult("config.redis", "config", FAIL, "redis", "x"),
            CheckResult("cause.redis", "cause", PASS, "not Redis")]
    assert attribute(rows) == rows


def test_a_cause_left_behind_by_another_is_explained_by_it_and_so_are_its_symptoms():
    restart = CheckResult("cause.restart", "cause", FAIL, "restarted", "import",
                          details={"explains": [{"check": "cause.stale-cache", "target": ["a"]}]})
    stale = CheckResult("cause.stale-cache", "cause", WARN, "stale", "wait", "a",
                        details={"explains": [{"check": "service.api-view", "target": "a"}]})
    view = CheckResult("service.api-view", "service", WARN, "differs", "wait", "a")
    out = {r.name: r for r in attribute([restart, stale, view])}
    assert out["cause.restart"].status == FAIL
    assert out["cause.stale-cache"].details["explained_by"] == "cause.restart"
    assert out["service.api-view"].details["explained_by"] == "cause.restart"
    # a selector that only matches by status never swallows another cause row
    redis = CheckResult("cause.redis", "cause", FAIL, "Redis", "fix", details={"explains": [{"api_status": 500}]})
    bad = CheckResult("cause.bad-status", "cause", FAIL, "UP", "fix", "x", {"api_status": 500, "explains": [{}]})
    assert {r.status for r in attribute([redis, bad])} == {FAIL}
