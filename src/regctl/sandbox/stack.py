"""Start, inspect and stop a local sandbox: ZooKeeper + the registry (+ demo services).

Everything runs as detached background processes (they outlive the command that
started them). One directory holds it all::

    state.json            pids, ports, URLs (removed by down)
    zookeeper/            zoo.cfg, data/, zookeeper.log
    registry.log          the registry's log
    registry-db.json      the registry's "PostgreSQL" rows (kept across restarts and down)
    demo.log, demo.json   the demo services (with --demo)

The CLI layer calls :func:`up`, :func:`status`, :func:`down` and
:func:`restart_registry`; ``python -m regctl.sandbox.stack up|status|down|restart-registry``
does the same with JSON output (for tests and debugging).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterator

import httpx

import regctl
from regctl.errors import SandboxError
from regctl.sandbox import proc
from regctl.sandbox import zookeeper as zkmod

STATE_FILE = "state.json"
DB_FILE = "registry-db.json"
HOST = "127.0.0.1"
BASE_PATH = "/services"
REGISTRY_MODULE = "regctl.sandbox.registry"
DEMO_MODULE = "regctl.sandbox.demo"
STOP_TIMEOUT = 5.0

Progress = Callable[[str], None] | None

#: This interpreter, made absolute now: with a relative directory on PATH (``.venv/bin``)
#: ``sys.executable`` is relative, and children start in another directory. Not
#: resolved through symlinks, so a venv's python stays the venv's.
PYTHON = os.path.abspath(sys.executable) if sys.executable else "python3"


def default_dir() -> Path:
    """``$REGCTL_SANDBOX_DIR``, else ``$XDG_STATE_HOME/regctl/sandbox``, else ``~/.local/state/regctl/sandbox``."""
    explicit = os.environ.get("REGCTL_SANDBOX_DIR")
    if explicit:
        return Path(explicit).expanduser()
    state_home = os.environ.get("XDG_STATE_HOME")
    if state_home:
        return Path(state_home).expanduser() / "regctl" / "sandbox"
    return Path.home() / ".local" / "state" / "regctl" / "sandbox"


@dataclass(frozen=True)
class Component:
    name: str
    pid: int | None
    port: int | None
    running: bool
    log: str


@dataclass(frozen=True)
class SandboxInfo:
    dir: str
    api_url: str
    zk_hosts: str
    base_path: str
    components: tuple[Component, ...]
    demo: bool

    def env_line(self) -> str:
        """``export CONFIG_SERVICE_URL=... ZOOKEEPER_HOSTS=...`` for ``eval``."""
        return f"export CONFIG_SERVICE_URL={self.api_url} ZOOKEEPER_HOSTS={self.zk_hosts}"

    @property
    def running(self) -> bool:
        """Every recorded component runs."""
        return bool(self.components) and all(c.running for c in self.components)

    def component(self, name: str) -> Component | None:
        return next((c for c in self.components if c.name == name), None)

    def to_dict(self) -> dict:
        return {"dir": self.dir, "api_url": self.api_url, "zk_hosts": self.zk_hosts,
                "base_path": self.base_path, "demo": self.demo, "running": self.running,
                "env": {"CONFIG_SERVICE_URL": self.api_url, "ZOOKEEPER_HOSTS": self.zk_hosts},
                "components": [asdict(c) for c in self.components]}


# --------------------------------------------------------------------------- state

def _say(progress: Progress, msg: str) -> None:
    if progress is not None:
        progress(msg)


def _load(dir: Path) -> dict | None:
    try:
        data = json.loads((dir / STATE_FILE).read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise SandboxError(f"sandbox state is unreadable: {exc}", where=str(dir / STATE_FILE),
                           hint="run 'regctl sandbox down' or delete that file") from exc
    return data if isinstance(data, dict) else None


def _save(dir: Path, state: dict) -> None:
    tmp = dir / (STATE_FILE + ".tmp")
    tmp.write_text(json.dumps(state, indent=1))
    os.replace(tmp, dir / STATE_FILE)


@contextlib.contextmanager
def _locked(dir: Path) -> Iterator[None]:
    """One up/down/restart at a time per directory."""
    dir.mkdir(parents=True, exist_ok=True)
    with open(dir / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _alive(comp: dict | None) -> bool:
    return bool(comp) and proc.process_matches(comp.get("pid"), comp.get("token"))


def _info(dir: Path, state: dict) -> SandboxInfo:
    comps = []
    for name in ("zookeeper", "registry", "demo"):
        c = state.get("components", {}).get(name)
        if c:
            comps.append(Component(name, c.get("pid"), c.get("port"), _alive(c), c.get("log", "")))
    return SandboxInfo(str(dir), state["api_url"], state["zk_hosts"], state.get("base_path", BASE_PATH),
                       tuple(comps), bool(state.get("demo")))


def _child_env() -> dict[str, str]:
    """The environment for our Python children: regctl importable even when not installed."""
    env = dict(os.environ)
    src = str(Path(regctl.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["PYTHONUNBUFFERED"] = "1"
    for var in ("CONFIG_SERVICE_URL", "ZOOKEEPER_HOSTS", "ZOOKEEPER_BASE_PATH", "SERVICE_INSTANCE_ID"):
        env.pop(var, None)
    return env


def _check_port(port: int, flag: str, what: str, grace: float = 0.0) -> None:
    """SandboxError when ``port`` is taken; ``grace`` seconds allow a just-killed owner to let go."""
    deadline = time.monotonic() + grace
    while proc.port_in_use(port, HOST) and time.monotonic() < deadline:
        time.sleep(0.1)
    if proc.port_in_use(port, HOST):
        raise SandboxError(f"port {port} is already in use", where=f"{what} on {HOST}:{port}",
                           hint=f"pass {flag} with another port (or {flag} 0 for a free one), "
                                "or stop what listens there")


# --------------------------------------------------------------------------- components

def _start_zookeeper(dir: Path, state: dict, deadline: float, progress: Progress) -> None:
    port = state["zk_port"]
    _check_port(port, "--zk-port", "ZooKeeper", grace=3.0)
    install = zkmod.find_zookeeper()
    _say(progress, f"starting ZooKeeper {install.version or ''} on {HOST}:{port}".replace("  ", " "))
    started = time.monotonic()
    members = zkmod.start_zookeeper(dir / "zookeeper", port, 1, host=HOST, install=install)
    m = members[0]
    state["components"]["zookeeper"] = {"pid": m.pid, "port": port, "log": m.log, "token": m.config}
    _save(dir, state)
    try:
        zkmod.wait_for(members, timeout=max(1.0, deadline - time.monotonic()))
    except SandboxError as exc:
        zkmod.stop_zookeeper(members)
        raise SandboxError(f"ZooKeeper failed to start: {exc.message}", where=m.log,
                           hint=f"read {m.log}", detail=proc.tail(Path(m.log), 30)) from exc
    _say(progress, f"ZooKeeper serving after {time.monotonic() - started:.1f}s")


def _start_registry(dir: Path, state: dict, deadline: float, progress: Progress) -> None:
    port = state["api_port"]
    _check_port(port, "--api-port", "the registry", grace=3.0)
    log = dir / "registry.log"
    cmd = [PYTHON, "-m", REGISTRY_MODULE, "--host", HOST, "--port", str(port),
           "--zk", state["zk_hosts"], "--base", state["base_path"], "--db", str(dir / DB_FILE),
           "--self-url", state["api_url"]]
    _say(progress, f"starting the registry on {state['api_url']}")
    pid = proc.spawn(cmd, log, cwd=dir, env=_child_env())
    state["components"]["registry"] = {"pid": pid, "port": port, "log": str(log), "token": str(dir / DB_FILE)}
    _save(dir, state)
    last = "no answer"
    with httpx.Client(timeout=1.0, trust_env=False) as client:
        while True:
            try:
                resp = client.get(state["api_url"] + "/health")
                if resp.status_code == 200 and resp.json().get("zookeeper") == "healthy":
                    return
                last = f"HTTP {resp.status_code}"
            except (httpx.HTTPError, ValueError) as exc:
                last = type(exc).__name__
            if not proc.pid_alive(pid):
                raise SandboxError("the registry exited while starting", where=str(log),
                                   hint=f"read {log}", detail=proc.tail(log, 30))
            if time.monotonic() >= deadline:
                proc.stop_process(pid, timeout=2.0)
                raise SandboxError(f"the registry did not answer GET /health in time (last: {last})",
                                   where=str(log), hint=f"read {log}", detail=proc.tail(log, 30))
            time.sleep(0.1)


def _start_demo(dir: Path, state: dict, deadline: float, progress: Progress) -> None:
    marker = dir / "demo.json"
    marker.unlink(missing_ok=True)
    log = dir / "demo.log"
    cmd = [PYTHON, "-m", DEMO_MODULE, "--registry", state["api_url"], "--state-dir", str(dir),
           "--timeout", str(max(1, int(deadline - time.monotonic())))]
    _say(progress, "planting demo services")
    pid = proc.spawn(cmd, log, cwd=dir, env=_child_env())
    state["components"]["demo"] = {"pid": pid, "port": None, "log": str(log), "token": DEMO_MODULE}
    state["demo"] = True
    _save(dir, state)
    while not marker.exists():
        if not proc.pid_alive(pid):
            raise SandboxError("the demo services exited while starting", where=str(log),
                               hint=f"read {log}", detail=proc.tail(log, 30))
        if time.monotonic() >= deadline:
            proc.stop_process(pid, timeout=2.0)
            raise SandboxError("the demo services did not finish registering in time", where=str(log),
                               hint=f"read {log}", detail=proc.tail(log, 30))
        time.sleep(0.1)


def _stop(comp: dict | None) -> bool:
    if not comp:
        return False
    return proc.stop_process(comp.get("pid"), timeout=STOP_TIMEOUT, token=comp.get("token"))


# --------------------------------------------------------------------------- public API

def up(dir: Path, *, api_port: int = 8082, zk_port: int = 2181, demo: bool = False,
       timeout: float = 60.0, progress: Progress = None) -> SandboxInfo:
    """Start ZooKeeper and the registry (and the demo services) under ``dir``; return when they answer.

    Already running there: returns the running sandbox (restarting any part that
    died, on the ports recorded the first time). Port 0 picks a free port. Raises
    :class:`SandboxError` for a port in use, missing ZooKeeper/Java, or a component
    that does not come up within ``timeout`` seconds (everything started by this
    call is stopped again then).
    """
    dir = Path(dir).expanduser().resolve()
    deadline = time.monotonic() + timeout
    with _locked(dir):
        state = _load(dir)
        if state is not None and not any(_alive(c) for c in state.get("components", {}).values()):
            state = None  # nothing survived (a reboot, kill -9): start afresh on the ports asked for
        fresh = state is None
        if state is not None:
            comps = state.get("components", {})
            if all(_alive(comps.get(n)) for n in ("zookeeper", "registry")) and (
                    not demo or _alive(comps.get("demo"))):
                _say(progress, f"sandbox already running in {dir}")
                return _info(dir, state)
            _say(progress, f"sandbox in {dir} is partly down; restarting what stopped")
        else:
            api_port = api_port or proc.free_port(HOST)
            zk_port = zk_port or proc.free_port(HOST)
            if api_port == zk_port:
                raise SandboxError(f"the registry and ZooKeeper cannot share port {api_port}",
                                   hint="pass different --api-port and --zk-port")
            state = {"version": 1, "created": time.time(), "api_port": api_port, "zk_port": zk_port,
                     "api_url": f"http://{HOST}:{api_port}", "zk_hosts": f"{HOST}:{zk_port}",
                     "base_path": BASE_PATH, "demo": False, "components": {}}
            # fail on ports before starting anything
            _check_port(zk_port, "--zk-port", "ZooKeeper")
            _check_port(api_port, "--api-port", "the registry")
        comps = state.setdefault("components", {})
        started: list[str] = []
        try:
            if not _alive(comps.get("zookeeper")):
                if comps.get("registry"):  # its session is gone anyway; restart it on the new ZooKeeper
                    _stop(comps.get("registry"))
                    comps.pop("registry", None)
                _start_zookeeper(dir, state, deadline, progress)
                started.append("zookeeper")
            if not _alive(comps.get("registry")):
                _start_registry(dir, state, deadline, progress)
                started.append("registry")
            if (demo or state.get("demo")) and not _alive(comps.get("demo")):
                _start_demo(dir, state, deadline, progress)
                started.append("demo")
        except BaseException:
            for name in reversed(started):
                _stop(comps.get(name))
                comps.pop(name, None)
            if fresh or not comps:
                (dir / STATE_FILE).unlink(missing_ok=True)
            else:
                _save(dir, state)
            raise
        _save(dir, state)
        info = _info(dir, state)
        _say(progress, f"sandbox up: {info.api_url} (ZooKeeper {info.zk_hosts})")
        return info


def status(dir: Path) -> SandboxInfo | None:
    """What runs in ``dir`` (each component's ``running`` checked now); None when nothing was started."""
    dir = Path(dir).expanduser().resolve()
    state = _load(dir)
    if state is None or "api_url" not in state:
        return None
    return _info(dir, state)


def down(dir: Path) -> list[str]:
    """Stop everything started in ``dir`` (demo, registry, ZooKeeper); return what was running.

    Process groups get SIGTERM, then SIGKILL after a few seconds. Pid state is
    removed; logs, ZooKeeper's data and the registry's database file are kept.
    Idempotent: a second call returns ``[]``.
    """
    dir = Path(dir).expanduser().resolve()
    if not (dir / STATE_FILE).exists():
        return []
    with _locked(dir):
        try:
            state = _load(dir) or {}
        except SandboxError:
            state = {}
        comps = state.get("components", {})
        stopped = [name for name in ("demo", "registry", "zookeeper") if _stop(comps.get(name))]
        (dir / STATE_FILE).unlink(missing_ok=True)
        (dir / "demo.json").unlink(missing_ok=True)
        (dir / "zookeeper" / "zookeeper.pid").unlink(missing_ok=True)
        return stopped


def restart_registry(dir: Path, *, timeout: float = 30.0, progress: Progress = None) -> SandboxInfo:
    """Stop the registry (its ZooKeeper session closes: every instance vanishes) and start it again.

    Same port, same database file: ``GET /services`` rows survive, live instances do
    not, and the demo services do not re-register (like real services).
    """
    dir = Path(dir).expanduser().resolve()
    deadline = time.monotonic() + timeout
    with _locked(dir):
        state = _load(dir)
        if state is None:
            raise SandboxError("no sandbox here", where=str(dir), hint="run 'regctl sandbox up' first")
        comps = state.setdefault("components", {})
        if not _alive(comps.get("zookeeper")):
            raise SandboxError("the sandbox's ZooKeeper is not running", where=str(dir),
                               hint="run 'regctl sandbox up' to restart it")
        _say(progress, "stopping the registry")
        _stop(comps.get("registry"))
        comps.pop("registry", None)
        _start_registry(dir, state, deadline, progress)
        _save(dir, state)
        return _info(dir, state)


# --------------------------------------------------------------------------- command line

def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m regctl.sandbox.stack")
    parser.add_argument("action", choices=("up", "status", "down", "restart-registry", "env"))
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument("--api-port", type=int, default=8082)
    parser.add_argument("--zk-port", type=int, default=2181)
    parser.add_argument("--demo", action="store_true")
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args(argv)
    dir = args.dir or default_dir()

    def progress(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    try:
        if args.action == "up":
            result = up(dir, api_port=args.api_port, zk_port=args.zk_port, demo=args.demo,
                        timeout=args.timeout, progress=progress).to_dict()
        elif args.action == "restart-registry":
            result = restart_registry(dir, timeout=args.timeout, progress=progress).to_dict()
        elif args.action == "down":
            result = {"stopped": down(dir)}
        else:
            info = status(dir)
            if args.action == "env":
                if info is None:
                    raise SandboxError("no sandbox here", where=str(dir), hint="run up first")
                print(info.env_line())
                return 0
            result = info.to_dict() if info else None
    except SandboxError as exc:
        print(f"error: {exc}", file=sys.stderr)
        if exc.detail:
            print(exc.detail, file=sys.stderr)
        return int(exc.exit_code)
    print(json.dumps(result, indent=1))
    if args.action == "status" and (result is None or not result["running"]):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
