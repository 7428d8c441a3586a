"""``sandbox up`` under interruption and after crashes: no process left behind, registrations come back.

Real subprocesses, real ZooKeeper; processes are checked by pid (and by any command line
that mentions the sandbox directory).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from kazoo.client import KazooClient

from regctl.sandbox import proc, stack
from regctl.sandbox.recovery import check_registrations
from tests.test_sandbox_stack import api, processes_mentioning
from tests.helpers import wait_until

DEMO_LIVE = {("asr-service", "asr-service-1"), ("asr-service", "asr-service-2"), ("nmt-service", "nmt-service-1"),
             ("tts-service", "tts-service-1"), ("audit-service", "audit-service-1")}




def read_state(dir: Path) -> dict:
    try:
        return json.loads((dir / stack.STATE_FILE).read_text())
    except (OSError, ValueError):
        return {}


def owners(info) -> dict:
    """{(service, instance_id): ephemeralOwner} of every instance node in the sandbox."""
    zk = KazooClient(hosts=info.zk_hosts, timeout=10)
    zk.start(timeout=15)
    try:
        out = {}
        for svc in zk.get_children(info.base_path):
            path = f"{info.base_path}/{svc}/instances"
            if zk.exists(path) is None:
                continue
            for iid in zk.get_children(path):
                stat = zk.exists(f"{path}/{iid}")
                if stat is not None:
                    out[(svc, iid)] = stat.ephemeralOwner
        return out
    finally:
        zk.stop()
        zk.close()


# --------------------------------------------------------------------------- Ctrl-C during up

def _interrupted_up(dir: Path, point: str, command: list[str]) -> tuple[int | None, set[int]]:
    """Start ``command``; SIGINT it once ``point`` is in state.json; return (exit code, every pid seen)."""
    child = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    seen: set[int] = set()
    sent = False
    try:
        deadline = time.monotonic() + 90
        while child.poll() is None and time.monotonic() < deadline:
            comps = read_state(dir).get("components", {})
            seen.update(c["pid"] for c in comps.values() if isinstance(c, dict) and c.get("pid"))
            if point in comps and not sent:
                child.send_signal(signal.SIGINT)
                sent = True
            time.sleep(0.01)
        out, err = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
    comps = read_state(dir).get("components", {})
    seen.update(c["pid"] for c in comps.values() if isinstance(c, dict) and c.get("pid"))
    assert "Traceback" not in err, err
    return (child.returncode if sent else None), seen


@pytest.mark.slow
@pytest.mark.parametrize("point", ["zookeeper", "registry", "demo"])
def test_sigint_during_up_leaves_no_process_behind(tmp_path, point):
    dir = tmp_path / "sb"
    cmd = [sys.executable, "-m", "regctl.sandbox.stack", "up", "--dir", str(dir), "--api-port", "0",
           "--zk-port", "0", "--demo"]
    code, seen = _interrupted_up(dir, point, cmd)
    assert seen, "nothing was ever recorded in state.json"
    if code is not None and code != 0:  # interrupted before it finished (the usual case)
        assert code == 130
        assert all(not proc.pid_alive(pid) for pid in seen), seen
        assert processes_mentioning(str(dir)) == []
        assert stack.status(dir) is None  # nothing runs, so nothing is left to stop
    stack.down(dir)  # a state it left behind (if it finished first) is one down can use
    assert all(wait_until(lambda p=pid: not proc.pid_alive(p), timeout=15) for pid in seen), seen
    assert processes_mentioning(str(dir)) == []
    assert not (dir / stack.STATE_FILE).exists()


@pytest.mark.slow
def test_ctrl_c_during_regctl_sandbox_up_stops_what_it_started(tmp_path):
    dir = tmp_path / "sb"
    cmd = [sys.executable, "-m", "regctl", "sandbox", "up", "--dir", str(dir), "--api-port", "0", "--zk-port", "0"]
    code, seen = _interrupted_up(dir, "registry", cmd)
    if code is not None and code != 0:
        assert code == 130
        assert all(not proc.pid_alive(pid) for pid in seen), seen
    stack.down(dir)
    assert all(wait_until(lambda p=pid: not proc.pid_alive(p), timeout=15) for pid in seen), seen
    assert processes_mentioning(str(dir)) == []


def test_an_interrupted_restart_keeps_what_already_ran(tmp_path, monkeypatch):
    """Ctrl-C while `up` restarts a dead registry: the registry it started is stopped, ZooKeeper stays."""
    dir = tmp_path / "sb"
    info = stack.up(dir, api_port=0, zk_port=0)
    try:
        reg = info.component("registry")
        os.killpg(reg.pid, signal.SIGKILL)
        assert wait_until(lambda: not stack.status(dir).component("registry").running, timeout=15)
        spawned = []
        real_spawn = proc.spawn

        def spawn_then_interrupt(*a, **kw):
            pid = real_spawn(*a, **kw)
            spawned.append(pid)
            os.kill(os.getpid(), signal.SIGINT)  # a real Ctrl-C, arriving the moment the child exists
            return pid
        monkeypatch.setattr(proc, "spawn", spawn_then_interrupt)
        with pytest.raises(KeyboardInterrupt):
            stack.up(dir)
        monkeypatch.setattr(proc, "spawn", real_spawn)
        assert spawned and wait_until(lambda: not proc.pid_alive(spawned[0]), timeout=15)
        now = stack.status(dir)
        assert now.component("zookeeper").running and now.component("registry") is None
        assert now.component("zookeeper").pid == info.component("zookeeper").pid
    finally:
        assert stack.down(dir) == ["zookeeper"]
    assert processes_mentioning(str(dir)) == []


# --------------------------------------------------------------------------- crashes

@pytest.mark.slow
@pytest.mark.parametrize("crash", ["zookeeper", "registry"])
def test_up_after_a_crash_brings_the_registrations_back_under_the_new_session(tmp_path, crash):
    dir = tmp_path / "sb"
    info = stack.up(dir, api_port=0, zk_port=0, demo=True)
    try:
        before = owners(info)
        old_owner = before[("config-service", "config-service-1")]
        assert DEMO_LIVE <= set(before) and set(before.values()) == {old_owner}
        victim = info.component(crash)
        os.killpg(victim.pid, signal.SIGKILL)
        assert wait_until(lambda: not stack.status(dir).component(crash).running, timeout=15)
        messages: list[str] = []
        again = stack.up(dir, progress=messages.append)
        assert again.running, again
        # its own node was rewritten in place under the dead session, as the real service does: said so
        assert len(again.warnings) == 1 and "own node was rewritten in place" in again.warnings[0], again.warnings
        assert any("register again" in m for m in messages), messages
        assert again.component("registry").pid != info.component("registry").pid
        assert again.component("demo").pid != info.component("demo").pid
        # every demo instance belongs to the registry's new session (deregistered, then registered)...
        new_owner = int((dir / stack.SESSION_FILE).read_text(), 16)
        assert new_owner != old_owner
        now = owners(again)
        assert {k: now.get(k) for k in DEMO_LIVE} == {k: new_owner for k in DEMO_LIVE}
        assert now[("config-service", "config-service-1")] == old_owner
        # ...so they outlive the old session, which ends one session timeout later, taking its own node
        assert wait_until(lambda: old_owner not in owners(again).values(), timeout=90)
        after = owners(again)
        assert DEMO_LIVE == set(after)
        assert len(api(again, "/services/asr-service").json()) == 2
        assert httpx.get(again.api_url + "/api/v1/registry/services/nmt-service/url", timeout=10).status_code == 200
    finally:
        stack.down(dir)
    assert processes_mentioning(str(dir)) == []


def test_check_registrations_names_what_did_not_come_back(zk_server, tmp_path):
    base = "/regctl-recovery-test/services"
    own, other = KazooClient(hosts=zk_server.hosts), KazooClient(hosts=zk_server.hosts)
    own.start(timeout=15)
    other.start(timeout=15)
    try:
        own.create(f"{base}/config-service/instances/config-service-1", b"{}", ephemeral=True, makepath=True)
        own.create(f"{base}/asr-service/instances/asr-service-1", b"{}", ephemeral=True, makepath=True)
        other.create(f"{base}/old/instances/old-1", b"{}", ephemeral=True, makepath=True)  # a previous session's
        assert "current session is not known" in check_registrations(
            tmp_path, {"zk_hosts": zk_server.hosts, "base_path": base})[0]
        (tmp_path / stack.SESSION_FILE).write_text(f"0x{own.client_id[0]:x}\n")  # what the registry writes
        (tmp_path / "demo.json").write_text(json.dumps({"instances": [
            {"service_name": "asr-service", "registered_id": "asr-service-1", "deregister": False},
            {"service_name": "nmt-service", "registered_id": "nmt-service-1", "deregister": False},
            {"service_name": "legacy-billing", "registered_id": "legacy-billing-1", "deregister": True}]}))
        state = {"zk_hosts": zk_server.hosts, "base_path": base}
        warnings = check_registrations(tmp_path, state)
        assert len(warnings) == 2, warnings
        assert "did not register again: nmt-service/nmt-service-1" in warnings[0]
        assert "asr-service" not in warnings[0] and "legacy-billing" not in warnings[0]
        assert "1 instance(s) belong to the registry's previous session" in warnings[1]
        assert "old/old-1" in warnings[1] and "regctl import" in warnings[1]
        other.delete(f"{base}/old/instances/old-1")
        (tmp_path / "demo.json").unlink()
        assert check_registrations(tmp_path, state) == []
        # its own node under a previous session (rewritten in place after a crash): named on its own
        own.delete(f"{base}/config-service/instances/config-service-1")
        other.create(f"{base}/config-service/instances/config-service-1", b"{}", ephemeral=True)
        assert ["own node was rewritten in place" in w for w in check_registrations(tmp_path, state)] == [True]
    finally:
        own.stop()
        other.stop()
        own.close()
        other.close()
