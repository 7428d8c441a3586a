"""Start, inspect and stop a local sandbox: ZooKeeper + the registry (+ demo services).

Everything runs as detached background processes (they outlive the command that
started them). One directory holds it all::

    state.json            pids, ports, URLs (removed by down)
    zookeeper/            zoo.cfg, data/, zookeeper.log (an ensemble: member-1..3/ each with its own)
    registry.log          the registry's log
    registry-db.json      the registry's "PostgreSQL" rows (kept across restarts and down)
    registry-cache.json   the registry's "Redis" cache (kept across registry restarts; entries expire)
    registry-session      the registry's current ZooKeeper session id (the sandbox's bookkeeping)
    demo.log, demo.json   the demo services (with --demo)

The CLI layer calls :func:`up`, :func:`status`, :func:`down` and
:func:`restart_registry`; ``python -m regctl.sandbox.stack up|status|down|restart-registry``
does the same with JSON output (for tests and debugging).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import functools
import json
import os
import signal
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterator

import httpx

import regctl
from regctl.errors import SandboxError
from regctl.sandbox import proc, statedir
from regctl.sandbox import zookeeper as zkmod
from regctl.sandbox.recovery import SESSION_FILE, check_registrations

STATE_FILE = "state.json"
DB_FILE = "registry-db.json"
CACHE_FILE = "registry-cache.json"
HOST = "127.0.0.1"
BASE_PATH = "/services"
REGISTRY_MODULE = "regctl.sandbox.registry"
DEMO_MODULE = "regctl.sandbox.demo"
STOP_TIMEOUT = 5.0
GENERATIONS = ("earlier", "later")

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
    #: ZooKeeper members (1: standalone; 3: an ensemble, components zookeeper-1..3)
    ensemble: int = 1
    #: the Config Service generation the registry behaves like: "earlier" or "later"
    generation: str = "earlier"
    #: what the last ``up`` could not put right (e.g. registrations that did not come back)
    warnings: tuple[str, ...] = ()
    #: ZooKeeper's ``4lw.commands.whitelist``: ``srvr`` alone unless opened with ``--four-letter-words``
    four_letter_words: str = zkmod.FOUR_LETTER_WORDS

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
                "base_path": self.base_path, "demo": self.demo, "ensemble": self.ensemble,
                "generation": self.generation, "four_letter_words": self.four_letter_words,
                "running": self.running, "warnings": list(self.warnings),
                "env": {"CONFIG_SERVICE_URL": self.api_url, "ZOOKEEPER_HOSTS": self.zk_hosts},
                "components": [asdict(c) for c in self.components]}


# --------------------------------------------------------------------------- state

def _say(progress: Progress, msg: str) -> None:
    if progress is not None:
        progress(msg)


def _load(dir: Path) -> dict | None:
    try:
        data = json.loads(statedir.read_text(dir / STATE_FILE))
    except FileNotFoundError:
        return None
    except SandboxError:
        raise
    except (OSError, ValueError) as exc:
        raise SandboxError(f"sandbox state is unreadable: {exc}", where=str(dir / STATE_FILE),
                           hint="run 'regctl sandbox down' or delete that file") from exc
    return data if isinstance(data, dict) else None


def _save(dir: Path, state: dict) -> None:
    statedir.write_atomic(dir / STATE_FILE, json.dumps(state, indent=1))


@contextlib.contextmanager
def _locked(dir: Path) -> Iterator[None]:
    """One up/down/restart at a time per directory, which is created or checked first (:func:`statedir.claim`)."""
    statedir.claim(dir)
    fd = statedir.open_lock(dir / ".lock")
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _alive(comp: dict | None) -> bool:
    """The recorded process runs and is provably the one started (its token and start time)."""
    return isinstance(comp, dict) and proc.why_not_ours(comp.get("pid"), comp.get("token"),
                                                        comp.get("started")) is None


def _ensemble(state: dict) -> int:
    try:
        return max(1, int(state.get("ensemble", 1)))
    except (TypeError, ValueError):
        return 1


def _zk_names(state: dict) -> list[str]:
    """Component names of the ZooKeeper members: ``zookeeper``, or ``zookeeper-1`` .. ``zookeeper-n``."""
    n = _ensemble(state)
    return ["zookeeper"] if n == 1 else [f"zookeeper-{i}" for i in range(1, n + 1)]


def _zk_alive(state: dict) -> list[str]:
    comps = state.get("components", {})
    return [n for n in _zk_names(state) if _alive(comps.get(n))]


def _generation(state: dict) -> str:
    return "later" if state.get("generation") == "later" else "earlier"


def _words(state: dict) -> str:
    return str(state.get("four_letter_words") or zkmod.FOUR_LETTER_WORDS)


def _info(dir: Path, state: dict, warnings: tuple[str, ...] = ()) -> SandboxInfo:
    comps = []
    for name in (*_zk_names(state), "registry", "demo"):
        c = state.get("components", {}).get(name)
        if c:
            comps.append(Component(name, c.get("pid"), c.get("port"), _alive(c), c.get("log", "")))
    return SandboxInfo(str(dir), state["api_url"], state["zk_hosts"], state.get("base_path", BASE_PATH),
                       tuple(comps), bool(state.get("demo")), _ensemble(state), _generation(state),
                       tuple(warnings), _words(state))


@contextlib.contextmanager
def _no_interrupts() -> Iterator[None]:
    """Hold SIGINT/SIGTERM/SIGHUP back while a child is spawned and recorded in state.json.

    An interrupt then lands after the pid is on disk, so the cleanup (or a later
    ``down``) knows what to stop. The Python-level handlers are swapped for ones that
    only note the signal, which holds whichever thread the kernel hands the signal to
    (a ``pthread_sigmask`` block covers the calling thread only); on exit the handlers
    come back and a noted signal is raised again.
    No-op outside the main thread.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    held = {}
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        old = signal.getsignal(sig)
        if old is None or old is signal.SIG_IGN:  # installed outside Python, or ignored: leave it
            continue
        held[sig] = old
        signal.signal(sig, lambda signum, _frame: pending.append(signum))
    try:
        yield
    finally:
        for sig, old in held.items():
            signal.signal(sig, old)
        if pending:
            signal.raise_signal(pending[0])


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
    """Start the standalone server, or every ensemble member (all of them; see :func:`_restart_members`)."""
    n = _ensemble(state)
    ports = list(state.get("zk_ports") or [state["zk_port"]])
    for p in ports:
        _check_port(p, "--zk-port", "ZooKeeper", grace=3.0)
    install = zkmod.find_zookeeper()
    what = f"a {n}-member ZooKeeper {install.version or ''} ensemble" if n > 1 else \
        f"ZooKeeper {install.version or ''}"
    _say(progress, f"starting {what} on {', '.join(f'{HOST}:{p}' for p in ports)}".replace("  ", " "))
    started = time.monotonic()
    with _no_interrupts():
        statedir.make_dir(dir / "zookeeper")
        members = zkmod.start_zookeeper(dir / "zookeeper", ports[0], n,
                                        config=zkmod.ZkConfig(host=HOST, words=_words(state)), install=install,
                                        client_ports=ports if n > 1 else None, token=proc.new_token())
        for name, m in zip(_zk_names(state), members):
            state["components"][name] = {"pid": m.pid, "port": m.client_port, "log": m.log, "token": m.token,
                                         "started": m.started, "config": m.config}
        _save(dir, state)
    _wait_zookeeper(members, deadline)
    _say(progress, f"ZooKeeper serving after {time.monotonic() - started:.1f}s")


