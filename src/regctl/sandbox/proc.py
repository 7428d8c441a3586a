"""Process and port helpers shared by the sandbox modules (stdlib only).

Processes are started detached (their own session, so their process group id is
their pid) with stdout/stderr going to a log file; they outlive the Python process
that started them. Everything that waits here is bounded.
"""

from __future__ import annotations

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


#: the environment variable carrying a child's ownership token (see :func:`spawn`, :func:`why_not_ours`)
TOKEN_ENV = "REGCTL_SANDBOX_TOKEN"


def new_token() -> str:
    """A random token a child carries in its environment, to prove later that it is ours."""
    import secrets

    return secrets.token_hex(16)


def spawn(cmd: Sequence[str], log: Path, *, cwd: Path | None = None,
          env: Mapping[str, str] | None = None, token: str | None = None) -> int:
    """Start ``cmd`` detached (new session, stdin from /dev/null, output appended to ``log``).

    ``log`` is opened without following a symlink (a planted one is refused). ``token``
    goes into the child's environment as ``$REGCTL_SANDBOX_TOKEN`` (see :func:`why_not_ours`).
    Returns the pid, which is also the process group id; it has exec'd when this returns.
    """
    from regctl.sandbox import statedir

    if not log.parent.exists():
        statedir.make_dir(log.parent)
    if token is not None:
        env = {**(os.environ if env is None else env), TOKEN_ENV: token}
    fd = statedir.open_append(log)
    with open(fd, "ab", buffering=0) as out:
        out.write(f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} starting: {' '.join(map(str, cmd))}\n".encode())
        proc = subprocess.Popen(
            [str(c) for c in cmd], stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            cwd=str(cwd) if cwd else None, env=dict(env) if env is not None else None,
            start_new_session=True, close_fds=True, preexec_fn=_unblock_signals,
        )
    _CHILDREN[proc.pid] = proc
    return proc.pid


def start_time(pid: int | None) -> int | None:
    """When ``pid`` started (clock ticks after boot: field 22 of /proc/PID/stat); None when unknown."""
    if not pid or pid <= 0:
        return None
    try:
        stat = Path(f"/proc/{int(pid)}/stat").read_text()
        return int(stat.rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def why_not_ours(pid: object, token: object, started: object) -> str | None:
    """None when ``pid`` runs and is provably the child recorded with ``token`` and ``started``, else why not.

    Proof takes both: its start time (/proc/PID/stat) is the one recorded when it was spawned
    (a reused pid fails this), and its environment (/proc/PID/environ, readable for one's own
    processes only) holds ``REGCTL_SANDBOX_TOKEN=token``, a random value only the spawner knew.
    """
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 1:
        return f"pid {pid!r} is not a process id"
    if not pid_alive(pid):
        return f"pid {pid} is not running"
    if not isinstance(token, str) or len(token) < 16 or not isinstance(started, int):
        return f"pid {pid} has no ownership token and start time recorded"
    now = start_time(pid)
    if now is None:
        return f"pid {pid}: its start time cannot be read (no /proc)"
    if now != started:
        return f"pid {pid} started at another time than the process recorded (a reused pid)"
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError as exc:
        return f"pid {pid}: its environment cannot be read ({exc.strerror})"
    if f"{TOKEN_ENV}={token}".encode() not in environ.split(b"\0"):
        return f"pid {pid} does not carry the sandbox's token"
    return None


def stop_owned(pid: object, token: object, started: object, *, timeout: float = 5.0) -> str | None:
    """Stop ``pid``'s process group when :func:`why_not_ours` proves it ours; return why it was left alone.

    None: it was ours and was stopped. A reason: nothing was signalled (not running, or not provably ours).
    """
    reason = why_not_ours(pid, token, started)
    if reason is not None:
        return reason
    assert isinstance(pid, int)
    _signal_owned(pid, signal.SIGTERM)
    if _wait_dead(pid, timeout):
        return None
    if why_not_ours(pid, token, started) is None:  # still the same process: kill it
        _signal_owned(pid, signal.SIGKILL)
        _wait_dead(pid, 2.0)
    return None


def _signal_owned(pid: int, sig: int) -> None:
    """Its group when it leads one (as :func:`spawn` makes it), else the process alone."""
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except OSError:
        pass


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


def _wait_dead(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.05)
    return not pid_alive(pid)


def tail(path: Path, lines: int = 20) -> str:
    """The last ``lines`` lines of a text file ("" when unreadable or a symlink)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0))
        with open(fd, "r", errors="replace") as fh:
            return "".join(deque(fh, maxlen=lines)).rstrip("\n")
    except OSError:
        return ""
