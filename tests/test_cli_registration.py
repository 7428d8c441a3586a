"""register and deregister against a real ZooKeeper and the contract registry."""

import json

import httpx
import pytest

from regctl.sandbox.proc import free_port
from tests.helpers import assert_one_line_error, run_cli


def node(kazoo_client, registry, name, iid):
    """(payload dict, stat) of the instance node, or None."""
    path = f"{registry.base_path}/{name}/instances/{iid}"
    if kazoo_client.exists(path) is None:
        return None
    data, stat = kazoo_client.get(path)
    return json.loads(data), stat


def api_ids(registry, name):
    r = httpx.get(f"{registry.api}/services/{name}", timeout=5)
    assert r.status_code == 200
    return sorted(i["instance_id"] for i in r.json())


def zk_ids(kazoo_client, registry, name):
    path = f"{registry.base_path}/{name}/instances"
    return sorted(kazoo_client.get_children(path)) if kazoo_client.exists(path) else []


# ---------------------------------------------------------------------------- register

def test_register_flags_then_deregister_round_trip(registry, kazoo_client):
    res = run_cli("register", "--name", "asr-service", "--url", "http://asr:8090", "--instance-id", "asr-1",
                  "--meta", "version=1.2.3", "--meta", "replicas=3", "--meta", 'tags=["a","b"]', env=registry.env)
    assert res.exit_code == 0, res
    assert res.stdout.strip() == "asr-1"
    payload, stat = node(kazoo_client, registry, "asr-service", "asr-1")
    assert stat.ephemeralOwner != 0
    assert payload["service_url"] == "http://asr:8090"
    assert payload["health_check_url"] == "http://asr:8090/health"
    assert payload["status"] == "healthy"
    assert payload["version"] == "1.2.3" and payload["replicas"] == 3 and payload["tags"] == ["a", "b"]
    assert "confirmed in ZooKeeper" in res.stderr
    assert api_ids(registry, "asr-service") == ["asr-1"]

    res = run_cli("deregister", "asr-service", "asr-1", "--yes", env=registry.env)
    assert res.exit_code == 0, res
    assert "removed" in res.stdout
    assert node(kazoo_client, registry, "asr-service", "asr-1") is None
    assert api_ids(registry, "asr-service") == []


def test_register_json_output_and_server_made_id(registry, kazoo_client):
    res = run_cli("register", "-n", "svc", "--port", "8090", "--host", "10.0.0.5", "--no-health-url",
                  "--status", "starting", "-o", "json", env=registry.env)
    assert res.exit_code == 0, res
    doc = res.json
    assert doc["dry_run"] is False
    (reg,) = doc["registrations"]
    iid = reg["instance_id"]
    assert doc["instance_ids"] == [iid] and len(iid) == 36  # UUID4 from the registry
    assert reg["request"]["method"] == "POST"
    assert reg["request"]["url"] == registry.api + "/register"
    assert reg["request"]["json"] == {"service_name": "svc", "service_url": "http://10.0.0.5:8090",
                                      "health_check_url": None, "service_metadata": {"status": "starting"}}
    assert reg["zookeeper"] == "present"
    payload, _ = node(kazoo_client, registry, "svc", iid)
    assert payload["status"] == "starting" and payload["health_check_url"] is None


@pytest.mark.parametrize("env, url", [
    ({"SERVICE_HOST": "my-service", "SERVICE_PORT": "8090"}, "http://my-service:8090"),
    ({"SERVICE_PUBLIC_URL": "https://api.example.com/my-service"}, "https://api.example.com/my-service"),
])
def test_register_from_env_guide_examples(registry, kazoo_client, env, url):
    full = {**registry.env, "SERVICE_NAME": "my-service", "SERVICE_INSTANCE_ID": "my-service-001", **env}
    res = run_cli("register", "--from-env", "-o", "json", env=full)
    assert res.exit_code == 0, res
    body = res.json["registrations"][0]["request"]["json"]
    assert body == {"service_name": "my-service", "service_url": url, "health_check_url": url + "/health",
                    "service_metadata": {"instance_id": "my-service-001", "status": "healthy"}}
    payload, _ = node(kazoo_client, registry, "my-service", "my-service-001")
    assert payload["service_url"] == url
    res = run_cli("deregister", "my-service", "my-service-001", "--yes", env=registry.env)
    assert res.exit_code == 0, res
    assert node(kazoo_client, registry, "my-service", "my-service-001") is None


