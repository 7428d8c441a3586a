"""import after a Config Service restart: nodes of the old session are restored, not trusted; no lost update."""

import time

import pytest

from regctl.http.api import RegistryApi
from tests.helpers import assert_one_line_error, instance_nodes, register, run_cli

INSTANCES = [
    ("asr-service", "asr-1", {"status": "healthy", "version": "1.2"}),
    ("asr-service", "asr-2", {"status": "healthy"}),
    ("tts-service", "tts-1", {"status": "starting"}),
    ("audit-service", "audit-1", {}),
]


def register_all(url, instances=INSTANCES):
    for name, iid, meta in instances:
        register(url, name, iid, url=f"http://{iid}.test:8090", **{"status": None, **meta})


def nodes(kazoo_client, base):
    """{(service, id): (data, ephemeralOwner)} straight from ZooKeeper."""
    return {k: (data, stat.ephemeralOwner) for k, (data, stat) in instance_nodes(kazoo_client, base).items()}


def restart_lingering(make_registry, reg, kazoo_client):
    """A Config Service restart whose old session is abandoned, not closed: its nodes stay visible.

    Returns (registry to talk to now, old session id, expire) where ``expire()`` waits (bounded)
    until the old session's timeout has removed its nodes.
    """
    server = reg.server
    old = server.session_id
    server.restart(linger=True)
    assert server.session_id != old

    def expire():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if all(owner != old for _, owner in nodes(kazoo_client, reg.base_path).values()):
                return
            time.sleep(0.2)
        raise AssertionError("the old session's nodes never vanished")
    return reg, old, expire


@pytest.fixture
def populated(make_registry):
    reg = make_registry(zk_timeout=4)
    register_all(reg.url)
    return reg


def test_import_right_after_a_restart_restores_every_instance_and_they_survive_the_old_session(
        populated, make_registry, kazoo_client, tmp_path):
    backup = tmp_path / "backup.yaml"
    assert run_cli("export", "-f", str(backup), env=populated.env).exit_code == 0
    before = nodes(kazoo_client, populated.base_path)
    reg, old, expire = restart_lingering(make_registry, populated, kazoo_client)
    lingering = nodes(kazoo_client, reg.base_path)
    assert {k for k, (_, owner) in lingering.items() if owner == old} >= {(s, i) for s, i, _ in INSTANCES}

    res = run_cli("import", str(backup), "--dry-run", "-o", "json", env=reg.env)
    assert res.exit_code == 0, res
    items = {(i["service"], i["instance_id"]): i for i in res.json["plan"]["items"]}
    for name, iid, _ in INSTANCES:
        assert items[(name, iid)]["action"] == "restore", items[(name, iid)]
        assert "not the Config Service's current session" in items[(name, iid)]["reason"]
        assert items[(name, iid)]["node_owner"] == hex(old)
    # its own node was rewritten in place at the restart (version 1): it keeps the dead session, so it is
    # restored too (else the Config Service has no node once that session expires)
    assert items[("config-service", "config-service-1")]["action"] == "restore"
    assert "rewritten in place" in res.json["plan"]["session"]["how"]
    assert res.json["plan"]["session"]["dead"] == [hex(old)]

    res = run_cli("import", str(backup), "--yes", "-o", "json", env=reg.env)
    assert res.exit_code == 0, res
    assert {r["result"] for r in res.json["results"]} == {"restored"}
    details = [r["detail"] for r in res.json["results"] if r["detail"]]
    assert len(details) <= 1 and all("the current session is" in d for d in details), details  # verified in ZooKeeper

    expire()
    after = nodes(kazoo_client, reg.base_path)
    new_session = reg.server.session_id
    for name, iid, _ in INSTANCES:
        data, owner = after[(name, iid)]
        assert owner == new_session
        assert data == before[(name, iid)][0]
    res = run_cli("import", str(backup), "--yes", "-o", "json", env=reg.env)
    assert res.exit_code == 0 and res.json["results"] == [], res


def test_registering_again_in_place_is_lost_when_the_old_session_ends(populated, make_registry, kazoo_client):
    """The trap import avoids: a plain register keeps the doomed node (same owner), deregister+register does not."""
    reg, old, expire = restart_lingering(make_registry, populated, kazoo_client)
    register_all(reg.url, INSTANCES[:1])  # in place: still the old session's node
    with RegistryApi(reg.url, timeout=5) as api:
        api.deregister("asr-service", "asr-2")
        register_all(reg.url, INSTANCES[1:2])
    assert nodes(kazoo_client, reg.base_path)[("asr-service", "asr-1")][1] == old
    expire()
    after = nodes(kazoo_client, reg.base_path)
    assert ("asr-service", "asr-1") not in after
    assert after[("asr-service", "asr-2")][1] == reg.server.session_id


