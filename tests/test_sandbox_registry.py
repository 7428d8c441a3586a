"""Contract tests of the sandbox registry: real ZooKeeper, real HTTP (httpx), kazoo to look underneath.

Each test names the line of ``registry-contract.md`` it pins down; where the contract and the
real service's code differ, the code wins (``tests/test_real_parity.py`` holds the sandbox
against the real service itself).
"""

from __future__ import annotations

import json
import subprocess
import sys
import re
import threading
import time
import uuid
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from regctl.errors import SandboxError
from regctl.sandbox import proc
from regctl.sandbox import zookeeper as zkmod
from regctl.sandbox.registry.server import Identity, RegistryServer
from tests.helpers import wait_until

REGISTERED_AT = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}\+00:00$")


def reg(registry, name, url="http://svc:8090", *, health=..., meta=None, **extra):
    body = {"service_name": name, "service_url": url,
            "health_check_url": url + "/health" if health is ... else health}
    if meta is not None:
        body["service_metadata"] = meta
    body.update(extra)
    return httpx.post(registry.api + "/register", json=body, timeout=10)


def dereg(registry, name, instance_id):
    return httpx.post(registry.api + "/deregister", params={"service_name": name, "instance_id": instance_id},
                      timeout=10)


def get(registry, path, **kw):
    return httpx.get(registry.url + path, timeout=10, **kw)


def assert_plain_500(resp, what=""):
    """Starlette's answer to an unhandled exception: text, not JSON."""
    assert resp.status_code == 500, (what, resp.status_code, resp.text)
    assert resp.headers["content-type"].startswith("text/plain"), what
    assert resp.text == "Internal Server Error", what


def node_path(registry, name, instance_id):
    return f"{registry.base_path}/{name}/instances/{instance_id}"


@contextmanager
def health_server(status: int = 200):
    """A stdlib server whose /health answers ``status``; yields its base URL."""
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):
            code = status if self.path == "/health" else 404
            self.send_response(code)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


# --------------------------------------------------------------------------- /health, /ready, /live

def test_health_reports_every_component_and_real_zookeeper(registry):
    resp = get(registry, "/health")
    assert resp.status_code == 200
    body = resp.json()
    assert set(body) == {"status", "redis", "postgres", "kafka", "zookeeper", "timestamp"}
    assert body["status"] == "healthy" and body["zookeeper"] == "healthy"
    assert get(registry, "/ready").status_code == 200
    assert get(registry, "/live").json() == {"status": "alive"}


def test_health_is_unhealthy_as_soon_as_any_component_is_kafka_included(registry):
    registry.server.simulate["kafka"] = "unhealthy"
    body = get(registry, "/health").json()
    assert body["status"] == "unhealthy" and body["kafka"] == "unhealthy" and body["redis"] == "healthy"
    # the registry itself still works without Kafka
    assert reg(registry, "svc", meta={"instance_id": "svc-1", "status": "healthy"}).status_code == 201


def test_broken_health_check_answers_503_detail(registry):
    registry.server.simulate["health_check"] = "broken"
    resp = get(registry, "/health")
    assert resp.status_code == 503
    assert resp.json() == {"detail": "Service unhealthy"}


# --------------------------------------------------------------------------- register

def test_registers_itself_owned_by_its_session(registry, kazoo_client):
    path = node_path(registry, "config-service", "config-service-1")
    data, stat = kazoo_client.get(path)
    assert json.loads(data) == {"instance_id": "config-service-1", "health_check_url": registry.url + "/health",
                                "status": "healthy", "service_url": registry.url}
    assert stat.ephemeralOwner == registry.server.session_id != 0
    assert stat.version == 0  # created, not rewritten
    # straight into ZooKeeper, as the real start-up does: no database row
    assert get(registry, "/api/v1/registry/services").json() == []


def test_register_creates_ephemeral_node_owned_by_the_registry_session(registry, kazoo_client):
    resp = reg(registry, "asr-service", "http://asr:8090",
               meta={"instance_id": "asr-1", "status": "healthy", "version": "2.1"})
    assert resp.status_code == 201
    assert resp.json() == {"instance_id": "asr-1"}
    data, stat = kazoo_client.get(node_path(registry, "asr-service", "asr-1"))
    assert stat.ephemeralOwner == registry.server.session_id
    assert stat.ephemeralOwner != kazoo_client.client_id[0]
    assert json.loads(data.decode("utf-8")) == {
        "instance_id": "asr-1", "status": "healthy", "version": "2.1",
        "health_check_url": "http://asr:8090/health", "service_url": "http://asr:8090"}
    # parents are persistent
    for parent in (f"{registry.base_path}/asr-service", f"{registry.base_path}/asr-service/instances"):
        assert kazoo_client.exists(parent).ephemeralOwner == 0


