"""Restore after a Config Service restart, held against the real Config Service (both generations).

The real service re-registers itself at start-up with exists-then-``set``: after a
crash its own node keeps the dead session, so nothing may trust that node's owner.
Each scenario: register through the real API, export, break the service, import
with ``--yes`` and check ZooKeeper once the old session has expired.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from kazoo.client import KazooClient

from tests.helpers import run_cli
from tests.realservice import wait_until

SESSION = 8  # seconds: the real default is 30; the behaviour is the same, the wait shorter


def register_many(cs, instances: list[tuple[str, str]]) -> None:
    """Register through the real API, each service's first instance alone (its row is created select-then-insert)."""
    def one(client: httpx.Client, service: str, iid: str) -> None:
        body = {"service_name": service, "service_url": f"http://{service}:8080",
                "health_check_url": f"http://{service}:8080/health",
                "service_metadata": {"instance_id": iid, "status": "healthy", "version": "1.0"}}
        r = client.post(cs.api + "/register", json=body)
        assert r.status_code == 201, r.text

    with httpx.Client(timeout=30) as client:
        firsts = {}
        for service, iid in instances:
            firsts.setdefault(service, iid)
        for service, iid in firsts.items():
            one(client, service, iid)
        rest = [(s, i) for s, i in instances if firsts[s] != i]
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(lambda si: one(client, *si), rest))


def instance_owners(zk: KazooClient, base: str) -> dict[tuple[str, str], int]:
    out = {}
    for service in zk.get_children(base):
        try:
            ids = zk.get_children(f"{base}/{service}/instances")
        except Exception:
            continue
        for iid in ids:
            st = zk.exists(f"{base}/{service}/instances/{iid}")
            if st is not None:
                out[(service, iid)] = st.ephemeralOwner
    return out


@pytest.fixture
def zk(zk_srvr_only):
    client = KazooClient(hosts=zk_srvr_only.hosts, timeout=10)
    client.start(timeout=15)
    try:
        yield client
    finally:
        client.stop()
        client.close()


