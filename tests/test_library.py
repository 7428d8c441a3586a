"""regctl.client: the guide's client as a library, against the contract registry."""

import asyncio
import inspect
import json
import logging
import subprocess
import sys

import httpx
import pytest

from regctl.client import (
    InvalidRequest,
    NoHealthyInstance,
    RegisteredService,
    RegistryError,
    RegistryUnavailable,
    ServiceRegistryClient,
    ServiceRegistryHttpClient,
    registered_service,
    registered_service_sync,
)
from regctl.sandbox.proc import free_port
from tests.helpers import run_cli

pytestmark = pytest.mark.compat  # also run on the oldest and newest Python (.ci/run)


def zk_node(kazoo_client, registry, name, iid):
    path = f"{registry.base_path}/{name}/instances/{iid}"
    if kazoo_client.exists(path) is None:
        return None
    return json.loads(kazoo_client.get(path)[0])


def api_ids(registry, name):
    return sorted(i["instance_id"] for i in httpx.get(f"{registry.api}/services/{name}", timeout=5).json())


def guide_env(registry, **extra):
    return {"SERVICE_NAME": "lib-service", "SERVICE_PORT": "8090", "SERVICE_HOST": "lib-host",
            "CONFIG_SERVICE_URL": registry.url, **extra}


def test_registered_service_context_manager_round_trip(registry, kazoo_client):
    seen = {}

    async def main():
        async with registered_service(guide_env(registry, SERVICE_INSTANCE_ID="lib-1"),
                                      metadata={"version": "1.4.0"}) as reg:
            seen["reg"] = reg
            seen["node"] = zk_node(kazoo_client, registry, "lib-service", "lib-1")
            seen["api"] = api_ids(registry, "lib-service")
        seen["after"] = zk_node(kazoo_client, registry, "lib-service", "lib-1")

    asyncio.run(main())
    reg = seen["reg"]
    assert reg and reg.instance_id == "lib-1" and reg.service_name == "lib-service"
    assert seen["node"]["service_url"] == "http://lib-host:8090"
    assert seen["node"]["health_check_url"] == "http://lib-host:8090/health"
    assert seen["node"]["status"] == "healthy" and seen["node"]["version"] == "1.4.0"
    assert seen["api"] == ["lib-1"]
    assert seen["after"] is None and reg.deregistered is True
    assert api_ids(registry, "lib-service") == []


def test_registered_service_default_instance_id_and_os_environ(registry, kazoo_client, monkeypatch):
    for k, v in guide_env(registry).items():
        monkeypatch.setenv(k, v)
    with registered_service_sync() as reg:
        assert reg.instance_id.startswith("lib-service-")  # the guide's {SERVICE_NAME}-{pid}
        assert zk_node(kazoo_client, registry, "lib-service", reg.instance_id) is not None
    assert zk_node(kazoo_client, registry, "lib-service", reg.instance_id) is None


def test_registered_service_body_errors_propagate_after_deregistering(registry, kazoo_client):
    async def main():
        async with registered_service(guide_env(registry, SERVICE_INSTANCE_ID="boom-1")):
            raise RuntimeError("app crashed")

    with pytest.raises(RuntimeError, match="app crashed"):
        asyncio.run(main())
    assert zk_node(kazoo_client, registry, "lib-service", "boom-1") is None


def test_async_client_methods(registry, kazoo_client):
    client = ServiceRegistryHttpClient(base_url=registry.url)

    async def main():
        iid = await client.register("cli-svc", "http://c:1", "http://c:1/health", {"instance_id": "c-1",
                                                                                   "status": "healthy"})
        url = await client.discover_url("cli-svc")
        gone = await client.deregister("cli-svc", iid)
        none = await client.discover_url("cli-svc")
        anon = await client.register("cli-svc", "http://c:2", None)  # no metadata: server-made id, not discoverable
        hidden = await client.discover_url("cli-svc")
        return iid, url, gone, none, anon, hidden

    iid, url, gone, none, anon, hidden = asyncio.run(main())
    assert (iid, url, gone, none) == ("c-1", "http://c:1", True, None)
    assert len(anon) == 36 and hidden is None  # status unknown: /url never returns it (the guide's pitfall)
    assert zk_node(kazoo_client, registry, "cli-svc", anon)["service_url"] == "http://c:2"


def test_constructor_reads_config_service_url(registry, monkeypatch):
    monkeypatch.setenv("CONFIG_SERVICE_URL", registry.url + "/")
    assert ServiceRegistryHttpClient().base_url == registry.url
    assert ServiceRegistryHttpClient()._registry_base == registry.url + "/api/v1/registry"
    monkeypatch.delenv("CONFIG_SERVICE_URL")
    assert ServiceRegistryClient().base_url == "http://config-service:8082"