def _wait_zookeeper(members: list, deadline: float) -> None:
    try:
        zkmod.wait_for(members, timeout=max(1.0, deadline - time.monotonic()))
    except SandboxError as exc:
        zkmod.stop_zookeeper(members)
        log = exc.where or members[0].log
        raise SandboxError(f"ZooKeeper failed to start: {exc.message}", where=log,
                           hint=f"read {log}", detail=exc.detail or proc.tail(Path(log), 30)) from exc


def _restart_members(dir: Path, state: dict, names: list[str], deadline: float, progress: Progress) -> None:
    """Start the stopped members of a running ensemble again with their own zoo.cfg (same ports)."""
    install = zkmod.find_zookeeper()
    comps = state["components"]
    members = []
    for name in names:
        c = comps[name]
        config = Path(c["config"])
        _check_port(c["port"], "--zk-port", f"ZooKeeper {name}", grace=3.0)
        _say(progress, f"restarting {name} on {HOST}:{c['port']}")
        token = proc.new_token()
        with _no_interrupts():
            pid = proc.spawn(install.command(config), Path(c["log"]), cwd=config.parent, token=token)
            c.update(pid=pid, token=token, started=proc.start_time(pid))
            _save(dir, state)
        statedir.write_atomic(config.parent / "zookeeper.pid", f"{pid}\n")
        members.append(zkmod.ZkMember(int(name.rsplit("-", 1)[1]), pid, HOST, c["port"], str(config.parent),
                                      str(config), c["log"], token=token, started=c["started"]))
    _save(dir, state)
    _wait_zookeeper(members, deadline)


