"""regctl.registration without a server: building, validating, planning and running deregistrations."""

import httpx
import pytest

from regctl.registration.deregister import DeregisterRun, plan_deregister, run_deregister, verify_gone
from regctl.registration.request import (
    RegisterFlags,
    from_env,
    from_flags,
    load_registrations,
    parse_env_file,
    parse_meta,
)
from regctl.registration.writes import describe_request
from regctl.http.api import RegistryApi, deregister_call, register_call
from regctl.errors import NotFound, Unreachable, UsageError
from regctl.wait import WaitReport


# ---------------------------------------------------------------------------- flags

def test_parse_meta_json_values_and_text():
    assert parse_meta(["v=1.2.3", "n=3", "f=1.5", "ok=true", 'tags=["a"]', 's="3"', "e=", "eq=a=b"]) == {
        "v": "1.2.3", "n": 3, "f": 1.5, "ok": True, "tags": ["a"], "s": "3", "e": "", "eq": "a=b"}
    with pytest.raises(UsageError, match="key=value"):
        parse_meta(["novalue"])
    with pytest.raises(UsageError):
        parse_meta(["=x"])


def test_from_flags_url_rules():
    reg = from_flags(RegisterFlags(name="svc", port="8090"))
    assert reg.payload() == {"service_name": "svc", "service_url": "http://svc:8090",
                             "health_check_url": "http://svc:8090/health", "service_metadata": {"status": "healthy"}}
    assert from_flags(RegisterFlags(name="svc", host="h", port=1)).service_url == "http://h:1"
    assert from_flags(RegisterFlags(name="svc", public_url="https://x.example/svc/", port=1)).service_url \
        == "https://x.example/svc"
    assert from_flags(RegisterFlags(name="svc", url="http://u:2", no_health_url=True)).health_check_url is None
    assert from_flags(RegisterFlags(name="svc", url="http://u:2", health_url="http://u:2/hz")).health_check_url \
        == "http://u:2/hz"


def test_from_flags_explicit_flags_win_over_meta():
    reg = from_flags(RegisterFlags(name="svc", url="http://u:2", instance_id="i-1"), status="starting",
                       meta={"instance_id": "meta-id", "status": "unknown", "region": "eu"})
    assert reg.metadata == {"instance_id": "i-1", "status": "starting", "region": "eu"}
    assert from_flags(RegisterFlags(name="svc", url="http://u:2"), meta={"status": "unknown"}
                        ).metadata["status"] == "unknown"


@pytest.mark.parametrize("kwargs, words", [
    ({"name": None, "url": "http://u:1"}, "--name"),
    ({"name": "a/b", "url": "http://u:1"}, "'/'"),
    ({"name": "zookeeper", "url": "http://u:1"}, "reserved"),
    ({"name": "a", "url": "http://u:1", "port": 1}, "cannot be combined"),
    ({"name": "a"}, "no service URL"),
    ({"name": "a", "port": "x"}, "not a number"),
    ({"name": "a", "port": 70000}, "out of range"),
    ({"name": "a", "url": "http://:1"}, "no host"),
    ({"name": "a", "url": "http://u:1", "status": "ok"}, "status 'ok'"),
    ({"name": "a", "url": "http://u:1", "instance_id": "a/b"}, "instance id"),
    ({"name": "a", "url": "http://u:1", "health_url": "gopher://x"}, "health check URL"),
    ({"name": "a", "url": "http://u:1", "meta": {"instance_id": 5}}, "not a string"),
])
def test_from_flags_rejects(kwargs, words):
    with pytest.raises(UsageError, match=words.replace("(", r"\(")):
        flags = {k: v for k, v in kwargs.items() if k not in ("meta", "status")}
        from_flags(RegisterFlags(**flags), meta=kwargs.get("meta"), status=kwargs.get("status"))


# ---------------------------------------------------------------------------- environment

