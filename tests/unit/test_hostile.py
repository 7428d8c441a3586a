"""Property tests: the parsers never raise anything but RegctlError, whatever the bytes."""

from __future__ import annotations

import json
from types import SimpleNamespace

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from regctl.http import api as api_mod
from regctl.errors import RegctlError
from regctl.models import Instance, Problem, ServiceRow
from regctl.views import detail, summarize
from regctl.zookeeper.reader import MAX_PAYLOAD_BYTES, instance_from_node, parse_payload

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=30))
json_values = st.recursive(json_scalars, lambda c: st.one_of(st.lists(c, max_size=4),
                                                              st.dictionaries(st.text(max_size=10), c, max_size=4)),
                           max_leaves=20)
FIELDS = ("service_name", "instance_id", "service_url", "health_check_url", "status", "service_metadata",
          "registered_at")
contract_like = st.fixed_dictionaries({}, optional={k: json_values for k in FIELDS})


def deep(n: int, open_: str = "[", close: str = "]") -> bytes:
    return (open_ * n + close * n).encode()


node_data = st.one_of(
    st.none(), st.binary(max_size=300),
    json_values.map(lambda v: json.dumps(v).encode()),
    contract_like.map(lambda v: json.dumps(v).encode()),
    contract_like.map(lambda v: json.dumps(v).encode()[: max(1, len(json.dumps(v)) // 2)]),  # truncated
    st.integers(1, 200_000).map(deep),
    st.integers(4301, 6000).map(lambda n: b'{"n": ' + b"7" * n + b"}"),  # past Python's int digit limit
    st.text(max_size=50).map(lambda t: t.encode("utf-16")),
    st.just(b'{"service_url": "\\ud800", "status": "\\udfff"}'),
)


def fake_stat(owner: int = 0x1234, version: int = 0):
    return SimpleNamespace(ctime=1_700_000_000_000, mtime=1_700_000_000_000, ephemeralOwner=owner,
                           version=version, dataLength=10)


@SETTINGS
@given(node_data)
def test_parse_payload_never_raises(data):
    value, problem = parse_payload(data, "/services/x/instances/i")
    assert (value is None) != (problem is None)
    if value is not None:
        assert isinstance(value, dict)
    else:
        assert isinstance(problem, Problem) and problem.kind in (
            "not-json", "not-utf8", "not-an-object", "too-large")
        json.dumps(problem.to_dict())


@SETTINGS
@given(node_data, st.text(min_size=1, max_size=20), st.text(min_size=1, max_size=20),
       st.sampled_from([None, fake_stat(), fake_stat(owner=0)]))
def test_instance_from_node_never_raises(data, service, iid, stat):
    inst, problems = instance_from_node(service, iid, f"/s/{service}/instances/{iid}", data, stat)
    assert inst is not None or problems
    if inst is not None:
        assert isinstance(inst.status, str)
        assert inst.service_url is None or isinstance(inst.service_url, str)
        json.dumps(inst.to_dict(), default=str)
        summarize(None, None, {service: [inst]})


def test_huge_payload_is_a_problem_not_a_parse():
    value, problem = parse_payload(b'{"a": "' + b"x" * (MAX_PAYLOAD_BYTES + 10) + b'"}', "/p")
    assert value is None and problem.kind == "too-large"


# --------------------------------------------------------------------------- the API's answers

STATUS = st.integers(100, 599)
CONTENT_TYPES = st.sampled_from(["application/json", "text/html; charset=utf-8", "text/plain", "",
                                 "application/octet-stream", "application/json; charset=latin-1"])
bodies = st.one_of(
    json_values.map(lambda v: json.dumps(v).encode()),
    st.lists(contract_like, max_size=4).map(lambda v: json.dumps(v).encode()),
    contract_like.map(lambda v: json.dumps(v).encode()),
    st.lists(contract_like, min_size=1, max_size=3).map(lambda v: json.dumps(v).encode()[:-3]),
    st.binary(max_size=200),
    st.just(b"<html><body><h1>502 Bad Gateway</h1></body></html>"),
    st.just(b""),
    st.just(b'{"detail": [{"loc": ["query", "x"], "msg": 3}, "junk", {"loc": 7}]}'),
    st.just(b'{"detail": {"nested": true}}'),
    st.integers(1, 100_000).map(deep),
    st.just(b'[{"service_name": "\\ud800", "instance_id": "\\udfff", "status": ["x"]}]'),
)

CALLS = [
    api_mod.services_call, lambda: api_mod.instances_call("svc"), lambda: api_mod.url_call("svc"),
    lambda: api_mod.discover_call("svc"), lambda: api_mod.server_health_call("svc"),
    lambda: api_mod.server_health_detailed_call("svc"), api_mod.config_health_call,
    lambda: api_mod.register_call({"service_name": "svc", "service_url": "http://x:1"}),
    lambda: api_mod.deregister_call("svc", "i-1"),
]


@SETTINGS
@given(STATUS, CONTENT_TYPES, bodies)
def test_every_call_answers_a_value_or_a_regctl_error(status, ctype, body):
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, headers={"content-type": ctype} if ctype else {}, content=body)

    with api_mod.RegistryApi("http://registry.test:8082", timeout=1, transport=httpx.MockTransport(handler)) as api:
        for make in CALLS:
            try:
                value = api.execute(make())
            except RegctlError as exc:
                assert str(exc).strip() and "\n" not in str(exc)
                assert int(exc.exit_code) in (1, 2, 3)
                continue
            # what the commands get is what the parsers promise
            if isinstance(value, list):
                assert all(isinstance(v, (Instance, ServiceRow, dict)) for v in value)
                for v in value:
                    if isinstance(v, Instance):
                        assert isinstance(v.instance_id, str) and isinstance(v.status, str)
                        assert isinstance(v.metadata, dict)
                        detail("svc", None, None, [v], rows_read=False)
                    if isinstance(v, ServiceRow):
                        assert isinstance(v.service_name, str)
                        summarize([v], None)


@pytest.mark.parametrize("body", [b"[" * 200_000, b'{"a":' * 100_000])
def test_deep_json_from_the_api_is_a_bad_response(body):
    transport = httpx.MockTransport(lambda r: httpx.Response(200, json=None, content=body,
                                                             headers={"content-type": "application/json"}))
    with api_mod.RegistryApi("http://r.test", timeout=1, transport=transport) as api:
        with pytest.raises(RegctlError) as err:
            api.list_services()
    assert err.value.exit_code == 3
