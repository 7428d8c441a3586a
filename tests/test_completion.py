"""Shell completion: committed scripts are current; a real bash completes live names, fast and
silently when the registry is down."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from regctl.api import RegistryApi
from tests.conftest import free_port
from tests.helpers import assert_one_line_error, run_cli

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def register(reg, name, iid):
    with RegistryApi(reg.url, timeout=5) as api:
        api.register({"service_name": name, "service_url": f"http://{name}.test:80", "health_check_url": None,
                      "service_metadata": {"instance_id": iid, "status": "healthy"}})


def bash_complete(words: list, env: dict, timeout: float = 20) -> tuple:
    """Source completions/regctl.bash in a real bash, complete ``words`` (the last one is being typed).

    Returns (candidates, stderr, seconds spent in the completion function).
    """
    assert (BIN / "regctl").exists(), f"regctl is not installed next to {sys.executable}"
    quoted = " ".join("'" + w.replace("'", "'\\''") + "'" for w in words)
    script = f"""
source '{ROOT / "completions" / "regctl.bash"}'
COMP_WORDS=({quoted})
COMP_CWORD={len(words) - 1}
start=$EPOCHREALTIME
_regctl_completion regctl
end=$EPOCHREALTIME
echo "ELAPSED $start $end" >&2
printf '%s\\n' "${{COMPREPLY[@]}}"
"""
    full = {**os.environ, **env, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.run(["bash", "--norc", "--noprofile", "-c", script], env=full, capture_output=True,
                          text=True, timeout=timeout)
    assert proc.returncode == 0, proc
    err_lines = proc.stderr.splitlines()
    elapsed_line = [line for line in err_lines if line.startswith("ELAPSED ")][-1]
    _, start, end = elapsed_line.split()
    rest = "\n".join(line for line in err_lines if not line.startswith("ELAPSED "))
    return [c for c in proc.stdout.splitlines() if c], rest, float(end) - float(start)


@pytest.fixture
def cache_home(tmp_path, monkeypatch):
    path = tmp_path / "cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(path))
    return path


@pytest.fixture
def names_registry(registry):
    for name, iid in (("asr-service", "asr-1"), ("asr-service", "asr-2"), ("audit-service", "audit-1"),
                      ("billing", "billing-1")):
        register(registry, name, iid)
    return registry


# --------------------------------------------------------------------------- scripts

@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_committed_scripts_are_current(shell):
    res = run_cli("completion", shell)
    assert res.exit_code == 0, res
    committed = (ROOT / "completions" / f"regctl.{shell}").read_text()
    assert res.stdout == committed, f"completions/regctl.{shell} is stale: run regctl completion {shell} > it"
    assert "_REGCTL_COMPLETE=complete_" + shell in committed


def test_unknown_shell_is_exit_2():
    assert_one_line_error(run_cli("completion", "tcsh"), 2)


def test_bash_script_is_valid_bash():
    subprocess.run(["bash", "-n", str(ROOT / "completions" / "regctl.bash")], check=True)


# --------------------------------------------------------------------------- real bash

def test_bash_completes_commands(cache_home):
    got, err, _ = bash_complete(["regctl", "ins"], {})
    assert got == ["inspect"] and err == ""
    got, _, _ = bash_complete(["regctl", "con"], {})
    assert "config" in got


def test_bash_completes_service_names_from_zookeeper(names_registry, cache_home):
    got, err, _ = bash_complete(["regctl", "inspect", "a"], names_registry.env)
    assert sorted(got) == ["asr-service", "audit-service"], got
    assert err == ""


def test_bash_completes_service_names_from_the_api(names_registry, cache_home):
    env = {"CONFIG_SERVICE_URL": names_registry.url}
    got, err, _ = bash_complete(["regctl", "url", "a"], env)
    assert sorted(got) == ["asr-service", "audit-service"], got
    got, _, _ = bash_complete(["regctl", "health", "b"], env)
    assert got == ["billing"]


def test_names_follow_flags_typed_on_the_command_line(names_registry, cache_home):
    got, _, _ = bash_complete(["regctl", "--config-url", names_registry.url, "discover", "au"], {})
    assert got == ["audit-service"]


def test_bash_completes_instance_ids_for_deregister(names_registry, cache_home):
    got, _, _ = bash_complete(["regctl", "deregister", "asr-service", ""], names_registry.env)
    assert sorted(got) == ["asr-1", "asr-2"]
    got, _, _ = bash_complete(["regctl", "deregister", "asr-service", "asr-1", ""], names_registry.env)
    assert got == ["asr-2"]


def test_names_come_from_the_current_context(names_registry, cache_home):
    res = run_cli("config", "set-context", "lab", "--config-url", names_registry.url, "--use")
    assert res.exit_code == 0, res
    got, _, _ = bash_complete(["regctl", "wait", "asr"], {"REGCTL_CONFIG": os.environ["REGCTL_CONFIG"]})
    assert got == ["asr-service"]
    got, _, _ = bash_complete(["regctl", "--context", "l"], {})
    assert got == ["lab"]


def test_names_are_cached_for_a_few_seconds(names_registry, cache_home):
    got, _, _ = bash_complete(["regctl", "inspect", "a"], names_registry.env)
    assert "apple-service" not in got
    register(names_registry, "apple-service", "apple-1")
    got, _, _ = bash_complete(["regctl", "inspect", "a"], names_registry.env)
    assert "apple-service" not in got  # served from the cache
    cache = cache_home / "regctl" / "completion.json"
    assert json.loads(cache.read_text()) and oct(cache.stat().st_mode & 0o777) == "0o600"
    cache.unlink()
    got, _, _ = bash_complete(["regctl", "inspect", "a"], names_registry.env)
    assert "apple-service" in got


def fastest(words, env, cache_home, tries=3):
    """Best of ``tries`` uncached runs: a bound on regctl, not on how busy the test machine is."""
    best = None
    for _ in range(tries):
        cache = cache_home / "regctl" / "completion.json"
        if cache.exists():
            cache.unlink()
        got, err, elapsed = bash_complete(words, env)
        assert got == [] and err == "", (got, err)
        best = elapsed if best is None else min(best, elapsed)
        if best < 1.0:
            break
    return best


def test_registry_down_is_silent_and_fast(cache_home):
    dead = free_port()
    elapsed = fastest(["regctl", "inspect", "a"], {"CONFIG_SERVICE_URL": f"http://127.0.0.1:{dead}"}, cache_home)
    assert elapsed < 1.0, f"completion took {elapsed:.2f}s with the registry down"
    elapsed = fastest(["regctl", "inspect", "a"], {"ZOOKEEPER_HOSTS": f"127.0.0.1:{dead}"}, cache_home)
    assert elapsed < 1.0, f"completion took {elapsed:.2f}s with ZooKeeper down"


def test_a_server_that_never_answers_does_not_hang_completion(cache_home):
    """A port that accepts connections and never speaks: the lookup budget cuts it off."""
    with socket.socket() as blackhole:
        blackhole.bind(("127.0.0.1", 0))
        blackhole.listen(16)
        port = blackhole.getsockname()[1]
        for env in ({"CONFIG_SERVICE_URL": f"http://127.0.0.1:{port}"}, {"ZOOKEEPER_HOSTS": f"127.0.0.1:{port}"}):
            got, err, elapsed = bash_complete(["regctl", "inspect", "a"], env)
            assert got == [] and err == ""
            assert elapsed < 3.0, f"completion took {elapsed:.2f}s against a silent server ({env})"


def test_completion_requests_do_not_import_network_libraries(names_registry, cache_home):
    """Commands and options complete without httpx or kazoo; API names without httpx."""
    code = ("import os, sys\n"
            "from regctl.cli.app import main\n"
            "rc = main()\n"
            "sys.stderr.write(' '.join(sorted({m.split('.')[0] for m, v in sys.modules.items() if v is not None})))\n")
    for words, cword, env in ((["regctl", "ins"], 1, {}),
                              (["regctl", "inspect", "a"], 2, {"CONFIG_SERVICE_URL": names_registry.url})):
        full = {**os.environ, **env, "_REGCTL_COMPLETE": "complete_bash", "COMP_WORDS": " ".join(words),
                "COMP_CWORD": str(cword)}
        proc = subprocess.run([sys.executable, "-c", code], env=full, capture_output=True, text=True, timeout=30)
        assert proc.returncode == 0, proc
        mods = set(proc.stderr.split())
        assert proc.stdout.strip(), proc
        assert not mods & {"httpx", "httpcore", "kazoo"}, mods & {"httpx", "httpcore", "kazoo"}