def test_payload_precedence_instance_id_and_url_win_metadata_health_url_wins(registry, kazoo_client):
    meta = {"instance_id": "x-1", "service_url": "http://meta-lies:1", "health_check_url": "http://meta/hc"}
    assert reg(registry, "x", "http://real:2", health="http://top/hc", meta=meta).status_code == 201
    payload = json.loads(kazoo_client.get(node_path(registry, "x", "x-1"))[0])
    assert payload["service_url"] == "http://real:2"
    assert payload["instance_id"] == "x-1"
    assert payload["health_check_url"] == "http://meta/hc"


def test_register_without_instance_id_gets_uuid4(registry, kazoo_client):
    resp = reg(registry, "anon", meta={})
    assert resp.status_code == 201
    instance_id = resp.json()["instance_id"]
    assert uuid.UUID(instance_id).version == 4
    assert kazoo_client.exists(node_path(registry, "anon", instance_id)) is not None
    # no metadata at all works too
    assert uuid.UUID(reg(registry, "anon").json()["instance_id"]).version == 4


def test_register_existing_id_overwrites(registry, kazoo_client):
    reg(registry, "svc", "http://old:1", meta={"instance_id": "svc-1", "status": "healthy"})
    reg(registry, "svc", "http://new:2", meta={"instance_id": "svc-1", "status": "starting"})
    assert kazoo_client.get_children(f"{registry.base_path}/svc/instances") == ["svc-1"]
    payload = json.loads(kazoo_client.get(node_path(registry, "svc", "svc-1"))[0])
    assert payload["service_url"] == "http://new:2" and payload["status"] == "starting"


@pytest.mark.parametrize("body, loc, kind", [
    ({"service_url": "http://a:1"}, ["body", "service_name"], "missing"),
    ({"service_name": "a"}, ["body", "service_url"], "missing"),
    ({"service_name": 5, "service_url": "http://a:1"}, ["body", "service_name"], "string_type"),
    ({"service_name": "a", "service_url": "http://a:1", "service_metadata": [1]},
     ["body", "service_metadata"], "dict_type"),
    ({"service_name": "a", "service_url": "http://a:1", "health_check_url": 7},
     ["body", "health_check_url"], "string_type"),
    (["not", "an", "object"], ["body"], "model_attributes_type"),
])
def test_register_validation_errors_are_fastapi_422(registry, body, loc, kind):
    resp = httpx.post(registry.api + "/register", json=body, timeout=10)
    assert resp.status_code == 422
    errors = resp.json()["detail"]
    assert isinstance(errors, list)
    assert any(e["loc"] == loc and e["type"] == kind and e["msg"] for e in errors)


@pytest.mark.parametrize("content", [b"{not json", b""])
def test_register_non_json_body_is_422(registry, content):
    resp = httpx.post(registry.api + "/register", content=content,
                      headers={"Content-Type": "application/json"}, timeout=10)
    assert resp.status_code == 422
    assert resp.json()["detail"][0]["loc"][0] == "body"


# --------------------------------------------------------------------------- deregister

def test_deregister_deletes_node_and_keeps_row_as_unknown(registry, kazoo_client):
    reg(registry, "svc", meta={"instance_id": "svc-1", "status": "healthy"})
    resp = dereg(registry, "svc", "svc-1")
    assert resp.status_code == 200 and resp.json() == {"status": "ok"}
    assert kazoo_client.exists(node_path(registry, "svc", "svc-1")) is None
    rows = {r["service_name"]: r for r in get(registry, "/api/v1/registry/services").json()}
    assert rows["svc"]["status"] == "unknown"
    assert get(registry, "/api/v1/registry/services/svc").json() == []


def test_deregister_absent_instance_is_ok(registry):
    resp = dereg(registry, "never-registered", "nope")
    assert resp.status_code == 200 and resp.json() == {"status": "ok"}


@pytest.mark.parametrize("params", [{}, {"service_name": "a"}, {"instance_id": "b"}])
def test_deregister_missing_query_parameters_is_422(registry, params):
    resp = httpx.post(registry.api + "/deregister", params=params, timeout=10)
    assert resp.status_code == 422
    locs = [e["loc"] for e in resp.json()["detail"]]
    assert all(loc[0] == "query" for loc in locs) and locs


def test_deregister_with_json_body_instead_of_query_is_422(registry):
    resp = httpx.post(registry.api + "/deregister", json={"service_name": "a", "instance_id": "b"}, timeout=10)
    assert resp.status_code == 422


