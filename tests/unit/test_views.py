from regctl.models import Instance, NodeStat, Problem, ServiceRow, ZkService, ZkSnapshot
from regctl.views import detail, summarize


def inst(svc, iid, status="healthy", url="http://h:1"):
    return Instance(svc, iid, url, url + "/health", status, {}, NodeStat(0, 0, 42, 0, 10), f"/s/{svc}/instances/{iid}")


def test_summarize_flags_each_disagreement():
    rows = [ServiceRow("a", "http://h:1", status="healthy"), ServiceRow("gone", status="unknown"),
            ServiceRow("quiet", status="healthy")]
    snap = ZkSnapshot("/s", (
        ZkService("a", (inst("a", "a1"), inst("a", "a2", "unknown"))),
        ZkService("orphan", (inst("orphan", "o1"),)),
        ZkService("quiet", (inst("quiet", "q1", "unknown"),)),
        ZkService("broken", (), (Problem("/s/broken", "no-instances-node", "x"),)),
    ))
    by = {s.name: s for s in summarize(rows, snap)}
    assert (by["a"].live, by["a"].healthy, by["a"].flags) == (2, 1, ())
    assert by["gone"].live == 0 and by["gone"].flags == ("no-live-instance",)
    assert by["orphan"].flags == ("not-in-api",) and by["orphan"].db_status is None
    assert "none-discoverable" in by["quiet"].flags
    assert "layout-problem" in by["broken"].flags


def test_summarize_api_only_and_cache_difference():
    rows = [ServiceRow("a")]
    api = {"a": [inst("a", "a1")]}
    s = summarize(rows, None, api)[0]
    assert (s.live, s.healthy, s.api_live) == (1, 1, 1)
    snap = ZkSnapshot("/s", (ZkService("a", (inst("a", "a2"),)),))
    s = summarize(rows, snap, api)[0]
    assert "api-differs" in s.flags and s.live == 1


def test_detail_warns_about_undiscoverable_and_cache():
    zk = ZkService("a", (inst("a", "a1", "unknown"),))
    api = [inst("a", "a1", "unknown"), inst("a", "stale")]
    d = detail("a", ServiceRow("a"), zk, api, rows_read=True)
    text = " ".join(d.warnings)
    assert "stale" in text and "60 s" in text
    assert "a1" in text and "never return" in text
    assert {v.instance.instance_id: (v.in_zookeeper, v.in_api) for v in d.instances} == {
        "a1": (True, True), "stale": (False, True)}


def test_detail_row_without_instances_is_still_registered():
    d = detail("x", ServiceRow("x", status="unknown"), ZkService("x", exists=False), [], rows_read=True)
    assert d.registered and any("no instance is live" in w for w in d.warnings)
    d2 = detail("y", None, ZkService("y", exists=False), [], rows_read=True)
    assert not d2.registered
