"""--help reads well: shared options once (root help and `regctl options`), panels, clean usage lines,
an example on every command; shared options still work after the command; TERM=dumb gets the plain table."""

from __future__ import annotations

import os
import re
import select
import subprocess
import sys

import pytest

from tests.helpers import run_cli

pytestmark = pytest.mark.compat


def leaf_commands():
    import typer.main

    from regctl.cli.app import get_app

    out = []

    def walk(cmd, path):
        for name, sub in cmd.commands.items():
            if getattr(sub, "commands", None):
                walk(sub, path + [name])
            elif not sub.hidden:
                out.append(path + [name])

    walk(typer.main.get_command(get_app()), [])
    return out


LEAVES = leaf_commands()
SHARED_FLAGS = ["--context", "--config-url", "--zk-base", "--timeout", "--token-file", "--ca-bundle", "--insecure",
                "--zk-auth-file", "--zk-tls", "--zk-ca", "--zk-cert", "--zk-key", "--output", "--no-color",
                "--verbose"]


def help_of(*path):
    res = run_cli(*path, "--help")
    assert res.exit_code == 0, res
    return res.stdout


def test_the_walk_sees_every_command():
    assert len(LEAVES) >= 20 and ["config", "set-context"] in LEAVES and ["options"] in LEAVES


@pytest.mark.parametrize("path", LEAVES, ids=" ".join)
def test_command_help_has_an_example_a_clean_usage_line_and_no_shared_option_list(path):
    text = help_of(*path)
    usage = text.splitlines()[0]
    assert usage.startswith("Usage: regctl " + " ".join(path)), usage
    assert not re.search(r"\.\.\.\]\.\.\.|\[\[|\{", usage), usage
    assert not re.search(r"<list\[|<str>|\\\[", text), path
    assert "Example" in text, path
    options = text.split("\nOptions:\n", 1)[-1].split("\n\n", 1)[0]
    own = set(re.findall(r"^  (?:-\w, )?(--[\w-]+)", options, re.M))
    repeated = [f for f in SHARED_FLAGS if f in own and f not in _own_flags(path)]
    assert not repeated, (path, repeated)
    if path != ["options"]:
        assert "regctl options" in text  # where the shared ones are


def _own_flags(path):
    """Flags a command declares itself (config set-context has its own --config-url, --zk-base...)."""
    import typer.main

    from regctl.cli.app import get_app

    cmd = typer.main.get_command(get_app())
    ctx = cmd.context_class(cmd, info_name="regctl")
    for name in path:
        cmd = cmd.get_command(ctx, name)
    return {o for p in cmd.params if not getattr(p, "hidden", False) for o in p.opts}


def test_usage_lines_name_arguments_plainly():
    assert help_of("health").splitlines()[0] == "Usage: regctl health [OPTIONS] [NAME...]"
    assert help_of("doctor").splitlines()[0] == "Usage: regctl doctor [OPTIONS] [CHECK...]"
    assert help_of("deregister").splitlines()[0] == "Usage: regctl deregister [OPTIONS] NAME [INSTANCE_ID...]"
    assert help_of("url").splitlines()[0] == "Usage: regctl url [OPTIONS] NAME"


def test_root_help_and_options_topic_list_the_shared_options_in_their_panels():
    root = help_of()
    topic = run_cli("options")
    assert topic.exit_code == 0, topic
    for text in (root, topic.stdout):
        for panel in ("Connection:", "Auth and TLS:", "Output:"):
            assert f"\n{panel}\n" in text, panel
        for flag in SHARED_FLAGS:
            assert flag in text, flag
        assert text.index("Connection:") < text.index("--config-url") < text.index("Auth and TLS:") \
            < text.index("--zk-cert") < text.index("Output:") < text.index("--no-color")
    assert "beats the\nenvironment" in topic.stdout or "beats the environment" in topic.stdout
    assert len(help_of("list").splitlines()) < 40  # was 57 with every shared option repeated


def test_shared_options_still_work_after_the_command(registry):
    res = run_cli("list", "-o", "json", "--config-url", registry.url, "--source", "api", "--timeout", "5")
    assert res.exit_code == 0, res
    assert "services" in res.json
    res = run_cli("list", "--no-such-flag", "--config-url", registry.url)
    assert res.exit_code == 2 and "--no-such-flag" in res.stderr


def test_tab_still_completes_shared_options_after_the_command(tmp_path):
    env = {**os.environ, "_REGCTL_COMPLETE": "complete_bash", "COMP_WORDS": "regctl list --ou", "COMP_CWORD": "2",
           "XDG_CACHE_HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, "-m", "regctl"], env=env, capture_output=True, text=True, timeout=60)
    assert "--output" in out.stdout.split()


def _run_on_a_terminal(argv, env, columns=200):
    """Run ``python -m regctl argv`` with stdout on a pseudo-terminal ``columns`` wide; return what it printed."""
    import fcntl
    import pty
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    proc = subprocess.Popen([sys.executable, "-m", "regctl", *argv], stdout=slave, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, env=env)
    os.close(slave)
    chunks = []
    while True:
        ready, _, _ = select.select([master], [], [], 30)
        if not ready:
            break
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed its end
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=30)
    os.close(master)
    return proc.returncode, b"".join(chunks).decode("utf-8", "replace")


def test_term_dumb_on_a_terminal_gets_the_plain_table_at_full_width(registry):
    long_name = "a-service-with-a-rather-long-name-for-an-eighty-column-table-xyz"
    registry.server.register({"service_name": long_name, "service_url": "http://long-host.example:8080",
                              "health_check_url": None,
                              "service_metadata": {"instance_id": "long-1", "status": "healthy"}})
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "COLUMNS")}
    env.update(TERM="dumb", CONFIG_SERVICE_URL=registry.url)
    code, out = _run_on_a_terminal(["list", "--source", "api"], env)
    assert code == 0, out
    assert long_name in out and "…" not in out  # not cut at 80 columns
    assert not any(ch in out for ch in "┏━│└╭") and "\x1b[" not in out  # the plain table: no boxes, no colour
    assert re.search(r"^NAME\s", out.replace("\r", ""), re.M)
