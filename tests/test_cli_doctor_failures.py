"""Each row of the contract's "How it fails" table, produced in the sandbox registry: exactly one doctor row
names the cause with its fix, no row blames something else, and the exit code says it failed."""

from __future__ import annotations

import json

import httpx
import pytest

from tests import test_cli_doctor
from tests.helpers import register
from tests.test_cli_doctor import doctor, one, rows
from tests.helpers import wait_until

tiny = test_cli_doctor.tiny  # the fixture, shared

FIXES = {
    "cause.redis": "restart or fix Redis",
    "cause.postgres": "fix PostgreSQL",
    "cause.zk-client": "restart the Config Service",
    "cause.restart": "regctl import FILE",
    "cause.bad-status": "re-register it with a valid status",
    "cause.stale-cache": "wait a minute",
}
#: words that blame a cause, so that a row naming another cause can be spotted
BLAME = {
    "cause.redis": ("Redis",),
    "cause.postgres": ("PostgreSQL",),
    "cause.zk-client": ("ZooKeeper client",),
    "cause.restart": ("restarted",),
    "cause.bad-status": ("cannot parse",),
    "cause.stale-cache": ("stale",),
}


def not_passing(res):
    return [r for r in res.json["checks"] if r["status"] in ("fail", "warn")]


def assert_only_cause(res, cause: str, exit_code: int = 1):
    """One failing/warning row, the cause's, with its fix; no row names another cause."""
    assert res.exit_code == exit_code, res
    bad = not_passing(res)
    assert [r["name"] for r in bad] == [cause], json.dumps(bad, indent=1)[:3000]
    row = bad[0]
    assert FIXES[cause] in row["hint"], row
    for other, words in BLAME.items():
        if other == cause:
            continue
        for r in res.json["checks"]:
            if r["status"] in ("fail", "warn"):
                text = r["finding"] + " " + (r["hint"] or "")
                text = text.replace("Redis or PostgreSQL", "")  # what a bare 503 says: it names neither
                assert not any(w in text for w in words), (other, r)
    cause_rows = [r for r in res.json["checks"] if r["name"].startswith("cause.") and r["name"] != cause]
    assert all(r["status"] in ("pass", "skip") for r in cause_rows), cause_rows
    return row


def explained(res, cause):
    return [r for r in res.json["checks"] if r["details"].get("explained_by") == cause]


@pytest.fixture
def app(tiny):
    return tiny(status=200)


def test_redis_down(registry, app):
    register(registry, "asr", "asr-1", url=app.url)
    registry.server.faults.add("redis")
    res = doctor("--service", "asr", "-o", "json", env=registry.env)
    row = assert_only_cause(res, "cause.redis")
    assert "Redis is down" in row["finding"] and "500" in row["finding"]
    claimed = {r["name"] for r in explained(res, "cause.redis")}
    assert {"config.health", "service.discoverable", "service.api-view"} <= claimed
    assert one(res, "config.redis")["status"] == "skip"  # explained, or not reported by a bare 503
    assert one(res, "cause.bad-status")["status"] == "pass"  # no status was blamed for the 500s
    everything = doctor("--all", "-o", "json", env=registry.env)
    assert_only_cause(everything, "cause.redis")


def test_postgres_down(registry, app):
    register(registry, "asr", "asr-1", url=app.url)
    registry.server.faults.add("postgres")
    res = doctor("--service", "asr", "-o", "json", env=registry.env)
    row = assert_only_cause(res, "cause.postgres")
    assert "GET /services answers 500" in row["finding"]
    assert "config.health" in {r["name"] for r in explained(res, "cause.postgres")}
    assert one(res, "config.postgres")["status"] == "skip"  # explained, or not reported by a bare 503
    assert_only_cause(doctor("--all", "-o", "json", env=registry.env), "cause.postgres")


def test_a_bad_status_in_one_service(registry, kazoo_client, app):
    register(registry, "asr", "asr-1", url=app.url)
    kazoo_client.create(f"{registry.base_path}/odd/instances/odd-1",
                        json.dumps({"instance_id": "odd-1", "service_url": app.url, "status": "UP"}).encode(),
                        ephemeral=True, makepath=True)
    res = doctor("--service", "odd", "-o", "json", env=registry.env)
    row = assert_only_cause(res, "cause.bad-status")
    assert row["target"] == "odd" and "odd-1='UP'" in row["finding"] and "regctl deregister odd odd-1" in row["hint"]
    assert {"service.discoverable", "service.api-view"} <= {r["name"] for r in explained(res, "cause.bad-status")}
    # the other service is fine, and --all finds the one bad service
    assert doctor("--service", "asr", "-o", "json", env=registry.env).exit_code == 0
    everything = doctor("--all", "-o", "json", env=registry.env)
    assert [r["target"] for r in rows(everything)["cause.bad-status"]] == ["odd"]


