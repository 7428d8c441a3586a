"""``list``, ``inspect`` and ``register`` against the real Config Service, both generations.

Seeded rows (the later generation's migrations) are marked and left out of the CI gate; with
Redis or PostgreSQL down, list and inspect show what they read and exit 3 naming the call that
failed, never printing an absence nobody observed; a register answered 500 after its write is
reported live from ZooKeeper. One started service per generation is shared (Redis is started
again after its test); PostgreSQL down runs on a cluster of its own.
"""

from __future__ import annotations

import httpx
import pytest

from tests import realservice as rs
from tests.helpers import assert_one_line_error, register, run_cli
from tests.test_real_doctor import answering, shared, stoppable_pg  # noqa: F401  (fixtures)

GENERATIONS = ["earlier", "later"]
#: what the later generation's migrations seed, minus the Config Service's own row
SEEDED = {"api-gateway-service", "auth-service", "metrics-service", "telemetry-service", "alerting-service",
          "dashboard-service", "asr-service", "tts-service", "nmt-service", "llm-service", "ocr-service",
          "ner-service"}


def by_name(doc) -> dict:
    return {s["name"]: s for s in doc["services"]}


def node_exists(cs, service: str, iid: str) -> bool:
    from kazoo.client import KazooClient

    zk = KazooClient(hosts=cs.zk_hosts, timeout=10)
    zk.start(timeout=10)
    try:
        return zk.exists(f"{cs.base_path}/{service}/instances/{iid}") is not None
    finally:
        zk.stop()
        zk.close()


def test_seeded_rows_are_marked_and_left_out_of_the_gate(shared, answering):
    env = shared.env
    res = run_cli("list", "-o", "json", env=env)
    assert res.exit_code == 0, res
    svc = by_name(res.json)
    seeded = {n for n, s in svc.items() if s["seeded"]}
    assert seeded == (SEEDED if shared.generation == "later" else set()), seeded
    assert svc["config-service"]["seeded"] is False  # its seeded row has a live node: it registered itself
    for name in seeded:
        assert svc[name]["flags"] == ["seeded"] and svc[name]["discovery"]["reason"] == "no-instances"
    table = run_cli("list", env=env)
    if seeded:
        line = next(l for l in table.stdout.splitlines() if l.startswith("nmt-service "))
        assert line.split()[-1] == "seeded", line
    gate = run_cli("list", "--fail-undiscoverable", env=env)
    assert gate.exit_code == 0, gate  # only the Config Service itself counts, and it is discoverable

    register(shared, "asr-service", "asr-1", url=answering)  # a seeded name on the later generation
    register(shared, "foo-service", "foo-1", url=answering)
    res = run_cli("list", "--fail-undiscoverable", "-o", "json", env=env)
    assert res.exit_code == 0, res
    svc = by_name(res.json)
    assert svc["asr-service"]["seeded"] is False and svc["asr-service"]["live_instances"] == 1
    assert svc["foo-service"]["seeded"] is False
    if shared.generation == "later":
        # named, a seeded row counts: it is not discoverable
        named = run_cli("list", "nmt-service", "asr-service", "--fail-undiscoverable", env=env)
        assert "nmt-service (no-instances)" in assert_one_line_error(named, 1)
        # a registered service that lost its instance still fails the gate, seeded rows left aside
        httpx.post(shared.api + "/deregister", params={"service_name": "foo-service", "instance_id": "foo-1"},
                   timeout=30)
        gate = run_cli("list", "--fail-undiscoverable", env=env)
        line = assert_one_line_error(gate, 1)
        assert "foo-service (no-instances)" in line and "11 seeded row(s) not counted" in line, line
        register(shared, "foo-service", "foo-1", url=answering)
    ins = run_cli("inspect", "asr-service", "-o", "json", env=env)
    assert ins.exit_code == 0 and [i["instance_id"] for i in ins.json["instances"]] == ["asr-1"], ins


def test_redis_down_list_and_inspect_exit_3_and_register_is_seen_live(shared, answering):
    env = shared.env
    register(shared, "asr-service", "asr-1", url=answering)
    shared.redis.stop()
    try:
        res = run_cli("list", "-o", "json", env=env)
        assert res.exit_code == 3, res
        error = [l for l in res.stderr.splitlines() if l.startswith("regctl: error:")]
        assert len(error) == 1 and "GET /services/NAME" in error[0] and "Redis is down" in error[0], res.stderr
        asr = by_name(res.json)["asr-service"]
        assert asr["live_instances"] == 1  # observed in ZooKeeper
        assert asr["api_live_instances"] is None and "instances-unread" in asr["flags"]  # not read, not "0"
        api_only = run_cli("list", "--source", "api", "-o", "json", env=env)
        assert api_only.exit_code == 3, api_only
        assert all(s["live_instances"] is None for s in api_only.json["services"])  # no absence unobserved
        assert "GET /services/NAME" in api_only.stderr
        ins = run_cli("inspect", "asr-service", "-o", "json", env=env)
        assert ins.exit_code == 3, ins
        assert [i["instance_id"] for i in ins.json["instances"]] == ["asr-1"]
        assert ins.json["instances"][0]["in_api"] is None
        assert "GET /services/NAME" in ins.stderr and "asr-service" in ins.stderr
        # a register answered 500 after its write: ZooKeeper shows it happened
        reg = run_cli("register", "--name", "asr-service", "--url", answering, "--instance-id", "asr-9", env=env)
        assert node_exists(shared, "asr-service", "asr-9")
        assert reg.exit_code == 0 and "ZooKeeper" in reg.stderr, reg
        assert "Traceback" not in res.stderr + ins.stderr + reg.stderr
    finally:
        shared.redis.start()
    rs.wait_until(lambda: httpx.get(shared.api + "/services/asr-service", timeout=10).status_code == 200, 20,
                  what="the real service reads through Redis again")


@pytest.mark.parametrize("generation", GENERATIONS)
def test_postgres_down_list_and_inspect_exit_3(make_real_service, stoppable_pg, answering, generation):
    if not stoppable_pg.running:
        stoppable_pg.start()
    cs = make_real_service(generation, session_timeout=8, pg=stoppable_pg)
    env = cs.env
    register(cs, "asr-service", "asr-1", url=answering)
    stoppable_pg.stop()
    res = run_cli("list", "-o", "json", env=env)
    assert res.exit_code == 3, res
    assert "GET /services (the services list" in res.stderr and "PostgreSQL is down" in res.stderr, res.stderr
    svc = by_name(res.json)
    assert svc["asr-service"]["live_instances"] == 1 and svc["asr-service"]["discovery"]["discoverable"] is True
    for s in svc.values():  # no row read: no row status, no seeded mark, no "no live instance" claimed
        assert s["db_status"] is None and s["seeded"] is False and "no-live-instance" not in s["flags"], s
    gate = run_cli("list", "--fail-undiscoverable", env=env)
    assert gate.exit_code == 3, gate  # services only the database knows could not be checked
    ins = run_cli("inspect", "asr-service", "-o", "json", env=env)
    assert ins.exit_code == 3 and ins.json["row"] is None and ins.json["registered"] is True, ins
    assert "GET /services (the services list" in ins.stderr