def test_register_from_env_file_overrides_environment(registry, kazoo_client, tmp_path):
    env_file = tmp_path / "svc.env"
    env_file.write_text("# the service's env\nexport SERVICE_NAME=filed\nSERVICE_PORT='9000'\n"
                        'SERVICE_INSTANCE_ID="filed-1"  # comment\n\nSERVICE_HOST=filehost\n')
    env = {**registry.env, "SERVICE_NAME": "from-process", "SERVICE_PORT": "1"}
    res = run_cli("register", "--from-env", "--env-file", str(env_file), env=env)
    assert res.exit_code == 0, res
    assert res.stdout.strip() == "filed-1"
    payload, _ = node(kazoo_client, registry, "filed", "filed-1")
    assert payload["service_url"] == "http://filehost:9000"


def test_register_from_env_missing_variable(registry, kazoo_client):
    res = run_cli("register", "--from-env", env={**registry.env, "SERVICE_NAME": "x"})
    line = assert_one_line_error(res, 2)
    assert "SERVICE_PORT" in line
    res = run_cli("register", "--from-env", env={**registry.env, "SERVICE_NAME": "x", "SERVICE_PORT": "99999"})
    assert "SERVICE_PORT" in assert_one_line_error(res, 2)
    assert kazoo_client.exists(f"{registry.base_path}/x") is None


def test_register_file_with_several_registrations(registry, kazoo_client, tmp_path):
    f = tmp_path / "regs.yaml"
    f.write_text("""
registrations:
  - service_name: alpha
    service_url: http://alpha:8000
    service_metadata: {instance_id: alpha-1, status: healthy, region: eu}
  - name: alpha
    url: http://alpha2:8000
    instance_id: alpha-2
    health_url: http://alpha2:8000/healthz
  - name: beta
    url: http://beta:9000
    instance_id: beta-1
    status: unknown
    meta: {version: "2"}
""")
    res = run_cli("register", "-f", str(f), env=registry.env)
    assert res.exit_code == 0, res
    assert res.stdout.split() == ["alpha-1", "alpha-2", "beta-1"]
    assert zk_ids(kazoo_client, registry, "alpha") == ["alpha-1", "alpha-2"]
    a2, _ = node(kazoo_client, registry, "alpha", "alpha-2")
    assert a2["health_check_url"] == "http://alpha2:8000/healthz" and a2["status"] == "healthy"
    b1, _ = node(kazoo_client, registry, "beta", "beta-1")
    assert b1["status"] == "unknown" and b1["version"] == "2"
    assert api_ids(registry, "alpha") == ["alpha-1", "alpha-2"]

    res = run_cli("deregister", "alpha", "--all", "--yes", "-o", "json", env=registry.env)
    assert res.exit_code == 0, res
    assert {r["instance_id"]: r["result"] for r in res.json["results"]} == {"alpha-1": "removed",
                                                                            "alpha-2": "removed"}
    assert zk_ids(kazoo_client, registry, "alpha") == []
    assert zk_ids(kazoo_client, registry, "beta") == ["beta-1"]  # never touched


def test_register_json_list_from_stdin(registry, kazoo_client):
    doc = json.dumps([{"service_name": "s1", "service_url": "http://s1:1", "health_check_url": None,
                       "service_metadata": {"instance_id": "s1-a"}},
                      {"service_name": "s2", "service_url": "http://s2:2", "service_metadata": {"instance_id": "s2-a"}}])
    res = run_cli("register", "-f", "-", input=doc, env=registry.env)
    assert res.exit_code == 0, res
    assert res.stdout.split() == ["s1-a", "s2-a"]
    s1, _ = node(kazoo_client, registry, "s1", "s1-a")
    assert s1["health_check_url"] is None and s1["status"] == "healthy"


