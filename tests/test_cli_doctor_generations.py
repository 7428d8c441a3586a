"""doctor against both generations of the sandbox Config Service: which one answers, the monitor's verdict
(with "not known yet" never called unhealthy), the server's own health call and its deadline, seeded rows."""

from __future__ import annotations

import httpx
import pytest

from regctl.sandbox.registry.monitor import SEEDED_SERVICES
from tests.test_cli_doctor import doctor, one, rows
from tests.test_cli_doctor_failures import assert_only_cause
from tests import test_sandbox_generations
from tests.test_sandbox_generations import FAST

endpoints = test_sandbox_generations.endpoints  # the fixture, shared


def reg(registry, name, iid, url, status="healthy"):
    body = {"service_name": name, "service_url": url, "health_check_url": url + "/health",
            "service_metadata": {"instance_id": iid, "status": status}}
    r = httpx.post(f"{registry.api}/register", json=body, timeout=10)
    assert r.status_code == 201, r.text


@pytest.fixture
def later(make_registry):
    """A later-generation registry whose monitor runs only when the test says (``server.monitor.cycle()``)."""
    return make_registry(generation="later", monitor_interval=3600, **FAST)


def test_the_generation_is_shown_in_the_config_rows_and_with_v(registry, later):
    earlier = one(doctor("config.generation", "-o", "json", env=registry.env), "config.generation")
    assert earlier["status"] == "pass" and earlier["finding"].startswith("earlier generation")
    assert earlier["details"]["generation"] == "earlier"
    res = doctor("config", "-o", "json", env=later.env)
    row = one(res, "config.generation")
    assert row["status"] == "pass" and row["finding"].startswith("later generation") and "422" in row["finding"]
    verbose = doctor("config.generation", "-v", env=later.env)
    assert "generation: later" in verbose.stdout and "evidence:" in verbose.stdout


def test_the_earlier_generation_has_no_monitor_to_read(registry, endpoints):
    reg(registry, "svc", "svc-1", endpoints["ok"])
    res = doctor("service.monitor", "hygiene.monitor", "--service", "svc", "--all", "-o", "json", env=registry.env)
    assert {r["status"] for r in res.json["checks"]} == {"skip"}
    assert all("earlier generation" in r["finding"] for r in res.json["checks"])


def test_the_monitors_verdict_is_not_known_yet_then_unhealthy(later, endpoints):
    reg(later, "svc", "svc-1", endpoints["refused"])
    before = doctor("service.monitor", "--service", "svc", "-o", "json", env=later.env)
    row = one(before, "service.monitor")
    assert row["status"] == "skip" and row["finding"].startswith("not known yet")
    assert before.exit_code == 0
    later.server.monitor.cycle()
    after = doctor("service.monitor", "--service", "svc", "-o", "json", env=later.env)
    row = one(after, "service.monitor")
    assert after.exit_code == 1 and row["status"] == "fail"
    assert "no instance healthy" in row["finding"] and "0/1 healthy" in row["finding"]
    assert "/url still hands it out" in row["finding"] and row["details"]["flag"] == "monitor-unhealthy"
    assert row["hint"].startswith("the service's health endpoint fails on the server's side")
    assert endpoints["refused"] in row["hint"]


def test_all_services_one_row_per_problem_and_one_summary(later, endpoints):
    reg(later, "good", "good-1", endpoints["ok"])
    reg(later, "bad", "bad-1", endpoints["refused"])
    reg(later, "mixed", "m-1", endpoints["ok"])
    reg(later, "mixed", "m-2", endpoints["refused"])
    later.server.monitor.cycle()
    reg(later, "fresh", "fresh-1", endpoints["ok"])  # registered after the cycle: no verdict yet
    res = doctor("hygiene.monitor", "--all", "-o", "json", env=later.env)
    monitor = rows(res)["hygiene.monitor"]
    assert [(r["status"], r["target"]) for r in monitor] == [("fail", "bad"), ("warn", "mixed"), ("pass", None)]
    summary = monitor[-1]["finding"]
    assert "not-known-yet" in summary and "not unhealthy" in summary and "healthy" in summary
    assert monitor[-1]["details"]["verdicts"]["fresh"] == "not-known-yet"


def test_the_server_health_call_gets_its_own_deadline_and_ends_with_its_verdict(later, endpoints):
    reg(later, "slow", "slow-1", endpoints["hang"])
    res = doctor("service.server-health", "--service", "slow", "-o", "json", env=later.env)
    row = one(res, "service.server-health")
    assert row["status"] == "fail" and "says 'unhealthy'" in row["finding"]
    assert row["details"]["deadline_s"] > 1.0  # longer than --timeout (1 s in these tests)
    assert "fails on the server's side" in row["hint"]


