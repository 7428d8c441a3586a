"""Process and port helpers shared by the sandbox modules (stdlib only).

Processes are started detached (their own session, so their process group id is
their pid) with stdout/stderr going to a log file; they outlive the Python process
that started them. Everything that waits here is bounded.
"""

from __future__ import annotations

import errno
import os
import signal
import socket
import subprocess
import time
from collections import deque
from pathlib import Path
from typing import Mapping, Sequence

#: Popen objects of children started by this process, kept so they are reaped
#: (no zombies, no "subprocess still running" warnings) while we live.
_CHILDREN: dict[int, subprocess.Popen] = {}


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """True when something listens on ``host:port`` or the port cannot be bound."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        try:
            if sock.connect_ex((host, port)) == 0:
                return True
        except OSError:
            pass
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def _unblock_signals() -> None:
    """In the child: a parent that holds signals back while it spawns must not pass that on."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM, signal.SIGHUP})


def spawn(cmd: Sequence[str], log: Path, *, cwd: Path | None = None,
          env: Mapping[str, str] | None = None) -> int:
    """Start ``cmd`` detached (new session, stdin from /dev/null, output appended to ``log``).

    Returns the pid, which is also the process group id.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab", buffering=0) as out:
        out.write(f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} starting: {' '.join(map(str, cmd))}\n".encode())
        proc = subprocess.Popen(
            [str(c) for c in cmd], stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            cwd=str(cwd) if cwd else None, env=dict(env) if env is not None else None,
            start_new_session=True, close_fds=True, preexec_fn=_unblock_signals,
        )
    _CHILDREN[proc.pid] = proc
    return proc.pid


def pid_alive(pid: int | None) -> bool:
    """True when ``pid`` runs (zombies count as dead; our own children are reaped)."""
    if not pid or pid <= 0:
        return False
    child = _CHILDREN.get(pid)
    if child is not None:
        if child.poll() is not None:
            _CHILDREN.pop(pid, None)
            return False
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        state = stat.rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except (OSError, IndexError):
        return True


def process_matches(pid: int | None, token: str | None) -> bool:
    """``pid`` is alive and (where /proc exists) its command line contains ``token``.

    Guards against a recorded pid that was reused by something else after a reboot.
    """
    if not pid_alive(pid):
        return False
    if not token:
        return True
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except FileNotFoundError:
        return not Path("/proc/self").exists()  # no /proc at all: trust the pid
    except OSError:
        return True
    return token in cmdline


def stop_process(pid: int | None, *, timeout: float = 5.0, token: str | None = None) -> bool:
    """SIGTERM the process group of ``pid``, SIGKILL it after ``timeout`` seconds.

    Returns True if something was running and was stopped. Never waits longer than
    ``timeout`` + 2 seconds.
    """
    if not pid or not process_matches(pid, token):
        return False
    _signal_group(pid, signal.SIGTERM)
    if _wait_dead(pid, timeout):
        return True
    _signal_group(pid, signal.SIGKILL)
    _wait_dead(pid, 2.0)
    return True


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass
    except PermissionError:
        pass
    except OSError as exc:  # not a group leader (should not happen): signal the process
        if exc.errno != errno.ESRCH:
            try:
                os.kill(pid, sig)
            except OSError:
                pass


def _wait_dead(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.05)
    return not pid_alive(pid)


def tail(path: Path, lines: int = 20) -> str:
    """The last ``lines`` lines of a text file ("" when unreadable)."""
    try:
        with open(path, "r", errors="replace") as fh:
            return "".join(deque(fh, maxlen=lines)).rstrip("\n")
    except OSError:
        return ""
