"""doctor as signal: an ASCII terminal, no write unless asked, problems first, roll-ups, the ignore list,
the zombie among many hanging instances."""

import os
import pty
import subprocess
import sys
from pathlib import Path

from tests.helpers import run_cli

REGCTL = str(Path(sys.executable).with_name("regctl"))


def _on_pty(*args, env_extra=None):
    """Run regctl with stdout on a real pseudo-terminal; returns (exit code, stdout bytes, stderr text)."""
    master, slave = pty.openpty()
    env = dict(os.environ, PYTHONIOENCODING="ascii", LANG="C", LC_ALL="C", TERM="xterm", COLUMNS="80")
    env.pop("NO_COLOR", None)
    env.update(env_extra or {})
    proc = subprocess.Popen([REGCTL, *args], stdout=slave, stderr=subprocess.PIPE, env=env)
    os.close(slave)
    out = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    err = proc.stderr.read().decode()
    proc.wait(timeout=60)
    os.close(master)
    return proc.returncode, out, err


def test_doctor_on_an_ascii_terminal_writes_ascii_marks_not_a_crash():
    code, out, err = _on_pty("doctor", "config", "--config-url", "http://127.0.0.1:1", "--timeout", "0.5")
    assert code == 1, (code, err)
    assert "Traceback" not in err and "UnicodeEncodeError" not in err
    text = out.decode("ascii")  # every byte ASCII
    assert "[XX]" in text and "config.connect" in text