def test_sync_client_methods(registry):
    client = ServiceRegistryClient(base_url=registry.url)
    assert client.register("sync-svc", "http://s:1", "http://s:1/health", {"instance_id": "s-1",
                                                                          "status": "healthy"}) == "s-1"
    assert client.discover_url("sync-svc") == "http://s:1"
    assert client.deregister("sync-svc", "s-1") is True
    assert client.discover_url("sync-svc") is None


def test_registry_down_never_raises(caplog):
    down = f"http://127.0.0.1:{free_port()}"
    client = ServiceRegistryHttpClient(base_url=down)
    caplog.set_level(logging.WARNING, logger="regctl.client")

    async def main():
        return (await client.register("x", "http://x:1", "http://x:1/health", request_timeout_s=1),
                await client.deregister("x", "x-1", request_timeout_s=1),
                await client.discover_url("x", request_timeout_s=1))

    assert asyncio.run(main()) == (None, False, None)
    messages = [r.getMessage() for r in caplog.records if r.name == "regctl.client"]
    assert any("registration failed" in m and "connection refused" in m for m in messages), messages
    assert any("deregistration failed" in m for m in messages)
    assert any("discovery failed for x" in m for m in messages)

    sync = ServiceRegistryClient(base_url=down)
    assert (sync.register("x", "http://x:1", None, request_timeout_s=1), sync.deregister("x", "x-1", 1),
            sync.discover_url("x", 1)) == (None, False, None)


def test_registered_service_with_registry_down_or_bad_env(caplog):
    caplog.set_level(logging.WARNING, logger="regctl.client")
    down = f"http://127.0.0.1:{free_port()}"
    ran = []

    async def main(env):
        async with registered_service(env, request_timeout_s=1) as reg:
            ran.append(reg)

    asyncio.run(main({"SERVICE_NAME": "x", "SERVICE_PORT": "1", "CONFIG_SERVICE_URL": down}))
    asyncio.run(main({"SERVICE_NAME": "x"}))  # SERVICE_PORT missing: skipped with a warning
    assert [bool(r) for r in ran] == [False, False]
    assert ran[0].error and "SERVICE_PORT" in ran[1].error
    assert any("SERVICE_PORT" in r.getMessage() for r in caplog.records)


