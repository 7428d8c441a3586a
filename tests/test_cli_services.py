"""list, inspect, url, discover against a real ZooKeeper and the contract registry."""

import json
import time

import httpx
import pytest

from regctl.sandbox.proc import free_port
from tests.helpers import assert_one_line_error, register, run_cli

pytestmark = pytest.mark.compat  # also run on the oldest and newest Python (.ci/run)

LIST_KEYS = {"name", "live_instances", "healthy_status_instances", "answering_instances", "db_status",
             "registered_at", "service_url", "api_live_instances", "flags", "discovery", "seeded"}
INSTANCE_KEYS = {"service_name", "instance_id", "service_url", "health_check_url", "status", "discoverable",
                 "metadata", "node", "in_zookeeper", "in_api"}
NODE_KEYS = {"path", "created", "modified", "age_seconds", "ephemeral_owner", "version", "data_length"}




def deregister(registry, name, iid):
    r = httpx.post(f"{registry.url}/api/v1/registry/deregister",
                   params={"service_name": name, "instance_id": iid}, timeout=5)
    assert r.status_code == 200


@pytest.fixture
def populated(registry):
    register(registry, "asr-service", "asr-1", version="1.2")
    register(registry, "asr-service", "asr-2")
    register(registry, "audit-service", "audit-1", status=None)
    register(registry, "billing", "billing-1")
    deregister(registry, "billing", "billing-1")
    return registry


def by_name(doc):
    return {s["name"]: s for s in doc["services"]}


def test_list_json_counts_flags_and_sources(populated):
    res = run_cli("list", "-o", "json", env=populated.env)
    assert res.exit_code == 0, res
    doc = res.json
    assert set(doc) == {"services", "sources", "problems", "probed", "generation"}
    assert doc["generation"]["generation"] == "earlier"
    svc = by_name(doc)
    assert set(svc["asr-service"]) == LIST_KEYS
    assert (svc["asr-service"]["live_instances"], svc["asr-service"]["healthy_status_instances"]) == (2, 2)
    assert svc["asr-service"]["db_status"] == "healthy"
    assert svc["audit-service"]["healthy_status_instances"] == 0
    assert "none-discoverable" in svc["audit-service"]["flags"]
    assert svc["billing"]["live_instances"] == 0 and svc["billing"]["flags"] == ["no-live-instance"]
    assert svc["billing"]["db_status"] == "unknown"
    assert svc["config-service"]["live_instances"] == 1  # the registry registers itself
    assert doc["sources"]["zookeeper"]["read"] and doc["sources"]["api"]["read"]
    assert res.stderr == ""  # json mode: nothing but data, no notes


def test_list_table_and_wide_and_yaml(populated):
    res = run_cli("list", env=populated.env)
    assert res.exit_code == 0, res
    lines = res.stdout.splitlines()
    assert lines[0].split() == ["NAME", "LIVE", "STATUS-HEALTHY", "DISCOVERY", "DB", "STATUS", "REGISTERED", "FLAGS"]
    row = next(l for l in lines if l.startswith("billing"))
    assert "no-live-instance" in row
    assert "\x1b[" not in res.stdout
    assert "read: API" in res.stderr and "ZooKeeper" in res.stderr
    wide = run_cli("list", "-o", "wide", env=populated.env)
    assert "URL" in wide.stdout.splitlines()[0] and "http://asr-service.test:8090" in wide.stdout
    y = run_cli("list", "-o", "yaml", env=populated.env)
    assert y.exit_code == 0 and by_name(y.yaml)["asr-service"]["live_instances"] == 2


def test_list_source_api_counts_through_the_api(populated):
    env = {k: v for k, v in populated.env.items() if k == "CONFIG_SERVICE_URL"}
    res = run_cli("list", "-o", "json", env=env)
    svc = by_name(res.json)
    assert res.json["sources"]["zookeeper"] is None
    assert svc["asr-service"]["live_instances"] == 2 and svc["asr-service"]["api_live_instances"] == 2
    assert svc["billing"]["flags"] == ["no-live-instance"]
    zk_only = run_cli("list", "--source", "zk", "-o", "json", env=populated.env)
    assert zk_only.json["sources"]["api"] is None
    assert by_name(zk_only.json)["asr-service"]["db_status"] is None