def _start_registry(dir: Path, state: dict, deadline: float, progress: Progress) -> None:
    port = state["api_port"]
    _check_port(port, "--api-port", "the registry", grace=3.0)
    log = dir / "registry.log"
    cmd = [PYTHON, "-m", REGISTRY_MODULE, "--host", HOST, "--port", str(port),
           "--zk", state["zk_hosts"], "--base", state["base_path"], "--db", str(dir / DB_FILE),
           "--cache", str(dir / CACHE_FILE), "--session-file", str(dir / SESSION_FILE),
           "--self-url", state["api_url"]]
    if _generation(state) == "later":
        cmd += ["--generation", "later", "--seed-rows",
                "--monitor-interval", str(state.get("monitor_interval") or 30.0)]
    _say(progress, f"starting the registry ({_generation(state)} generation) on {state['api_url']}")
    (dir / SESSION_FILE).unlink(missing_ok=True)  # the new process writes its own
    token = proc.new_token()
    with _no_interrupts():
        pid = proc.spawn(cmd, log, cwd=dir, env=_child_env(), token=token)
        started = proc.start_time(pid)
        state["components"]["registry"] = {"pid": pid, "port": port, "log": str(log),
                                           "token": token, "started": started}
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
                proc.stop_owned(pid, token, started, timeout=2.0)
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
    token = proc.new_token()
    with _no_interrupts():
        pid = proc.spawn(cmd, log, cwd=dir, env=_child_env(), token=token)
        started = proc.start_time(pid)
        state["components"]["demo"] = {"pid": pid, "port": None, "log": str(log), "token": token,
                                       "started": started}
        state["demo"] = True
        _save(dir, state)
    while not marker.exists():
        if not proc.pid_alive(pid):
            raise SandboxError("the demo services exited while starting", where=str(log),
                               hint=f"read {log}", detail=proc.tail(log, 30))
        if time.monotonic() >= deadline:
            proc.stop_owned(pid, token, started, timeout=2.0)
            raise SandboxError("the demo services did not finish registering in time", where=str(log),
                               hint=f"read {log}", detail=proc.tail(log, 30))
        time.sleep(0.1)


def _stop(comp: dict | None, name: str = "", refused: list[str] | None = None) -> bool:
    """Stop a recorded component if provably ours (True); one not provably ours runs on, said in ``refused``."""
    if not isinstance(comp, dict):
        return False
    reason = proc.stop_owned(comp.get("pid"), comp.get("token"), comp.get("started"), timeout=STOP_TIMEOUT)
    if reason is None:
        return True
    if refused is not None and proc.pid_alive(comp.get("pid") if isinstance(comp.get("pid"), int) else None):
        refused.append(f"left {name or 'a process'} alone: {reason}")
    return False


# --------------------------------------------------------------------------- public API

@dataclass(frozen=True)
class SandboxShape:
    """What a sandbox runs; a field left None keeps what runs (a new sandbox: its default).

    ``ensemble``: ZooKeeper members, 1 (standalone, the default) or 3 (an ensemble on loopback:
    client ports ``zk_port`` to ``zk_port + 2``, or three free ones with ``zk_port=0``; the
    registry and the export line list every member). ``generation``: the Config Service
    generation the registry behaves like, ``"earlier"`` (the default) or ``"later"`` (health
    monitor, ``/internal/health-status``, ``/health/detailed``, a dozen seeded rows).
    ``four_letter_words``: ZooKeeper's whitelist (see
    :func:`regctl.sandbox.zookeeper.parse_four_letter_words`), ``srvr`` alone by default, as
    deployments run; ``"all"`` or a list opens more. ``monitor_interval``: the later
    generation's monitor period in seconds (default the contract's 30), for a new sandbox.
    """

    ensemble: int | None = None
    generation: str | None = None
    four_letter_words: str | None = None
    monitor_interval: float | None = None


