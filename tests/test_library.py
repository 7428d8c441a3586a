"""regctl.client: the guide's client as a library, against the contract registry."""

import asyncio
import json
import logging
import subprocess
import sys

import httpx
import pytest

from regctl.client import (
    ServiceRegistryClient,
    ServiceRegistryHttpClient,
    registered_service,
    registered_service_sync,
)
from regctl.sandbox.proc import free_port


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

from regctl.client import RegisteredService, ServiceRegistryClient, ServiceRegistryHttpClient, registered_service


async def main() -> Optional[str]:
    async with httpx.AsyncClient() as http:
        async with ServiceRegistryHttpClient("http://x:1", client=http) as c:
            url: Optional[str] = await c.discover_url("asr-service", request_timeout_s=1.0)
            iid: Optional[str] = await c.register("a", "http://a:1", None, {"k": 1})
            ok: bool = await c.deregister("a", iid or "")
    async with registered_service({"SERVICE_NAME": "a"}) as reg:
        r: RegisteredService = reg
        e: Optional[str] = r.error
    with ServiceRegistryClient(transport=httpx.MockTransport(lambda req: httpx.Response(404))) as s:
        u: Optional[str] = s.discover_url("x")
    return url
'''


@pytest.mark.compat
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