def test_a_server_health_call_cut_at_its_deadline_is_still_running_not_a_host_problem(make_registry, endpoints):
    slow = make_registry(generation="later", monitor_interval=3600)  # the contract's timings: ~12 s per hang
    reg(slow, "slow", "slow-1", endpoints["hang"])
    res = doctor("service.server-health", "--service", "slow", "--server-timeout", "1", "-o", "json",
                 env=slow.env)
    row = one(res, "service.server-health")
    assert row["status"] == "warn", row
    assert "the Config Service's health call is still running after 1 s" in row["finding"]
    assert "writes the row's status" in row["finding"] and "--server-timeout" in row["hint"]
    assert "host" not in row["finding"] + row["hint"]


def test_seeded_rows_get_one_summary_line_not_stale_row_advice(make_registry):
    seeded = make_registry(generation="later", monitor_interval=3600, seed_rows=True, **FAST)
    # --timeout 5: the in-process registry probes its own /health while doctor --all runs in the same
    # process; 1 s is too tight for that on a loaded machine
    res = doctor("--all", "--timeout", "5", "-o", "json", env=seeded.env)
    assert res.exit_code == 0, [r for r in res.json["checks"] if r["status"] in ("fail", "warn")]
    stale = rows(res)["hygiene.stale-rows"]
    assert [(r["status"], r["target"]) for r in stale] == [("pass", "seeded")]
    # the migrations seed config-service's row too, but its own node is live: that row is a registration
    never_registered = sorted(set(SEEDED_SERVICES) - {"config-service"})
    assert stale[0]["finding"].startswith(f"seeded: {len(never_registered)} row(s)")
    assert sorted(stale[0]["details"]["seeded"]) == never_registered
    assert not [r for r in res.json["checks"] if r["target"] in never_registered]
    assert one(res, "cause.restart")["status"] == "pass"  # rows without registered_at are not "lost"


def test_a_seeded_service_asked_for_by_name(make_registry):
    seeded = make_registry(generation="later", monitor_interval=3600, seed_rows=True, **FAST)
    name = sorted(SEEDED_SERVICES)[0]
    row = one(doctor("service.registered", "--service", name, "-o", "json", env=seeded.env), "service.registered")
    assert row["status"] == "fail" and "seeded" in row["finding"] and "never registered" in row["finding"]


def test_redis_down_on_the_later_generation(later, endpoints):
    reg(later, "svc", "svc-1", endpoints["ok"])
    later.server.monitor.cycle()
    later.server.faults.add("redis")
    res = doctor("--service", "svc", "-o", "json", env=later.env)
    assert_only_cause(res, "cause.redis")
    monitor = one(res, "service.monitor")
    assert monitor["status"] == "skip" and "could not check" in monitor["finding"]


def test_the_server_health_call_for_every_service_at_once_only_when_named(later, endpoints):
    reg(later, "good", "good-1", endpoints["ok"])
    reg(later, "bad", "bad-1", endpoints["refused"])
    plain = one(doctor("--all", "-o", "json", env=later.env), "hygiene.server-health")
    assert plain["status"] == "skip" and "WRITES" in plain["finding"]
    res = doctor("hygiene.server-health", "--all", "-o", "json", env=later.env)
    got = rows(res)["hygiene.server-health"]
    assert [(r["status"], r["target"]) for r in got] == [("fail", "bad"), ("pass", None)], got
    assert "fails on the server's side" in got[0]["hint"]
    status = {r["service_name"]: r["status"] for r in httpx.get(later.api + "/services", timeout=10).json()}
    assert status["bad"] == "unhealthy"  # the call wrote its verdict, as documented


def test_one_service_in_depth_never_writes_its_row_unless_the_server_health_check_is_named(later, endpoints):
    reg(later, "bad", "bad-1", endpoints["refused"])

    def row_status():
        return {r["service_name"]: r["status"] for r in httpx.get(later.api + "/services", timeout=10).json()}["bad"]

    before = row_status()
    res = doctor("--service", "bad", "-o", "json", env=later.env)
    row = one(res, "service.server-health")
    assert row["status"] == "skip" and row["details"]["no_input"] is True and "WRITES" in row["finding"]
    assert row["hint"] == "regctl doctor service.server-health --service bad"
    assert row_status() == before != "unhealthy"  # the tour's step changed nothing
    named = one(doctor("service.server-health", "--service", "bad", "-o", "json", env=later.env),
                "service.server-health")
    assert named["status"] == "fail"
    assert row_status() == "unhealthy"  # named: it runs, and writes as documented