def up(dir: Path, *, api_port: int = 8082, zk_port: int = 2181, demo: bool = False,
       shape: SandboxShape = SandboxShape(), timeout: float = 60.0, progress: Progress = None) -> SandboxInfo:
    """Start ZooKeeper and the registry (and the demo services) under ``dir`` as ``shape`` says (ZooKeeper
    members, generation, four-letter words: :class:`SandboxShape`); return when they answer.

    Already running there: returns the running sandbox (restarting any part that
    died, on the ports recorded the first time). When the registry had to be
    started again (it died, or ZooKeeper did), the demo services are restarted too
    so that they register again, as the guide's services do when they start; the
    returned ``warnings`` say what did not come back. Port 0 picks a free port.

    Every child is recorded in ``state.json`` as soon as it is spawned; if this call
    fails or is interrupted (Ctrl-C), what it started is stopped again and the
    state left behind is one :func:`down` can use. Raises :class:`SandboxError` for
    a port in use, missing ZooKeeper/Java, a running sandbox with another ensemble
    size, generation or four-letter-word whitelist, or a component that does not come
    up within ``timeout`` seconds.
    """
    ensemble, generation = shape.ensemble, shape.generation
    if ensemble is not None and ensemble not in (1, 3):
        raise SandboxError(f"an ensemble of {ensemble} members is not supported", hint="use --ensemble 1 or 3")
    if generation is not None and generation not in GENERATIONS:
        raise SandboxError(f"unknown generation {generation!r}", hint="use --generation earlier or later")
    words: str | None = None
    if shape.four_letter_words is not None:
        try:
            words = zkmod.parse_four_letter_words(shape.four_letter_words)
        except ValueError as exc:
            raise SandboxError(f"--four-letter-words: {exc}", hint="use all, or a list such as ruok,mntr,cons") from exc
    dir = Path(dir).expanduser().resolve()
    deadline = time.monotonic() + timeout
    with _locked(dir):
        state = _load(dir)
        if state is not None and not any(_alive(c) for c in state.get("components", {}).values()):
            state = None  # nothing survived (a reboot, kill -9): start afresh on the ports asked for
        fresh = state is None
        if state is not None:
            _refuse_other_shape(dir, state, ensemble, generation, words)
            comps = state.get("components", {})
            if all(_alive(comps.get(n)) for n in (*_zk_names(state), "registry")) and (
                    not (demo or state.get("demo")) or _alive(comps.get("demo"))):
                _say(progress, f"sandbox already running in {dir}")
                return _info(dir, state)
            _say(progress, f"sandbox in {dir} is partly down; restarting what stopped")
        else:
            state = _new_state(api_port, zk_port, ensemble or 1, generation or "earlier")
            state["four_letter_words"] = words or zkmod.FOUR_LETTER_WORDS
            if shape.monitor_interval:
                state["monitor_interval"] = float(shape.monitor_interval)
        comps = state.setdefault("components", {})
        before = {name for name, c in comps.items() if _alive(c)}
        warnings: list[str] = []
        try:
            names = _zk_names(state)
            alive = _zk_alive(state)
            if len(alive) <= len(names) // 2:  # standalone down, or an ensemble without quorum
                if comps.get("registry"):  # its session is gone anyway; restart it on the new ZooKeeper
                    _say(progress, "stopping the registry: ZooKeeper went away under it")
                    _stop(comps.get("registry"))
                    comps.pop("registry", None)
                    before.discard("registry")
                    _save(dir, state)
                for name in alive:
                    _stop(comps.get(name))
                    before.discard(name)
                _start_zookeeper(dir, state, deadline, progress)
            elif len(alive) < len(names):
                _restart_members(dir, state, [n for n in names if n not in alive], deadline, progress)
            registry_restarted = False
            if not _alive(comps.get("registry")):
                registry_restarted = not fresh
                _start_registry(dir, state, deadline, progress)
            if registry_restarted and _alive(comps.get("demo")):
                # like the guide's services after a restart of theirs: stop, start, register again
                _say(progress, "restarting the demo services so that they register again")
                _stop(comps.get("demo"))
                comps.pop("demo", None)
                before.discard("demo")
                _save(dir, state)
            if (demo or state.get("demo")) and not _alive(comps.get("demo")):
                _start_demo(dir, state, deadline, progress)
            if registry_restarted:
                warnings = check_registrations(dir, state)
        except BaseException:
            with _no_interrupts():
                _undo(dir, state, before, fresh)
            raise
        _save(dir, state)
        info = _info(dir, state, tuple(warnings))
        _say(progress, f"sandbox up: {info.api_url} (ZooKeeper {info.zk_hosts})")
        return info