def test_env_file_syntax():
    text = """
# comment
export SERVICE_NAME=my-service
SERVICE_PORT = 8090
SERVICE_HOST="my host" # trailing comment
SERVICE_PUBLIC_URL='https://x/$HOME'
EMPTY=
ESC="a\\"b\\nc"
PLAIN=value # comment
"""
    assert parse_env_file(text) == {"SERVICE_NAME": "my-service", "SERVICE_PORT": "8090", "SERVICE_HOST": "my host",
                                      "SERVICE_PUBLIC_URL": "https://x/$HOME", "EMPTY": "", "ESC": 'a"b\nc',
                                      "PLAIN": "value"}
    for bad in ("JUSTAWORD", "1X=2", 'A="open', "A='x' trailing"):
        with pytest.raises(UsageError, match="line 1"):
            parse_env_file(bad, "f.env")


@pytest.mark.parametrize("env, url", [
    ({"SERVICE_HOST": "my-service", "SERVICE_PORT": "8090"}, "http://my-service:8090"),
    ({"SERVICE_PUBLIC_URL": "https://api.example.com/my-service"}, "https://api.example.com/my-service"),
    ({"SERVICE_PORT": "8090"}, "http://my-service:8090"),
])
def test_from_env_guide_examples(env, url):
    reg = from_env({"SERVICE_NAME": "my-service", **env}, pid=42)
    assert reg.service_url == url and reg.health_check_url == url + "/health"
    assert reg.metadata == {"instance_id": "my-service-42", "status": "healthy"}


def test_from_env_file_values_override_and_errors_name_the_variable():
    reg = from_env({"SERVICE_NAME": "a", "SERVICE_PORT": "1"}, {"SERVICE_PORT": "2", "SERVICE_INSTANCE_ID": "x"},
                     extra_metadata={"version": "9"}, status="starting")
    assert reg.service_url == "http://a:2"
    assert reg.metadata == {"instance_id": "x", "status": "starting", "version": "9"}
    with pytest.raises(UsageError, match="SERVICE_NAME"):
        from_env({})
    with pytest.raises(UsageError, match="SERVICE_PORT"):
        from_env({"SERVICE_NAME": "a"})
    with pytest.raises(UsageError, match="SERVICE_PORT"):
        from_env({"SERVICE_NAME": "a", "SERVICE_PORT": "eighty"})


# ---------------------------------------------------------------------------- files

def test_load_registrations_shapes_and_keys():
    one = load_registrations('{"service_name": "a", "service_url": "http://a:1"}')
    assert len(one) == 1 and one[0].health_check_url == "http://a:1/health"
    assert one[0].metadata == {"status": "healthy"}
    many = load_registrations("- {name: a, url: 'http://a:1', instance_id: a-1}\n"
                                "- {service_name: b, service_url: 'http://b:1', health_check_url: null,"
                                " service_metadata: {status: unknown, zone: z}}\n")
    assert [x.instance_id for x in many] == ["a-1", None]
    assert many[1].health_check_url is None and many[1].metadata == {"status": "unknown", "zone": "z"}
    wrapped = load_registrations('{"registrations": [{"name": "c", "url": "http://c:1", "meta": {"k": 1}}]}')
    assert wrapped[0].metadata == {"k": 1, "status": "healthy"}


@pytest.mark.parametrize("text, words", [
    ("", "got NoneType"),
    ("[]", "no registrations"),
    ("just text", "got str"),
    ("- {name: a, url: 'http://a:1', extra: 1}", "unknown key 'extra'"),
    ("- {name: a}", "service_url"),
    ("- {url: 'http://a:1'}", "service_name"),
    ("- {name: a, url: 'http://a:1', meta: [1]}", "not a mapping"),
    ("- {name: a, url: 'http://a:1', health_url: 5}", "not text"),
    ("- {name: a, url: 'http://a:1', status: up}", "status 'up'"),
    ("{a: [", "not valid YAML"),
])
def test_load_registrations_errors(text, words):
    with pytest.raises(UsageError, match=words):
        load_registrations(text, "regs.yaml")


def test_load_registrations_error_names_the_entry():
    with pytest.raises(UsageError) as info:
        load_registrations("- {name: a, url: 'http://a:1'}\n- {name: b, url: 'ftp://b'}", "regs.yaml")
    assert info.value.where == "regs.yaml entry 2"


def test_describe_request():
    reg = from_flags(RegisterFlags(name="a", url="http://a:1", instance_id="a-1"))
    req = describe_request("http://cs:8082/", register_call(reg.payload()))
    assert req == {"method": "POST", "url": "http://cs:8082/api/v1/registry/register", "json": reg.payload()}
    req = describe_request("http://cs:8082", deregister_call("a b", "x&y"))
    assert req["url"] == "http://cs:8082/api/v1/registry/deregister?service_name=a+b&instance_id=x%26y"
    assert req["json"] is None


