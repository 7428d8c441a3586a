"""Fast paths of ``main()``: what --version, --help and a shell TAB load (a subprocess each, no timing)."""

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.compat  # also run on the oldest and newest Python (.ci/run)

NETWORK = ("httpx", "httpcore", "kazoo", "anyio", "h11")


def run_main(argv: list, env: dict | None = None) -> tuple[str, set]:
    """Run ``main(argv)`` in a fresh interpreter; return (its stdout, the top-level modules loaded)."""
    code = ("import contextlib, io, json, sys\n"
            "from regctl.cli.app import main\n"
            "buf = io.StringIO()\n"
            "with contextlib.redirect_stdout(buf):\n"
            f"    rc = main({argv!r})\n"
            "print(json.dumps({'out': buf.getvalue(), 'rc': rc,\n"
            "                  'mods': sorted({m.split('.')[0] for m, v in sys.modules.items() if v is not None})}))")
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run([sys.executable, "-c", code], env=full_env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    return data["out"], set(data["mods"])


@pytest.mark.parametrize("argv", [["--version"], ["-V"]])
def test_version_loads_nothing_but_regctl(argv):
    out, mods = run_main(argv)
    assert out.startswith("regctl ")
    assert not mods & {"typer", "rich", "yaml", *NETWORK}


@pytest.mark.parametrize("argv", [["--help"], ["-h"], []])
def test_root_help_loads_no_network_library(argv):
    out, mods = run_main(argv)
    assert "Usage: regctl" in out and "list" in out
    assert not mods & {*NETWORK, "yaml"}  # yaml too: only files and documents need it


def test_completion_of_a_command_name_loads_no_network_library(tmp_path):
    env = {"_REGCTL_COMPLETE": "complete_bash", "COMP_WORDS": "regctl li", "COMP_CWORD": "1",
           "XDG_CACHE_HOME": str(tmp_path)}
    out, mods = run_main([], env)
    assert "list" in out.split()
    assert not mods & set(NETWORK)


def test_completion_of_an_option_loads_no_network_library(tmp_path):
    env = {"_REGCTL_COMPLETE": "complete_bash", "COMP_WORDS": "regctl list --so", "COMP_CWORD": "2",
           "XDG_CACHE_HOME": str(tmp_path)}
    out, mods = run_main([], env)
    assert "--source" in out.split()
    assert not mods & set(NETWORK)
