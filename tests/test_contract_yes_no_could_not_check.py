"""The registry failing the way the contract says: list's discovery column, verified writes, exit codes.

Every test runs the real sandbox registry over HTTP with a real ZooKeeper and flips one of its
fault switches (``server.faults``, ``lose_zk_client()``, ``restart()``).
"""

import pytest

from tests.helpers import assert_one_line_error, register, run_cli




@pytest.fixture
def two(registry):
    register(registry, "asr-service", "asr-1")
    register(registry, "nmt-service", "nmt-1")
    return registry


def verdicts(res):
    return {s["name"]: (s["discovery"]["discoverable"], s["discovery"]["reason"]) for s in res.json["services"]}


def node_exists(kazoo_client, registry, name, iid):
    return kazoo_client.exists(f"{registry.base_path}/{name}/instances/{iid}") is not None


# --------------------------------------------------------------------------- list under each fault


def test_redis_down_every_service_is_api_500_with_the_cause(two):
    two.server.faults.add("redis")
    res = run_cli("list", "-o", "json", env=two.env)
    assert res.exit_code == 3, res  # shown what was read, then "could not check" naming the failed call
    assert "GET /services/NAME" in res.stderr
    v = verdicts(res)
    assert v["asr-service"] == (False, "api-500") and v["nmt-service"] == (False, "api-500")
    assert res.json["sources"]["api"]["services_list"]["read"] is True
    assert set(res.json["sources"]["api"]["instances"]["failed"]) >= {"asr-service", "nmt-service"}
    warnings = [l for l in res.stderr.splitlines() if "warning" in l]
    assert len(warnings) == 1 and "Redis is down" in warnings[0], res.stderr
    gate = run_cli("list", "asr-service", "--fail-undiscoverable", env=two.env)
    assert "asr-service (api-500)" in assert_one_line_error(gate, 1)
    table = run_cli("list", env=two.env)
    assert "api-500" in [l for l in table.stdout.splitlines() if l.startswith("asr-service")][0]


def test_postgres_down_lookups_still_work(two):
    two.server.faults.add("postgres")
    res = run_cli("list", "-o", "json", env=two.env)
    assert res.exit_code == 3, res  # the services list (rows) unread: exit 3 naming it
    assert "GET /services (the services list" in res.stderr
    assert verdicts(res)["asr-service"] == (True, None)
    api = res.json["sources"]["api"]
    assert api["read"] is True and api["services_list"]["read"] is False and "500" in api["error"]
    assert all(s["db_status"] is None for s in res.json["services"])  # not read, not "no row"
    assert "the services list could not be read" in run_cli("list", env=two.env).stderr
    assert run_cli("list", "--fail-undiscoverable", env=two.env).exit_code == 3  # rows unread: not all checked
    ins = run_cli("inspect", "asr-service", "-o", "json", env=two.env)
    assert ins.exit_code == 3 and ins.json["registered"] is True and ins.json["row"] is None


def test_lost_own_zookeeper_client(two):
    two.server.lose_zk_client()
    res = run_cli("list", "-o", "json", env=two.env)
    assert res.exit_code == 3, res
    assert verdicts(res)["asr-service"][0] is False
    assert "restart the Config Service" in res.stderr


def test_restart_empties_the_registry(two):
    two.server.restart(linger=False)
    res = run_cli("list", "asr-service", "nmt-service", "--fail-undiscoverable", "-o", "json", env=two.env)
    assert res.exit_code == 1, res
    assert verdicts(res)["asr-service"] == (False, "no-instances")
    assert res.json["services"][0]["db_status"] == "healthy"  # the row remains


def test_stale_cache_under_the_gate(two, kazoo_client):
    run_cli("list", env=two.env)  # warm the cache
    kazoo_client.delete(f"{two.base_path}/asr-service/instances/asr-1")
    res = run_cli("list", "asr-service", "--fail-undiscoverable", env=two.env)
    assert "asr-service (stale-cache)" in assert_one_line_error(res, 1)


# --------------------------------------------------------------------------- verified writes


