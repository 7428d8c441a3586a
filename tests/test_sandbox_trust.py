"""The sandbox trusts only what it made: its directory, its files, its processes.

Attacks replayed for real: symlinks planted where the sandbox writes (zoo.cfg, registry.log,
state.json), a foreign process named in state.json (a ``setsid sleep``), a directory others
can write or that regctl did not create. What must hold: nothing written or killed outside the
sandbox's own files and processes, a clear one-line refusal (exit 2) for a directory it cannot
trust, and a normal up/down still stopping its own processes.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import time
from pathlib import Path

import pytest

from regctl.errors import SandboxError
from regctl.sandbox import proc, stack, statedir
from tests.helpers import run_cli


@pytest.fixture
def foreign_sleep():
    """A process of the same user in its own session, like one the attacker names in state.json."""
    p = subprocess.Popen(["setsid", "sleep", "1000"], stdin=subprocess.DEVNULL)  # setsid execs sleep in place
    deadline = time.monotonic() + 5
    while Path(f"/proc/{p.pid}/cmdline").read_bytes().split(b"\0")[0] != b"sleep" and time.monotonic() < deadline:
        time.sleep(0.02)
    yield p
    p.kill()
    p.wait(timeout=5)


def fresh_dir(tmp_path: Path) -> Path:
    """A state directory as regctl makes it (created 0700, with its marker)."""
    dir = tmp_path / "sb"
    statedir.claim(dir)
    return dir


def test_the_directory_is_created_owner_only_with_a_marker(tmp_path):
    dir = tmp_path / "new" / "sb"
    statedir.claim(dir)
    assert stat.S_IMODE(os.stat(dir).st_mode) == 0o700
    assert (dir / statedir.MARKER).is_file()
    statedir.claim(dir)  # its own directory again: accepted


@pytest.mark.parametrize("how", ["group-writable", "other-writable", "not-regctls", "symlink", "foreign-owner"])
def test_an_untrusted_directory_is_refused_in_one_line_exit_2(tmp_path, how):
    dir = tmp_path / "sb"
    if how == "foreign-owner":
        if os.getuid() == 0:  # root: hand a directory of its making to another user
            statedir.claim(dir)
            os.chown(dir, 65534, 65534)
        else:
            dir = Path("/")  # owned by root, not by the user running the tests
    elif how == "symlink":  # a symlink is followed to its directory, which must pass the same checks
        (tmp_path / "real").mkdir(mode=0o700)
        (tmp_path / "real" / "state.json").write_text("{}")
        dir.symlink_to(tmp_path / "real")
    else:
        statedir.claim(dir)
        if how == "not-regctls":
            (dir / statedir.MARKER).unlink()
            (dir / "state.json").write_text("{}")
        else:
            os.chmod(dir, 0o770 if how == "group-writable" else 0o707)
    for args in (["sandbox", "up", "--api-port", "0", "--zk-port", "0"], ["sandbox", "down"],
                 ["sandbox", "status"]):
        r = run_cli(*args, "--dir", str(dir))
        assert r.exit_code == 2, (args, r)
        lines = r.stderr.strip().splitlines()
        assert lines[0].startswith("regctl: error: refusing the sandbox directory"), (args, r.stderr)
        assert "Traceback" not in r.stderr
    assert not (tmp_path / "sb" / "zookeeper").exists()


def test_an_empty_directory_of_ones_own_is_adopted(tmp_path):
    dir = tmp_path / "mine"
    dir.mkdir(mode=0o700)
    os.chmod(dir, 0o700)
    statedir.claim(dir)
    assert (dir / statedir.MARKER).is_file()


def test_a_planted_zoo_cfg_symlink_is_refused_and_its_target_untouched(tmp_path):
    dir = fresh_dir(tmp_path)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    (dir / "zookeeper").mkdir(mode=0o700)
    (dir / "zookeeper" / "zoo.cfg").symlink_to(victim)
    with pytest.raises(SandboxError) as err:
        stack.up(dir, api_port=0, zk_port=0, timeout=30)
    assert "symlink" in err.value.message
    assert victim.read_text() == "precious\n"
    assert stack.down(dir) == []


def test_a_planted_registry_log_symlink_is_refused_and_its_target_untouched(tmp_path):
    dir = fresh_dir(tmp_path)
    victim = tmp_path / "victim.log"
    victim.write_text("precious\n")
    (dir / "registry.log").symlink_to(victim)
    refused: list[str] = []
    with pytest.raises(SandboxError) as err:
        stack.up(dir, api_port=0, zk_port=0, timeout=60)
    assert "symlink" in err.value.message
    assert victim.read_text() == "precious\n"
    assert stack.down(dir, refused) == [] and refused == []  # what up started, it stopped again


def test_a_planted_symlink_is_one_line_exit_2_through_the_cli(tmp_path):
    dir = fresh_dir(tmp_path)
    victim = tmp_path / "victim.log"
    victim.write_text("precious\n")
    (dir / "registry.log").symlink_to(victim)
    r = run_cli("sandbox", "up", "--dir", str(dir), "--api-port", "0", "--zk-port", "0")
    assert r.exit_code == 2, r
    assert r.stderr.strip().splitlines()[-1].startswith("regctl: error: refusing to write"), r.stderr
    assert "symlink" in r.stderr and "Traceback" not in r.stderr
    assert victim.read_text() == "precious\n"
    assert stack.down(dir) == []


def test_a_planted_zookeeper_directory_symlink_is_refused(tmp_path):
    dir = fresh_dir(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (dir / "zookeeper").symlink_to(elsewhere)
    with pytest.raises(SandboxError):
        stack.up(dir, api_port=0, zk_port=0, timeout=30)
    assert list(elsewhere.iterdir()) == []


def test_writers_never_follow_a_symlink(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    for name in ("state.json", "registry-db.json", "zoo.cfg"):
        (tmp_path / name).symlink_to(victim)
        with pytest.raises(SandboxError):
            statedir.write_atomic(tmp_path / name, "x")
    (tmp_path / "a.log").symlink_to(victim)
    with pytest.raises(SandboxError):
        statedir.open_append(tmp_path / "a.log")
    os.mkfifo(tmp_path / "fifo.log")
    with pytest.raises(SandboxError):
        statedir.open_append(tmp_path / "fifo.log")  # refused without blocking
    assert victim.read_text() == "precious\n"


@pytest.mark.parametrize("token", [None, "0123456789abcdef0123456789abcdef"])
def test_down_leaves_a_foreign_process_named_in_state_json_alone(tmp_path, foreign_sleep, token):
    dir = fresh_dir(tmp_path)
    comp = {"pid": foreign_sleep.pid, "port": 1, "log": str(dir / "x.log")}
    if token:  # a guessed token and even the right start time do not make it ours
        comp.update(token=token, started=proc.start_time(foreign_sleep.pid))
    state = {"api_url": "http://127.0.0.1:9", "zk_hosts": "127.0.0.1:9",
             "components": {"registry": comp, "zookeeper": dict(comp), "demo": dict(comp)}}
    (dir / "state.json").write_text(json.dumps(state))
    r = run_cli("sandbox", "down", "--dir", str(dir))
    assert r.exit_code == 0, r
    assert foreign_sleep.poll() is None  # still alive
    assert "left registry alone" in r.stderr and str(foreign_sleep.pid) in r.stderr, r.stderr
    assert "stopped:" not in r.stdout + r.stderr
    assert stack.status(dir) is None


def test_a_pid_reused_by_another_process_is_not_ours(foreign_sleep):
    token = proc.new_token()
    reason = proc.why_not_ours(foreign_sleep.pid, token, proc.start_time(foreign_sleep.pid))
    assert reason and "token" in reason
    assert proc.stop_owned(foreign_sleep.pid, token, proc.start_time(foreign_sleep.pid)) is not None
    assert foreign_sleep.poll() is None


def test_a_normal_up_and_down_stops_its_own_processes(tmp_path):
    dir = tmp_path / "sb"
    info = stack.up(dir, api_port=0, zk_port=0)
    pids = [c.pid for c in info.components]
    try:
        assert stat.S_IMODE(os.stat(dir).st_mode) == 0o700
        state = json.loads((dir / "state.json").read_text())
        for name, comp in state["components"].items():
            assert len(comp["token"]) >= 32 and comp["started"] == proc.start_time(comp["pid"]), name
            environ = Path(f"/proc/{comp['pid']}/environ").read_bytes().split(b"\0")
            assert f"{proc.TOKEN_ENV}={comp['token']}".encode() in environ
    finally:
        refused: list[str] = []
        assert sorted(stack.down(dir, refused)) == ["registry", "zookeeper"]
        assert refused == []
    assert not any(proc.pid_alive(p) for p in pids)


def test_the_registry_reads_its_database_and_cache_never_through_a_planted_symlink(tmp_path):
    from regctl.sandbox.registry.db import Cache, Database

    secret = tmp_path / "someone-elses.json"
    secret.write_text(json.dumps({"services": {"leaked": {"service_name": "leaked"}},
                                  "k": [time.time() + 3600, "v"]}))
    before = secret.read_bytes()
    (tmp_path / "registry-db.json").symlink_to(secret)
    (tmp_path / "registry-cache.json").symlink_to(secret)
    assert Database(tmp_path / "registry-db.json").rows() == []
    assert Cache(tmp_path / "registry-cache.json").get("k") is None
    assert secret.read_bytes() == before
    # the same files, real: read back
    real = tmp_path / "real"
    real.mkdir()
    (real / "registry-db.json").write_bytes(before)
    assert [r["service_name"] for r in Database(real / "registry-db.json").rows()] == ["leaked"]