# --------------------------------------------------------------------------- GET /services (database)

def test_services_are_database_rows_last_registration_wins_nulls_omitted(registry):
    reg(registry, "svc", "http://one:1", meta={"instance_id": "svc-1", "status": "healthy"})
    reg(registry, "svc", "http://two:2", health=None, meta={"instance_id": "svc-2"})
    rows = get(registry, "/api/v1/registry/services").json()
    assert [r["service_name"] for r in rows] == ["svc"]
    row = rows[0]
    assert row["service_url"] == "http://two:2"
    assert row["status"] == "healthy"  # every registration writes healthy, whatever its metadata says
    assert "health_check_url" not in row  # null fields are left out
    assert row["service_metadata"] == {"instance_id": "svc-2"}
    assert REGISTERED_AT.match(row["registered_at"]), row["registered_at"]
    first = row["registered_at"]
    reg(registry, "svc", "http://three:3", meta=None)
    row = get(registry, "/api/v1/registry/services").json()[0]
    assert row["registered_at"] == first  # the first registration's, kept by every update
    assert row["service_metadata"] == {}  # no metadata: an empty object, never left out


def test_concurrent_first_registrations_of_a_new_service_race_on_the_row(registry, kazoo_client):
    """Select-then-insert: a registration that loses the race gets a 500 after its node was written."""
    from concurrent.futures import ThreadPoolExecutor

    registry.server.insert_window = 0.5  # the real window is a round trip; wide here, so all four meet in it

    def one(i):
        return reg(registry, "racer", meta={"instance_id": f"r-{i}", "status": "healthy"})

    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(one, range(4)))
    codes = sorted(r.status_code for r in answers)
    assert 201 in codes and 500 in codes, codes
    for r in answers:
        if r.status_code == 500:
            assert_plain_500(r)
    assert sorted(kazoo_client.get_children(f"{registry.base_path}/racer/instances")) == [f"r-{i}" for i in range(4)]
    assert [r["service_name"] for r in get(registry, "/api/v1/registry/services").json()] == ["racer"]


def test_rows_survive_a_restart_with_the_same_db_but_instances_do_not(make_registry, tmp_path, kazoo_client):
    db = tmp_path / "db.json"
    first = make_registry(db_path=db)
    reg(first, "svc", meta={"instance_id": "svc-1", "status": "healthy"})
    first.server.stop()
    assert kazoo_client.exists(node_path(first, "svc", "svc-1")) is None  # session closed: node gone
    second = make_registry(db_path=db, base_path=first.base_path)
    rows = {r["service_name"]: r for r in get(second, "/api/v1/registry/services").json()}
    assert rows["svc"]["status"] == "healthy"
    assert get(second, "/api/v1/registry/services/svc").json() == []


# --------------------------------------------------------------------------- instances, url, discover

def test_instances_come_from_zookeeper_with_nulls_omitted(registry):
    reg(registry, "svc", "http://a:1", meta={"instance_id": "svc-1", "status": "healthy", "region": "eu"})
    reg(registry, "svc", "http://b:2", health=None, meta={"instance_id": "svc-2"})
    by_id = {i["instance_id"]: i for i in get(registry, "/api/v1/registry/services/svc").json()}
    assert by_id["svc-1"] == {
        "instance_id": "svc-1", "service_name": "svc", "service_url": "http://a:1",
        "health_check_url": "http://a:1/health", "status": "healthy",
        "service_metadata": {"instance_id": "svc-1", "status": "healthy", "region": "eu",
                             "health_check_url": "http://a:1/health", "service_url": "http://a:1"}}
    assert by_id["svc-2"]["status"] == "unknown"
    assert "health_check_url" not in by_id["svc-2"]


def test_unknown_service_is_empty_list(registry):
    resp = get(registry, "/api/v1/registry/services/nobody-here")
    assert resp.status_code == 200 and resp.json() == []
    assert get(registry, "/api/v1/registry/discover/nobody-here").json() == []


def test_url_only_returns_instances_whose_status_is_healthy(registry):
    reg(registry, "svc", "http://starting:1", meta={"instance_id": "svc-1", "status": "starting"})
    reg(registry, "svc", "http://nostatus:2", meta={"instance_id": "svc-2"})
    resp = get(registry, "/api/v1/registry/services/svc/url")
    assert resp.status_code == 404 and resp.json() == {"detail": "No healthy instances found"}
    reg(registry, "svc", "http://good:3", meta={"instance_id": "svc-3", "status": "healthy"})
    for _ in range(5):
        assert get(registry, "/api/v1/registry/services/svc/url").json() == {"url": "http://good:3"}
    assert get(registry, "/api/v1/registry/services/nobody/url").status_code == 404