def _refuse_other_shape(dir: Path, state: dict, ensemble: int | None, generation: str | None,
                        words: str | None = None) -> None:
    if ensemble is not None and ensemble != _ensemble(state):
        raise SandboxError(f"the sandbox in {dir} runs {_ensemble(state)} ZooKeeper member(s), "
                           f"not {ensemble}", where=str(dir), hint="stop it first with: regctl sandbox down")
    if generation is not None and generation != _generation(state):
        raise SandboxError(f"the sandbox in {dir} runs the {_generation(state)} generation, not {generation}",
                           where=str(dir), hint="stop it first with: regctl sandbox down")
    if words is not None and words != _words(state):
        raise SandboxError(f"the sandbox in {dir} runs ZooKeeper with the four-letter words {_words(state)}, "
                           f"not {words}", where=str(dir), hint="stop it first with: regctl sandbox down")


def _new_state(api_port: int, zk_port: int, n: int, generation: str) -> dict:
    """The state of a sandbox about to start; fails on ports before anything is started."""
    api_port = api_port or proc.free_port(HOST)
    if zk_port:
        zk_ports = [zk_port + i for i in range(n)]
    else:
        zk_ports = []
        while len(zk_ports) < n:
            p = proc.free_port(HOST)
            if p not in zk_ports and p != api_port:
                zk_ports.append(p)
    if api_port in zk_ports:
        raise SandboxError(f"the registry and ZooKeeper cannot share port {api_port}",
                           hint="pass different --api-port and --zk-port")
    if any(p > 65535 for p in zk_ports):
        raise SandboxError(f"ZooKeeper ports {zk_ports[0]}..{zk_ports[-1]} run past 65535",
                           hint="pass a lower --zk-port, or --zk-port 0")
    for p in zk_ports:
        _check_port(p, "--zk-port", "ZooKeeper")
    _check_port(api_port, "--api-port", "the registry")
    return {"version": 1, "created": time.time(), "api_port": api_port, "zk_port": zk_ports[0],
            "zk_ports": zk_ports, "ensemble": n, "generation": generation,
            "api_url": f"http://{HOST}:{api_port}",
            "zk_hosts": ",".join(f"{HOST}:{p}" for p in zk_ports),
            "base_path": BASE_PATH, "demo": False, "components": {}}


def _undo(dir: Path, state: dict, before: set[str], fresh: bool) -> None:
    """Stop every component this ``up`` started (demo first), keeping state.json true after each step."""
    comps = state.get("components", {})
    order = ["demo", "registry", *[n for n in comps if n == "zookeeper" or n.startswith("zookeeper-")]]
    for name in order:
        if name in comps and name not in before:
            _stop(comps.get(name))
            comps.pop(name, None)
            _save(dir, state)
    if fresh or not any(_alive(c) for c in comps.values()):
        (dir / STATE_FILE).unlink(missing_ok=True)
        (dir / "demo.json").unlink(missing_ok=True)


def status(dir: Path) -> SandboxInfo | None:
    """What runs in ``dir`` (each component's ``running`` checked now); None when nothing was started."""
    dir = Path(dir).expanduser().resolve()
    if not os.path.lexists(dir):
        return None
    statedir.check(dir)
    state = _load(dir)
    if state is None or "api_url" not in state:
        return None
    return _info(dir, state)


