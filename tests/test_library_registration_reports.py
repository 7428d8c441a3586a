"""regctl.registration as a library: register and deregister return reports (asked, done, verified, failed).

Every test calls the core functions directly against the sandbox registry and a real ZooKeeper;
tests/test_cli_registration.py drives the same functions through the command line.
"""

import io
import json

import pytest

from regctl.errors import NotFound, Unreachable, UsageError
from regctl.registration.deregister import (
    DeregisterAsk,
    DeregisterOutcome,
    deregister,
    deregister_plan,
    deregister_requests,
)
from regctl.registration.register import register, register_requests
from regctl.registration.request import RegisterFlags, RegisterInput, read_request
from regctl.sandbox.proc import free_port
from regctl.settings import Endpoint


def endpoint_of(registry, zk=True):
    if not zk:
        return Endpoint(config_url=registry.url, timeout=5)
    return Endpoint(config_url=registry.url, timeout=5, zk_hosts=registry.zk_hosts, zk_base=registry.base_path)


def node(kazoo_client, registry, name, iid):
    path = f"{registry.base_path}/{name}/instances/{iid}"
    return json.loads(kazoo_client.get(path)[0]) if kazoo_client.exists(path) else None


def flags_request(name, iid, **flags):
    return read_request(RegisterInput(RegisterFlags(name=name, url=f"http://{name}:8090", instance_id=iid, **flags)))


# ---------------------------------------------------------------------------- what was asked

def test_read_request_takes_one_way_and_validates_it(tmp_path):
    req = read_request(RegisterInput(RegisterFlags(name="svc", port="8090"), meta=("version=1.2.3",),
                                     status="starting"))
    (reg,) = req.registrations
    assert reg.payload() == {"service_name": "svc", "service_url": "http://svc:8090",
                             "health_check_url": "http://svc:8090/health",
                             "service_metadata": {"version": "1.2.3", "status": "starting"}}
    assert req.warnings == ()

    doc = json.dumps([{"name": "a", "url": "http://a:1", "instance_id": "a-1"},
                      {"service_name": "b", "service_url": "http://b:2", "health_check_url": None}])
    req = read_request(RegisterInput(file="-"), stdin=io.StringIO(doc))
    assert [(r.service_name, r.instance_id, r.health_check_url) for r in req.registrations] == [
        ("a", "a-1", "http://a:1/health"), ("b", None, None)]

    env_file = tmp_path / "svc.env"
    env_file.write_text("SERVICE_PORT=9000\nSERVICE_HOST=filehost\n")
    req = read_request(RegisterInput(from_env=True, env_file=env_file),
                       environ={"SERVICE_NAME": "envsvc", "SERVICE_PORT": "1"})
    (reg,) = req.registrations
    assert reg.service_url == "http://filehost:9000"
    (warning,) = req.warnings  # no SERVICE_INSTANCE_ID: the guide's default, made from this process
    assert warning.startswith("SERVICE_INSTANCE_ID is not set") and repr(reg.instance_id) in warning


@pytest.mark.parametrize("given, words", [
    (RegisterInput(RegisterFlags(name="a", url="http://a:1"), from_env=True), "separate ways"),
    (RegisterInput(RegisterFlags(name="a", url="http://a:1"), env_file="x.env"), "--env-file needs --from-env"),
    (RegisterInput(file="regs.yaml", status="healthy"), "do not apply to -f FILE"),
    (RegisterInput(RegisterFlags(name="a", url="http://a:1"), meta=("novalue",)), "key=value"),
    (RegisterInput(RegisterFlags(url="http://a:1")), "--name"),
    (RegisterInput(file="/nonexistent/regs.yaml"), "cannot read the file"),
])
def test_read_request_refuses_before_anything_is_sent(given, words):
    with pytest.raises(UsageError, match=words):
        read_request(given, environ={})


@pytest.mark.parametrize("kwargs, words", [
    ({"service": "web"}, "no instance ids"),
    ({"service": "web", "instance_ids": ("w-1",), "all_live": True}, "cannot be combined"),
    ({"service": "bad/name", "instance_ids": ("x",)}, "'/'"),
    ({"service": "web", "instance_ids": ("..",)}, "instance id"),
])
def test_a_deregister_ask_is_valid_or_not_made(kwargs, words):
    with pytest.raises(UsageError, match=words):
        DeregisterAsk(**kwargs)


# ---------------------------------------------------------------------------- done and verified