def test_library_does_not_import_cli_libraries():
    code = ("import sys; sys.modules['httpx._main'] = None\nimport regctl.client\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('typer', 'rich', 'click')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"


# --------------------------------------------------------------------------- pooling, injection, reasons, typing

class CountingProxy:
    """A loopback TCP proxy in front of the registry that counts the connections clients open."""

    def __init__(self, target_url: str) -> None:
        import socket
        import threading

        target = httpx.URL(target_url)
        self._target = (target.host, target.port)
        self.connections = 0
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        import socket
        import threading

        while not self._stop:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            self.connections += 1
            upstream = socket.create_connection(self._target, timeout=10)
            for a, b in ((conn, upstream), (upstream, conn)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src, dst) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(2)
                except OSError:
                    pass

    def close(self) -> None:
        self._stop = True
        self._sock.close()


@pytest.fixture
def proxy(registry):
    registry.server.keep_alive = True  # like the real service (uvicorn); the sandbox closes by default
    p = CountingProxy(registry.url)
    yield p
    p.close()


def healthy(registry, name="pool-svc", n=2):
    with ServiceRegistryClient(base_url=registry.url) as c:
        for i in range(n):
            assert c.register(name, f"http://p{i}:1", None, {"instance_id": f"p-{i}", "status": "healthy"})


def test_async_client_reuses_one_connection_and_closes_it(registry, proxy):
    healthy(registry)

    async def main():
        async with ServiceRegistryHttpClient(base_url=proxy.url) as client:
            urls = [await client.discover_url("pool-svc") for _ in range(10)]
            pool = client._http
        return urls, pool

    urls, pool = asyncio.run(main())
    assert set(urls) <= {"http://p0:1", "http://p1:1"} and None not in urls
    assert proxy.connections == 1  # ten calls, one TCP connection
    assert pool.is_closed  # the context manager closed the pool


def test_per_call_clients_would_open_a_connection_each(registry, proxy):
    """The contrast to the pooled test above: separate clients cannot share connections."""
    healthy(registry)

    async def main():
        for _ in range(3):
            async with ServiceRegistryHttpClient(base_url=proxy.url) as client:
                assert await client.discover_url("pool-svc")

    asyncio.run(main())
    assert proxy.connections == 3


def test_sync_client_reuses_one_connection(registry, proxy):
    healthy(registry)
    with ServiceRegistryClient(base_url=proxy.url) as client:
        assert all(client.discover_url("pool-svc") for _ in range(5))
        assert client.register("pool-svc", "http://p9:1", None, {"instance_id": "p-9"}) == "p-9"
        assert client.deregister("pool-svc", "p-9") is True
    assert proxy.connections == 1


def test_client_survives_a_second_event_loop(registry):
    healthy(registry)
    client = ServiceRegistryHttpClient(base_url=registry.url)
    assert asyncio.run(client.discover_url("pool-svc"))
    assert asyncio.run(client.discover_url("pool-svc"))  # a new loop gets a new pool, not a dead one
    asyncio.run(client.aclose())


def test_caller_supplied_async_client_is_used_and_left_open(registry):
    healthy(registry)
    seen = []

    async def hook(request):
        seen.append((request.method, request.url.path, request.headers.get("x-team")))

    async def main():
        async with httpx.AsyncClient(event_hooks={"request": [hook]}) as http:
            async with ServiceRegistryHttpClient(base_url=registry.url, client=http,
                                                 headers={"X-Team": "ops"}) as client:
                url = await client.discover_url("pool-svc")
            assert not http.is_closed  # the caller's to close
            async with registered_service(guide_env(registry, SERVICE_INSTANCE_ID="inj-1"),
                                          client=client) as reg:
                assert reg.instance_id == "inj-1"
            assert not http.is_closed
            return url

    assert asyncio.run(main())
    paths = [p for _, p, _ in seen]
    assert paths[0] == "/api/v1/registry/services/pool-svc/url" and all(t == "ops" for _, _, t in seen)
    assert "/api/v1/registry/register" in paths and "/api/v1/registry/deregister" in paths


def test_caller_transport_and_errors_that_carry_the_reason(caplog):
    caplog.set_level(logging.WARNING, logger="regctl.client")
    calls = []

    def handler(request):
        calls.append(request.url.path)
        return httpx.Response(503, json={"detail": "maintenance window"})

    async def main():
        async with registered_service({"SERVICE_NAME": "t", "SERVICE_PORT": "1"}, base_url="http://registry.test",
                                      transport=httpx.MockTransport(handler)) as reg:
            return reg

    reg = asyncio.run(main())
    assert calls == ["/api/v1/registry/register"]
    assert not reg and reg.error.startswith("registration failed: ")
    assert "503" in reg.error and "see the warning" not in reg.error
    with registered_service_sync({"SERVICE_NAME": "t", "SERVICE_PORT": "1"}, base_url="http://registry.test",
                                 transport=httpx.MockTransport(handler)) as sync_reg:
        assert "503" in sync_reg.error


def test_registered_service_down_error_names_the_cause():
    down = f"http://127.0.0.1:{free_port()}"

    async def main():
        async with registered_service({"SERVICE_NAME": "x", "SERVICE_PORT": "1", "CONFIG_SERVICE_URL": down},
                                      request_timeout_s=1) as reg:
            return reg

    reg = asyncio.run(main())
    assert "connection refused" in reg.error and down in reg.error


USER_CODE = '''
import asyncio
from typing import Optional

import httpx

from regctl.client import (NoHealthyInstance, RegisteredService, RegistryError, RegistryUnavailable,
                           ServiceRegistryClient, ServiceRegistryHttpClient, registered_service)


async def main() -> Optional[str]:
    async with httpx.AsyncClient() as http:
        async with ServiceRegistryHttpClient("http://x:1", client=http) as c:
            url: Optional[str] = await c.discover_url("asr-service", request_timeout_s=1.0)
            iid: Optional[str] = await c.register("a", "http://a:1", None, {"k": 1})
            ok: bool = await c.deregister("a", iid or "")
            try:
                typed: str = await c.require_url("asr-service", request_timeout_s=1.0)
            except NoHealthyInstance as none:
                name: str = none.service_name
                why: Optional[str] = none.reason
            except RegistryUnavailable as down:
                code: Optional[int] = down.status_code
                slow: bool = down.timed_out
            except RegistryError as other:
                hint: Optional[str] = other.hint
    async with registered_service({"SERVICE_NAME": "a"}) as reg:
        r: RegisteredService = reg
        e: Optional[str] = r.error
    with ServiceRegistryClient(transport=httpx.MockTransport(lambda req: httpx.Response(404))) as s:
        u: Optional[str] = s.discover_url("x")
        t: str = s.require_url("x")
        f: Optional[RegistryError] = reg.failure
    return url
'''


def test_library_is_typed_for_mypy_strict_users(tmp_path):
    import pathlib

    import regctl

    good, bad = tmp_path / "good.py", tmp_path / "bad.py"
    good.write_text(USER_CODE)
    bad.write_text(USER_CODE.replace("u: Optional[str] = s.discover_url", "u: int = s.discover_url"))
    src = str(pathlib.Path(regctl.__file__).parent.parent)
    assert (pathlib.Path(regctl.__file__).parent / "py.typed").is_file()

    def mypy(path):
        return subprocess.run([sys.executable, "-m", "mypy", "--strict", "--follow-imports=silent",
                               "--cache-dir", str(tmp_path / "cache"), str(path)],
                              capture_output=True, text=True, timeout=300, cwd=tmp_path,
                              env={**__import__("os").environ, "MYPYPATH": src})

    ok = mypy(good)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    wrong = mypy(bad)  # the types are real, not Any: a wrong annotation is caught
    assert wrong.returncode == 1 and 'has type "str | None", variable has type "int"' in wrong.stdout, wrong.stdout


# --------------------------------------------------------------------------- typed outcomes: none healthy / could not ask

DOORS = {"async": ServiceRegistryHttpClient, "sync": ServiceRegistryClient}
#: what an outcome carries, compared between the doors. Not ``detail``: the HTTP library's own text of a
#: transport error, which its sync and async transports word differently ("[Errno 111] Connection refused",
#: "All connection attempts failed"); the library says neither (see ``message`` and ``hint``).
SAID = ("message", "where", "hint", "status_code", "timed_out", "service_name", "reason", "exit_code")


def said(result):
    """What a step said, comparable between the doors: the value returned; an exception's class, text,
    fields and the class of its cause; a RegisteredService's fields."""
    if isinstance(result, BaseException):
        return (type(result).__name__, str(result), {f: getattr(result, f, None) for f in SAID},
                type(result.__cause__).__name__)
    if isinstance(result, RegisteredService):
        return (bool(result), result.service_name, result.instance_id, result.error, said(result.failure),
                result.deregistered)
    return result


async def one_step(client, method, args):
    """``client.method(*args)``, awaited on the async door; ("registered_service", env, request_timeout_s):
    a whole registered_service(_sync) lifetime on ``client``, with an empty body."""
    if method == "registered_service":
        env, timeout = args
        if isinstance(client, ServiceRegistryHttpClient):
            async with registered_service(env, request_timeout_s=timeout, client=client) as reg:
                pass
        else:
            with registered_service_sync(env, request_timeout_s=timeout, client=client) as reg:
                pass
        return reg
    result = getattr(client, method)(*args)
    return await result if inspect.isawaitable(result) else result


def through_door(door, caplog, base_url, steps, transport=None):
    """``steps`` ({label: (method, *args)}) in order on one client of ``door``: {label: (what the step returned
    or raised, the records (level, text) it left on the library's logger, as caplog saw them)}."""
    caplog.set_level(logging.DEBUG, logger="regctl.client")

    async def run():
        client = DOORS[door](base_url=base_url, transport=transport)
        out = {}
        for label, (method, *args) in steps.items():
            since = len(caplog.records)
            try:
                result = await one_step(client, method, args)
            except Exception as exc:  # an outcome to compare, not the test failing
                result = exc
            out[label] = (result, [(r.levelname, r.getMessage()) for r in caplog.records[since:]
                                   if r.name == "regctl.client"])
        closing = client.aclose() if door == "async" else client.close()
        if closing is not None:
            await closing
        return out

    return asyncio.run(run())


def through_both(caplog, base_url, steps, transport=None):
    """``steps`` through the async door, then through the sync door; asserts that every step returned or
    raised the same (:func:`said`) and logged the same records in both. The async door's {label: (outcome,
    records)}."""
    first = through_door("async", caplog, base_url, steps, transport)
    second = through_door("sync", caplog, base_url, steps, transport)
    for label in steps:
        (a, a_logs), (s, s_logs) = first[label], second[label]
        assert said(a) == said(s), (label, a, s)
        assert a_logs == s_logs, (label, a_logs, s_logs)
    return first


def twins(caplog, base_url, method, *args, transport=None):
    """One call through both doors (see :func:`through_both`): (its outcome, its records)."""
    return through_both(caplog, base_url, {method: (method, *args)}, transport)[method]


def every_method(name="twin-svc", iid="twin-1", timeout=None):
    """One of each of the library's doings, in the guide's order: register, look up (twice), deregister, and a
    whole registered_service lifetime (at the client's base_url). ``timeout``: each call's request_timeout_s
    (None: the methods' own defaults)."""
    t = () if timeout is None else (timeout,)
    env = {"SERVICE_NAME": name, "SERVICE_PORT": "1", "SERVICE_INSTANCE_ID": iid + "-life"}
    return {"register": ("register", name, "http://t:1", "http://t:1/health",
                         {"instance_id": iid, "status": "healthy"}, *t),
            "discover": ("discover_url", name, *t),
            "require": ("require_url", name, *t),
            "require again": ("require_url", name, *t),  # a registry that failed once is asked again, by both
            "deregister": ("deregister", name, iid, *t),
            "lifetime": ("registered_service", env, timeout or 5.0)}


#: (what each step of every_method() returns, the levels of the records it logs) when the registry cannot be
#: asked: the guide's methods return None/False with a warning, require_url raises and logs nothing
COULD_NOT_ASK = {"register": (None, ["WARNING"]), "discover": (None, ["WARNING"]), "deregister": (False, ["WARNING"]),
                 "lifetime": (False, ["WARNING"])}


def assert_could_not_ask(out, **overrides):
    """``out`` (from every_method()) is COULD_NOT_ASK (with ``overrides``); the two lookups raised
    RegistryUnavailable, returned as a list."""
    for label, (value, levels) in {**COULD_NOT_ASK, **overrides}.items():
        outcome, records = out[label]
        assert (bool(outcome) if label == "lifetime" else outcome) == value, (label, outcome)
        assert [lvl for lvl, _ in records] == levels, (label, records)
    errors = [out["require"][0], out["require again"][0]]
    assert all(isinstance(e, RegistryUnavailable) for e in errors), errors
    assert out["require"][1] == out["require again"][1] == []
    assert str(errors[0]) == str(errors[1])  # asked again, and failed the same way: no "not asked"
    return errors


def test_the_doors_say_and_log_the_same_through_a_service_lifetime(registry, caplog):
    """The same steps on the real registry through the async and the sync client: the same values, the same
    typed outcomes, the same log records (through_both asserts it), and these are the guide's."""
    steps = {**every_method(),
             "register unhealthy": ("register", "twin-svc", "http://t:2", None,
                                    {"instance_id": "twin-2", "status": "unhealthy"}),
             "deregister again": ("deregister", "twin-svc", "twin-1"),  # gone already: the registry says ok
             "discover none healthy": ("discover_url", "twin-svc"),
             "require none healthy": ("require_url", "twin-svc"),
             "deregister last": ("deregister", "twin-svc", "twin-2"),
             "require no name": ("require_url", ""),  # questions that cannot be asked: refused before asking
             "discover no name": ("discover_url", ""),
             "deregister bad id": ("deregister", "twin-svc", "no/such id"),
             "register rejected": ("register", "twin-svc", 8090, None, {"instance_id": "twin-3"}),  # a real 422
             "guide lifetime": ("registered_service", guide_env(registry, SERVICE_INSTANCE_ID="twin-life"), 5.0),
             "lifetime skipped": ("registered_service", {"SERVICE_NAME": "twin-svc"}, 5.0)}  # no SERVICE_PORT
    out = through_both(caplog, registry.url, steps)
    value = {label: outcome for label, (outcome, _) in out.items()}
    logs = {label: records for label, (_, records) in out.items()}

    assert [value[k] for k in ("register", "discover", "require", "require again", "deregister")] == \
        ["twin-1", "http://t:1", "http://t:1", "http://t:1", True]
    assert all(logs[k] == [] for k in ("register", "discover", "require", "require again", "deregister"))
    life = value["lifetime"]
    assert life.instance_id == "twin-1-life" and life.deregistered and life.failure is None
    assert logs["lifetime"] == [("INFO", "Registered twin-svc with service registry as instance twin-1-life"),
                                ("INFO", "Deregistered twin-svc from service registry")]

    assert value["register unhealthy"] == "twin-2" and value["deregister again"] is True
    none = value["require none healthy"]
    assert isinstance(none, NoHealthyInstance) and none.service_name == "twin-svc" and logs["require none healthy"] == []
    assert value["discover none healthy"] is None
    assert logs["discover none healthy"] == [("DEBUG", f"No healthy instance of twin-svc: {none}")]
    assert value["deregister last"] is True and api_ids(registry, "twin-svc") == []

    invalid = value["require no name"]
    assert isinstance(invalid, InvalidRequest) and value["discover no name"] is None
    assert logs["discover no name"] == [("WARNING", f"Service discovery failed for : {invalid}")]
    assert value["deregister bad id"] is False and [lvl for lvl, _ in logs["deregister bad id"]] == ["WARNING"]
    assert logs["deregister bad id"][0][1].startswith("Service registry deregistration failed: ")
    assert value["register rejected"] is None and [lvl for lvl, _ in logs["register rejected"]] == ["WARNING"]
    assert "rejected" in logs["register rejected"][0][1] and "service_url" in logs["register rejected"][0][1]

    assert value["guide lifetime"] and value["guide lifetime"].deregistered
    skipped = value["lifetime skipped"]
    assert not skipped and isinstance(skipped.failure, InvalidRequest) and "SERVICE_PORT" in skipped.error
    assert [lvl for lvl, _ in logs["lifetime skipped"]] == ["WARNING"] and "skipped" in logs["lifetime skipped"][0][1]


def test_the_doors_say_and_log_the_same_when_the_registry_fails(registry, caplog):
    """The registry's own failures, on the real registry: its store down (500 on every write and read),
    a gateway in front that wants credentials (401), and then the registry stopped (refused)."""
    registry.server.faults.add("redis")
    out = through_both(caplog, registry.url, every_method())
    assert all(e.status_code == 500 for e in assert_could_not_ask(out))
    assert out["lifetime"][0].failure.status_code == 500
    registry.server.faults.clear()

    registry.server.required_headers = {"Authorization": "Bearer s3cret"}
    out = through_both(caplog, registry.url, every_method())
    assert all(e.status_code == 401 and "headers=" in e.hint for e in assert_could_not_ask(out))
    assert "401" in out["register"][1][0][1] and "401" in out["deregister"][1][0][1]
    registry.server.required_headers = {}

    registry.server.stop()
    out = through_both(caplog, registry.url, every_method(timeout=1.0))
    assert all("connection refused" in e.message and not e.timed_out for e in assert_could_not_ask(out))
    assert "connection refused" in out["lifetime"][0].error


def test_the_doors_say_and_log_the_same_when_nothing_answers(caplog):
    """A registry that accepts the connection and never says a word: every call times out, in the
    library's words, the same in both doors, and the next call asks again rather than remembering."""
    import socket

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    try:
        out = through_both(caplog, f"http://127.0.0.1:{silent.getsockname()[1]}", every_method(timeout=0.3))
    finally:
        silent.close()
    errors = assert_could_not_ask(out)
    assert all(e.timed_out and e.status_code is None for e in errors)
    assert "0.3s" in errors[0].message and "request_timeout_s=" in errors[0].hint
    assert out["lifetime"][0].failure.timed_out
    assert all("request_timeout_s=" in records[0][1] for label, (_, records) in out.items() if records)


def refuse_with(exc):
    def handler(request):
        raise exc
    return handler


@pytest.mark.parametrize("handler,status,words,deregistered", [
    (lambda r: httpx.Response(403, json={"detail": "Forbidden"}), 403, "headers=", False),
    (lambda r: httpx.Response(404, json={"detail": "Not Found"}), 404, "base_url=", False),  # a base URL with a path
    (lambda r: httpx.Response(500, text="Internal Server Error"), 500, "500", False),
    (lambda r: httpx.Response(502, html="<html>Bad Gateway</html>"), 502, "gateway", False),
    # a 200 of the wrong shape: deregister reads no body (the registry's ok is its status)
    (lambda r: httpx.Response(200, json=["not", "an", "object"]), None, "expected a JSON dict", True),
    (refuse_with(httpx.ReadTimeout("timed out")), None, "request_timeout_s=", False),
    (refuse_with(httpx.ConnectError("[Errno 111] Connection refused")), None, "base_url=", False),
])
def test_the_doors_say_and_log_the_same_for_answers_a_real_registry_does_not_give(handler, status, words,
                                                                                  deregistered, caplog):
    out = through_both(caplog, "http://registry.test", every_method(), transport=httpx.MockTransport(handler))
    overrides = {"deregister": (True, [])} if deregistered else {}
    assert all(e.status_code == status and words in str(e) for e in assert_could_not_ask(out, **overrides))


def test_the_doors_say_and_log_the_same_for_a_422(caplog):
    def handler(request):
        return httpx.Response(422, json={"detail": [{"loc": ["body", "service_url"], "msg": "bad"}]})

    out = through_both(caplog, "http://registry.test", every_method(), transport=httpx.MockTransport(handler))
    assert all(isinstance(out[k][0], InvalidRequest) for k in ("require", "require again"))
    assert isinstance(out["lifetime"][0].failure, InvalidRequest)
    assert "service_url: bad" in out["register"][1][0][1]
    assert [out[k][0] for k in ("register", "discover", "deregister")] == [None, None, False]


def assert_library_worded(err):
    text = str(err)
    assert "--" not in text and "regctl " not in text, text  # no CLI flag, no CLI command
    assert err.hint and "--" not in err.hint, err.hint


def test_none_healthy_is_its_own_outcome(registry, caplog):
    with ServiceRegistryClient(base_url=registry.url) as c:
        assert c.register("typed-svc", "http://t:1", None, {"instance_id": "t-1", "status": "unhealthy"})
    for name in ("typed-svc", "never-registered"):  # registered but not healthy; never registered
        err, logs = twins(caplog, registry.url, "require_url", name)
        assert isinstance(err, NoHealthyInstance) and isinstance(err, RegistryError)
        assert not isinstance(err, RegistryUnavailable)
        assert err.service_name == name and err.reason and "healthy" in err.reason
        assert err.where == f"{registry.api}/services/{name}/url"
        assert_library_worded(err)
        assert f"/api/v1/registry/services/{name}" in err.hint  # where to look, as an HTTP call
        assert logs == []  # the outcome is the caller's: nothing logged by require_url
        url, logs = twins(caplog, registry.url, "discover_url", name)
        assert url is None
        assert [lvl for lvl, _ in logs] == ["DEBUG"]  # no warning: an answer, as in the guide


def test_a_healthy_instance_is_returned_by_both(registry, caplog):
    healthy(registry, "typed-ok", n=1)
    url, logs = twins(caplog, registry.url, "require_url", "typed-ok")
    assert url == "http://p0:1" and logs == []


def test_stopped_registry_is_could_not_ask(registry, caplog):
    registry.server.stop()
    err, logs = twins(caplog, registry.url, "require_url", "asr-service", 2.0)
    assert isinstance(err, RegistryUnavailable) and isinstance(err, RegistryError)
    assert not isinstance(err, NoHealthyInstance)
    assert "connection refused" in err.message and err.status_code is None and not err.timed_out
    assert err.cause is not None and err.__cause__ is err.cause
    assert "base_url=" in err.hint and "CONFIG_SERVICE_URL" in err.hint
    assert_library_worded(err)
    assert logs == []
    url, logs = twins(caplog, registry.url, "discover_url", "asr-service", 2.0)
    assert url is None and len(logs) == 1 and logs[0][0] == "WARNING"
    assert logs[0][1] == f"Service discovery failed for asr-service: {err}"


def test_unreachable_host_is_could_not_ask(caplog):
    err, _ = twins(caplog, f"http://127.0.0.1:{free_port()}", "require_url", "asr-service", 1.0)
    assert isinstance(err, RegistryUnavailable) and "connection refused" in str(err)


def test_registry_that_cannot_read_its_store_is_could_not_ask(registry, caplog):
    """The real service's 500 when its cache (Redis) is down: the registry is up but cannot answer."""
    healthy(registry, "cache-svc", n=1)
    registry.server.faults.add("redis")
    err, _ = twins(caplog, registry.url, "require_url", "cache-svc")
    assert isinstance(err, RegistryUnavailable) and err.status_code == 500
    assert_library_worded(err)
    registry.server.faults.clear()
    url, _ = twins(caplog, registry.url, "require_url", "cache-svc")
    assert url == "http://p0:1"


def test_a_registry_that_never_answers_times_out_with_a_library_hint(caplog):
    import socket

    silent = socket.socket()  # accepts connections (the kernel's backlog) and never says a word
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    try:
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        err, _ = twins(caplog, url, "require_url", "asr-service", 0.5)
    finally:
        silent.close()
    assert isinstance(err, RegistryUnavailable) and err.timed_out and err.status_code is None
    assert "0.5s" in err.message and "request_timeout_s=" in err.hint
    assert_library_worded(err)


@pytest.mark.parametrize("status,headers,body,words,code", [
    (502, {"content-type": "text/html"}, b"<html><body>Bad Gateway</body></html>", "gateway", 502),
    (503, {"content-type": "application/json"}, b'{"detail": "Service unhealthy"}', "503", 503),
    (200, {"content-type": "text/html"}, b"<html>login</html>", "HTML", 200),  # a proxy's login page
    (401, {"content-type": "application/json"}, b'{"detail": "Not authenticated"}', "headers=", 401),
    (200, {"content-type": "application/json"}, b'{"no": "url"}', "no url", None),
    (404, {"content-type": "application/json"}, b'{"detail": "Not Found"}', "base_url=", 404),  # no such endpoint
])
def test_answers_that_are_not_the_registrys_are_could_not_ask(status, headers, body, words, code, caplog):
    transport = httpx.MockTransport(lambda request: httpx.Response(status, headers=headers, content=body))
    err, logs = twins(caplog, "http://registry.test", "require_url", "asr-service", transport=transport)
    assert isinstance(err, RegistryUnavailable) and not isinstance(err, NoHealthyInstance), err
    assert words in str(err) and err.status_code == code and not err.timed_out
    assert_library_worded(err)
    url, logs = twins(caplog, "http://registry.test", "discover_url", "asr-service", transport=transport)
    assert url is None and [lvl for lvl, _ in logs] == ["WARNING"]


def test_a_question_that_cannot_be_asked_is_invalid_request(caplog):
    transport = httpx.MockTransport(lambda request: httpx.Response(422, json={"detail": [
        {"loc": ["path", "service_name"], "msg": "bad name"}]}))
    err, _ = twins(caplog, "http://registry.test", "require_url", "x", transport=transport)
    assert isinstance(err, InvalidRequest) and "rejected" in err.message and "--" not in str(err)
    err, _ = twins(caplog, "http://registry.test", "require_url", "")  # checked before asking
    assert isinstance(err, InvalidRequest) and "empty" in err.message


def test_registration_failures_are_typed_too(registry):
    down = f"http://127.0.0.1:{free_port()}"

    async def main(env):
        async with registered_service(env, request_timeout_s=1) as reg:
            return reg

    env = {"SERVICE_NAME": "x", "SERVICE_PORT": "1", "CONFIG_SERVICE_URL": down}
    for reg in (asyncio.run(main(env)), registered_service_sync(env, request_timeout_s=1).__enter__()):
        assert isinstance(reg.failure, RegistryUnavailable) and reg.error == f"registration failed: {reg.failure}"
        assert_library_worded(reg.failure)
    for reg in (asyncio.run(main({"SERVICE_NAME": "x"})), registered_service_sync({"SERVICE_NAME": "x"}).__enter__()):
        assert isinstance(reg.failure, InvalidRequest) and "SERVICE_PORT" in str(reg.failure)
    with registered_service_sync(guide_env(registry, SERVICE_INSTANCE_ID="ok-1")) as reg:
        assert reg and reg.failure is None and reg.error is None


def test_sync_and_async_registered_service_log_the_same(registry, caplog):
    caplog.set_level(logging.INFO, logger="regctl.client")

    async def main():
        async with registered_service(guide_env(registry, SERVICE_INSTANCE_ID="twin-1")):
            pass

    asyncio.run(main())
    async_logs = [r.getMessage() for r in caplog.records if r.name == "regctl.client"]
    caplog.clear()
    with registered_service_sync(guide_env(registry, SERVICE_INSTANCE_ID="twin-1")):
        pass
    sync_logs = [r.getMessage() for r in caplog.records if r.name == "regctl.client"]
    assert async_logs == sync_logs and any("Deregistered lib-service" in m for m in sync_logs), sync_logs


def test_the_cli_says_its_flags_and_the_library_its_parameters(registry, caplog):
    down = f"http://127.0.0.1:{free_port()}"
    res = run_cli("discover", "asr-service", env={"CONFIG_SERVICE_URL": down, "ZOOKEEPER_HOSTS": ""})
    assert res.exit_code == 3 and "--config-url" in res.stderr, res.stderr
    err, _ = twins(caplog, down, "require_url", "asr-service", 1.0)  # after the CLI ran: still the library's
    assert "base_url=" in err.hint and "--config-url" not in str(err)
    miss = run_cli("url", "never-registered", env=registry.env)
    assert miss.exit_code == 1 and "see why with: regctl inspect never-registered" in miss.stderr, miss.stderr
    none, _ = twins(caplog, registry.url, "require_url", "never-registered")
    assert "see why with: GET /api/v1/registry/services/never-registered" in str(none)


def test_hints_that_reach_the_library_name_no_cli_flag():
    """Every string the modules behind regctl.client can put in an error, placeholders rendered in the
    library's words: no ``--flag``. (The CLI's words live in regctl.cli.runtime.)"""
    import ast
    import pathlib

    import regctl
    from regctl.errors import LIBRARY_HINT_WORDS, render_hint

    assert not any("--" in v for v in LIBRARY_HINT_WORDS.values())
    pkg = pathlib.Path(regctl.__file__).parent
    found = []
    for module in ("client.py", "http/api.py", "http/config.py", "guide.py", "errors.py", "http/bounded.py"):
        tree = ast.parse((pkg / module).read_text())
        docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                      if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                      and n.body and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
                import re

                if re.search(r"(^|[\s(])--[a-z]", render_hint(node.value)):
                    found.append(f"{module}:{node.lineno}: {node.value}")
    assert not found, found


def test_library_md_documents_every_public_parameter_and_outcome():
    import inspect
    import pathlib
    import re

    import regctl.client as lib

    text = (pathlib.Path(__file__).parent.parent / "docs" / "library.md").read_text()
    missing = []
    for obj in (lib.ServiceRegistryHttpClient, lib.ServiceRegistryClient, lib.registered_service,
                lib.registered_service_sync):
        fn = obj.__init__ if inspect.isclass(obj) else obj
        for name in inspect.signature(fn).parameters:
            if name != "self" and not re.search(rf"`{name}`|[(,\s]{name}=", text):
                missing.append(f"{obj.__name__}({name})")
    for cls in (lib.ServiceRegistryHttpClient, lib.ServiceRegistryClient):
        for meth in ("register", "deregister", "discover_url", "require_url"):
            if f"`{meth}(" not in text and f".{meth}(" not in text:
                missing.append(f"{cls.__name__}.{meth}")
    for name in lib.__all__:
        if f"`{name}`" not in text and f"`{name}(" not in text:
            missing.append(name)
    for attr in ("status_code", "timed_out", "cause", "service_name", "reason", "failure"):
        if f"`{attr}`" not in text and f".{attr}" not in text:
            missing.append(attr)
    assert not missing, f"docs/library.md does not document: {missing}"
    cli_flag = re.search(r"--(config-url|timeout|header|token-file|ca-bundle|insecure|zk|dry-run|server-timeout)\b",
                         text)
    assert not cli_flag, f"library.md names a CLI flag: {cli_flag}"


def test_the_outcomes_example_in_library_md_runs(registry, monkeypatch):
    """The example under "Outcomes and errors", run as written against the sandbox registry."""
    import pathlib
    import re

    text = (pathlib.Path(__file__).parent.parent / "docs" / "library.md").read_text()
    code = re.search(r"## Outcomes and errors.*?```python\n(.*?)```", text, re.S).group(1)
    monkeypatch.setenv("CONFIG_SERVICE_URL", registry.url)
    ns: dict = {}
    exec(compile(code, "library.md", "exec"), ns)

    async def main():
        none = await ns["asr_url"]()  # nothing registered: the registry said so
        healthy(registry, "asr-service", n=1)
        url = await ns["asr_url"]()
        registry.server.stop()
        cached = await ns["asr_url"]()  # could not ask: the last known URL
        await ns["registry"].aclose()
        return none, url, cached

    assert asyncio.run(main()) == (None, "http://p0:1", "http://p0:1")