def test_list_flags_instances_the_api_has_no_row_for(registry, kazoo_client):
    path = f"{registry.base_path}/ghost/instances/g-1"
    kazoo_client.create(path, json.dumps({"service_url": "http://g:1", "status": "healthy", "instance_id": "g-1"}).encode(),
                        makepath=True, ephemeral=True)
    svc = by_name(run_cli("list", "-o", "json", env=registry.env).json)
    assert svc["ghost"]["flags"] == ["not-in-api"] and svc["ghost"]["live_instances"] == 1


def test_malformed_nodes_are_reported_not_fatal(registry, kazoo_client):
    base = registry.base_path
    register(registry, "good", "g1")
    kazoo_client.ensure_path(f"{base}/no-instances-dir")
    bad = {"binary": b"\xff\xfe\x00", "list": b"[1,2]", "text": b"hello", "empty": b"",
           "deep": b"[" * 5000 + b"]" * 5000}
    for iid, data in bad.items():
        kazoo_client.create(f"{base}/weird/instances/{iid}", data, makepath=True)
    res = run_cli("list", "-o", "json", env=registry.env)
    assert res.exit_code == 0, res
    kinds = {(p["path"].rsplit("/", 1)[-1], p["kind"]) for p in res.json["problems"]}
    assert ("no-instances-dir", "no-instances-node") in kinds
    assert {("binary", "not-utf8"), ("list", "not-an-object"), ("text", "not-json"), ("empty", "not-json")} <= kinds
    # Python <= 3.12 cannot decode JSON nested 5,000 deep (RecursionError); 3.13 decodes it into a list
    assert ("deep", "not-json") in kinds or ("deep", "not-an-object") in kinds
    assert by_name(res.json)["good"]["live_instances"] == 1
    table = run_cli("list", env=registry.env)
    assert table.exit_code == 0 and "Traceback" not in table.stderr
    assert "not UTF-8" in table.stderr


def test_inspect_shows_nodes_and_warns(populated):
    res = run_cli("inspect", "audit-service", "-o", "json", env=populated.env)
    assert res.exit_code == 0, res
    doc = res.json
    assert set(doc) == {"service", "row", "instances", "warnings", "problems", "sources", "instances_read",
                        "registered", "discovery", "monitor"}
    assert doc["monitor"] is None  # the earlier generation has no monitor
    inst = doc["instances"][0]
    assert set(inst) == INSTANCE_KEYS and set(inst["node"]) == NODE_KEYS
    assert inst["status"] == "unknown" and inst["discoverable"] is False
    assert inst["node"]["ephemeral_owner"].startswith("0x")
    assert any("never return" in w for w in doc["warnings"])
    table = run_cli("inspect", "asr-service", env=populated.env)
    assert table.exit_code == 0
    assert "asr-1" in table.stdout and "asr-2" in table.stdout and "zk+api" in table.stdout
    wide = run_cli("inspect", "asr-service", "-o", "wide", env=populated.env)
    assert "version=1.2" in wide.stdout


def test_inspect_all_instances_share_the_registry_session(populated, kazoo_client):
    doc = run_cli("inspect", "asr-service", "-o", "json", env=populated.env).json
    owners = {i["node"]["ephemeral_owner"] for i in doc["instances"]}
    self_owner = run_cli("inspect", "config-service", "-o", "json", env=populated.env).json
    assert owners == {i["node"]["ephemeral_owner"] for i in self_owner["instances"]}


def test_inspect_warns_when_the_api_cache_is_stale(populated, kazoo_client):
    run_cli("inspect", "asr-service", env=populated.env)  # warm the registry's cache
    kazoo_client.delete(f"{populated.base_path}/asr-service/instances/asr-2")
    res = run_cli("inspect", "asr-service", "-o", "json", env=populated.env)
    assert any("asr-2" in w and "no longer holds" in w for w in res.json["warnings"])
    stale = [i for i in res.json["instances"] if i["instance_id"] == "asr-2"][0]
    assert stale["in_zookeeper"] is False and stale["in_api"] is True


def test_inspect_unknown_and_deregistered(populated):
    res = run_cli("inspect", "nope", env=populated.env)
    assert "not registered" in assert_one_line_error(res, 1)
    res = run_cli("inspect", "nope", "-o", "json", env=populated.env)
    assert res.exit_code == 1 and res.json["error"]["code"] == 1
    gone = run_cli("inspect", "billing", env=populated.env)
    assert gone.exit_code == 0 and "no instance is live" in gone.stderr


