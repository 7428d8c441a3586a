"""regctl export / import: the recovery path after the registry restarts and loses every instance."""

import json
import stat

import pytest
import yaml

from regctl.http.api import RegistryApi
from tests.conftest import free_port
from tests.helpers import assert_one_line_error, instance_nodes, register, run_cli

INSTANCES = [
    ("asr-service", "asr-1", "http://asr-1.test:8090", {"status": "healthy", "version": "1.2", "region": "eu"}),
    ("asr-service", "asr-2", "http://asr-2.test:8090", {"status": "healthy"}),
    ("audit-service", "audit-1", "http://audit.test:8091", {}),  # no status: 'unknown', never discoverable
    ("tts-service", "tts-1", "http://tts.test:8092", {"status": "starting", "weights": [1, 2]}),
]


def register_all(url):
    for name, iid, svc_url, meta in INSTANCES:
        register(url, name, iid, url=svc_url, **{"status": None, **meta})


def live(kazoo_client, base):
    """{(service, id): (node data, mzxid)} straight from ZooKeeper."""
    return {k: (data, stat.mzxid) for k, (data, stat) in instance_nodes(kazoo_client, base).items()}


@pytest.fixture
def populated(registry):
    register_all(registry.url)
    return registry


def restart(make_registry, reg):
    """Stop the registry (its session closes: every instance vanishes) and start a new one, same base path."""
    reg.server.stop()
    return make_registry(base_path=reg.base_path)


# --------------------------------------------------------------------------- export

def test_export_yaml_to_stdout_is_versioned_and_complete(populated):
    res = run_cli("export", env=populated.env)
    assert res.exit_code == 0, res
    doc = yaml.safe_load(res.stdout)
    assert doc["version"] == 1 and doc["kind"] == "regctl-export" and doc["exported_at"].endswith("Z")
    assert doc["source"] == {"type": "zookeeper", "hosts": populated.zk_hosts, "base_path": populated.base_path}
    svc = {s["name"]: s for s in doc["services"]}
    assert set(svc) == {"asr-service", "audit-service", "tts-service", "config-service"}
    asr1 = next(i for i in svc["asr-service"]["instances"] if i["instance_id"] == "asr-1")
    assert asr1 == {"instance_id": "asr-1", "service_url": "http://asr-1.test:8090",
                    "health_check_url": "http://asr-1.test:8090/health",
                    "service_metadata": {"instance_id": "asr-1", "status": "healthy", "version": "1.2",
                                         "region": "eu"}}
    assert svc["tts-service"]["instances"][0]["service_metadata"]["weights"] == [1, 2]
    assert "exported 5 instance(s) of 4 service(s)" in res.stderr


def test_export_json_and_from_the_api_agree(populated):
    zk_doc = run_cli("export", "-o", "json", env=populated.env).json
    api_env = {"CONFIG_SERVICE_URL": populated.url}
    api_doc = run_cli("export", "-o", "json", env=api_env).json
    assert api_doc["source"] == {"type": "api", "url": populated.url}
    # the Config Service registers itself in ZooKeeper only (no row), so the API's list of rows lacks it
    assert api_doc["services"] == [s for s in zk_doc["services"] if s["name"] != "config-service"]
    assert "config-service" in {s["name"] for s in zk_doc["services"]}


def test_export_to_file_by_extension_atomically_0600(populated, tmp_path):
    out = tmp_path / "backup.json"
    res = run_cli("export", "-f", str(out), "-o", "json", env=populated.env)
    assert res.exit_code == 0, res
    assert res.json["instances"] == 5 and res.json["format"] == "json"
    assert json.loads(out.read_text())["version"] == 1
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["backup.json"]
    res = run_cli("export", "-f", str(tmp_path / "backup.yaml"), "asr-service", env=populated.env)
    assert res.exit_code == 0, res
    doc = yaml.safe_load((tmp_path / "backup.yaml").read_text())
    assert [s["name"] for s in doc["services"]] == ["asr-service"]


