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