def test_inspect_of_an_empty_directory_without_a_row_says_so(populated, kazoo_client):
    kazoo_client.ensure_path(f"{populated.base_path}/left-behind/instances")
    line = assert_one_line_error(run_cli("inspect", "left-behind", env=populated.env), 1)
    assert "not registered" in line and "ZooKeeper directory holds no instance" in line
    line = assert_one_line_error(run_cli("inspect", "never-was", env=populated.env), 1)
    assert "neither ZooKeeper nor the API knows it" in line


def test_url_picks_healthy_and_explains_none(populated):
    res = run_cli("url", "asr-service", env=populated.env)
    assert res.exit_code == 0 and res.stdout == "http://asr-service.test:8090\n" and res.stderr == ""
    assert run_cli("url", "asr-service", "-o", "json", env=populated.env).json == {
        "service": "asr-service", "url": "http://asr-service.test:8090"}
    line = assert_one_line_error(run_cli("url", "audit-service", env=populated.env), 1)
    assert "audit-1=unknown" in line
    assert "no instance" in assert_one_line_error(run_cli("url", "nope", env=populated.env), 1)


def test_discover_lists_every_instance_with_null_fields(populated):
    res = run_cli("discover", "asr-service", "-o", "json", env=populated.env)
    assert res.exit_code == 0
    items = res.json["instances"]
    assert {i["instance_id"] for i in items} == {"asr-1", "asr-2"}
    assert all("last_health_check" in i and i["registered_at"] is None for i in items)
    table = run_cli("discover", "audit-service", env=populated.env)
    assert table.exit_code == 0 and "audit-1" in table.stdout and "unknown" in table.stdout
    assert "no live instance" in assert_one_line_error(run_cli("discover", "billing", env=populated.env), 1)


@pytest.mark.parametrize("args", [["list"], ["inspect", "asr-service"], ["url", "asr-service"],
                                  ["discover", "asr-service"], ["list", "-o", "json"]])
def test_unreachable_registry_exits_3_quickly(args):
    env = {"CONFIG_SERVICE_URL": f"http://127.0.0.1:{free_port()}", "ZOOKEEPER_HOSTS": f"127.0.0.1:{free_port()}"}
    started = time.monotonic()
    res = run_cli(*args, "--timeout", "3", env=env)
    assert time.monotonic() - started < 5
    line = assert_one_line_error(res, 3)
    assert "127.0.0.1" in line and "try:" in line


def test_unresolvable_and_html_answers(registry):
    res = run_cli("list", "--config-url", "http://config-service:8082", "--timeout", "3")
    assert "localhost:8082" in assert_one_line_error(res, 3)


def test_zookeeper_down_in_auto_mode_falls_back_to_the_api(populated):
    env = {**populated.env, "ZOOKEEPER_HOSTS": f"127.0.0.1:{free_port()}"}
    res = run_cli("list", "-o", "json", "--timeout", "2", env=env)
    assert res.exit_code == 0
    assert "ZooKeeper refused the connection" in res.stderr
    assert res.json["sources"]["zookeeper"]["read"] is False
    assert by_name(res.json)["asr-service"]["db_status"] == "healthy"
    res = run_cli("list", "--source", "zk", "--timeout", "2", env=env)
    assert_one_line_error(res, 3)


def test_bad_flags_are_usage_errors(registry):
    for args in (["list", "--source", "nope"], ["list", "-o", "xml"], ["inspect", "a/b"], ["list", "--bogus"],
                 ["list", "--source", "zk"]):
        env = registry.env if args[-1] != "zk" else {"CONFIG_SERVICE_URL": registry.url}
        assert_one_line_error(run_cli(*args, env=env), 2)


def test_root_level_options_and_command_level_override(populated):
    res = run_cli("-o", "json", "list", env=populated.env)
    assert res.exit_code == 0 and "services" in res.json
    res = run_cli("-o", "json", "list", "-o", "yaml", env=populated.env)
    assert "services" in res.yaml and not res.stdout.lstrip().startswith("{")


def test_list_of_unknown_names_warns_for_each_with_its_did_you_mean(populated):
    res = run_cli("list", "asr-servise", "never-was", "billing", env=populated.env)
    warned = [line for line in res.stderr.splitlines() if "neither ZooKeeper nor the API knows it" in line]
    assert len(warned) == 2, res
    assert "asr-servise" in warned[0] and "did you mean: asr-service?" in warned[0]
    assert "never-was" in warned[1] and "did you mean" not in warned[1]
    assert "billing" in res.stdout