# ---------------------------------------------------------------------------- deregister planning

def test_plan_named_ids():
    plan = plan_deregister("s", ["b", "a", "b"], False, {"a", "b", "c"}, "zookeeper")
    assert plan.instance_ids == ("b", "a") and plan.not_live == ()
    with pytest.raises(NotFound, match="not live in ZooKeeper.*ok regardless") as info:
        plan_deregister("s", ["a", "zz"], False, {"a"}, "zookeeper")
    assert "zz" in info.value.message and "a," not in info.value.message
    with pytest.raises(NotFound, match="the API's instance list"):
        plan_deregister("s", ["zz"], False, set(), "api")
    forced = plan_deregister("s", ["a", "zz"], False, {"a"}, "api", force=True)
    assert forced.instance_ids == ("a", "zz") and forced.not_live == ("zz",)


def test_plan_all_is_exactly_the_live_set():
    plan = plan_deregister("s", [], True, ["c", "a"], "zookeeper")
    assert plan.instance_ids == ("a", "c")
    with pytest.raises(NotFound, match="no live instances"):
        plan_deregister("s", [], True, [], "zookeeper")
    with pytest.raises(UsageError):
        plan_deregister("s", ["a"], True, ["a"], "zookeeper")
    with pytest.raises(UsageError):
        plan_deregister("s", [], False, ["a"], "zookeeper")
    with pytest.raises(UsageError):
        plan_deregister("s", [".."], False, [".."], "zookeeper", force=True)


def _api(handler):
    return RegistryApi("http://registry.test", timeout=1, transport=httpx.MockTransport(handler))


def test_run_deregister_interrupted_mid_batch_reports_exactly():
    sent = []

    def handler(request):
        iid = request.url.params["instance_id"]
        if iid == "b":
            raise KeyboardInterrupt
        sent.append(iid)
        return httpx.Response(200, json={"status": "ok"})

    plan = plan_deregister("s", ["a", "b", "c"], False, {"a", "b", "c"}, "zookeeper")
    with _api(handler) as api:
        run = run_deregister(api.deregister, plan)
    assert run.interrupted and sent == ["a"]
    assert run.outcome == {"a": "sent", "b": "interrupted", "c": "not-attempted"}
    assert verify_gone(run, lambda: ["b", "c"], settle_s=0) is None
    assert run.outcome == {"a": "removed", "b": "still-present", "c": "not-attempted"}


def test_run_deregister_stops_when_registry_goes_away_and_continues_after_bad_answers():
    def handler(request):
        iid = request.url.params["instance_id"]
        if iid == "a":
            return httpx.Response(500, json={"detail": "Failed to deregister service"})
        if iid == "b":
            raise httpx.ConnectError("connection refused")
        return httpx.Response(200, json={"status": "ok"})

    plan = plan_deregister("s", ["a", "b", "c"], False, {"a", "b", "c"}, "api")
    with _api(handler) as api:
        run = run_deregister(api.deregister, plan)
    assert run.outcome == {"a": "failed", "b": "failed", "c": "not-attempted"}
    assert isinstance(run.stopped_by, Unreachable) and "500" in str(run.errors["a"])


def test_verify_gone_settles_and_reports_check_failures():
    run = DeregisterRun("s", {"a": "sent", "b": "sent"})
    reads = iter([["a", "b"], ["b"], []])
    assert verify_gone(run, lambda: next(reads), settle_s=5, poll_s=0.01) is None
    assert run.outcome == {"a": "removed", "b": "removed"}

    run = DeregisterRun("s", {"a": "sent"})

    def broken():
        raise Unreachable("zk down")

    err = verify_gone(run, broken)
    assert isinstance(err, Unreachable) and run.outcome == {"a": "unverified"}


def test_wait_outcome_summary():
    o = WaitReport("s", False, 3, 2, 1, 30.2, "zookeeper")
    assert o.summary() == "2 of 3 instances live, 1 with status healthy after 30s"
    assert WaitReport("s", False, 1, 0, None, 1.04, "api").summary() == "0 of 1 instance live after 1.0s"