def test_discover_returns_every_instance_with_null_fields_present(registry):
    reg(registry, "svc", "http://a:1", health=None, meta={"instance_id": "svc-1", "status": "unhealthy"})
    reg(registry, "svc", "http://b:2", meta={"instance_id": "svc-2", "status": "healthy"})
    found = get(registry, "/api/v1/registry/discover/svc").json()
    assert sorted(i["instance_id"] for i in found) == ["svc-1", "svc-2"]
    one = next(i for i in found if i["instance_id"] == "svc-1")
    assert one["registered_at"] is None and one["last_health_check"] is None
    assert one["health_check_url"] is None and one["status"] == "unhealthy"


def test_invalid_status_breaks_every_read_of_that_service_with_500(registry):
    reg(registry, "weird", meta={"instance_id": "w-1", "status": "healthy"})
    reg(registry, "weird", meta={"instance_id": "w-2", "status": "degraded"})
    reg(registry, "fine", meta={"instance_id": "f-1", "status": "healthy"})
    reg(registry, "null", meta={"instance_id": "n-1", "status": None})  # present but null: no enum value either
    for name in ("weird", "null"):
        for path in (f"/api/v1/registry/services/{name}", f"/api/v1/registry/discover/{name}",
                     f"/api/v1/registry/services/{name}/url"):
            assert_plain_500(get(registry, path), path)
        assert_plain_500(httpx.post(registry.api + f"/services/{name}/health", timeout=10), name)
    assert get(registry, "/api/v1/registry/services/fine").status_code == 200
    # the database row is still listed, and says healthy (what every registration writes)
    rows = {r["service_name"]: r for r in get(registry, "/api/v1/registry/services").json()}
    assert rows["weird"]["status"] == "healthy"


def test_nodes_that_are_not_json_are_skipped_json_that_is_no_object_breaks_the_service(registry, kazoo_client):
    reg(registry, "mixed", meta={"instance_id": "ok-1", "status": "healthy"})
    parent = f"{registry.base_path}/mixed/instances"
    kazoo_client.create(parent + "/garbage", b"\xff\xfe not utf8")
    kazoo_client.create(parent + "/empty", b"")
    kazoo_client.create(parent + "/text", b"not json")
    registry.server.clear_cache()
    ids = [i["instance_id"] for i in get(registry, "/api/v1/registry/services/mixed").json()]
    assert ids == ["ok-1"]
    kazoo_client.create(parent + "/array", b"[1, 2]")
    registry.server.clear_cache()
    assert_plain_500(get(registry, "/api/v1/registry/services/mixed"))
    kazoo_client.set(parent + "/array", b'{"instance_id": "x", "status": "healthy"}')  # no service_url
    assert_plain_500(get(registry, "/api/v1/registry/services/mixed"))


def test_cache_serves_vanished_instances_until_ttl_or_api_write(make_registry, kazoo_client):
    registry = make_registry(cache_ttl=1.5)
    reg(registry, "svc", meta={"instance_id": "svc-1", "status": "healthy"})
    reg(registry, "svc", meta={"instance_id": "svc-2", "status": "healthy"})
    assert len(get(registry, "/api/v1/registry/services/svc").json()) == 2  # fills the cache
    kazoo_client.delete(node_path(registry, "svc", "svc-1"))  # vanishes behind the API's back
    assert len(get(registry, "/api/v1/registry/services/svc").json()) == 2  # stale, from "Redis"
    assert get(registry, "/api/v1/registry/services/svc/url").status_code == 200
    time.sleep(1.6)
    assert [i["instance_id"] for i in get(registry, "/api/v1/registry/services/svc").json()] == ["svc-2"]
    # an API write clears that service's cache at once
    kazoo_client.delete(node_path(registry, "svc", "svc-2"))
    assert len(get(registry, "/api/v1/registry/services/svc").json()) == 1  # stale again
    reg(registry, "svc", meta={"instance_id": "svc-3", "status": "healthy"})
    assert [i["instance_id"] for i in get(registry, "/api/v1/registry/services/svc").json()] == ["svc-3"]


def test_default_cache_is_60_seconds(registry):
    assert registry.server.cache_ttl == 60.0


# --------------------------------------------------------------------------- health probes

