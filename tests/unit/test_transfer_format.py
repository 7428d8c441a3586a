"""The export file and the import plan, as data: what is accepted, what is written, what is planned."""

import json

import pytest

from regctl.transfer import restore

from regctl.transfer import file as transfer
from regctl.models import Instance, NodeStat
from regctl.transfer.live import Session


def entry(service="svc", iid="i-1", **raw):
    doc = {"instance_id": iid, "service_url": "http://h:1", **raw}
    got, why = transfer.check_entry(service, doc, "here")
    assert got is not None, why
    return got


@pytest.mark.parametrize("service,raw,words", [
    ("", {"instance_id": "a", "service_url": "u"}, "service name is empty"),
    ("a/b", {"instance_id": "a", "service_url": "u"}, "contains '/'"),
    ("..", {"instance_id": "a", "service_url": "u"}, "not a valid ZooKeeper node name"),
    ("a\x00", {"instance_id": "a", "service_url": "u"}, "U+0000"),
    ("a\U0001f600", {"instance_id": "a", "service_url": "u"}, "U+1F600"),
    ("a", {"instance_id": 5, "service_url": "u"}, "instance_id is a number"),
    ("a", {"service_url": "u"}, "no instance_id"),
    ("a", {"instance_id": "a", "service_url": None}, "service_url is missing"),
    ("a", {"instance_id": "a", "service_url": "u", "health_check_url": 1}, "health_check_url is a number"),
    ("a", {"instance_id": "a", "service_url": "u", "service_metadata": []}, "not a mapping"),
    ("a", {"instance_id": "a", "service_url": "u", "service_metadata": {"instance_id": "b"}}, "differs from"),
    ("a", {"instance_id": "a", "service_url": "u", "extra": 1}, "unknown key(s) extra"),
    ("a", {"instance_id": "a", "service_url": "u", "service_metadata": {"k": {1: 2}}}, "not text"),
])
def test_what_the_config_service_would_not_accept(service, raw, words):
    got, why = transfer.check_entry(service, raw, "here")
    assert got is None and words in why, why


def test_regctl_rules_are_warnings_only():
    e = entry(service=" padded ", iid="x" * 250, service_url="not a url",
              service_metadata={"status": "UP"})
    text = " | ".join(e.warnings)
    assert "leading or trailing whitespace" in text and "250 characters" in text
    assert "whitespace or a control character" in text and "'UP'" in text


def test_the_record_reproduces_the_node_including_odd_health_values():
    for node in ({"service_url": "http://a:1", "health_check_url": "http://a:1/h", "instance_id": "a", "x": 1},
                 {"service_url": "http://a:1", "health_check_url": None, "instance_id": "a"},
                 {"service_url": "http://a:1", "health_check_url": {"odd": True}, "instance_id": "a"}):
        inst = Instance("svc", "a", node["service_url"], None, "unknown", node)
        rec = transfer.instance_record(inst)
        e = entry(iid="a", **{k: v for k, v in rec.items() if k != "instance_id"})
        assert transfer.expected_node(e.registration) == node


def test_dump_is_ascii_and_loads_back_identically():
    odd = {"s": "\ud800\x1b\u202e\x85é", "f": 1e-05, "big": 10 ** 40, "on": "on", "d": "2026-01-01"}
    doc = {"version": 1, "services": [{"name": "a", "instances": [
        {"instance_id": "a", "service_url": "u", "health_check_url": None, "service_metadata": odd}]}]}
    for fmt in ("json", "yaml"):
        text = transfer.dump_document(doc, fmt)
        text.encode("ascii")
        parsed = transfer.parse_document(text, f"x.{fmt}")
        assert parsed.invalid == [] and parsed.entries[0].registration.metadata == {**odd, "instance_id": "a"}


def test_json_files_are_read_as_json_not_yaml_1_1():
    text = json.dumps({"version": 1, "services": [{"name": "a", "instances": [
        {"instance_id": "a", "service_url": "u", "service_metadata": {"f": 1e-05, "n": "no"}}]}]})
    meta = transfer.parse_document(text, "b.json").entries[0].registration.metadata
    assert meta["f"] == 1e-05 and meta["n"] == "no"


