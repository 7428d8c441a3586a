"""Shared fixtures: an isolated environment, a real ZooKeeper, registries, the demo sandbox.

ZooKeeper is required (CI installs it): a missing ZooKeeper FAILS the tests that
need it instead of skipping them. Helpers other than fixtures live in
``tests/helpers.py``.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import pytest

from regctl.sandbox.proc import free_port  # noqa: F401  (re-exported for tests)

from regctl.errors import SandboxError

# pytest-xdist's workers set COLUMNS/LINES (80x24); regctl honours COLUMNS, and the tests choose a
# width themselves where one matters: no inherited terminal size.
for _name in ("COLUMNS", "LINES"):
    os.environ.pop(_name, None)


ISOLATED_VARS = (
    "CONFIG_SERVICE_URL", "ZOOKEEPER_HOSTS", "ZOOKEEPER_BASE_PATH", "SERVICE_NAME", "SERVICE_PORT",
    "SERVICE_HOST", "SERVICE_PUBLIC_URL", "SERVICE_INSTANCE_ID", "NO_COLOR", "REGCTL_CONTEXT",
    "REGCTL_HEADERS", "REGCTL_TOKEN", "REGCTL_CA_BUNDLE", "REGCTL_INSECURE", "REGCTL_ZK_AUTH", "REGCTL_ZK_TLS",
    "REGCTL_ZK_CA", "REGCTL_ZK_CERT", "REGCTL_ZK_KEY", "SSL_CERT_FILE", "SSL_CERT_DIR",
)


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No registry settings leak in from the developer's shell; config and sandbox live in tmp_path."""
    for var in ISOLATED_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("REGCTL_CONFIG", str(tmp_path / "regctl-config.yaml"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    monkeypatch.setenv("REGCTL_SANDBOX_DIR", str(tmp_path / "sandbox"))


# --------------------------------------------------------------------------- ZooKeeper

@dataclass
class ZkServer:
    hosts: str
    port: int
    dir: Path
    members: list = field(default_factory=list)

    @property
    def log(self) -> Path:
        return Path(self.members[0].log)


@pytest.fixture(scope="session")
def zk_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ZkServer]:
    """A real standalone ZooKeeper on a free port, shared by the session."""
    from regctl.sandbox import proc
    from regctl.sandbox import zookeeper as zk

    try:
        install = zk.find_zookeeper()
    except SandboxError as exc:
        pytest.fail(f"ZooKeeper is required for these tests and was not found: {exc}", pytrace=False)
    dir = tmp_path_factory.mktemp("zookeeper")
    # every word open: the tests of four-letter-word features share this one; zk_srvr_only is the deployment's
    members = zk.start_zookeeper(dir, free_port(), 1, config=zk.ZkConfig(words=zk.ALL_FOUR_LETTER_WORDS),
                                 install=install)
    try:
        try:
            zk.wait_for(members, timeout=60)
        except SandboxError as exc:
            pytest.fail(f"{exc}\n--- ZooKeeper log tail ---\n{proc.tail(Path(members[0].log), 40)}",
                        pytrace=False)
        m = members[0]
        yield ZkServer(hosts=m.hosts, port=m.client_port, dir=dir, members=members)
    finally:
        zk.stop_zookeeper(members)


@pytest.fixture(scope="session")
def zk_srvr_only(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ZkServer]:
    """A real ZooKeeper that allows only ``srvr``, as the deployment's (cp-zookeeper) does."""
    from regctl.sandbox import zookeeper as zk

    dir = tmp_path_factory.mktemp("zookeeper-srvr")
    members = zk.start_zookeeper(dir, free_port(), 1, config=zk.ZkConfig(words="srvr"))
    try:
        zk.wait_for(members, timeout=60)
        m = members[0]
        yield ZkServer(hosts=m.hosts, port=m.client_port, dir=dir, members=members)
    finally:
        zk.stop_zookeeper(members)


@pytest.fixture
def kazoo_client(zk_server: ZkServer):
    """A connected KazooClient on ``zk_server``."""
    from kazoo.client import KazooClient

    client = KazooClient(hosts=zk_server.hosts, timeout=10)
    client.start(timeout=15)
    try:
        yield client
    finally:
        client.stop()
        client.close()


# --------------------------------------------------------------------------- registry

@dataclass
class RunningRegistry:
    server: object  # regctl.sandbox.registry.server.RegistryServer
    url: str
    zk_hosts: str
    base_path: str

    @property
    def env(self) -> dict[str, str]:
        return {"CONFIG_SERVICE_URL": self.url, "ZOOKEEPER_HOSTS": self.zk_hosts,
                "ZOOKEEPER_BASE_PATH": self.base_path}

    @property
    def api(self) -> str:
        return self.url + "/api/v1/registry"


@pytest.fixture
def make_registry(zk_server: ZkServer):
    """Factory: ``make_registry(cache_ttl=0.5, generation="later", zk_timeout=4, ...)`` -> RunningRegistry.

    Keyword arguments are :class:`regctl.sandbox.registry.server.RegistryServer`'s own (``zk_hosts``,
    ``base_path``, ``zk_timeout``) and the fields of its option groups (``Identity``, ``Listener``,
    ``Storage``, ``Behaviour``, ``Switches``), each put in its group here. Each gets
    a unique base path ``/regctl-test-<hex>/services`` unless one is given; all are
    stopped after the test. The failure switches are on ``.server``: ``faults``,
    ``lose_zk_client()``, ``restart(linger=...)`` (see docs/sandbox.md).
    """
    import dataclasses

    from regctl.sandbox.registry import server as registry_server

    groups = {"identity": registry_server.Identity, "listener": registry_server.Listener,
              "storage": registry_server.Storage, "behaviour": registry_server.Behaviour,
              "switches": registry_server.Switches}
    started = []

    def make(**kwargs) -> RunningRegistry:
        kwargs.setdefault("base_path", f"/regctl-test-{secrets.token_hex(4)}/services")
        kwargs.setdefault("zk_hosts", zk_server.hosts)
        kwargs.setdefault("self_url", None)
        kwargs.setdefault("port", 0)
        options = {}
        for group, cls in groups.items():
            fields = {f.name for f in dataclasses.fields(cls)}
            options[group] = cls(**{k: kwargs.pop(k) for k in list(kwargs) if k in fields})
        server = registry_server.RegistryServer(**kwargs, **options)
        server.start()
        started.append(server)
        return RunningRegistry(server, server.url, kwargs["zk_hosts"], server.base_path)

    try:
        yield make
    finally:
        for server in started:
            server.stop()


@pytest.fixture
def registry(make_registry) -> RunningRegistry:
    """An in-process registry (contract behaviour, 60 s cache) on a free port with its own base path."""
    return make_registry()


# --------------------------------------------------------------------------- sandbox

@pytest.fixture(scope="session")
def demo_sandbox(tmp_path_factory: pytest.TempPathFactory):
    """The real ``stack.up(dir, api_port=0, zk_port=0, demo=True)`` (subprocesses); down at the end."""
    from regctl.sandbox import stack

    dir = tmp_path_factory.mktemp("demo-sandbox")
    try:
        info = stack.up(dir, api_port=0, zk_port=0, demo=True, timeout=90)
    except SandboxError as exc:
        stack.down(dir)
        pytest.fail(f"sandbox did not start: {exc}\n{exc.detail or ''}", pytrace=False)
    try:
        yield info
    finally:
        stack.down(dir)


# --------------------------------------------------------------------------- the real Config Service

@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """In CI a skipped real-service test is a failure: CI must prove what only the real service can."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and "real_equipment" in getattr(item, "fixturenames", ()):
        from tests import realservice as rs

        if rs.in_ci():
            report.outcome = "failed"
            report.longrepr = f"real-service test skipped in CI: {report.longrepr}"
    # registry data in captured logs may hold lone surrogates (undecodable node names); pytest-xdist
    # sends every report to the controller as UTF-8 and would die on them: send them escaped
    report.sections = [(title, _utf8_safe(text)) for title, text in report.sections]
    if isinstance(report.longrepr, str):
        report.longrepr = _utf8_safe(report.longrepr)


def _utf8_safe(text: str) -> str:
    return text.encode("utf-8", "backslashreplace").decode("utf-8") if isinstance(text, str) else text


@pytest.fixture(scope="session")
def real_equipment() -> None:
    """The real Config Service can run here; in CI its absence fails, elsewhere it skips with one line."""
    from tests import realservice as rs

    try:
        rs.check_available()
    except rs.Unavailable as exc:
        if rs.in_ci():
            pytest.fail(f"CI must run the real-service tests: {exc}", pytrace=False)
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def pg_cluster(real_equipment):
    """One PostgreSQL cluster for the session's real Config Services (a database each)."""
    from tests import realservice as rs

    pg = rs.PgCluster()
    pg.start()
    try:
        yield pg
    finally:
        pg.destroy()


@pytest.fixture
def make_real_service(real_equipment, pg_cluster, zk_srvr_only, tmp_path):
    """Factory: ``make_real_service("earlier"|"later", session_timeout=8, pg=..., zk_hosts=...)`` -> started.

    Each gets its own Redis, database and ZooKeeper base path; ZooKeeper is the
    srvr-only one, like a deployment's. All are killed after the test.
    """
    from tests import realservice as rs

    made: list = []

    def make(generation: str, *, start: bool = True, pg=None, zk_hosts: str | None = None, **kwargs):
        d = tmp_path / f"real-{len(made)}"
        d.mkdir()
        cs = rs.ConfigService(generation, zk_hosts or zk_srvr_only.hosts, pg or pg_cluster, d, **kwargs)
        made.append(cs)
        if start:
            cs.start()
        return cs

    try:
        yield make
    finally:
        for cs in made:
            cs.close()


@pytest.fixture(params=["earlier", "later"])
def real_service(request, make_real_service):
    """The real Config Service, each generation in turn, with an 8 s ZooKeeper session."""
    return make_real_service(request.param, session_timeout=8)


def pytest_collection_modifyitems(config, items):
    """Every unit test is a compatibility test too: the markers alone say what each CI leg runs."""
    unit = Path(__file__).resolve().parent / "unit"
    for item in items:
        if unit in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.compat)
