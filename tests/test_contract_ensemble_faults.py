"""A three-member ZooKeeper ensemble losing members: the leader while commands run, then the quorum.

The ensemble is the real sandbox (``stack.up(ensemble=3)``: three ZooKeeper
processes on loopback plus the contract registry connected to all of them).

The contract when the leader dies (decided here, README "Failures"):

* every run ends within ``3 x --timeout + 2 s`` with exit 0 or, for a run caught
  in the election, exit 3 with exactly one ``regctl: error:`` line -- never a
  traceback, never exit 70;
* ``list``/``inspect`` ride out a connection lost in the middle of a read (kazoo
  moves the session to another member and the read is retried once), so in
  practice every run exits 0; at most one run may exit 3;
* once the remaining members have elected a leader, every run exits 0 and sees the
  same services; ``watch`` keeps printing events.

Two members down (no quorum): ``doctor`` fails ``zookeeper.quorum``; ``list`` and
``inspect`` exit 3 with one line, within the bound above.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from regctl.http.api import RegistryApi
from regctl.sandbox import proc, stack
from regctl.sandbox import zookeeper as zkmod
from tests.helpers import assert_one_line_error, run_cli

pytestmark = pytest.mark.slow

TIMEOUT = 3.0
BOUND = 3 * TIMEOUT + 2 + 1.5  # + the child interpreter's start-up


@pytest.fixture(scope="module")
def ensemble(tmp_path_factory):
    dir = tmp_path_factory.mktemp("ensemble")
    try:
        info = stack.up(dir, api_port=0, zk_port=0, shape=stack.SandboxShape(ensemble=3), timeout=90)
    except Exception as exc:
        stack.down(dir)
        pytest.fail(f"ensemble sandbox did not start: {exc}", pytrace=False)
    with RegistryApi(info.api_url, timeout=10) as api:
        for name, iid in (("asr-service", "asr-1"), ("asr-service", "asr-2"), ("nmt-service", "nmt-1")):
            api.register({"service_name": name, "service_url": f"http://{iid}.test:80", "health_check_url": None,
                          "service_metadata": {"instance_id": iid, "status": "healthy"}})
    try:
        yield info
    finally:
        stack.down(dir)


def env_of(info) -> dict:
    return {"CONFIG_SERVICE_URL": info.api_url, "ZOOKEEPER_HOSTS": info.zk_hosts,
            "ZOOKEEPER_BASE_PATH": info.base_path}


def members(info) -> list:
    return [c for c in stack.status(Path(info.dir)).components if c.name.startswith("zookeeper-")]


def modes(info) -> dict:
    return {c.name: zkmod.server_mode(zkmod.four_letter_word("127.0.0.1", c.port, "srvr", timeout=2.0))
            for c in members(info)}


def wait_serving(info, n: int, timeout: float = 30.0) -> dict:
    """Until ``n`` members serve with exactly one leader; return the modes."""
    deadline = time.monotonic() + timeout
    while True:
        now = modes(info)
        serving = [m for m in now.values() if m in ("leader", "follower")]
        if len(serving) >= n and list(now.values()).count("leader") == 1:
            return now
        if time.monotonic() > deadline:
            raise AssertionError(f"ensemble not serving with {n} members: {now}")
        time.sleep(0.2)


def kill(info, name: str) -> None:
    comp = next(c for c in members(info) if c.name == name)
    os.killpg(comp.pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while proc.pid_alive(comp.pid) and time.monotonic() < deadline:
        time.sleep(0.05)


def restore(info) -> None:
    """Bring stopped members back (``stack.up`` restarts only what died) and wait for a full ensemble."""
    again = stack.up(Path(info.dir), timeout=60)
    assert again.running and again.zk_hosts == info.zk_hosts
    wait_serving(info, 3)


def regctl(info, *args: str, timeout: float = 60) -> tuple:
    started = time.monotonic()
    p = subprocess.run([sys.executable, "-m", "regctl", *args, "--timeout", str(TIMEOUT)],
                       env={**os.environ, **env_of(info)}, capture_output=True, text=True, timeout=timeout,
                       stdin=subprocess.DEVNULL)
    return p.returncode, p.stdout, p.stderr, time.monotonic() - started


def assert_clean_failure(code: int, stderr: str, elapsed: float) -> None:
    assert "Traceback" not in stderr, stderr
    assert elapsed < BOUND, (elapsed, stderr)
    if code != 0:
        assert code == 3, (code, stderr)
        assert len([l for l in stderr.splitlines() if l.startswith("regctl: error:")]) == 1, stderr


# --------------------------------------------------------------------------- the sandbox itself

def test_sandbox_up_ensemble_lists_every_member(ensemble):
    assert ensemble.ensemble == 3 and ensemble.running
    hosts = ensemble.zk_hosts.split(",")
    assert len(hosts) == 3 and all(h.startswith("127.0.0.1:") for h in hosts)
    assert f"ZOOKEEPER_HOSTS={ensemble.zk_hosts}" in ensemble.env_line()
    assert sorted(modes(ensemble).values()) == ["follower", "follower", "leader"]
    status = run_cli("sandbox", "status", "--dir", ensemble.dir, "-o", "json")
    assert status.exit_code == 0, status
    names = [c["name"] for c in status.json["components"]]
    assert names == ["zookeeper-1", "zookeeper-2", "zookeeper-3", "registry"]
    assert status.json["ensemble"] == 3 and status.json["env"]["ZOOKEEPER_HOSTS"] == ensemble.zk_hosts
    # asking for another size while it runs is refused, the running one is left alone
    other = run_cli("sandbox", "up", "--dir", ensemble.dir, "--ensemble", "1")
    assert_one_line_error(other, 3)
    assert stack.status(Path(ensemble.dir)).running
    assert_one_line_error(run_cli("sandbox", "up", "--dir", ensemble.dir, "--ensemble", "2"), 2)


# --------------------------------------------------------------------------- the leader dies

def test_list_carries_on_when_the_leader_dies(ensemble):
    before = regctl(ensemble, "list", "--source", "zk", "-o", "json")
    assert before[0] == 0, before
    expected = {s["name"]: s["live_instances"] for s in json.loads(before[1])["services"]}
    assert expected["asr-service"] == 2

    runs: list = []
    stop = threading.Event()

    def loop():
        while not stop.is_set():
            runs.append(regctl(ensemble, "list", "--source", "zk", "-o", "json"))

    leader = next(n for n, m in modes(ensemble).items() if m == "leader")
    t = threading.Thread(target=loop, daemon=True)
    t.start()
    try:
        time.sleep(1.5)
        killed_at = len(runs)
        kill(ensemble, leader)
        wait_serving(ensemble, 2)
        settled = len(runs) + 1  # the run in flight when the election ended may still have been caught
        deadline = time.monotonic() + 20
        while len(runs) < settled + 3 and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        stop.set()
        t.join(timeout=BOUND + 5)
    try:
        assert len(runs) >= settled + 3, runs
        for code, out, err, elapsed in runs:
            assert_clean_failure(code, err, elapsed)
            if code == 0:
                seen = {s["name"]: s["live_instances"] for s in json.loads(out)["services"]}
                assert seen == expected, (seen, expected)
        failures = [r for r in runs if r[0] != 0]
        assert len(failures) <= 1, failures
        assert all(code == 0 for code, *_ in runs[:killed_at]), runs[:killed_at]
        assert all(code == 0 for code, *_ in runs[settled:]), runs[settled:]
        # inspect too, on the two survivors
        code, out, err, _ = regctl(ensemble, "inspect", "asr-service", "--source", "zk", "-o", "json")
        assert code == 0, err
        assert sorted(i["instance_id"] for i in json.loads(out)["instances"]) == ["asr-1", "asr-2"]
    finally:
        restore(ensemble)


def test_watch_keeps_printing_events_when_the_leader_dies(ensemble):
    from tests.test_cli_watch import Watch

    w = Watch(env_of(ensemble), "-o", "json", "--for", "60", "--timeout", str(TIMEOUT))
    try:
        w.event("resync", reason="start", timeout=20)
        leader = next(n for n, m in modes(ensemble).items() if m == "leader")
        kill(ensemble, leader)
        wait_serving(ensemble, 2)
        with RegistryApi(ensemble.api_url, timeout=10) as api:
            deadline = time.monotonic() + 20
            while True:  # the registry's own session may still be moving to a survivor
                try:
                    api.register({"service_name": "tts-service", "service_url": "http://tts-1.test:80",
                                  "health_check_url": None,
                                  "service_metadata": {"instance_id": "tts-1", "status": "healthy"}})
                    break
                except Exception:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.5)
        w.event("added", "tts-service", "tts-1", timeout=30)
        with RegistryApi(ensemble.api_url, timeout=10) as api:
            api.deregister("tts-service", "tts-1")
        w.event("removed", "tts-service", "tts-1", timeout=30)
        w.proc.send_signal(signal.SIGINT)
        code, stderr = w.finish(timeout=10)
        assert code == 0, stderr
        assert "Traceback" not in stderr
        assert not [l for l in stderr.splitlines() if l.startswith("regctl: error:")], stderr
    finally:
        w.stop()
        restore(ensemble)


# --------------------------------------------------------------------------- quorum lost (keep last)

def test_two_members_down_is_a_lost_quorum(ensemble):
    names = [c.name for c in members(ensemble)]
    for name in names[:2]:
        kill(ensemble, name)
    env = {**env_of(ensemble), "REGCTL_DOCTOR_IN_CONTAINER": "0"}

    def quorum_row():
        doc = run_cli("doctor", "zookeeper", "--timeout", "1", "-o", "json", env=env)
        assert doc.exit_code == 1, doc
        rows = [c for c in doc.json["checks"] if c["name"] == "zookeeper.quorum"]
        assert len(rows) == 1, doc
        return rows[0], [c for c in doc.json["checks"] if c["name"] == "zookeeper.members"]

    # at once: the survivor may still believe it leads (it notices after syncLimit ticks), but 1 of 3 is no quorum
    quorum, member_rows = quorum_row()
    assert quorum["status"] == "fail" and "no quorum" in quorum["finding"] and quorum["hint"], quorum
    assert [r["status"] for r in member_rows[:2]] == ["fail", "fail"], member_rows

    # the survivor stops serving once it notices; from then on every ZooKeeper read fails cleanly
    survivor = names[2]
    deadline = time.monotonic() + 30
    while modes(ensemble)[survivor] is not None:
        assert time.monotonic() < deadline, modes(ensemble)
        time.sleep(0.2)
    quorum, member_rows = quorum_row()
    assert quorum["status"] == "fail" and [r["status"] for r in member_rows] == ["fail"] * 3, member_rows
    assert "not currently serving" in member_rows[2]["finding"]

    for args in (("list", "--source", "zk"), ("inspect", "asr-service", "--source", "zk"),
                 ("list", "--source", "zk", "-o", "json")):
        code, out, err, elapsed = regctl(ensemble, *args)
        assert code == 3, (args, out, err)
        assert_clean_failure(code, err, elapsed)
        if "json" in args:
            assert json.loads(out)["error"]["code"] == 3
