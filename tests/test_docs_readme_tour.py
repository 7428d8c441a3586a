"""README.md verbatim: `bash scripts/try.sh`, paste its last two lines into a fresh shell (no venv on PATH),
then every command of the tour exits as the README says (0, or the code its comment states), and its tables
fit 80 columns. Also try.sh's port options and its message when a port is busy.

try.sh installs only what is missing: the repository's .venv/bin/regctl is used as is, so this runs the
script itself (not a copy) in a few seconds, against a sandbox in a temporary directory on free ports.
"""

import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TRY = ROOT / "scripts" / "try.sh"
VENV_BIN = ROOT / ".venv" / "bin"

pytestmark = pytest.mark.skipif(not (VENV_BIN / "regctl").exists(),
                                reason="try.sh reuses the repository's .venv; it is not there")


def fresh_env(home: Path, **extra) -> dict:
    """What a new terminal has: no venv on PATH, no regctl settings."""
    keep = {k: os.environ[k] for k in ("LANG", "LC_ALL", "ZOOKEEPER_HOME", "JAVA_HOME") if k in os.environ}
    return {**keep, "HOME": str(home), "PATH": "/usr/local/bin:/usr/bin:/bin", "TERM": "dumb", **extra}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tour_commands() -> list:
    """(command, expected exit code) for each line of the README's tour."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## A ten-command tour", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    out = []
    for line in block.splitlines():
        cmd, _, comment = line.partition("#")
        if cmd.strip():
            code = re.search(r"exit (\d+)", comment)
            out.append((cmd.strip(), int(code.group(1)) if code else 0))
    return out


TOUR = tour_commands()


@pytest.fixture(scope="module")
def tried(tmp_path_factory):
    """try.sh run as the README says, on free ports; yields (its stdout lines, the home to run shells in)."""
    home = tmp_path_factory.mktemp("tour-home")
    sandbox = home / "sandbox"
    res = subprocess.run(["bash", str(TRY), "--zk-port", str(free_port()), "--registry-port", str(free_port()),
                          "--dir", str(sandbox)], capture_output=True, text=True, env=fresh_env(home),
                         cwd=home, timeout=180)
    try:
        assert res.returncode == 0, res.stderr[-3000:]
        assert "unbound variable" not in res.stderr
        yield res.stdout.splitlines(), home
    finally:
        subprocess.run([str(VENV_BIN / "regctl"), "sandbox", "down", "--dir", str(sandbox)],
                       capture_output=True, timeout=120)


def in_fresh_shell(tried, command: str, **kw) -> subprocess.Popen:
    lines, home = tried
    script = "\n".join(lines[-2:]) + "\n" + command + "\n"
    return subprocess.Popen(["bash", "--noprofile", "--norc", "-c", script], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=home,
                            env=fresh_env(home, COLUMNS="80"), start_new_session=True, **kw)


def test_the_last_two_lines_are_what_to_paste(tried):
    lines, _ = tried
    assert lines[-2] == f'export PATH="{VENV_BIN}:$PATH"'
    assert re.fullmatch(r"export CONFIG_SERVICE_URL=http://127\.0\.0\.1:\d+ ZOOKEEPER_HOSTS=127\.0\.0\.1:\d+"
                        r" REGCTL_SANDBOX_DIR=\S+", lines[-1]), lines[-1]


def test_the_tour_has_its_ten_commands():
    assert len(TOUR) == 10 and all(cmd.startswith("regctl ") for cmd, _ in TOUR)


@pytest.mark.parametrize("command,expected", TOUR, ids=[c for c, _ in TOUR])
def test_every_tour_command_runs_verbatim_in_a_fresh_shell(tried, command, expected):
    if " watch" in command:  # runs until Ctrl-C, which ends it with exit 0 (commands.md)
        proc = in_fresh_shell(tried, "exec " + command)
        time.sleep(2.0)
        os.killpg(proc.pid, signal.SIGINT)
    else:
        proc = in_fresh_shell(tried, command)
    out, err = proc.communicate(timeout=60)
    assert "command not found" not in err and "Traceback" not in err, err
    assert proc.returncode == expected, (proc.returncode, out[-2000:], err[-2000:])
    if out.lstrip().startswith(("{", "[")):
        return  # JSON, not a table
    table = [line for line in out.splitlines() if re.search(r"\S {2,}\S", line)]
    wide = [line for line in table if len(line) > 80]
    assert not wide, "\n".join(wide)


def test_doctor_for_one_service_leaves_the_rows_status_alone(tried):
    """The tour's `doctor --service audit-service` does not write the row (service.server-health is opt-in)."""
    import json

    def statuses():
        proc = in_fresh_shell(tried, "regctl list -o json")
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        return {s["name"]: s["db_status"] for s in json.loads(out)["services"]}

    before = statuses()
    proc = in_fresh_shell(tried, "regctl doctor --service audit-service -o json")
    out, _ = proc.communicate(timeout=60)
    row = next(c for c in json.loads(out)["checks"] if c["name"] == "service.server-health")
    assert row["status"] == "skip" and row["hint"] == "regctl doctor service.server-health --service audit-service"
    assert statuses() == before


# --------------------------------------------------------------------------- ports

def try_sh(home: Path, *args: str, **env) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(TRY), "--dir", str(home / "never-started"), *args], capture_output=True,
                          text=True, env=fresh_env(home, **env), cwd=home, timeout=60)


@pytest.fixture
def busy():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    yield s.getsockname()[1]
    s.close()


def test_a_busy_zookeeper_port_is_named_with_the_option_to_use(tmp_path, busy):
    res = try_sh(tmp_path, "--zk-port", str(busy), "--registry-port", str(free_port()))
    assert res.returncode == 2 and res.stdout == ""
    assert f"port {busy} (for ZooKeeper) is already in use" in res.stderr and "--zk-port" in res.stderr
    assert "unbound variable" not in res.stderr and len(res.stderr.splitlines()) == 1
    assert not (tmp_path / "never-started").exists()  # nothing started


def test_a_busy_registry_port_from_the_environment(tmp_path, busy):
    res = try_sh(tmp_path, REGCTL_TRY_ZK_PORT=str(free_port()), REGCTL_TRY_REGISTRY_PORT=str(busy))
    assert res.returncode == 2
    assert f"port {busy} (for the registry) is already in use" in res.stderr and "--registry-port" in res.stderr


@pytest.mark.parametrize("args", [("--zk-port",), ("--zk-port", "x"), ("--registry-port", "70000"), ("--bogus",)])
def test_bad_options_are_usage_errors(tmp_path, args):
    res = try_sh(tmp_path, *args)
    assert res.returncode == 2 and res.stderr.startswith("try.sh: error: ") and "unbound" not in res.stderr


def test_help_documents_the_port_options_and_variables(tmp_path):
    res = try_sh(tmp_path, "--help")
    assert res.returncode == 0
    for word in ("--zk-port", "--registry-port", "REGCTL_TRY_ZK_PORT", "REGCTL_TRY_REGISTRY_PORT", "--dir"):
        assert word in res.stdout