def test_the_config_services_own_zookeeper_client_lost(make_registry, app):
    registry = make_registry(zk_timeout=4.0)
    register(registry, "asr", "asr-1", url=app.url)
    registry.server.lose_zk_client()
    res = doctor("--service", "asr", "-o", "json", env=registry.env)
    row = assert_only_cause(res, "cause.zk-client")
    assert "ZooKeeper answers regctl" in row["finding"]
    assert one(res, "zookeeper.session")["status"] == "pass"
    assert "config.zookeeper" in {r["name"] for r in explained(res, "cause.zk-client")}




def test_a_restart_while_the_old_sessions_nodes_linger_and_after_they_vanish(make_registry, kazoo_client, tiny):
    registry = make_registry(zk_timeout=4.0)
    for name in ("asr", "tts"):
        register(registry, name, f"{name}-1", url=tiny(status=200).url)
    registry.server.restart(linger=True)
    res = doctor("--all", "-o", "json", env=registry.env)
    row = assert_only_cause(res, "cause.restart")
    assert "restarted at" in row["finding"] and "2 instance(s) of 2 service(s)" in row["finding"]
    assert "vanish when that session expires" in row["finding"]
    assert wait_until(lambda: not kazoo_client.get_children(f"{registry.base_path}/asr/instances")
                      and not kazoo_client.get_children(f"{registry.base_path}/tts/instances"))
    after = doctor("--all", "-o", "json", env=registry.env)
    row = assert_only_cause(after, "cause.restart")
    # "emptied at TIME" while its own node is a new session's; "emptied ... every instance is gone" once its
    # own node, rewritten in place under the old session, vanished with the rest
    assert "the registry emptied" in row["finding"] and row["details"]["lost"] == ["asr", "tts"]
    stale = [r for r in rows(after)["hygiene.stale-rows"] if r["target"] in ("asr", "tts")]
    assert {r["status"] for r in stale} == {"skip"} and {r["details"]["explained_by"] for r in stale} == \
        {"cause.restart"}
    one_service = doctor("--service", "asr", "-o", "json", env=registry.env)
    assert_only_cause(one_service, "cause.restart")
    assert one(one_service, "service.registered")["details"]["explained_by"] == "cause.restart"


def test_a_stale_cache(registry, kazoo_client, app):
    register(registry, "cached", "cached-1", url=app.url)
    register(registry, "cached", "cached-2", url=app.url)
    httpx.get(registry.api + "/services/cached", timeout=5)  # fill the 60 s cache
    kazoo_client.delete(f"{registry.base_path}/cached/instances/cached-1")
    res = doctor("--service", "cached", "-o", "json", env=registry.env, )
    row = assert_only_cause(res, "cause.stale-cache", exit_code=0)  # a warning: another instance serves
    assert "only in the API: cached-1" in row["finding"] and "/url may hand out" in row["finding"]
    assert "service.api-view" in {r["name"] for r in explained(res, "cause.stale-cache")}
    assert doctor("--service", "cached", "--strict", "-o", "json", env=registry.env).exit_code == 1
    # the last instance gone too: the service has none, and the cause explaining that failure fails with it
    kazoo_client.delete(f"{registry.base_path}/cached/instances/cached-2")
    res = doctor("--service", "cached", "-o", "json", env=registry.env, )
    row = assert_only_cause(res, "cause.stale-cache", exit_code=1)
    assert row["status"] == "fail" and row["details"]["raised_from"] == "warn"
    assert "service.registered cached" in row["details"]["fails_for"]
    assert {"service.api-view", "service.registered"} <= {r["name"] for r in explained(res, "cause.stale-cache")}


def test_a_healthy_registry_names_no_cause(registry, app):
    register(registry, "asr", "asr-1", url=app.url)
    res = doctor("cause", "--all", "-o", "json", env=registry.env)
    assert res.exit_code == 0, res
    assert {r["status"] for r in res.json["checks"]} == {"pass"}, res.json["checks"]


def test_a_config_service_that_never_answers_names_no_cause_and_is_not_waited_on(tiny):
    hung = tiny(hang=True)
    res = doctor("cause", "service.server-health", "--service", "asr", "--config-url", hung.url, "-o", "json")
    by = {r["name"]: r for r in res.json["checks"]}
    assert {r["status"] for r in by.values()} == {"skip"}, by  # could not tell: never a cause guessed
    assert "not tried" in by["service.server-health"]["finding"]  # its long deadline is not spent on a dead host
    assert "/health" in by["cause.redis"]["finding"]


def test_odd_service_names_do_not_stop_the_cause_checks(registry, kazoo_client, app):
    register(registry, "asr", "asr-1", url=app.url)
    for odd in (" lead", "x" * 250):  # names the registry holds but regctl's own validation would refuse
        kazoo_client.create(f"{registry.base_path}/{odd}/instances/i-1",
                            json.dumps({"instance_id": "i-1", "service_url": app.url, "status": "healthy"}).encode(),
                            ephemeral=True, makepath=True)
    res = doctor("cause", "--all", "-o", "json", env=registry.env)
    assert res.exit_code == 0, res
    assert {r["status"] for r in res.json["checks"]} == {"pass"}, res.json["checks"]