@pytest.mark.parametrize("fault,cause", [("redis", "Redis is down"), ("postgres", "PostgreSQL is down")])
def test_register_after_a_500_reports_what_zookeeper_shows(registry, kazoo_client, fault, cause):
    registry.server.faults.add(fault)
    res = run_cli("register", "--name", "asr-service", "--url", "http://asr:8090", "--instance-id", "asr-9",
                  "-o", "json", env=registry.env)
    assert res.exit_code == 0, res
    assert node_exists(kazoo_client, registry, "asr-service", "asr-9")
    assert res.json["instance_ids"] == ["asr-9"]
    check = res.json["verified_after_error"][0]
    assert check["happened"] is True and cause in check["consequence"]
    assert "registered in ZooKeeper (asr-service/asr-9 is live), but the Config Service answered" in res.stderr
    assert cause in res.stderr
    # a server-made id is found by what was sent
    res = run_cli("register", "--name", "tts", "--url", "http://tts:1", env=registry.env)
    assert res.exit_code == 0, res
    assert node_exists(kazoo_client, registry, "tts", res.stdout.strip())


@pytest.mark.parametrize("fault,cause", [("redis", "Redis is down"), ("postgres", "PostgreSQL is down")])
def test_deregister_after_a_500_reports_removed(registry, kazoo_client, fault, cause):
    register(registry, "asr-service", "asr-1")
    registry.server.faults.add(fault)
    res = run_cli("deregister", "asr-service", "asr-1", "--yes", "-o", "json", env=registry.env)
    assert res.exit_code == 0, res
    assert not node_exists(kazoo_client, registry, "asr-service", "asr-1")
    assert res.json["results"][0]["result"] == "removed"
    assert res.json["verified_after_error"][0]["happened"] is True
    assert "deregistered (asr-service/asr-1 is gone from ZooKeeper)" in res.stderr and cause in res.stderr


def test_register_that_did_not_happen_is_exit_3(registry, kazoo_client):
    registry.server.lose_zk_client()
    res = run_cli("register", "--name", "asr-service", "--url", "http://asr:8090", "--instance-id", "asr-9",
                  env=registry.env)
    line = assert_one_line_error(res, 3)
    assert "not registered (asr-service/asr-9 is not in ZooKeeper)" in line
    assert "restart the Config Service" in line
    assert not node_exists(kazoo_client, registry, "asr-service", "asr-9")


def test_without_zookeeper_a_500_stays_exit_3(registry):
    registry.server.faults.add("redis")
    res = run_cli("register", "--name", "asr-service", "--url", "http://asr:8090", "--instance-id", "asr-9",
                  env={"CONFIG_SERVICE_URL": registry.url})
    assert "500" in assert_one_line_error(res, 3)


def test_restart_with_lingering_nodes_is_ok_on_borrowed_time(make_registry):
    registry = make_registry(zk_timeout=4)
    register(registry, "asr-service", "asr-1")
    old = registry.server.session_id
    registry.server.restart(linger=True)
    assert registry.server.session_id != old
    res = run_cli("list", "asr-service", "-o", "json", env=registry.env)
    assert res.exit_code == 0, res
    assert verdicts(res) == {"asr-service": (True, "orphaned-session")}
    assert hex(old) in res.json["services"][0]["discovery"]["detail"]
    table = run_cli("list", env=registry.env)
    rows = {l.split()[0]: l for l in table.stdout.splitlines()[1:]}
    assert "OK (orphaned-session)" in rows["asr-service"]
    # its own node was rewritten in place by the restart: it keeps the old session and goes with it too
    assert "orphaned" in rows["config-service"]


def test_inspect_under_redis_shows_zookeeper_and_the_failed_lookup(two):
    two.server.faults.add("redis")
    res = run_cli("inspect", "asr-service", "-o", "json", env=two.env)
    assert res.exit_code == 3, res  # ZooKeeper's instances shown; the API's read failed: could not check
    assert [i["instance_id"] for i in res.json["instances"]] == ["asr-1"]
    assert res.json["instances"][0]["in_api"] is None  # not read, not "absent from the API"
    assert res.json["discovery"]["reason"] == "api-500"
    assert "the API could not list the instances of asr-service" in res.stderr


def test_list_a_name_nobody_knows_suggests_one(two):
    res = run_cli("list", "asr-servce", "--fail-undiscoverable", env=two.env)
    assert res.exit_code == 1
    assert "did you mean: asr-service" in res.stderr
