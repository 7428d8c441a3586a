"""The real Config Service (upstream source, either generation) as test equipment.

It runs unchanged from ``../shared/config-service`` (or ``REGCTL_CONFIG_SERVICE_SRC``)
with its own virtualenv (``.venv-config-service``, built by
``scripts/config-service-venv.sh``; or ``REGCTL_CONFIG_SERVICE_PYTHON``), against a
real PostgreSQL cluster (``initdb`` of the Debian ``postgresql`` package, on a free
loopback port), a real ``redis-server`` and the suite's real ZooKeeper, on 127.0.0.1.

It can be broken the way production breaks: :meth:`ConfigService.kill9` and
:meth:`ConfigService.start` (crash-restart), :meth:`ConfigService.stop` (graceful),
:meth:`RedisServer.stop`, :meth:`PgCluster.stop`, a ZooKeeper outage long enough
for its client to give up, a bad stored status or a stale cache (written into
ZooKeeper behind its back), and the later generation's health monitor.

Nothing here imports the service: it is a black box on a port, as in production.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import httpx

from regctl.sandbox.proc import free_port
from tests.helpers import wait_until

REPO = Path(__file__).resolve().parent.parent
GENERATIONS = ("earlier", "later")
#: revisions the later generation's database needs, in order (the last one seeds a dozen rows)
LATER_REVISIONS = ("5c424da577cc_auto_20260416_155245", "a3f1e2d4b8c9_remove_feature_flags_20260430",
                   "3e0071a79cab_seed_default_data")
HOW_TO_POINT = ("the real Config Service is not available here: set REGCTL_CONFIG_SERVICE_SRC to its source "
                "(default ../shared/config-service) and run scripts/config-service-venv.sh "
                "(or set REGCTL_CONFIG_SERVICE_PYTHON)")


class Unavailable(Exception):
    """The real service (its source, its venv, PostgreSQL or Redis) cannot be run here; says why."""


def source_dir() -> Path:
    return Path(os.environ.get("REGCTL_CONFIG_SERVICE_SRC") or REPO.parent / "shared" / "config-service")


def service_python() -> Path:
    return Path(os.environ.get("REGCTL_CONFIG_SERVICE_PYTHON") or REPO / ".venv-config-service" / "bin" / "python")


def pg_bin() -> Path:
    for cand in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (cand / "initdb").exists():
            return cand
    raise Unavailable("PostgreSQL is not installed (apt-get install postgresql)")


def check_available() -> None:
    """Raise :class:`Unavailable` with one line when something the real service needs is missing."""
    src = source_dir()
    if not (src / "earlier" / "main.py").exists() or not (src / "later" / "main.py").exists():
        raise Unavailable(f"no Config Service source at {src}; " + HOW_TO_POINT)
    if not service_python().exists():
        raise Unavailable(f"no Python for the Config Service at {service_python()}; " + HOW_TO_POINT)
    pg_bin()
    if not shutil.which("redis-server"):
        raise Unavailable("redis-server is not installed (apt-get install redis-server)")


def _as_postgres(cmd: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run its tools as the 'postgres' user then."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *cmd]
    return cmd


def _wait(pred, timeout: float, what: str, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.1)
    tail = ""
    if log is not None and log.exists():
        tail = "\n--- log tail ---\n" + "\n".join(log.read_text(errors="replace").splitlines()[-30:])
    raise RuntimeError(f"{what} within {timeout:.0f}s{tail}")


# --------------------------------------------------------------------------- PostgreSQL

class PgCluster:
    """A throw-away PostgreSQL cluster on 127.0.0.1:port (trust auth, role ``cfg``)."""

    def __init__(self) -> None:
        self.bin = pg_bin()
        self.dir = Path(tempfile.mkdtemp(prefix="regctl-pg-"))
        self.data = self.dir / "data"
        self.log = self.dir / "postgres.log"
        self.port = free_port()
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        subprocess.run(_as_postgres([str(self.bin / "initdb"), "-D", str(self.data), "-U", "cfg",
                                     "--auth=trust", "-E", "UTF8", "--no-sync"]),
                       check=True, capture_output=True, timeout=120)
        with open(self.data / "postgresql.conf", "a") as f:
            f.write(f"listen_addresses = '127.0.0.1'\nport = {self.port}\nunix_socket_directories = '{self.dir}'\n"
                    "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\nmax_connections = 200\n")

    def start(self) -> None:
        subprocess.run(_as_postgres([str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.log),
                                     "-w", "-t", "60", "start"]), check=True, capture_output=True, timeout=90)

    def stop(self) -> None:
        subprocess.run(_as_postgres([str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w",
                                     "stop"]), capture_output=True, timeout=60)

    @property
    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def psql(self, sql: str, db: str = "postgres") -> str:
        out = subprocess.run([str(self.bin / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "cfg",
                              "-d", db, "-v", "ON_ERROR_STOP=1", "-At", "-c", sql],
                             check=True, capture_output=True, text=True, timeout=60)
        return out.stdout

    def create_db(self) -> str:
        name = "config_db_" + secrets.token_hex(4)
        self.psql(f"create database {name}")
        return name

    def url(self, db: str) -> str:
        return f"postgresql+asyncpg://cfg@127.0.0.1:{self.port}/{db}"

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


# --------------------------------------------------------------------------- Redis

class RedisServer:
    """One ``redis-server`` on 127.0.0.1 without persistence; :meth:`stop` and :meth:`start` at will."""

    def __init__(self, dir: Path) -> None:
        self.dir = dir
        self.port = free_port()
        self.log = dir / f"redis-{self.port}.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.dir)], stdout=open(self.log, "ab"), stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL)
        _wait(self._pong, 20, f"redis-server did not answer on port {self.port}", self.log)

    def _pong(self) -> bool:
        import socket

        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None


# --------------------------------------------------------------------------- the Config Service

@dataclass
class ConfigService:
    """One real Config Service process (``generation`` ``earlier`` or ``later``) on 127.0.0.1:port.

    ``base_path`` is its ZooKeeper base; ``session_timeout`` its ZooKeeper session
    (seconds; production's 30 by default); ``monitor_interval`` the later generation's
    health monitor period.
    """

    generation: str
    zk_hosts: str
    pg: PgCluster
    dir: Path
    base_path: str = field(default_factory=lambda: f"/real-{secrets.token_hex(4)}/services")
    session_timeout: float = 30.0
    monitor_interval: int = 30
    seed: bool = True
    instance_id: str = "config-service-1"
    port: int = field(default_factory=free_port)
    db: str = ""
    redis: RedisServer | None = None
    proc: subprocess.Popen | None = None
    log: Path | None = None
    starts: int = 0

    def __post_init__(self) -> None:
        if self.generation not in GENERATIONS:
            raise ValueError(f"generation must be one of {GENERATIONS}")
        self.redis = RedisServer(self.dir)
        self.redis.start()
        self.db = self.pg.create_db()
        if self.generation == "later":
            self._migrate()

    # -- what tests use
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api(self) -> str:
        return self.url + "/api/v1/registry"

    @property
    def env(self) -> dict[str, str]:
        """regctl's settings for this deployment (as seen from the host)."""
        return {"CONFIG_SERVICE_URL": self.url, "ZOOKEEPER_HOSTS": self.zk_hosts, "ZOOKEEPER_BASE_PATH": self.base_path}

    @property
    def own_node(self) -> str:
        return f"{self.base_path}/config-service/instances/{self.instance_id}"

    def service_env(self) -> dict[str, str]:
        assert self.redis is not None
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.dir),
            "REDIS_HOST": "127.0.0.1", "REDIS_PORT": str(self.redis.port), "REDIS_PASSWORD": "",
            "DATABASE_URL": self.pg.url(self.db), "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9",
            "ZOOKEEPER_HOSTS": self.zk_hosts, "ZOOKEEPER_BASE_PATH": self.base_path,
            "ZOOKEEPER_CONNECTION_TIMEOUT": "10", "ZOOKEEPER_SESSION_TIMEOUT": f"{self.session_timeout:g}",
            "SERVICE_NAME": "config-service", "SERVICE_PORT": "8082", "SERVICE_INSTANCE_ID": self.instance_id,
            "PYTHONUNBUFFERED": "1",
        }
        if self.generation == "later":
            env.update({
                "SERVICE_REGISTRY_ENABLED": "true", "SERVICE_HEALTH_CHECK_INTERVAL": str(self.monitor_interval),
                "SERVICE_HEALTH_CHECK_ENABLED": "true", "HEALTH_CHECK_TIMEOUT": "3", "HEALTH_CHECK_MAX_RETRIES": "3",
                "HEALTH_CHECK_INITIAL_RETRY_DELAY": "1.0", "HEALTH_CHECK_MAX_RETRY_DELAY": "30.0",
                "HEALTH_CHECK_RETRY_BACKOFF": "2.0", "HEALTH_CHECK_ADDITIONAL_ENDPOINTS": "/ready,/live",
                "AUTH_ENABLED": "true",
            })
        return env

    def start(self, timeout: float = 60) -> None:
        """Start (or start again after :meth:`kill9`/:meth:`stop`) and wait for ``GET /live``."""
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError("already running")
        self.log = self.dir / f"config-service-{self.port}.log"
        self.starts += 1
        with open(self.log, "ab") as log:
            log.write(f"\n===== start {self.starts} =====\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                [str(service_python()), "-m", "uvicorn", "main:app", "--host", "127.0.0.1", "--port", str(self.port),
                 "--log-level", "warning"],
                cwd=source_dir() / self.generation, env=self.service_env(), stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True)
        _wait(self._live, timeout, f"the real Config Service ({self.generation}) did not answer /live", self.log)
        # /live answers before the start-up hook has registered its own node
        _wait(self.self_registered, 20, "the real Config Service did not register itself", self.log)

    def _live(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"the real Config Service exited with {self.proc.returncode}:\n"
                               + "\n".join(Path(self.log).read_text(errors="replace").splitlines()[-40:]))
        try:
            return httpx.get(self.url + "/live", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def self_registered(self) -> bool:
        from kazoo.client import KazooClient

        zk = KazooClient(hosts=self.zk_hosts, timeout=5)
        try:
            zk.start(timeout=5)
            return zk.exists(self.own_node) is not None
        except Exception:
            return False
        finally:
            zk.stop()
            zk.close()

    def kill9(self) -> None:
        """A crash: SIGKILL, its ZooKeeper session left open (its nodes linger until it expires)."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self, timeout: float = 20) -> None:
        """A graceful stop (SIGTERM): it deregisters itself and closes its session."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill9()

    def restart(self, how: str = "kill9") -> None:
        self.kill9() if how == "kill9" else self.stop()
        self.start()

    def close(self) -> None:
        self.kill9()
        if self.redis is not None:
            self.redis.stop()

    # -- talking to it as a client would
    def register(self, service: str, instance_id: str, url: str | None = None, status: str | None = "healthy",
                 **metadata) -> httpx.Response:
        meta = {"instance_id": instance_id, **metadata}
        if status is not None:
            meta["status"] = status
        body = {"service_name": service, "service_url": url or f"http://{service}:8080",
                "health_check_url": None, "service_metadata": meta}
        return httpx.post(self.api + "/register", json=body, timeout=30)

    def _migrate(self) -> None:
        script = (
            "import asyncio, importlib.util, sys\n"
            "from alembic.operations import Operations\n"
            "from alembic.runtime.migration import MigrationContext\n"
            "from sqlalchemy.ext.asyncio import create_async_engine\n"
            "url, folder, revs = sys.argv[1], sys.argv[2], sys.argv[3:]\n"
            "def apply(conn):\n"
            "    ctx = MigrationContext.configure(conn)\n"
            "    with Operations.context(ctx):\n"
            "        for rev in revs:\n"
            "            spec = importlib.util.spec_from_file_location(rev, f'{folder}/{rev}.py')\n"
            "            mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod); mod.upgrade()\n"
            "async def main():\n"
            "    eng = create_async_engine(url)\n"
            "    async with eng.begin() as conn:\n"
            "        await conn.run_sync(apply)\n"
            "    await eng.dispose()\n"
            "asyncio.run(main())\n")
        revs = LATER_REVISIONS if self.seed else LATER_REVISIONS[:2]
        subprocess.run([str(service_python()), "-c", script, self.pg.url(self.db),
                        str(source_dir() / "later-extras" / "migrations" / "config_db"), *revs],
                       check=True, capture_output=True, timeout=120)




def in_ci(env: Mapping[str, str] = os.environ) -> bool:
    return env.get("CI", "").lower() in ("1", "true", "yes")


__all__ = ["ConfigService", "PgCluster", "RedisServer", "Unavailable", "check_available", "GENERATIONS",
           "wait_until", "in_ci"]