def test_earlier_health_probe_healthy_if_any_instance_answers_below_500_else_unknown(registry):
    with health_server(200) as good, health_server(500) as bad, health_server(404) as missing:
        reg(registry, "svc", bad, meta={"instance_id": "svc-1", "status": "healthy"})
        reg(registry, "svc", good, meta={"instance_id": "svc-2", "status": "healthy"})
        reg(registry, "zombie", bad, meta={"instance_id": "z-1", "status": "healthy"})
        reg(registry, "nohealth", missing, meta={"instance_id": "n-1", "status": "healthy"})
        reg(registry, "gone", "http://127.0.0.1:9", meta={"instance_id": "g-1", "status": "healthy"})
        call = {name: httpx.post(registry.api + f"/services/{name}/health", timeout=20).json()
                for name in ("svc", "zombie", "nohealth", "gone", "nobody")}
    assert call == {"svc": {"status": "healthy"}, "zombie": {"status": "unknown"},  # never "unhealthy"
                    "nohealth": {"status": "healthy"},  # a 404 is below 500
                    "gone": {"status": "unknown"}, "nobody": {"status": "unknown"}}
    rows = {r["service_name"]: r["status"] for r in get(registry, "/api/v1/registry/services").json()}
    assert rows == {"svc": "healthy", "zombie": "unknown", "nohealth": "healthy", "gone": "unknown"}


def test_forced_detailed_health_lists_every_endpoint_tried(make_registry):
    registry = make_registry(detailed_health=True, retry_delays=(0.05, 0.05))
    with health_server(200) as good, health_server(500) as bad:
        reg(registry, "svc", good, meta={"instance_id": "svc-1", "status": "healthy"})
        reg(registry, "svc", bad, meta={"instance_id": "svc-2", "status": "healthy"})
        detailed = httpx.post(registry.api + "/services/svc/health/detailed", timeout=20).json()
    assert detailed["overall_status"] == "healthy"
    assert (detailed["total_instances"], detailed["healthy_instances"], detailed["unhealthy_instances"]) == (2, 1, 1)
    results = {r["endpoint_url"]: r for r in detailed["check_results"]}
    assert results[good + "/health"]["is_healthy"] is True
    assert results[good + "/health"]["status_code"] == 200
    assert results[bad + "/health"]["status_code"] == 500
    assert results[bad + "/health"]["error_message"] == "HTTP 500"
    for r in detailed["check_results"]:
        assert set(r) == {"endpoint_url", "is_healthy", "response_time_ms", "status_code", "error_message",
                          "timestamp"}
        assert r["response_time_ms"] >= 0


def test_health_probe_of_unreachable_instance_is_bounded(make_registry):
    registry = make_registry(detailed_health=True, retry_delays=(0.05, 0.05))
    reg(registry, "gone", "http://127.0.0.1:9", meta={"instance_id": "g-1", "status": "healthy"})
    started = time.monotonic()
    detailed = httpx.post(registry.api + "/services/gone/health/detailed", timeout=10).json()
    assert time.monotonic() - started < 5
    assert detailed["check_results"][0]["is_healthy"] is False
    assert detailed["check_results"][0]["status_code"] is None
    assert detailed["check_results"][0]["error_message"].startswith("Client error")


def test_old_versions_have_no_detailed_health(make_registry):
    for old in (make_registry(), make_registry(detailed_health=False)):  # the earlier generation is the default
        resp = httpx.post(old.api + "/services/svc/health/detailed", timeout=10)
        assert resp.status_code == 404 and resp.json() == {"detail": "Not Found"}
        assert get(old, "/internal/health-status?service_id=svc").status_code == 404


# --------------------------------------------------------------------------- routing

def test_unknown_paths_404_and_wrong_methods_405(registry):
    resp = get(registry, "/api/v1/registry/nothing")
    assert resp.status_code == 404 and resp.json() == {"detail": "Not Found"}
    resp = get(registry, "/api/v1/registry/services/")  # Starlette's redirect_slashes: absolute, no body
    assert resp.status_code == 307 and resp.content == b""
    assert resp.headers["location"] == registry.api + "/services"
    assert get(registry, "/").json()["service"] == "Configuration Management Service"
    resp = httpx.get(registry.api + "/register", timeout=10)
    assert resp.status_code == 405 and resp.json() == {"detail": "Method Not Allowed"}
    assert httpx.delete(registry.api + "/services/x", timeout=10).status_code == 405
    assert httpx.post(registry.url + "/health", timeout=10).status_code == 405


def test_path_segments_are_percent_decoded(registry, kazoo_client):
    name = "odd name é"
    reg(registry, name, meta={"instance_id": "odd 1", "status": "healthy"})
    assert kazoo_client.exists(node_path(registry, name, "odd 1")) is not None
    found = get(registry, "/api/v1/registry/services/odd%20name%20%C3%A9").json()
    assert [i["instance_id"] for i in found] == ["odd 1"]
    assert get(registry, "/api/v1/registry/services/odd%20name%20%C3%A9/url").status_code == 200