def down(dir: Path, refused: list[str] | None = None) -> list[str]:
    """Stop everything started in ``dir`` (demo, registry, ZooKeeper); return what was running.

    Only processes provably started here are signalled: each one's start time and the
    random token in its environment must be the ones ``state.json`` recorded (see
    :func:`regctl.sandbox.proc.why_not_ours`); any other process a state file names is
    left alone, and ``refused`` (when given) gets a line for it. Process groups get
    SIGTERM, then SIGKILL after a few seconds. Pid state is removed; logs, ZooKeeper's
    data and the registry's database file are kept. Idempotent: a second call returns ``[]``.
    A directory regctl cannot trust (:mod:`regctl.sandbox.statedir`) is refused.
    """
    dir = Path(dir).expanduser().resolve()
    if not os.path.lexists(dir):
        return []
    statedir.check(dir)
    if not os.path.lexists(dir / STATE_FILE):
        return []
    with _locked(dir):
        try:
            state = _load(dir) or {}
        except SandboxError:
            state = {}
        comps = state.get("components") if isinstance(state.get("components"), dict) else {}
        zk_names = [n for n in comps if n == "zookeeper" or str(n).startswith("zookeeper-")]
        stopped = [name for name in ("demo", "registry", *sorted(zk_names))
                   if _stop(comps.get(name), name, refused)]
        (dir / STATE_FILE).unlink(missing_ok=True)
        (dir / "demo.json").unlink(missing_ok=True)
        zk_dir = dir / "zookeeper"
        if zk_dir.is_dir() and not zk_dir.is_symlink():  # never unlink through a planted symlink
            for pid_file in (zk_dir / "zookeeper.pid", *zk_dir.glob("member-*/zookeeper.pid")):
                if not pid_file.parent.is_symlink():
                    pid_file.unlink(missing_ok=True)
        return stopped


def restart_registry(dir: Path, *, timeout: float = 30.0, progress: Progress = None,
                     linger: bool = False) -> SandboxInfo:
    """Stop the registry (its ZooKeeper session closes: every instance vanishes) and start it again.

    Same port, same database and cache files: ``GET /services`` rows survive, live
    instances do not, and the demo services do not re-register (like real services).
    A graceful stop deregisters the registry's own node and closes its session; the
    new process registers itself anew. ``linger=True`` kills it instead (SIGKILL): its
    session is never closed, so its nodes stay visible, owned by a session nobody
    holds, until that session times out (5 s), as after a crash of the real Config
    Service; the new process finds its own node still there and rewrites it in place
    (``stat.version`` 1, the old owner), so that node vanishes with the others.
    """
    dir = Path(dir).expanduser().resolve()
    deadline = time.monotonic() + timeout
    with _locked(dir):
        state = _load(dir)
        if state is None:
            raise SandboxError("no sandbox here", where=str(dir), hint="run 'regctl sandbox up' first")
        comps = state.setdefault("components", {})
        if len(_zk_alive(state)) <= len(_zk_names(state)) // 2:
            raise SandboxError("the sandbox's ZooKeeper is not running (or has no quorum)", where=str(dir),
                               hint="run 'regctl sandbox up' to restart it")
        reg = comps.get("registry")
        if linger and _alive(reg):
            _say(progress, "killing the registry (its session is left to time out)")
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(reg["pid"], signal.SIGKILL)
            gone = time.monotonic() + STOP_TIMEOUT
            while proc.pid_alive(reg["pid"]) and time.monotonic() < gone:
                time.sleep(0.05)
        _say(progress, "stopping the registry")
        _stop(reg)
        comps.pop("registry", None)
        _start_registry(dir, state, deadline, progress)
        _save(dir, state)
        return _info(dir, state)


# --------------------------------------------------------------------------- command line

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m regctl.sandbox.stack")
    parser.add_argument("action", choices=("up", "status", "down", "restart-registry", "env"))
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument("--api-port", type=int, default=8082)
    parser.add_argument("--zk-port", type=int, default=2181)
    parser.add_argument("--demo", action="store_true")
    parser.add_argument("--ensemble", type=int, default=None, choices=(1, 3))
    parser.add_argument("--generation", default=None, choices=GENERATIONS)
    parser.add_argument("--four-letter-words", default=None, metavar="all|LIST",
                        help="ZooKeeper's 4lw.commands.whitelist (default srvr, as deployments run)")
    parser.add_argument("--linger", action="store_true",
                        help="restart-registry: kill it, leaving its session's nodes until they time out")
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args(argv)
    dir = args.dir or default_dir()
    progress = functools.partial(print, file=sys.stderr, flush=True)
    try:
        if args.action == "up":
            shape = SandboxShape(args.ensemble, args.generation, args.four_letter_words)
            result = up(dir, api_port=args.api_port, zk_port=args.zk_port, demo=args.demo, shape=shape,
                        timeout=args.timeout, progress=progress).to_dict()
        elif args.action == "restart-registry":
            result = restart_registry(dir, timeout=args.timeout, progress=progress, linger=args.linger).to_dict()
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
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
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
    code = main()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # decided: a late Ctrl-C must not make it die by SIGINT
    sys.exit(code)