def test_register_dry_run_sends_nothing(registry, kazoo_client):
    res = run_cli("register", "--name", "dry", "--url", "http://dry:1", "--instance-id", "dry-1", "--dry-run",
                  env=registry.env)
    assert res.exit_code == 0, res
    lines = res.stdout.splitlines()
    assert lines[0] == f"POST {registry.api}/register"
    assert json.loads("\n".join(lines[1:]))["service_metadata"] == {"instance_id": "dry-1", "status": "healthy"}
    assert kazoo_client.exists(f"{registry.base_path}/dry") is None
    rows = httpx.get(f"{registry.api}/services", timeout=5).json()
    assert [r["service_name"] for r in rows if r["service_name"] != "config-service"] == []


@pytest.mark.parametrize("args, words", [
    (["--name", "bad/name", "--url", "http://x:1"], "contains '/'"),
    (["--name", "ok", "--url", "ftp://x:1"], "not http or https"),
    (["--name", "ok", "--url", "http://x:70000"], "port"),
    (["--name", "ok", "--port", "0"], "out of range"),
    (["--name", "ok", "--url", "http://x:1", "--status", "up"], "status 'up'"),
    (["--name", "ok", "--url", "http://x:1", "--instance-id", ".."], "instance id"),
    (["--name", "ok", "--url", "http://x:1", "--meta", "novalue"], "key=value"),
    (["--name", "ok"], "no service URL"),
    (["--url", "http://x:1"], "--name"),
    (["--name", "ok", "--url", "http://x:1", "--from-env"], "separate ways"),
    (["--name", "ok", "--url", "http://x:1", "--host", "h"], "--url cannot be combined"),
    (["--name", "ok", "--url", "http://x:1", "--health-url", "http://x:1/h", "--no-health-url"], "contradict"),
    (["--bogus"], "--bogus"),
])
def test_register_validation_errors(registry, kazoo_client, args, words):
    res = run_cli("register", *args, env=registry.env)
    assert words in assert_one_line_error(res, 2)
    names = kazoo_client.get_children(registry.base_path) if kazoo_client.exists(registry.base_path) else []
    assert set(names) <= {"config-service"}


@pytest.mark.parametrize("text, words", [
    ("- name: a\n  url: http://a:1\n  colour: red\n", "unknown key 'colour'"),
    ("[1, 2]", "entry 1"),
    ("name: a\n", "service_url"),
    ("{not yaml: [", "not valid YAML"),
    ("- {name: a, url: 'http://a:1', service_name: b}", "given twice"),
    ("- {name: a, url: 'http://a:1'}\n- {name: b, url: 'http://b:99999'}", "entry 2"),
])
def test_register_file_errors_send_nothing(registry, kazoo_client, tmp_path, text, words):
    f = tmp_path / "bad.yaml"
    f.write_text(text)
    res = run_cli("register", "-f", str(f), env=registry.env)
    assert words in assert_one_line_error(res, 2)
    assert kazoo_client.exists(f"{registry.base_path}/a") is None


def test_register_missing_file(registry):
    res = run_cli("register", "-f", "/nonexistent/regs.yaml", env=registry.env)
    assert "/nonexistent/regs.yaml" in assert_one_line_error(res, 2)


def test_register_unreachable_registry():
    res = run_cli("register", "--name", "a", "--url", "http://a:1", "--config-url", f"http://127.0.0.1:{free_port()}")
    assert "connection refused" in assert_one_line_error(res, 3)


def test_register_without_zookeeper_notes_it(registry):
    env = {"CONFIG_SERVICE_URL": registry.url}
    res = run_cli("register", "--name", "a", "--url", "http://a:1", "--instance-id", "a-1", env=env)
    assert res.exit_code == 0, res
    assert "not confirmed in ZooKeeper" in res.stderr


# ---------------------------------------------------------------------------- deregister

@pytest.fixture
def three(registry):
    for iid in ("w-1", "w-2", "w-3"):
        res = run_cli("register", "--name", "web", "--url", f"http://{iid}:80", "--instance-id", iid,
                      env=registry.env)
        assert res.exit_code == 0, res
    run_cli("register", "--name", "other", "--url", "http://o:80", "--instance-id", "o-1", env=registry.env)
    return registry