# --------------------------------------------------------------------------- the recovery path

def test_export_restart_import_restores_everything_and_a_second_import_changes_nothing(
        populated, make_registry, kazoo_client, tmp_path):
    backup = tmp_path / "backup.yaml"
    assert run_cli("export", "-f", str(backup), env=populated.env).exit_code == 0
    before = live(kazoo_client, populated.base_path)
    assert len(before) == 5

    reg = restart(make_registry, populated)
    after_restart = live(kazoo_client, reg.base_path)
    assert set(after_restart) == {("config-service", "config-service-1")}  # only the registry itself

    res = run_cli("import", str(backup), "--yes", "-o", "json", env=reg.env)
    assert res.exit_code == 0, res
    plan = res.json["plan"]
    counts = {k: v for k, v in plan["counts"].items() if v}
    assert counts == {"add": 4, "self": 1}  # the registry's own node is left to it (it came back on another port)
    assert {r["result"] for r in res.json["results"]} == {"registered"}
    restored = live(kazoo_client, reg.base_path)
    assert set(restored) == set(before)
    for key, (data, _) in before.items():
        if key[0] != "config-service":
            assert restored[key][0] == data, key  # exactly as registered, metadata included

    res = run_cli("import", str(backup), "--yes", env=reg.env)
    assert res.exit_code == 0, res
    assert "nothing to import" in res.stderr
    assert live(kazoo_client, reg.base_path) == restored  # same data, same mzxid: nothing written


def test_import_through_the_api_only(populated, make_registry, tmp_path):
    backup = tmp_path / "b.json"
    assert run_cli("export", "-f", str(backup), env=populated.env).exit_code == 0
    reg = restart(make_registry, populated)
    env = {"CONFIG_SERVICE_URL": reg.url}
    res = run_cli("import", str(backup), "--yes", "-o", "json", env=env)
    assert res.exit_code == 0, res
    assert res.json["plan"]["counts"]["add"] == 4 and res.json["plan"]["live_source"].startswith("api")
    res = run_cli("import", str(backup), "--yes", "-o", "json", env=env)
    assert res.json["plan"]["counts"]["add"] == 0 and res.json["results"] == []


def test_dry_run_shows_the_plan_and_changes_nothing(populated, make_registry, kazoo_client, tmp_path):
    backup = tmp_path / "b.yaml"
    run_cli("export", "-f", str(backup), env=populated.env)
    reg = restart(make_registry, populated)
    res = run_cli("import", str(backup), "--dry-run", env=reg.env)
    assert res.exit_code == 0, res
    rows = [line.split() for line in res.stdout.splitlines()]
    assert ["add", "asr-service", "asr-1", "http://asr-1.test:8090", "-"] in rows
    assert "dry run: would write 4 instance(s)" in res.stderr
    assert set(live(kazoo_client, reg.base_path)) == {("config-service", "config-service-1")}


def test_live_instances_that_differ_are_never_touched(populated, kazoo_client, tmp_path):
    backup = tmp_path / "b.yaml"
    run_cli("export", "-f", str(backup), env=populated.env)
    with RegistryApi(populated.url, timeout=5) as api:
        api.register({"service_name": "asr-service", "service_url": "http://moved:1", "health_check_url": None,
                      "service_metadata": {"instance_id": "asr-1", "status": "healthy"}})
        api.deregister("tts-service", "tts-1")
    before = live(kazoo_client, populated.base_path)
    res = run_cli("import", str(backup), "--yes", "-o", "json", env=populated.env)
    assert res.exit_code == 0, res
    items = {(i["service"], i["instance_id"]): i for i in res.json["plan"]["items"]}
    assert items[("asr-service", "asr-1")]["action"] == "differs"
    assert items[("asr-service", "asr-1")]["differences"]["service_url"] == ["http://asr-1.test:8090", "http://moved:1"]
    assert items[("tts-service", "tts-1")]["action"] == "add"
    assert items[("asr-service", "asr-2")]["action"] == "live"
    after = live(kazoo_client, populated.base_path)
    assert after[("asr-service", "asr-1")] == before[("asr-service", "asr-1")]  # untouched
    assert after[("asr-service", "asr-2")] == before[("asr-service", "asr-2")]
    assert ("tts-service", "tts-1") in after
    assert "not touched" in res.stderr


