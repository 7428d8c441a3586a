"""The sandbox stack: up/status/down as real subprocesses, the demo services, failures."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from kazoo.client import KazooClient

from regctl.errors import SandboxError
from regctl.sandbox import proc, stack
from regctl.sandbox import zookeeper as zkmod
from regctl.zookeeper.admin import parse_mntr


def run_stack(*args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "regctl.sandbox.stack", *args], capture_output=True,
                          text=True, timeout=timeout, env=env, stdin=subprocess.DEVNULL)


def processes_mentioning(text: str) -> list[str]:
    out = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            line = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in line and proc.pid_alive(int(cmdline.parent.name)):
            out.append(line)
    return out


def api(info, path: str) -> httpx.Response:
    return httpx.get(info.api_url + "/api/v1/registry" + path, timeout=10)


# --------------------------------------------------------------------------- up / status / down

def test_up_status_down_as_detached_subprocesses(tmp_path):
    dir = tmp_path / "sb"
    started = time.monotonic()
    up = run_stack("up", "--dir", str(dir), "--api-port", "0", "--zk-port", "0")
    assert up.returncode == 0, up.stderr
    assert time.monotonic() - started < 60
    info = json.loads(up.stdout)
    assert info["running"] is True
    pids = {c["name"]: c["pid"] for c in info["components"]}
    assert set(pids) == {"zookeeper", "registry"}
    try:
        # the command that started them has exited; they still serve
        health = httpx.get(info["api_url"] + "/health", timeout=10)
        assert health.status_code == 200 and health.json()["zookeeper"] == "healthy"
        host, port = info["zk_hosts"].split(":")
        # srvr alone, as a deployment's ZooKeeper allows
        assert info["four_letter_words"] == "srvr"
        assert zkmod.server_mode(zkmod.four_letter_word(host, int(port), "srvr")) == "standalone"
        assert "not in the whitelist" in zkmod.four_letter_word(host, int(port), "ruok")
        assert info["env"] == {"CONFIG_SERVICE_URL": info["api_url"], "ZOOKEEPER_HOSTS": info["zk_hosts"]}
        assert (dir / "state.json").exists() and (dir / "registry.log").exists()
        assert (dir / "zookeeper" / "zookeeper.log").exists()
        for pid in pids.values():
            assert os.getpgid(pid) == pid  # own process group, so down can kill the group

        st = run_stack("status", "--dir", str(dir))
        assert st.returncode == 0 and json.loads(st.stdout)["running"] is True

        again = run_stack("up", "--dir", str(dir), "--api-port", "0", "--zk-port", "0")
        assert again.returncode == 0, again.stderr
        assert {c["name"]: c["pid"] for c in json.loads(again.stdout)["components"]} == pids
        assert "already running" in again.stderr

        env = run_stack("env", "--dir", str(dir))
        assert env.stdout.strip() == (f"export CONFIG_SERVICE_URL={info['api_url']} "
                                      f"ZOOKEEPER_HOSTS={info['zk_hosts']}")
    finally:
        down = run_stack("down", "--dir", str(dir))
    assert down.returncode == 0, down.stderr
    assert sorted(json.loads(down.stdout)["stopped"]) == ["registry", "zookeeper"]
    for pid in pids.values():
        assert not proc.pid_alive(pid)
    assert processes_mentioning(str(dir)) == []
    assert not (dir / "state.json").exists()
    assert (dir / "registry.log").exists()  # logs are kept
    assert json.loads(run_stack("down", "--dir", str(dir)).stdout) == {"stopped": []}
    st = run_stack("status", "--dir", str(dir))
    assert st.returncode == 1 and json.loads(st.stdout) is None


def test_status_of_an_empty_directory_is_none(tmp_path):
    assert stack.status(tmp_path / "nothing") is None
    assert stack.down(tmp_path / "nothing") == []


def test_up_restarts_a_dead_registry_on_the_same_port(tmp_path):
    dir = tmp_path / "sb"
    info = stack.up(dir, api_port=0, zk_port=0)
    try:
        reg = info.component("registry")
        os.killpg(reg.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while stack.status(dir).component("registry").running and time.monotonic() < deadline:
            time.sleep(0.05)
        now = stack.status(dir)
        assert now.component("registry").running is False and now.component("zookeeper").running
        assert now.running is False
        again = stack.up(dir, api_port=0, zk_port=0)
        assert again.api_url == info.api_url and again.running
        assert again.component("registry").pid != reg.pid
        assert again.component("zookeeper").pid == info.component("zookeeper").pid
        assert httpx.get(again.api_url + "/health", timeout=10).status_code == 200
    finally:
        assert sorted(stack.down(dir)) == ["registry", "zookeeper"]


def test_default_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("REGCTL_SANDBOX_DIR", str(tmp_path / "explicit"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    assert stack.default_dir() == tmp_path / "explicit"
    monkeypatch.delenv("REGCTL_SANDBOX_DIR")
    assert stack.default_dir() == tmp_path / "state" / "regctl" / "sandbox"
    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert stack.default_dir() == tmp_path / "home" / ".local" / "state" / "regctl" / "sandbox"


def test_info_env_line_and_dict():
    info = stack.SandboxInfo("/d", "http://127.0.0.1:8082", "127.0.0.1:2181", "/services",
                             (stack.Component("zookeeper", 1, 2181, True, "/d/zk.log"),), False)
    assert info.env_line() == "export CONFIG_SERVICE_URL=http://127.0.0.1:8082 ZOOKEEPER_HOSTS=127.0.0.1:2181"
    d = info.to_dict()
    assert d["api_url"] == "http://127.0.0.1:8082" and d["components"][0]["name"] == "zookeeper"
    json.dumps(d)


# --------------------------------------------------------------------------- failures

@pytest.mark.parametrize("which, flag", [("zk_port", "--zk-port"), ("api_port", "--api-port")])
def test_port_in_use_names_the_port_and_the_flag(tmp_path, which, flag):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        kwargs = {"api_port": 0, "zk_port": 0, which: port}
        with pytest.raises(SandboxError) as err:
            stack.up(tmp_path / "sb", **kwargs)
    assert str(port) in str(err.value) and flag in str(err.value)
    assert stack.status(tmp_path / "sb") is None
    assert processes_mentioning(str(tmp_path / "sb")) == []


def test_zookeeper_not_found_is_a_clear_error(tmp_path):
    empty = tmp_path / "no-zookeeper-here"
    empty.mkdir()
    env = {**os.environ, "ZOOKEEPER_HOME": str(empty)}
    result = run_stack("up", "--dir", str(tmp_path / "sb"), "--api-port", "0", "--zk-port", "0", env=env)
    assert result.returncode == 3
    assert "ZooKeeper not found" in result.stderr
    assert "apt-get install zookeeper" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "sb" / "state.json").exists()
    with pytest.raises(SandboxError, match="ZooKeeper not found") as err:
        zkmod.find_zookeeper({"PATH": os.environ["PATH"]}, debian_jar=tmp_path / "missing.jar")
    assert "apt-get install zookeeper" in str(err.value)


def test_java_not_found_is_a_clear_error(tmp_path):
    with pytest.raises(SandboxError, match="Java not found") as err:
        zkmod.find_java({"PATH": str(tmp_path), "JAVA_HOME": str(tmp_path / "nojava")})
    assert "default-jre-headless" in str(err.value)


def test_zookeeper_that_dies_at_start_points_at_its_log(tmp_path, monkeypatch):
    home = tmp_path / "broken-zk"
    (home / "lib").mkdir(parents=True)
    (home / "lib" / "zookeeper-3.9.9.jar").write_bytes(b"not a jar")
    monkeypatch.setenv("ZOOKEEPER_HOME", str(home))
    dir = tmp_path / "sb"
    with pytest.raises(SandboxError, match="ZooKeeper failed to start") as err:
        stack.up(dir, api_port=0, zk_port=0, timeout=30)
    assert "zookeeper.log" in str(err.value)
    assert (dir / "zookeeper" / "zookeeper.log").exists()
    assert stack.status(dir) is None
    assert processes_mentioning(str(dir)) == []


# --------------------------------------------------------------------------- demo

def test_demo_plants_the_documented_services(demo_sandbox):
    info = demo_sandbox
    assert info.demo and info.running
    assert {c.name for c in info.components} == {"zookeeper", "registry", "demo"}
    planted = json.loads((Path(info.dir) / "demo.json").read_text())
    assert planted["services"] == sorted(["asr-service", "nmt-service", "tts-service", "audit-service",
                                          "legacy-billing"])

    asr = api(info, "/services/asr-service").json()
    assert sorted(i["instance_id"] for i in asr) == ["asr-service-1", "asr-service-2"]
    for inst in asr:
        meta = inst["service_metadata"]
        assert meta["status"] == "healthy" and meta["version"] and meta["region"]
        assert inst["health_check_url"] == inst["service_url"] + "/health"
        assert httpx.get(inst["health_check_url"], timeout=5).status_code == 200
    assert api(info, "/services/asr-service/url").json()["url"] in {i["service_url"] for i in asr}

    nmt = api(info, "/services/nmt-service").json()
    assert [i["instance_id"] for i in nmt] == ["nmt-service-1"]

    tts = api(info, "/services/tts-service").json()
    assert [(i["instance_id"], i["status"]) for i in tts] == [("tts-service-1", "healthy")]
    assert httpx.get(tts[0]["health_check_url"], timeout=5).status_code == 500  # a zombie
    assert api(info, "/services/tts-service/url").status_code == 200  # still handed out
    probe = httpx.post(info.api_url + "/api/v1/registry/services/tts-service/health", timeout=10)
    assert probe.json() == {"status": "unknown"}  # the earlier generation never says unhealthy

    audit = api(info, "/services/audit-service").json()
    assert [(i["instance_id"], i["status"]) for i in audit] == [("audit-service-1", "unknown")]
    assert "status" not in audit[0]["service_metadata"]
    assert api(info, "/services/audit-service/url").status_code == 404
    assert httpx.get(audit[0]["health_check_url"], timeout=5).status_code == 200

    assert api(info, "/services/legacy-billing").json() == []
    rows = {r["service_name"]: r for r in api(info, "/services").json()}
    assert rows["legacy-billing"]["status"] == "unknown"
    assert rows["audit-service"]["status"] == "healthy"  # every registration writes healthy
    assert "config-service" not in rows  # it registers itself in ZooKeeper only

    me = api(info, "/services/config-service").json()
    assert me[0]["instance_id"] == "config-service-1" and me[0]["service_url"] == info.api_url


def test_demo_instances_are_owned_by_the_registry_session(demo_sandbox):
    zk = KazooClient(hosts=demo_sandbox.zk_hosts)
    zk.start(timeout=15)
    try:
        owners = set()
        for service in zk.get_children("/services"):
            for child in zk.get_children(f"/services/{service}/instances"):
                owners.add(zk.exists(f"/services/{service}/instances/{child}").ephemeralOwner)
        assert len(owners) == 1 and 0 not in owners
        assert "legacy-billing" in zk.get_children("/services")  # persistent parent stays
        assert zk.get_children("/services/legacy-billing/instances") == []
    finally:
        zk.stop()
        zk.close()


@pytest.mark.slow
def test_restart_registry_empties_instances_but_keeps_rows(tmp_path):
    dir = tmp_path / "sb"
    info = stack.up(dir, api_port=0, zk_port=0, demo=True)
    try:
        before = {r["service_name"]: r for r in api(info, "/services").json()}
        assert len(api(info, "/services/asr-service").json()) == 2
        old_pid = info.component("registry").pid
        messages: list[str] = []
        after = stack.restart_registry(dir, progress=messages.append)
        assert messages
        assert after.api_url == info.api_url and after.component("registry").pid != old_pid
        assert after.component("demo").running  # the services still run ...
        zk = KazooClient(hosts=info.zk_hosts, timeout=10)
        zk.start(timeout=15)
        try:  # ... but their nodes went with the old session, and nobody re-registered
            for name in ("asr-service", "nmt-service", "tts-service", "audit-service"):
                assert zk.get_children(f"/services/{name}/instances") == [], name
        finally:
            zk.stop()
            zk.close()
        for name in ("nmt-service", "tts-service", "audit-service"):
            assert api(after, f"/services/{name}").json() == []
        # the list read before the restart is still cached ("Redis" outlived the registry): stale
        assert len(api(after, "/services/asr-service").json()) == 2
        rows = {r["service_name"]: r for r in api(after, "/services").json()}
        assert set(rows) == set(before)
        assert rows["asr-service"]["status"] == "healthy"
        assert len(api(after, "/services/config-service").json()) == 1  # it registers itself again
    finally:
        assert sorted(stack.down(dir)) == ["demo", "registry", "zookeeper"]
    assert processes_mentioning(str(dir)) == []


def test_up_after_everything_died_starts_afresh_on_the_requested_ports(tmp_path):
    dir = tmp_path / "sb"
    info = stack.up(dir, api_port=0, zk_port=0)
    try:
        for comp in info.components:
            os.killpg(comp.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while any(c.running for c in stack.status(dir).components) and time.monotonic() < deadline:
            time.sleep(0.05)
        api_port = proc.free_port()
        again = stack.up(dir, api_port=api_port, zk_port=0)
        assert again.running and again.api_url == f"http://127.0.0.1:{api_port}"
    finally:
        stack.down(dir)
    assert processes_mentioning(str(dir)) == []


# --------------------------------------------------------------------------- zookeeper module

def test_four_letter_word_on_a_closed_port_is_empty(tmp_path):
    port = proc.free_port()
    assert zkmod.four_letter_word("127.0.0.1", port, "ruok", timeout=1) == ""
    with pytest.raises(SandboxError, match="did not start serving"):
        zkmod.wait_until_serving("127.0.0.1", port, timeout=0.5)


def test_four_letter_words_on_the_real_server(zk_server, zk_srvr_only):
    assert zkmod.four_letter_word("127.0.0.1", zk_server.port, "ruok") == "imok"
    assert zkmod.server_mode(zkmod.four_letter_word("127.0.0.1", zk_server.port, "srvr")) == "standalone"
    mntr = parse_mntr(zkmod.four_letter_word("127.0.0.1", zk_server.port, "mntr"))
    assert mntr["zk_server_state"] == "standalone"
    assert "not in the whitelist" in zkmod.four_letter_word("127.0.0.1", zk_server.port, "envi")
    # the deployment's whitelist: srvr and nothing else
    assert zkmod.server_mode(zkmod.four_letter_word("127.0.0.1", zk_srvr_only.port, "srvr")) == "standalone"
    for word in ("ruok", "mntr", "cons", "dump", "conf"):
        assert "not in the whitelist" in zkmod.four_letter_word("127.0.0.1", zk_srvr_only.port, word), word


@pytest.mark.parametrize("value, words", [
    (None, "srvr"), ("all", zkmod.ALL_FOUR_LETTER_WORDS), ("ruok, MNTR,ruok", "srvr,ruok,mntr"),
    ("cons,srvr", "srvr,cons")])
def test_four_letter_word_option_values(value, words):
    assert zkmod.parse_four_letter_words(value) == words  # srvr first: ZooKeeper answers it whatever the list


def test_four_letter_word_option_refuses_what_is_not_a_word():
    with pytest.raises(ValueError, match="'nope' is not a ZooKeeper four-letter word"):
        zkmod.parse_four_letter_words("srvr,nope")


@pytest.mark.slow
def test_three_member_ensemble_on_loopback(tmp_path):
    members = zkmod.start_zookeeper(tmp_path / "ens", 0, members=3)
    try:
        modes = {i: zkmod.server_mode(t) for i, t in zkmod.wait_for(members, timeout=60).items()}
        assert sorted(modes.values()) == ["follower", "follower", "leader"]
        hosts = zkmod.connection_string(members)
        zk = KazooClient(hosts=hosts)
        zk.start(timeout=15)
        try:
            zk.create("/x", b"1")
        finally:
            zk.stop()
            zk.close()
    finally:
        assert sorted(zkmod.stop_zookeeper(members)) == [1, 2, 3]
    assert processes_mentioning(str(tmp_path / "ens")) == []


# --------------------------------------------------------------------------- generations

@pytest.mark.slow
def test_later_generation_sandbox_shows_the_monitor_and_seeded_rows(tmp_path):
    from regctl.sandbox.registry.monitor import SEEDED_SERVICES

    dir = tmp_path / "sb"
    info = stack.up(dir, api_port=0, zk_port=0, demo=True,
                    shape=stack.SandboxShape(generation="later", monitor_interval=0.5))
    try:
        assert info.generation == "later" and info.to_dict()["generation"] == "later"
        rows = {r["service_name"]: r for r in api(info, "/services").json()}
        assert set(SEEDED_SERVICES) <= set(rows) and "registered_at" not in rows["auth-service"]

        def verdict(name):  # once a cycle has seen the demo's instances (the first one ran before them)
            resp = httpx.get(info.api_url + "/internal/health-status", params={"service_id": name}, timeout=10)
            return resp.json() if resp.status_code == 200 and resp.json()["total_instances"] else None
        deadline = time.monotonic() + 60
        while (verdict("tts-service") is None or verdict("asr-service") is None) and time.monotonic() < deadline:
            time.sleep(0.2)
        # the zombie: the monitor says unhealthy, its row follows, /url still hands it out
        assert verdict("tts-service")["state"] == "unhealthy"
        assert verdict("asr-service")["state"] == "healthy"
        assert {r["service_name"]: r for r in api(info, "/services").json()}["tts-service"]["status"] == "unhealthy"
        assert api(info, "/services/tts-service/url").status_code == 200
        with pytest.raises(SandboxError, match="later generation, not earlier"):
            stack.up(dir, shape=stack.SandboxShape(generation="earlier"))
    finally:
        stack.down(dir)
    assert processes_mentioning(str(dir)) == []


def test_regctl_sandbox_up_generation_later(tmp_path):
    from tests.helpers import assert_one_line_error, run_cli

    dir = tmp_path / "sb"
    res = run_cli("sandbox", "up", "--generation", "later", "--dir", dir, "--api-port", "0", "--zk-port", "0",
                  "--four-letter-words", "all", "-o", "json")
    try:
        assert res.exit_code == 0, res
        assert res.json["generation"] == "later"
        assert res.json["four_letter_words"] == zkmod.ALL_FOUR_LETTER_WORDS
        host, port = res.json["zk_hosts"].split(":")
        assert zkmod.four_letter_word(host, int(port), "ruok") == "imok"  # opened
        url = res.json["api_url"]
        assert httpx.get(url + "/internal/health-status", timeout=10).status_code == 422  # the later one's tell
        assert len(httpx.get(url + "/api/v1/registry/services", timeout=10).json()) == 13
        assert_one_line_error(run_cli("sandbox", "up", "--generation", "earlier", "--dir", dir), 3)
        assert_one_line_error(run_cli("sandbox", "up", "--generation", "middle", "--dir", dir), 2)
        refused = run_cli("sandbox", "up", "--four-letter-words", "srvr", "--dir", dir)  # another whitelist
        assert_one_line_error(refused, 3)
        assert "four-letter words" in refused.stderr and "sandbox down" in refused.stderr
        bad = run_cli("sandbox", "up", "--four-letter-words", "ruok,hello", "--dir", dir)
        assert_one_line_error(bad, 2)
        assert "'hello' is not a ZooKeeper four-letter word" in bad.stderr
    finally:
        stack.down(dir)


@pytest.mark.slow
def test_restart_registry_with_linger_leaves_the_old_sessions_nodes_until_they_time_out(tmp_path):
    dir = tmp_path / "sb"
    info = stack.up(dir, api_port=0, zk_port=0)
    zk = KazooClient(hosts=info.zk_hosts, timeout=10)
    zk.start(timeout=15)
    try:
        body = {"service_name": "svc", "service_url": "http://svc:1",
                "service_metadata": {"instance_id": "svc-1", "status": "healthy"}}
        assert httpx.post(info.api_url + "/api/v1/registry/register", json=body, timeout=10).status_code == 201
        own_path = "/services/config-service/instances/config-service-1"
        old_owner = zk.exists(own_path).ephemeralOwner
        res = run_stack("restart-registry", "--dir", str(dir), "--linger")
        assert res.returncode == 0, res.stderr
        stat = zk.exists("/services/svc/instances/svc-1")
        assert stat is not None and stat.ephemeralOwner == old_owner  # lingering
        own = zk.exists(own_path)  # itself: rewritten in place, still the dead session's
        assert (own.version, own.ephemeralOwner) == (1, old_owner)
        new_session = int((dir / stack.SESSION_FILE).read_text(), 16)
        assert new_session != old_owner
        deadline = time.monotonic() + 60
        while zk.exists("/services/svc/instances/svc-1") is not None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert zk.exists("/services/svc/instances/svc-1") is None
        assert zk.exists(own_path) is None  # gone with the old session: no node of its own until it starts again
        assert httpx.get(info.api_url + "/health", timeout=10).json()["zookeeper"] == "healthy"
    finally:
        zk.stop()
        zk.close()
        stack.down(dir)
