"""Shared helpers for the bench scripts (stdlib only, plus regctl's own sandbox helpers).

Every figure is reported next to a baseline measured in the same run: the machine
this runs on is usually shared and noisy, so absolute numbers mean little and
ratios mean more.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Sequence

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src"
if str(SRC) not in sys.path:  # a clean checkout works without `pip install -e`
    sys.path.insert(0, str(SRC))


def child_env(**extra: str) -> dict:
    """The environment for child processes: regctl importable from this checkout, no registry leaking in."""
    env = dict(os.environ)
    for var in ("CONFIG_SERVICE_URL", "ZOOKEEPER_HOSTS", "ZOOKEEPER_BASE_PATH", "REGCTL_CONTEXT",
                "_REGCTL_COMPLETE"):
        env.pop(var, None)
    env["PYTHONPATH"] = os.pathsep.join([str(SRC)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env.setdefault("REGCTL_CONFIG", os.path.join(tempfile.gettempdir(), "regctl-bench-none.yaml"))
    env["NO_COLOR"] = "1"
    env.update(extra)
    return env


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


#: a tiny fork+exec launcher: a child's ru_maxrss also counts the memory of the process it was forked
#: from (Linux keeps the pre-exec high-water mark), so RSS is measured from a 'python -S' launcher
#: (about 8 MB, less than any regctl run) instead of from this process
_LAUNCHER = ("import os, sys\npid = os.fork()\nif pid == 0:\n    os.execv(sys.argv[2], sys.argv[2:])\n"
             "_, st, ru = os.wait4(pid, 0)\nopen(sys.argv[1], 'w').write(str(ru.ru_maxrss))\n"
             "sys.exit(os.waitstatus_to_exitcode(st))")


def run_child(cmd: Sequence[str], env: dict | None = None, timeout: float = 120,
              stdout=subprocess.DEVNULL, rss: bool = False) -> tuple[float, int, int, bytes]:
    """Run ``cmd``; return (wall seconds, exit code, peak RSS in KiB or 0, stdout bytes if ``stdout=None``).

    With ``rss=True`` the child runs under a small launcher (see ``_LAUNCHER``) and its own
    ru_maxrss is returned; the wall time then includes the launcher's startup.
    """
    cmd = list(cmd)
    rss_file = None
    if rss:
        fd, rss_file = tempfile.mkstemp(prefix="regctl-bench-rss-")
        os.close(fd)
        cmd = [sys.executable, "-S", "-c", _LAUNCHER, rss_file, *cmd]
    t = time.perf_counter()
    try:
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE if stdout is None else stdout,
                                stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
        wall = time.perf_counter() - t
        maxrss = int(Path(rss_file).read_text() or 0) if rss_file else 0
    finally:
        if rss_file:
            os.unlink(rss_file)
    return wall, proc.returncode, maxrss, out or b""


@contextmanager
def zookeeper() -> Iterator[str]:
    """A throw-away standalone ZooKeeper on a free loopback port; yields its ``host:port``."""
    from regctl.sandbox import zookeeper as zk

    tmp = Path(tempfile.mkdtemp(prefix="regctl-bench-zk-"))
    members = zk.start_zookeeper(tmp, free_port(), 1)
    try:
        zk.wait_for(members, timeout=90)
        yield members[0].hosts
    finally:
        zk.stop_zookeeper(members)
        shutil.rmtree(tmp, ignore_errors=True)


def args(description: str, extra: Callable[[argparse.ArgumentParser], None] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--json", metavar="PATH", help="also write the figures as JSON (used by run_all.py)")
    p.add_argument("--quick", action="store_true", help="fewer repetitions")
    if extra:
        extra(p)
    return p.parse_args()


def ms(seconds: float) -> str:
    return f"{seconds * 1000:8.1f} ms"


def print_table(title: str, rows: list[tuple[str, str, str]]) -> None:
    """rows: (what, figure, ratio/note)."""
    w0 = max([len(r[0]) for r in rows] + [10])
    w1 = max([len(r[1]) for r in rows] + [8])
    print(f"\n== {title}")
    for a, b, c in rows:
        print(f"  {a:<{w0}}  {b:>{w1}}  {c}")
    sys.stdout.flush()


def write_json(path: str | None, name: str, figures: dict) -> None:
    if not path:
        return
    Path(path).write_text(json.dumps({"bench": name, "figures": figures}, indent=1))