# --------------------------------------------------------------------------- session loss

def test_stop_closes_the_session_and_every_instance_vanishes(make_registry, kazoo_client):
    registry = make_registry()
    for i in range(3):
        reg(registry, "svc", meta={"instance_id": f"svc-{i}", "status": "healthy"})
    parent = f"{registry.base_path}/svc/instances"
    assert len(kazoo_client.get_children(parent)) == 3
    registry.server.stop()
    assert kazoo_client.get_children(parent) == []
    assert kazoo_client.exists(node_path(registry, "config-service", "config-service-1")) is None
    with pytest.raises(httpx.TransportError):
        httpx.get(registry.url + "/health", timeout=2)


@pytest.mark.slow
def test_zookeeper_down_answers_errors_quickly_never_hangs(tmp_path):
    members = zkmod.start_zookeeper(tmp_path / "zk", 0)
    try:
        zkmod.wait_for(members, timeout=60)
        server = RegistryServer(zk_hosts=zkmod.connection_string(members), zk_timeout=2.0,
                                identity=Identity(self_url=None)).start()
        try:
            reg_obj = type("R", (), {"api": server.url + "/api/v1/registry", "url": server.url})
            assert reg(reg_obj, "svc", meta={"instance_id": "svc-1", "status": "healthy"}).status_code == 201
            zkmod.stop_zookeeper(members)
            time.sleep(0.5)
            for method, path in (("GET", "/api/v1/registry/services/other"),
                                 ("POST", "/api/v1/registry/deregister?service_name=svc&instance_id=svc-1"),
                                 ("POST", "/api/v1/registry/register")):
                started = time.monotonic()
                kwargs = {"json": {"service_name": "x", "service_url": "http://x:1"}} if path.endswith("register") else {}
                resp = httpx.request(method, server.url + path, timeout=15, **kwargs)
                assert time.monotonic() - started < 6, path
                assert_plain_500(resp, path)
            health = httpx.get(server.url + "/health", timeout=10).json()
            assert health["zookeeper"] == "unhealthy" and health["status"] == "unhealthy"
            # the real /ready only checks that its clients were made at start-up
            assert httpx.get(server.url + "/ready", timeout=10).json() == {"status": "ready"}
        finally:
            started = time.monotonic()
            server.stop()
            assert time.monotonic() - started < 15
    finally:
        zkmod.stop_zookeeper(members)


def test_start_fails_clearly_when_zookeeper_is_unreachable(tmp_path):
    server = RegistryServer(zk_hosts=f"127.0.0.1:{proc.free_port()}", zk_timeout=1.0)
    with pytest.raises(SandboxError, match="could not connect to ZooKeeper"):
        server.start()


# --------------------------------------------------------------------------- failure switches ("How it fails")

API = "/api/v1/registry"




def per_service_reads(registry, name):
    return {"instances": get(registry, f"{API}/services/{name}"),
            "url": get(registry, f"{API}/services/{name}/url"),
            "discover": get(registry, f"{API}/discover/{name}"),
            "health": httpx.post(registry.api + f"/services/{name}/health", timeout=10)}


def test_redis_fault_fails_every_instance_read_and_fails_writes_after_doing_them(registry, kazoo_client):
    reg(registry, "svc", meta={"instance_id": "svc-1", "status": "healthy"})
    assert len(get(registry, f"{API}/services/svc").json()) == 1  # cached
    registry.server.faults.add("redis")
    health = get(registry, "/health")  # Redis is pinged first: a bare 503 that names no component
    assert health.status_code == 503 and health.json() == {"detail": "Service unhealthy"}
    for name in ("svc", "config-service", "never-registered"):  # every service, not one
        for call, resp in per_service_reads(registry, name).items():
            assert_plain_500(resp, (name, call))
    assert get(registry, f"{API}/services").status_code == 200  # the database still answers
    # register: the node and the row are written, THEN the cache eviction fails
    resp = reg(registry, "svc", "http://new:2", meta={"instance_id": "svc-2", "status": "healthy"})
    assert_plain_500(resp)
    data, stat = kazoo_client.get(node_path(registry, "svc", "svc-2"))
    assert json.loads(data)["service_url"] == "http://new:2"
    assert stat.ephemeralOwner == registry.server.session_id
    rows = {r["service_name"]: r for r in get(registry, f"{API}/services").json()}
    assert rows["svc"]["service_url"] == "http://new:2"
    # deregister: the node is deleted and the row marked, THEN 500
    assert_plain_500(dereg(registry, "svc", "svc-1"))
    assert kazoo_client.exists(node_path(registry, "svc", "svc-1")) is None
    assert {r["service_name"]: r for r in get(registry, f"{API}/services").json()}["svc"]["status"] == "unknown"
    # Redis back: it restarted empty, so reads show ZooKeeper's truth at once
    registry.server.faults.discard("redis")
    assert [i["instance_id"] for i in get(registry, f"{API}/services/svc").json()] == ["svc-2"]
    assert get(registry, "/health").json()["redis"] == "healthy"