def test_deregister_wrong_id_changes_nothing(three, kazoo_client):
    res = run_cli("deregister", "web", "w-9", "--yes", env=three.env)
    line = assert_one_line_error(res, 1)
    assert "w-9" in line and "not live" in line and "--force" in line
    assert zk_ids(kazoo_client, three, "web") == ["w-1", "w-2", "w-3"]


def test_deregister_wrong_id_without_zookeeper_checks_the_api(three, kazoo_client):
    res = run_cli("deregister", "web", "w-1", "nope", "--yes", env={"CONFIG_SERVICE_URL": three.url})
    assert "nope" in assert_one_line_error(res, 1)
    assert zk_ids(kazoo_client, three, "web") == ["w-1", "w-2", "w-3"]


def test_deregister_force_sends_for_unknown_id(three, kazoo_client):
    res = run_cli("deregister", "web", "w-9", "--yes", "--force", "-o", "json", env=three.env)
    assert res.exit_code == 0, res
    assert res.json["results"] == [{"instance_id": "w-9", "result": "removed", "error": None}]
    assert zk_ids(kazoo_client, three, "web") == ["w-1", "w-2", "w-3"]


def test_deregister_without_terminal_needs_yes(three, kazoo_client):
    res = run_cli("deregister", "web", "w-1", env=three.env)
    assert "--yes" in assert_one_line_error(res, 2)
    assert zk_ids(kazoo_client, three, "web") == ["w-1", "w-2", "w-3"]


def test_deregister_asks_on_a_terminal(three, kazoo_client):
    res = run_cli("deregister", "web", "w-1", "w-2", env=three.env, tty_stdin=True, input="n\n")
    assert_one_line_error(res, 1)
    assert "w-1, w-2" in res.stderr and f"Deregister them from {three.url}" in res.stderr
    assert zk_ids(kazoo_client, three, "web") == ["w-1", "w-2", "w-3"]
    res = run_cli("deregister", "web", "w-1", "w-2", env=three.env, tty_stdin=True, input="y\n")
    assert res.exit_code == 0, res
    assert zk_ids(kazoo_client, three, "web") == ["w-3"]
    assert zk_ids(kazoo_client, three, "other") == ["o-1"]


def test_deregister_dry_run(three, kazoo_client):
    res = run_cli("deregister", "web", "--all", "--dry-run", env=three.env)
    assert res.exit_code == 0, res
    assert res.stdout.splitlines() == [f"POST {three.api}/deregister?service_name=web&instance_id={i}"
                                       for i in ("w-1", "w-2", "w-3")]
    assert zk_ids(kazoo_client, three, "web") == ["w-1", "w-2", "w-3"]


def test_deregister_all_takes_exactly_the_live_ones(three, kazoo_client):
    res = run_cli("deregister", "web", "--all", "--yes", env=three.env)
    assert res.exit_code == 0, res
    for iid in ("w-1", "w-2", "w-3"):
        assert iid in res.stdout
    assert zk_ids(kazoo_client, three, "web") == []
    assert zk_ids(kazoo_client, three, "other") == ["o-1"]
    res = run_cli("deregister", "web", "--all", "--yes", env=three.env)
    assert "no live instances" in assert_one_line_error(res, 1)


@pytest.mark.parametrize("args, code", [
    (["web"], 2),
    (["web", "w-1", "--all"], 2),
    (["bad/name", "x", "--yes"], 2),
    (["web", "..", "--yes"], 2),
])
def test_deregister_usage_errors(three, args, code):
    assert_one_line_error(run_cli("deregister", *args, env=three.env), code)


def test_deregister_unreachable(three):
    res = run_cli("deregister", "web", "w-1", "--yes", "--config-url", f"http://127.0.0.1:{free_port()}",
                  env={"CONFIG_SERVICE_URL": ""})
    assert_one_line_error(res, 3)
    res = run_cli("deregister", "web", "w-1", "--yes", "--zk", f"127.0.0.1:{free_port()}", "--timeout", "1",
                  env=three.env)
    assert_one_line_error(res, 3)
