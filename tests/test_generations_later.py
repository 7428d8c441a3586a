"""The later Config Service generation over real HTTP and ZooKeeper: monitor column, contradiction, slow health."""

import time

from regctl.http.api import RegistryApi
from regctl.monitor import detect_generation, monitor_verdict
from tests.helpers import run_cli
from tests.test_cli_health import endpoints, reg  # noqa: F401  (a fixture, used by name)


def wait_for_verdict(registry, name, limit=30.0):
    """Poll the monitor until it has an entry for ``name`` (bounded; not a timing assertion)."""
    deadline = time.monotonic() + limit
    with RegistryApi(registry.url) as api:
        while True:
            verdict = monitor_verdict(api, name)
            if verdict.state != "not-known-yet" or time.monotonic() > deadline:
                return verdict
            time.sleep(0.1)


def fast_later(make_registry, **kw):
    kw.setdefault("monitor_interval", 0.3)
    kw.setdefault("retry_delays", (0.05, 0.05))
    kw.setdefault("probe_timeout", 0.5)
    return make_registry(generation="later", **kw)


def test_later_generation_detected_also_without_redis(make_registry):
    later = make_registry(generation="later")
    with RegistryApi(later.url) as api:
        assert detect_generation(api).generation == "later"
        later.server.faults.add("redis")
        info = detect_generation(api)
    assert info.generation == "later", info
    res = run_cli("list", "-o", "json", env=later.env)
    assert res.json["generation"]["generation"] == "later", res


def test_missing_entry_is_shown_as_not_known_yet(make_registry, endpoints):  # noqa: F811
    later = make_registry(generation="later", monitor_interval=3600)
    reg(later, "fresh", "fresh-1", endpoints["refused"])  # would be unhealthy, but the monitor has not run
    res = run_cli("list", "-o", "json", env=later.env)
    assert res.exit_code == 0, res
    svc = {s["name"]: s for s in res.json["services"]}["fresh"]
    assert svc["monitor"]["state"] == "not-known-yet"
    assert not any(f.startswith("monitor-") for f in svc["flags"])
    res = run_cli("inspect", "fresh", env=later.env)
    assert "monitor: not known yet" in res.stdout, res
    assert "monitor-unhealthy" not in res.stderr


def test_monitor_column_and_contradiction_flag(make_registry, endpoints):  # noqa: F811
    later = fast_later(make_registry)
    reg(later, "dead", "dead-1", endpoints["refused"])  # registered 'healthy': /url hands it out
    reg(later, "fine", "fine-1", endpoints["ok"])
    assert wait_for_verdict(later, "dead").state == "unhealthy"
    assert wait_for_verdict(later, "fine").state == "healthy"

    wide = run_cli("list", "-o", "wide", env=later.env)
    assert wide.exit_code == 0, wide
    header, *lines = wide.stdout.splitlines()
    assert "MONITOR" in header and "MON OK" in header
    dead = next(line for line in lines if line.startswith("dead "))
    fine = next(line for line in lines if line.startswith("fine "))
    assert "monitor-unhealthy" in dead and "0/1" in dead
    assert "monitor-" not in fine and "1/1" in fine
    assert "/url still hands them out" in wide.stderr

    doc = run_cli("list", "-o", "json", env=later.env).json
    svc = {s["name"]: s for s in doc["services"]}
    assert svc["dead"]["monitor"]["state"] == "unhealthy" and "monitor-unhealthy" in svc["dead"]["flags"]
    assert svc["fine"]["monitor"]["healthy_instances"] == 1

    plain = run_cli("list", env=later.env)  # the default table stays fast: no monitor asked
    assert "MONITOR" not in plain.stdout and "monitor-unhealthy" not in plain.stdout + plain.stderr

    insp = run_cli("inspect", "dead", "-o", "json", env=later.env)
    assert insp.json["monitor"]["state"] == "unhealthy" and insp.json["monitor"]["flag"] == "monitor-unhealthy"
    assert "/url still hands them out" in insp.stderr
    text = run_cli("inspect", "dead", env=later.env)
    assert "monitor: unhealthy 0/1 healthy" in text.stdout


def test_monitor_without_redis_could_not_check(make_registry, endpoints):  # noqa: F811
    later = fast_later(make_registry)
    reg(later, "s", "s-1", endpoints["ok"])
    later.server.faults.add("redis")
    res = run_cli("inspect", "s", "-o", "json", env=later.env)
    assert res.json["monitor"]["state"] == "could-not-check", res
    assert "Redis" in res.json["monitor"]["detail"]
    assert "unhealthy" not in (res.json["monitor"]["flag"] or "")


def test_health_server_against_a_hanging_instance_ends_with_the_servers_verdict(make_registry, endpoints):  # noqa: F811
    # the server needs 3 tries x 2 s + 1 s + 2 s = 9 s for the hanging endpoint: more than --timeout's 5 s
    later = make_registry(generation="later", probe_timeout=2.0, monitor_interval=3600)
    reg(later, "s", "s-1", endpoints["hang"])
    res = run_cli("health", "s", "--server", "-o", "json", env=later.env)
    assert res.exit_code == 1, res
    (row,) = res.json["server"]
    assert row["server_status"] == "unhealthy", res
    assert res.json["generation"]["generation"] == "later"
    assert "still running" not in res.stderr and "host and port" not in res.stderr
    rows = run_cli("list", "-o", "json", env=later.env).json["services"]
    assert {s["name"]: s for s in rows}["s"]["db_status"] == "unhealthy"  # the server's call wrote the row


def test_seeded_rows_without_instances_are_skipped_not_pending(make_registry):
    later = make_registry(generation="later", seed_rows=True, monitor_interval=0.3)
    doc = run_cli("list", "-o", "json", env=later.env).json
    seeded = [s for s in doc["services"] if s["live_instances"] == 0 and s["registered_at"] is None]
    assert len(seeded) >= 10, doc
    for s in seeded:
        # the real monitor stores "unknown" (no instances) for them from its first cycle on; never "unhealthy"
        assert s["monitor"]["state"] in ("unknown", "not-known-yet"), s["monitor"]
        assert s["monitor"]["state"] == "unknown" or "no live instance" in s["monitor"]["detail"]
    wide = run_cli("list", "-o", "wide", seeded[0]["name"], env=later.env)
    assert "unhealthy" not in wide.stdout.splitlines()[1], wide
    assert ("unknown" if seeded[0]["monitor"]["state"] == "unknown" else "skipped") in wide.stdout.splitlines()[1]
    insp = run_cli("inspect", seeded[0]["name"], env=later.env)
    assert insp.exit_code in (0, 1) and "monitor:" in insp.stdout and "monitor: unhealthy" not in insp.stdout, insp