def observed(data, owner, version=0):
    return restore.Observed(data, owner, (1.0, version, owner))


def test_the_plan_by_ownership():
    current, old = 0x100, 0x200
    same = entry(iid="same")
    node = transfer.expected_node(same.registration)
    entries = [same, entry(iid="gone"), entry(iid="old"), entry(iid="old-changed"), entry(iid="moved"),
               entry(service="config-service", iid="config-service-1")]
    live = {("svc", "same"): observed(node, current),
            ("svc", "old"): observed({**node, "instance_id": "old"}, old),
            ("svc", "old-changed"): observed({**node, "instance_id": "old-changed", "v": 2}, old),
            ("svc", "moved"): observed({**node, "instance_id": "moved", "service_url": "http://else:1"}, current),
            ("config-service", "config-service-1"): observed({}, current)}
    session = Session(current, "/b/config-service/instances/config-service-1", "owner")
    plan = restore.plan_import(entries, live, "zookeeper", session, own_key=("config-service", "config-service-1"))
    acts = {i.instance_id: i.action for i in plan.items}
    assert acts == {"same": "live", "gone": "add", "old": "restore", "old-changed": "differs", "moved": "differs",
                    "config-service-1": "self"}
    forced = restore.plan_import(entries, live, "zookeeper", session, force=True,
                                 own_key=("config-service", "config-service-1"))
    acts = {i.instance_id: i.action for i in forced.items}
    assert acts["old-changed"] == "restore" and acts["moved"] == "overwrite" and acts["config-service-1"] == "self"
    blind = restore.plan_import(entries, live, "api", None)
    assert {i.instance_id: i.action for i in blind.items}["old"] == "live"  # ownership not checked


def test_differences_compare_json_not_python_equality():
    assert transfer.differences({"a": 1}, {"a": True}) == {"a": [1, True]}
    assert transfer.differences({"a": float("nan")}, {"a": float("nan")}) == {}
    assert transfer.differences({"health_check_url": None}, {}) == {}


def test_depth_and_json_problem_do_not_recurse():
    x = "leaf"
    for _ in range(5000):
        x = [x]
    assert transfer.depth(x) == 5000
    assert "nested more than" in transfer.json_problem(x, "m")


def test_node_stat_token_changes_with_a_write():
    st = NodeStat(created=1.0, modified=2.0, ephemeral_owner=7, version=3, data_length=10)

    class Node:
        data, stat, owner = {"a": 1}, st, 7

    assert restore.Observed.from_node(Node).token == (1.0, 3, 7)


def test_non_finite_numbers_round_trip_through_strict_json():
    import json
    import math

    from regctl.transfer import file as transfer
    doc = {"version": 1, "services": [{"name": "s", "instances": [{"instance_id": "i", "service_url": "http://s:1",
           "service_metadata": {"a/b": float("nan"), "~x": [1.5, float("inf"), {"n": float("-inf")}], "t": "NaN"}}]}]}
    text = transfer.dump_document(doc, "json")
    strict = json.loads(text, parse_constant=lambda c: (_ for _ in ()).throw(AssertionError(c)))
    assert strict["non_finite_numbers"] == ["/services/0/instances/0/service_metadata/a~1b",
                                            "/services/0/instances/0/service_metadata/~0x/1",
                                            "/services/0/instances/0/service_metadata/~0x/2/n"]
    back = json.loads(text)
    transfer.decode_non_finite(back, "f.json")
    meta = back["services"][0]["instances"][0]["service_metadata"]
    assert math.isnan(meta["a/b"]) and meta["~x"][1] == math.inf and meta["~x"][2]["n"] == -math.inf
    assert meta["t"] == "NaN"  # a genuine string stays a string


def test_a_bad_non_finite_pointer_is_bad_input():
    import pytest

    from regctl.transfer import file as transfer
    from regctl.errors import UsageError

    for bad in (["/services/0/nope"], "x", ["/version"]):
        with pytest.raises(UsageError):
            transfer.decode_non_finite({"version": 1, "services": [], "non_finite_numbers": bad}, "f.json")