def test_register_then_deregister_report_what_they_did(registry, kazoo_client):
    endpoint = endpoint_of(registry)
    request = flags_request("asr-service", "asr-1", health_url="http://asr-service:8090/hz")
    report = register(endpoint, request)
    assert report.error is None and not report.nothing_happened
    assert report.asked == request
    assert report.requests == tuple(register_requests(endpoint, request))
    assert report.requests[0]["url"] == registry.api + "/register"
    assert report.instance_ids == ["asr-1"]
    (done,) = report.done
    assert done.registration == request.registrations[0] and done.zookeeper == "present"
    assert report.confirmed and report.confirmation.base == registry.base_path
    assert report.verified_after_error == ()
    assert report.to_dict() == {"dry_run": False, "instance_ids": ["asr-1"], "verified_after_error": [],
                                "registrations": [{"request": report.requests[0], "instance_id": "asr-1",
                                                   "zookeeper": "present"}]}
    assert node(kazoo_client, registry, "asr-service", "asr-1")["health_check_url"] == "http://asr-service:8090/hz"

    plan = deregister_plan(endpoint, DeregisterAsk("asr-service", all_live=True))
    assert plan.instance_ids == ("asr-1",) and plan.source == "zookeeper" and plan.not_live == ()
    assert [c["url"] for c in deregister_requests(endpoint, plan)] == [
        registry.api + "/deregister?service_name=asr-service&instance_id=asr-1"]
    report = deregister(endpoint, plan)
    assert report.error is None and not report.interrupted
    assert report.plan == plan and report.verified_in == "zookeeper"
    assert report.outcomes == (DeregisterOutcome("asr-1", "removed", None),)
    assert report.removed == ["asr-1"] and report.not_removed == [] and report.counts() == {"removed": 1}
    assert report.to_dict()["results"] == [{"instance_id": "asr-1", "result": "removed", "error": None}]
    assert node(kazoo_client, registry, "asr-service", "asr-1") is None


def test_without_zookeeper_nothing_is_confirmed_and_the_api_is_the_check(registry, kazoo_client):
    endpoint = endpoint_of(registry, zk=False)
    report = register(endpoint, flags_request("web", "w-1"))
    assert report.error is None and report.instance_ids == ["w-1"]
    assert report.confirmation.configured is False and not report.confirmed
    assert report.done[0].zookeeper is None  # not looked at: not called missing
    assert node(kazoo_client, registry, "web", "w-1") is not None

    with pytest.raises(NotFound, match="the API's instance list"):
        deregister_plan(endpoint, DeregisterAsk("web", ("w-1", "nope")))
    report = deregister(endpoint, deregister_plan(endpoint, DeregisterAsk("web", ("w-1",))))
    assert report.verified_in == "api" and report.removed == ["w-1"] and report.error is None


def test_a_forced_id_that_was_not_live_is_planned_and_reported(registry, kazoo_client):
    endpoint = endpoint_of(registry)
    assert register(endpoint, flags_request("web", "w-1")).error is None
    with pytest.raises(NotFound, match="w-9 of 'web' is not live in ZooKeeper"):
        deregister_plan(endpoint, DeregisterAsk("web", ("w-9",)))
    plan = deregister_plan(endpoint, DeregisterAsk("web", ("w-9",), force=True))
    assert plan.not_live == ("w-9",) and plan.live == frozenset({"w-1"})
    report = deregister(endpoint, plan)
    assert report.outcomes == (DeregisterOutcome("w-9", "removed", None),) and report.error is None
    assert node(kazoo_client, registry, "web", "w-1") is not None  # never touched


# ---------------------------------------------------------------------------- failed, and looked up after


def test_a_register_answered_500_is_found_in_zookeeper(registry, kazoo_client):
    registry.server.faults.add("redis")
    report = register(endpoint_of(registry), flags_request("asr-service", "asr-9"))
    assert report.error is None and report.instance_ids == ["asr-9"]
    (check,) = report.verified_after_error
    assert check.action == "register" and check.happened is True and check.instance_id == "asr-9"
    assert "500" in check.api_error.message and "Redis is down" in check.consequence
    assert check.sentence().startswith("registered in ZooKeeper (asr-service/asr-9 is live), but")
    assert report.done[0].zookeeper == "present"
    assert report.to_dict()["verified_after_error"] == [check.to_dict()]
    assert node(kazoo_client, registry, "asr-service", "asr-9") is not None


def test_a_register_that_did_not_happen_is_the_reports_error(registry, kazoo_client):
    registry.server.lose_zk_client()
    report = register(endpoint_of(registry), flags_request("asr-service", "asr-9"))
    assert report.done == () and report.confirmation is None
    (check,) = report.verified_after_error
    assert check.happened is False
    assert isinstance(report.error, Unreachable) and report.error.message == check.sentence()
    assert "not registered (asr-service/asr-9 is not in ZooKeeper)" in report.error.message
    assert not report.nothing_happened  # ZooKeeper was looked at: the check is part of the story
    assert node(kazoo_client, registry, "asr-service", "asr-9") is None


def test_an_unreachable_registry_stops_the_batch_before_anything(registry):
    endpoint = Endpoint(config_url=f"http://127.0.0.1:{free_port()}", timeout=5)
    request = read_request(RegisterInput(file="-"), stdin=io.StringIO(
        '[{"name": "a", "url": "http://a:1"}, {"name": "b", "url": "http://b:1"}]'))
    report = register(endpoint, request)
    assert isinstance(report.error, Unreachable) and report.nothing_happened
    assert report.done == () and report.verified_after_error == () and len(report.requests) == 2


def test_a_deregister_answered_500_is_reported_removed(registry, kazoo_client):
    endpoint = endpoint_of(registry)
    assert register(endpoint, flags_request("asr-service", "asr-1")).error is None
    registry.server.faults.add("postgres")
    report = deregister(endpoint, deregister_plan(endpoint, DeregisterAsk("asr-service", ("asr-1",))))
    assert report.error is None
    (outcome,) = report.outcomes
    assert outcome.result == "removed" and outcome.error.startswith("removed, although the Config Service answered")
    (check,) = report.verified_after_error
    assert check.action == "deregister" and check.happened is True and "PostgreSQL is down" in check.consequence
    assert node(kazoo_client, registry, "asr-service", "asr-1") is None