def test_postgres_fault_fails_the_services_list_and_fails_writes_after_the_node(registry, kazoo_client):
    reg(registry, "svc", meta={"instance_id": "svc-1", "status": "healthy"})
    registry.server.faults.add("postgres")
    health = get(registry, "/health")
    assert health.status_code == 503 and health.json() == {"detail": "Service unhealthy"}
    assert_plain_500(get(registry, f"{API}/services"))
    reads = per_service_reads(registry, "svc")
    # the health call probes, then fails writing its verdict to the row
    assert {call: r.status_code for call, r in reads.items()} == {
        "instances": 200, "url": 200, "discover": 200, "health": 500}
    # register: the node is created (live), then the row fails: 500
    assert_plain_500(reg(registry, "new", meta={"instance_id": "new-1", "status": "healthy"}))
    assert kazoo_client.exists(node_path(registry, "new", "new-1")).ephemeralOwner == registry.server.session_id
    assert [i["instance_id"] for i in get(registry, f"{API}/services/new").json()] == ["new-1"]
    # deregister: the node is deleted, then 500
    assert_plain_500(dereg(registry, "svc", "svc-1"))
    assert kazoo_client.exists(node_path(registry, "svc", "svc-1")) is None
    registry.server.faults.discard("postgres")
    rows = {r["service_name"]: r for r in get(registry, f"{API}/services").json()}
    assert "new" not in rows  # the row was never written
    assert rows["svc"]["status"] == "healthy"  # nor was the deregistration


def test_simulated_redis_or_postgres_trouble_is_the_bare_503_too(registry):
    for component in ("redis", "postgres"):
        registry.server.simulate = {component: "unhealthy"}
        resp = get(registry, "/health")
        assert resp.status_code == 503 and resp.json() == {"detail": "Service unhealthy"}, component
    registry.server.simulate = {"kafka": "unhealthy"}
    body = get(registry, "/health").json()
    assert (body["status"], body["kafka"], body["redis"], body["postgres"]) == (
        "unhealthy", "unhealthy", "healthy", "healthy")
    assert isinstance(body["timestamp"], float)  # the real one's event-loop clock


def test_lost_zk_client_fails_registry_calls_while_zookeeper_is_fine(make_registry, kazoo_client):
    registry = make_registry(zk_timeout=4.0)
    reg(registry, "svc", meta={"instance_id": "svc-1", "status": "healthy"})
    old_session = registry.server.session_id
    registry.server.lose_zk_client()
    health = get(registry, "/health").json()
    assert health["zookeeper"] == "unhealthy" and health["status"] == "unhealthy"
    assert health["redis"] == health["postgres"] == "healthy"
    assert kazoo_client.get_children("/") is not None  # ZooKeeper itself answers
    assert_plain_500(reg(registry, "svc", meta={"instance_id": "svc-2", "status": "healthy"}))
    assert kazoo_client.exists(node_path(registry, "svc", "svc-2")) is None
    for name in ("svc", "config-service"):  # not cached: read from ZooKeeper, which the client cannot
        assert_plain_500(get(registry, f"{API}/services/{name}"))
        assert_plain_500(get(registry, f"{API}/services/{name}/url"))
    assert_plain_500(dereg(registry, "svc", "svc-1"))
    assert get(registry, f"{API}/services").status_code == 200  # the database is fine
    # the session was abandoned, not closed: its nodes linger until it times out
    assert kazoo_client.exists(node_path(registry, "svc", "svc-1")).ephemeralOwner == old_session
    assert registry.server.abandoned_sessions == [old_session]
    assert wait_until(lambda: kazoo_client.exists(node_path(registry, "svc", "svc-1")) is None)
    # still lost until restarted
    assert get(registry, "/health").json()["zookeeper"] == "unhealthy"
    registry.server.restart()
    assert get(registry, "/health").json()["zookeeper"] == "healthy"
    assert reg(registry, "svc", meta={"instance_id": "svc-3", "status": "healthy"}).status_code == 201