def the_set(n: int) -> list[tuple[str, str]]:
    services = [f"svc-{k:02d}" for k in range(max(1, n // 50))]
    return [(services[i % len(services)], f"{services[i % len(services)]}-{i}") for i in range(n)]


def old_session_gone(zk, cs, old: int) -> None:
    wait_until(lambda: old not in set(instance_owners(zk, cs.base_path).values()), SESSION + 20,
               what="the old session's nodes vanished")


def assert_all_live_under_one_new_session(zk, cs, wanted, old: int) -> int:
    owners = instance_owners(zk, cs.base_path)
    missing = [k for k in wanted if k not in owners]
    assert not missing, f"{len(missing)} exported instances lost, e.g. {missing[:3]}"
    sessions = {owners[k] for k in wanted}
    assert len(sessions) == 1 and old not in sessions, sessions
    return sessions.pop()


def import_file(cs, path, *args):
    return run_cli("import", str(path), "--yes", "-o", "json", *args, env=cs.env)


@pytest.mark.parametrize("generation", ["earlier", "later"])
def test_a_thousand_instances_survive_a_kill9_restart_imported_at_once(make_real_service, zk, tmp_path, generation):
    cs = make_real_service(generation, session_timeout=SESSION)
    wanted = the_set(1000)
    register_many(cs, wanted)
    backup = tmp_path / "b.yaml"
    res = run_cli("export", "-f", str(backup), env=cs.env)
    assert res.exit_code == 0, res
    old = zk.exists(cs.own_node).ephemeralOwner

    cs.kill9()
    cs.start()
    own = zk.exists(cs.own_node)
    assert own.version >= 1 and own.ephemeralOwner == old  # rewritten in place: keeps the dead session

    res = import_file(cs, backup)
    assert res.exit_code == 0, res
    plan = res.json["plan"]
    assert plan["counts"]["live"] == 0 and plan["counts"]["restore"] == len(wanted) + 1, plan["counts"]
    assert "rewritten in place" in plan["session"]["how"]
    assert {r["result"] for r in res.json["results"]} == {"restored"}

    old_session_gone(zk, cs, old)
    time.sleep(1)
    new = assert_all_live_under_one_new_session(zk, cs, wanted + [("config-service", cs.instance_id)], old)
    assert zk.exists(cs.own_node).version == 0  # restored by the import: the current session's own node again

    res = import_file(cs, backup)  # a second import changes nothing
    assert res.exit_code == 0 and res.json["results"] == [], res
    assert res.json["plan"]["counts"]["live"] == len(wanted) + 1 - res.json["plan"]["counts"]["self"]
    assert set(instance_owners(zk, cs.base_path).values()) == {new}


@pytest.mark.parametrize("generation", ["earlier", "later"])
def test_import_at_mid_linger_after_the_expiry_and_after_a_graceful_restart(make_real_service, zk, tmp_path,
                                                                             generation):
    cs = make_real_service(generation, session_timeout=SESSION)
    wanted = the_set(50)
    register_many(cs, wanted)
    backup = tmp_path / "b.yaml"
    assert run_cli("export", "-f", str(backup), env=cs.env).exit_code == 0

    # crashed and not started yet: its own node (version 0) and its session linger; nothing is "live" on that
    old = zk.exists(cs.own_node).ephemeralOwner
    cs.kill9()
    res = run_cli("import", str(backup), "--dry-run", "-o", "json", env=cs.env)
    assert res.exit_code == 0, res
    assert res.json["plan"]["counts"]["live"] == 0 and res.json["plan"]["counts"]["restore"] == len(wanted)
    assert "no Config Service answers" in res.json["plan"]["session"]["how"]

    # mid-linger: half the old session's timeout after the restart
    cs.start()
    time.sleep(SESSION / 2)
    res = import_file(cs, backup)
    assert res.exit_code == 0, res
    assert res.json["plan"]["counts"]["restore"] == len(wanted) + 1, res.json["plan"]["counts"]
    old_session_gone(zk, cs, old)
    old = assert_all_live_under_one_new_session(zk, cs, wanted, old)

    # after the expiry: every instance gone, the Config Service without a node of its own; no --force needed
    cs.kill9()
    cs.start()
    old_session_gone(zk, cs, old)
    wait_until(lambda: zk.exists(cs.own_node) is None, SESSION + 20, what="its own node vanished")
    res = import_file(cs, backup)
    assert res.exit_code == 0, res
    assert res.json["plan"]["counts"]["add"] == len(wanted) + 1, res.json["plan"]["counts"]
    old = assert_all_live_under_one_new_session(zk, cs, wanted, old)
    res = import_file(cs, backup)
    assert res.exit_code == 0 and res.json["results"] == [], res

    # a graceful restart closes the session: everything goes at once, its own node comes back (version 0)
    cs.stop()
    cs.start()
    wait_until(lambda: not (set(instance_owners(zk, cs.base_path)) & set(wanted)), 10, what="graceful stop")
    assert zk.exists(cs.own_node).version == 0
    res = import_file(cs, backup)
    assert res.exit_code == 0, res
    assert res.json["plan"]["counts"]["add"] == len(wanted), res.json["plan"]["counts"]
    assert res.json["plan"]["counts"]["live"] == 0
    assert_all_live_under_one_new_session(zk, cs, wanted, old)
    res = import_file(cs, backup)
    assert res.exit_code == 0 and res.json["results"] == [], res


@pytest.mark.parametrize("generation", ["earlier"])
def test_new_services_first_instances_do_not_race_and_5xx_writes_are_looked_up(make_real_service, zk, tmp_path,
                                                                                generation):
    """Twenty new services of eight instances each, imported into an empty registry: no write fails on the row.
    Then a crash-restart with Redis down: every write answers 500 after doing its ZooKeeper part (and the
    connection is closed); import looks in ZooKeeper and the instances survive the old session."""
    cs = make_real_service(generation, session_timeout=SESSION)
    wanted = [(f"new-{s}", f"new-{s}-{i}") for s in range(20) for i in range(8)]
    doc = {"version": 1, "services": [{"name": f"new-{s}", "instances": [
        {"instance_id": f"new-{s}-{i}", "service_url": f"http://new-{s}:80", "health_check_url": None,
         "service_metadata": {"instance_id": f"new-{s}-{i}", "status": "healthy"}} for i in range(8)]}
        for s in range(20)]}
    import json

    path = tmp_path / "new.json"
    path.write_text(json.dumps(doc))
    res = import_file(cs, path)
    assert res.exit_code == 0, res
    assert {r["result"] for r in res.json["results"]} == {"registered"}
    assert all(r["detail"] is None or "the current session is" in r["detail"] for r in res.json["results"])
    rows = {r["service_name"] for r in httpx.get(cs.api + "/services", timeout=10).json()}
    assert rows >= {s for s, _ in wanted}

    old = zk.exists(cs.own_node).ephemeralOwner
    cs.kill9()
    cs.start()
    cs.redis.stop()
    try:
        res = import_file(cs, path)
    finally:
        cs.redis.start()
    assert res.exit_code == 0, res
    assert {r["result"] for r in res.json["results"]} == {"restored"}, res.json["results"][:3]
    assert all("HTTP 500" in r["detail"] and "node is in ZooKeeper" in r["detail"] for r in res.json["results"])
    old_session_gone(zk, cs, old)
    assert_all_live_under_one_new_session(zk, cs, wanted, old)