@pytest.fixture
def srvr_only(make_registry, zk_srvr_only):
    """A populated registry on a ZooKeeper that allows only 'srvr' (no 'cons'), and a client on it."""
    from kazoo.client import KazooClient

    reg = make_registry(zk_timeout=4, zk_hosts=zk_srvr_only.hosts)
    register_all(reg.url)
    client = KazooClient(hosts=zk_srvr_only.hosts, timeout=10)
    client.start(timeout=15)
    try:
        yield reg, client
    finally:
        client.stop()
        client.close()


def test_cons_tells_the_session_without_the_config_service_node(populated, kazoo_client, tmp_path):
    backup = tmp_path / "b.json"
    assert run_cli("export", "-f", str(backup), env=populated.env).exit_code == 0
    kazoo_client.delete(f"{populated.base_path}/config-service/instances/config-service-1")
    res = run_cli("import", str(backup), "--dry-run", "-o", "json", env=populated.env)
    assert res.exit_code == 0, res
    assert res.json["plan"]["session"]["connected"] >= 1
    actions = {(i["service"], i["instance_id"]): i["action"] for i in res.json["plan"]["items"]}
    assert actions.pop(("config-service", "config-service-1")) == "add"
    assert set(actions.values()) == {"live"}, actions


def test_without_the_config_service_node_the_first_write_tells_the_session(srvr_only, tmp_path):
    """Nothing tells the current session: present nodes are planned 'restore' (the safe path, never 'live');
    the first write (an add) shows which session is current, and nodes it owns are kept as they are."""
    populated, kazoo_client = srvr_only
    backup = tmp_path / "b.json"
    assert run_cli("export", "-f", str(backup), env=populated.env).exit_code == 0
    kazoo_client.delete(f"{populated.base_path}/config-service/instances/config-service-1")
    with RegistryApi(populated.url, timeout=5) as api:
        api.deregister("tts-service", "tts-1")
    before = nodes(kazoo_client, populated.base_path)

    res = run_cli("import", str(backup), "--dry-run", "-o", "json", env=populated.env)
    assert res.exit_code == 0, res
    assert "cannot tell the Config Service's current session" in res.stderr
    assert "'cons' is not allowed" in res.json["plan"]["session"]["how"]
    actions = {(i["service"], i["instance_id"]): i["action"] for i in res.json["plan"]["items"]}
    assert actions.pop(("tts-service", "tts-1")) == "add"
    assert actions.pop(("config-service", "config-service-1")) == "add"
    assert set(actions.values()) == {"restore"}, actions  # never "live" on a guess

    res = run_cli("import", str(backup), "--yes", "-o", "json", env=populated.env)
    assert res.exit_code == 0, res
    results = {(r["service"], r["instance_id"]): r["result"] for r in res.json["results"]}
    assert results.pop(("tts-service", "tts-1")) == "registered"
    assert results.pop(("config-service", "config-service-1")) == "registered"
    assert set(results.values()) == {"kept"}, results
    assert res.json["session"]["session"] == hex(populated.server.session_id)
    after = nodes(kazoo_client, populated.base_path)
    for key, (data, owner) in before.items():
        assert after[key] == (data, owner)  # the kept ones were not rewritten
    assert after[("tts-service", "tts-1")][1] == populated.server.session_id

    # a second import: the own node (version 0, the current session's) tells; nothing to do
    res = run_cli("import", str(backup), "--yes", "-o", "json", env=populated.env)
    assert res.exit_code == 0 and res.json["results"] == [], res