def test_crash_restart_rewrites_its_own_node_in_place_and_everything_vanishes_with_the_old_session(
        make_registry, kazoo_client):
    registry = make_registry(zk_timeout=4.0)
    for i in range(3):
        reg(registry, "svc", meta={"instance_id": f"svc-{i}", "status": "healthy"})
    assert len(get(registry, f"{API}/services/svc").json()) == 3  # cached
    own_path = node_path(registry, "config-service", "config-service-1")
    before = kazoo_client.exists(own_path)
    old_session = registry.server.session_id
    registry.server.restart(linger=True)
    new_session = registry.server.session_id
    assert new_session not in (None, old_session)
    assert registry.server.abandoned_sessions == [old_session]
    own = kazoo_client.exists(own_path)
    # exists-then-set: rewritten in place, still the old session's, so it goes with it
    assert (own.version, own.ephemeralOwner) == (1, old_session) and own.mtime >= before.mtime
    owners = {c: kazoo_client.exists(f"{registry.base_path}/svc/instances/{c}").ephemeralOwner
              for c in kazoo_client.get_children(f"{registry.base_path}/svc/instances")}
    assert owners == {f"svc-{i}": old_session for i in range(3)}  # lingering, owned by a gone session
    # the cache ("Redis", another process) outlived the restart
    assert len(get(registry, f"{API}/services/svc").json()) == 3
    # the trap: registering an id again only updates the lingering node in place...
    assert reg(registry, "svc", "http://again:1", meta={"instance_id": "svc-0", "status": "healthy"}).status_code == 201
    assert kazoo_client.exists(node_path(registry, "svc", "svc-0")).ephemeralOwner == old_session
    # ...while deregister-then-register saves it
    assert dereg(registry, "svc", "svc-1").status_code == 200
    assert reg(registry, "svc", meta={"instance_id": "svc-1", "status": "healthy"}).status_code == 201
    assert kazoo_client.exists(node_path(registry, "svc", "svc-1")).ephemeralOwner == new_session
    assert wait_until(lambda: kazoo_client.get_children(f"{registry.base_path}/svc/instances") == ["svc-1"])
    assert [i["instance_id"] for i in get(registry, f"{API}/services/svc").json()] == ["svc-1"]
    # its own node went with the old session: none until its next start
    assert kazoo_client.exists(own_path) is None
    assert get(registry, "/health").json()["zookeeper"] == "healthy"
    registry.server.restart(linger=False)
    own = kazoo_client.exists(own_path)
    assert (own.version, own.ephemeralOwner) == (0, registry.server.session_id)


def test_graceful_restart_closes_the_old_session_at_once(make_registry, kazoo_client):
    registry = make_registry()
    reg(registry, "svc", meta={"instance_id": "svc-1", "status": "healthy"})
    assert len(get(registry, f"{API}/services/svc").json()) == 1  # cached
    registry.server.restart(linger=False)
    assert kazoo_client.exists(node_path(registry, "svc", "svc-1")) is None
    # the cache is Redis's, not the process's: the gone instance is served until it expires
    assert [i["instance_id"] for i in get(registry, f"{API}/services/svc").json()] == ["svc-1"]
    own = kazoo_client.exists(node_path(registry, "config-service", "config-service-1"))
    assert (own.version, own.ephemeralOwner) == (0, registry.server.session_id)
    assert registry.server.abandoned_sessions == []


def test_fault_flag_on_the_command_line(zk_server, tmp_path):
    port = proc.free_port()
    base = f"/regctl-test-{uuid.uuid4().hex[:8]}/services"
    log = tmp_path / "registry.log"
    pid = proc.spawn([sys.executable, "-m", "regctl.sandbox.registry", "--port", str(port),
                      "--zk", zk_server.hosts, "--base", base, "--fault", "redis", "--fault", "postgres"],
                     log, cwd=tmp_path, token=(token := proc.new_token()))
    started = proc.start_time(pid)
    url = f"http://127.0.0.1:{port}"
    try:
        def answers():
            try:
                return httpx.get(url + "/live", timeout=2).status_code == 200
            except httpx.TransportError:
                return False
        assert wait_until(answers), proc.tail(log, 20)
        health = httpx.get(url + "/health", timeout=5)
        assert health.status_code == 503 and health.json() == {"detail": "Service unhealthy"}
        assert_plain_500(httpx.get(url + API + "/services", timeout=5))
        assert_plain_500(httpx.get(url + API + "/services/config-service", timeout=5))
    finally:
        assert proc.stop_owned(pid, token, started, timeout=5) is None
    bad = subprocess.run([sys.executable, "-m", "regctl.sandbox.registry", "--fault", "kafka"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "--fault" in bad.stderr
