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


def run_child(cmd: Sequence[str], env: dict | None = None, timeout: float = 120,
              stdout=subprocess.DEVNULL) -> tuple[float, int, int, bytes]:
    """Run ``cmd``; return (wall seconds, exit code, peak RSS in KiB of that child, stdout bytes)."""
    t = time.perf_counter()
    proc = subprocess.Popen(list(cmd), env=env, stdout=subprocess.PIPE if stdout is None else stdout,
                            stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    out = b""
    if stdout is None:
        out = proc.stdout.read()  # type: ignore[union-attr]
    deadline = time.monotonic() + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > deadline:
            proc.kill()
            pid, status, usage = os.wait4(proc.pid, 0)
            break
        time.sleep(0.002)
    wall = time.perf_counter() - t
    proc.returncode = os.waitstatus_to_exitcode(status)
    return wall, proc.returncode, usage.ru_maxrss, out


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