def test_an_own_node_of_version_0_tells_nothing_while_no_config_service_answers(srvr_only, tmp_path):
    """A crashed Config Service not started again leaves its own node (version 0) and its session lingering:
    with no 'cons' and no Config Service answering, nothing is 'live' on that node's word."""
    from tests.conftest import free_port

    populated, kazoo_client = srvr_only
    backup = tmp_path / "b.json"
    assert run_cli("export", "-f", str(backup), env=populated.env).exit_code == 0
    down = {**populated.env, "CONFIG_SERVICE_URL": f"http://127.0.0.1:{free_port()}"}
    res = run_cli("import", str(backup), "--dry-run", "-o", "json", env=down)
    assert res.exit_code == 0, res
    assert "no Config Service answers" in res.json["plan"]["session"]["how"], res.json["plan"]["session"]
    assert res.json["plan"]["session"]["session"] is None
    assert "cannot tell the Config Service's current session" in res.stderr
    items = {(i["service"], i["instance_id"]): i for i in res.json["plan"]["items"]}
    assert items.pop(("config-service", "config-service-1"))["action"] == "self"  # left to it when it starts
    assert {i["action"] for i in items.values()} == {"restore"}, items
    assert all(i["unsure"] for i in items.values()), items

    res = run_cli("import", str(backup), "--dry-run", "-o", "json", env=populated.env)  # answering: it tells
    assert res.exit_code == 0, res
    assert res.json["plan"]["session"]["session"] == hex(populated.server.session_id)
    assert res.json["plan"]["counts"]["live"] == len(INSTANCES)


def test_a_named_config_instance_tells_the_session(populated, kazoo_client, tmp_path):
    backup = tmp_path / "b.json"
    assert run_cli("export", "-f", str(backup), env=populated.env).exit_code == 0
    kazoo_client.delete(f"{populated.base_path}/config-service/instances/config-service-1")
    for iid in ("cs-a", "cs-b"):
        populated.server.register({"service_name": "config-service", "service_url": f"http://{iid}:1",
                                   "health_check_url": None, "service_metadata": {"instance_id": iid}})
    res = run_cli("import", str(backup), "--dry-run", "--config-instance", "cs-a", "-o", "json", env=populated.env)
    assert res.exit_code == 0, res
    assert res.json["plan"]["session"]["node"].endswith("/config-service/instances/cs-a")
    actions = {(i["service"], i["instance_id"]): i["action"] for i in res.json["plan"]["items"]}
    assert actions.pop(("config-service", "config-service-1")) == "add"
    assert set(actions.values()) == {"live"}, actions


def test_an_empty_registry_needs_no_session_every_line_is_an_add(populated, kazoo_client, tmp_path):
    backup = tmp_path / "b.yaml"
    assert run_cli("export", "-f", str(backup), env=populated.env).exit_code == 0
    for (service, iid) in nodes(kazoo_client, populated.base_path):
        kazoo_client.delete(f"{populated.base_path}/{service}/instances/{iid}")
    res = run_cli("import", str(backup), "--yes", "-o", "json", env=populated.env)
    assert res.exit_code == 0, res
    assert {r["result"] for r in res.json["results"]} == {"registered"}
    assert "cannot tell" not in res.stderr


@pytest.mark.parametrize("base", ["/nowhere/services", "EMPTY"])
def test_a_wrong_base_path_is_refused_by_import_and_a_warning_for_export_and_watch(
        populated, kazoo_client, tmp_path, base):
    backup = tmp_path / "b.yaml"
    assert run_cli("export", "-f", str(backup), env=populated.env).exit_code == 0
    if base == "EMPTY":
        base = populated.base_path.rsplit("/", 1)[0] + "/empty"
        kazoo_client.ensure_path(base)
    env = {**populated.env, "ZOOKEEPER_BASE_PATH": base}
    line = assert_one_line_error(run_cli("import", str(backup), "--yes", env=env), 2)
    assert "refusing to import" in line and base in line and "--force" in line
    assert not kazoo_client.exists(f"{base}/asr-service")
    res = run_cli("export", env=env)
    assert res.exit_code == 0, res
    assert "warning:" in res.stderr and base in res.stderr
    res = run_cli("watch", "--for", "0.3", "-o", "json", env=env)
    assert "warning:" in res.stderr and base in res.stderr, res


