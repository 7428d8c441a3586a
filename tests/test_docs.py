"""The README documents every command and every exit code."""

import pathlib
import re

from regctl.cli.app import get_app
from regctl.errors import ExitCode
from tests.helpers import run_cli

README = (pathlib.Path(__file__).parent.parent / "README.md").read_text()


def command_paths():
    import typer.main

    root = typer.main.get_command(get_app())
    out = []

    def walk(cmd, prefix):
        for name, sub in getattr(cmd, "commands", {}).items():
            if getattr(sub, "hidden", False):
                continue
            if getattr(sub, "commands", None):
                walk(sub, prefix + [name])
            else:
                out.append(prefix + [name])

    walk(root, [])
    return out


def test_exit_code_table_matches_the_enum():
    section = README.split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    documented = {int(m) for m in re.findall(r"^\| (\d+) \|", section, re.M)}
    assert documented == {int(c) for c in ExitCode}


def test_every_command_has_help_and_is_in_the_readme():
    paths = command_paths()
    assert ["list"] in paths and ["sandbox", "up"] in paths
    for path in paths:
        res = run_cli(*path, "--help")
        assert res.exit_code == 0, path
        assert "Usage:" in res.stdout
        assert f"regctl {' '.join(path)}" in README, f"README does not mention: regctl {' '.join(path)}"