def test_import_needs_yes_without_a_terminal_and_asks_on_one(populated, make_registry, kazoo_client, tmp_path):
    backup = tmp_path / "b.yaml"
    run_cli("export", "-f", str(backup), env=populated.env)
    reg = restart(make_registry, populated)
    line = assert_one_line_error(run_cli("import", str(backup), env=reg.env), 2)
    assert "--yes" in line
    res = run_cli("import", str(backup), env=reg.env, tty_stdin=True, input="n\n")
    assert_one_line_error(res, 1)
    assert "+ add" in res.stderr and "asr-service/asr-1" in res.stderr
    assert len(live(kazoo_client, reg.base_path)) == 1
    res = run_cli("import", str(backup), env=reg.env, tty_stdin=True, input="y\n")
    assert res.exit_code == 0, res
    assert len(live(kazoo_client, reg.base_path)) == 5


def test_failed_registrations_exit_1(populated, make_registry, tmp_path):
    backup = tmp_path / "b.yaml"
    run_cli("export", "-f", str(backup), env=populated.env)
    reg = restart(make_registry, populated)
    env = {**reg.env, "CONFIG_SERVICE_URL": f"http://127.0.0.1:{free_port()}"}  # ZooKeeper reads work, the API is down
    res = run_cli("import", str(backup), "--yes", "--timeout", "1", "-o", "json", env=env)
    line = assert_one_line_error(res, 1)
    assert "4 of 4 writes failed" in line
    assert {r["result"] for r in res.json["results"]} == {"failed"}


@pytest.mark.parametrize("text,words", [
    ("version: 1\nservices:\n- name: a\n  instances:\n  - instance_id: a-1\n    service_url: 5\n",
     ["services[0].instances[0]", "service_url is a number"]),
    ("version: 1\nservices:\n- name: a\n  instances:\n  - instance_id: a/1\n    service_url: http://x:1\n",
     ["services[0].instances[0]", "contains '/'"]),
    ("version: 1\nservices:\n- name: a\n  instances:\n  - instance_id: a-1\n    service_url: http://x:1\n"
     "    service_metadata: {since: 2026-01-01}\n", ["service_metadata.since is a date"]),
    ("version: 2\nservices: []\n", ["version 2"]),
    ("version: 1\nservices:\n- name: a\n  instances:\n  - service_url: http://x:1\n", ["instance_id"]),
    ("version: 1\nservices: [\n", ["line"]),
    ("just text\n", ["not a regctl export"]),
    ("version: 1\nservices:\n- name: a\n  instances:\n  - {instance_id: a, service_url: 'http://x:1'}\n"
     "  - {instance_id: a, service_url: 'http://x:2'}\n", ["appears twice"]),
])
def test_bad_files_are_one_line_exit_2(registry, tmp_path, text, words):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    line = assert_one_line_error(run_cli("import", str(path), "--yes", env=registry.env), 2)
    for w in words:
        assert w in line, line


def test_empty_export_imports_nothing(registry, tmp_path):
    path = tmp_path / "e.yaml"
    path.write_text("version: 1\nservices: []\n")
    res = run_cli("import", str(path), env=registry.env)
    assert res.exit_code == 0 and "nothing to import" in res.stderr


def test_import_reads_stdin(populated, make_registry, kazoo_client):
    text = run_cli("export", "-o", "json", env=populated.env).stdout
    reg = restart(make_registry, populated)
    res = run_cli("import", "-", "--yes", env=reg.env, input=text)
    assert res.exit_code == 0, res
    assert len(live(kazoo_client, reg.base_path)) == 5