def test_an_instance_re_registered_while_the_prompt_is_open_keeps_its_new_data(
        populated, kazoo_client, tmp_path, monkeypatch):
    backup = tmp_path / "b.yaml"
    assert run_cli("export", "-f", str(backup), env=populated.env).exit_code == 0
    with RegistryApi(populated.url, timeout=5) as api:
        api.deregister("asr-service", "asr-1")
        api.deregister("tts-service", "tts-1")

    from regctl.cli import transfer as cli_transfer

    def operator_reads_the_plan(question):
        # meanwhile the service comes back by itself, with a new version
        with RegistryApi(populated.url, timeout=5) as api:
            api.register({"service_name": "asr-service", "service_url": "http://asr-new:9000",
                          "health_check_url": None,
                          "service_metadata": {"instance_id": "asr-1", "status": "healthy", "version": "2.0"}})
        return True

    monkeypatch.setattr(cli_transfer, "confirm", operator_reads_the_plan)
    res = run_cli("import", str(backup), "-o", "json", env=populated.env, tty_stdin=True)
    assert res.exit_code == 0, res
    results = {r["instance_id"]: r for r in res.json["results"]}
    assert results["asr-1"]["result"] == "skipped" and "since the plan" in results["asr-1"]["detail"]
    assert results["tts-1"]["result"] == "registered"
    data, _ = nodes(kazoo_client, populated.base_path)[("asr-service", "asr-1")]
    assert data["service_url"] == "http://asr-new:9000" and data["version"] == "2.0"
    assert "skipped" in res.stderr


def test_the_race_through_the_library_and_force(populated, kazoo_client, tmp_path):
    from regctl.transfer import restore
    from regctl.transfer import file as transfer
    from regctl.transfer import live as tl
    from regctl.zookeeper.reader import ZkReader

    text = run_cli("export", env=populated.env).stdout
    with RegistryApi(populated.url, timeout=5) as api:
        api.register({"service_name": "asr-service", "service_url": "http://moved:1", "health_check_url": None,
                      "service_metadata": {"instance_id": "asr-2", "status": "healthy"}})
        api.deregister("asr-service", "asr-1")
        with ZkReader(populated.zk_hosts, populated.base_path) as reader:
            entries = transfer.parse_document(text).entries
            live_nodes, _ = tl.read_zk(reader)
            live = {(n.service, n.instance_id): restore.Observed.from_node(n) for n in live_nodes}
            session = tl.current_session(reader)
            plan = restore.plan_import(entries, live, "zookeeper", session, force=True,
                                       own_key=("config-service", "config-service-1"))
            acts = {(i.service, i.instance_id): i.action for i in plan.items}
            assert acts[("asr-service", "asr-1")] == "add" and acts[("asr-service", "asr-2")] == "overwrite"
            # between plan and apply both change again
            api.register({"service_name": "asr-service", "service_url": "http://newest:1", "health_check_url": None,
                          "service_metadata": {"instance_id": "asr-2", "status": "healthy"}})
            api.register({"service_name": "asr-service", "service_url": "http://self-registered:1",
                          "health_check_url": None, "service_metadata": {"instance_id": "asr-1"}})
            results = restore.apply_plan(plan, api, restore.Live(reader=reader), [])
    assert {r.item.instance_id: r.result for r in results} == {"asr-1": "skipped", "asr-2": "skipped"}
    now = nodes(kazoo_client, populated.base_path)
    assert now[("asr-service", "asr-2")][0]["service_url"] == "http://newest:1"
    assert now[("asr-service", "asr-1")][0]["service_url"] == "http://self-registered:1"


def test_after_a_5xx_only_zookeeper_says_what_the_write_did(populated, make_registry, kazoo_client, tmp_path):
    """PostgreSQL down: deregister deletes the node, register creates it, both then answer 500.

    The import looks in ZooKeeper after each error and counts what is there; a restore
    whose deregistration left the node in place is a failure (exit 1), never registered on top.
    """
    backup = tmp_path / "b.yaml"
    assert run_cli("export", "-f", str(backup), env=populated.env).exit_code == 0
    reg, old, expire = restart_lingering(make_registry, populated, kazoo_client)
    reg.server.faults.add("postgres")
    try:
        res = run_cli("import", str(backup), "--yes", "-o", "json", env=reg.env)
    finally:
        reg.server.faults.discard("postgres")
    assert res.exit_code == 0, res
    results = {(r["service"], r["instance_id"]): r for r in res.json["results"]}
    for name, iid, _ in INSTANCES:
        r = results[(name, iid)]
        assert r["result"] == "restored", r
        assert "error to the deregistration" in r["detail"] and "node is in ZooKeeper" in r["detail"], r
    expire()
    after = nodes(kazoo_client, reg.base_path)
    assert {(s, i) for s, i, _ in INSTANCES} <= set(after)
    assert {after[(s, i)][1] for s, i, _ in INSTANCES} == {reg.server.session_id}
