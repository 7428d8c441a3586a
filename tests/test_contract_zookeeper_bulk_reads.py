"""Bulk reads through multiRead against the real ZooKeeper: same answers as node by node, errors per path."""

import json
import secrets

import pytest
from kazoo.client import KazooClient
from kazoo.security import make_digest_acl

from regctl.zookeeper import multi as zk_multi
from regctl.errors import NotAuthorized
from regctl.zookeeper.reader import ZkReader

pytestmark = pytest.mark.compat  # also run on the oldest and newest Python (.ci/run)


@pytest.fixture
def base(kazoo_client):
    base = f"/regctl-multi-{secrets.token_hex(4)}/services"
    for s in range(30):
        for i in range(4):
            body = {"service_url": f"http://h{s}:{8000 + i}", "status": "healthy", "instance_id": f"i{i}"}
            kazoo_client.create(f"{base}/svc-{s}/instances/i{i}", json.dumps(body).encode(), makepath=True,
                                ephemeral=True)
    kazoo_client.ensure_path(f"{base}/no-instances")
    kazoo_client.create(f"{base}/bad/instances/x", b"\xff\xfe", makepath=True)
    yield base
    kazoo_client.delete(base.rsplit("/", 1)[0], recursive=True)


def _plain(snap):
    return [(s.name, s.exists, [(i.instance_id, i.service_url, i.status, i.stat) for i in s.instances],
             [p.to_dict() for p in s.problems]) for s in snap.services], [p.to_dict() for p in snap.problems]


def test_snapshot_is_the_same_through_multi_read_and_fan_out(zk_server, base):
    with ZkReader(zk_server.hosts, base, timeout=10) as multi, ZkReader(zk_server.hosts, base, timeout=10) as fan:
        multi.multi_read_batch = 7  # many batches in flight at once
        fan.use_multi_read = False
        a, b = multi.snapshot(), fan.snapshot()
        assert multi.use_multi_read is True and fan.use_multi_read is False
    assert _plain(a) == _plain(b)
    assert sum(len(s.instances) for s in a.services) == 120
    kinds = {p.kind for s in a.services for p in s.problems}
    assert {"no-instances-node", "not-utf8"} <= kinds


def test_missing_paths_are_none_and_answers_match_single_reads(zk_server, base):
    paths = [f"{base}/svc-{s}/instances" for s in range(30)] + [f"{base}/gone/instances", f"{base}/nope"]
    with ZkReader(zk_server.hosts, base, timeout=10) as zk:
        kids = zk.bulk_children(paths)
        assert kids[f"{base}/gone/instances"] is None and kids[f"{base}/nope"] is None
        for p in paths[:30]:
            assert sorted(kids[p]) == zk.get_children(p)
        datas = zk.bulk_get([f"{base}/svc-3/instances/i1", f"{base}/svc-3/instances/none", f"{base}/svc-3"])
        assert datas[f"{base}/svc-3/instances/none"] is None
        assert datas[f"{base}/svc-3/instances/i1"] == zk.get(f"{base}/svc-3/instances/i1")
        assert datas[f"{base}/svc-3"][0] == b""


def test_chroot_in_the_hosts_string(zk_server, base):
    root, rest = base.split("/services")[0], "/services"
    with ZkReader(zk_server.hosts + root, rest, timeout=10) as zk:
        snap = zk.snapshot(["svc-1", "svc-2", "absent"])
        assert zk.use_multi_read is True
    assert [len(s.instances) for s in snap.services] == [4, 4, 0]
    assert snap.service("absent").exists is False


def test_noauth_nodes_come_back_as_not_authorized_in_the_result(zk_server, kazoo_client, base):
    acl = make_digest_acl("owner", "secret", all=True)
    kazoo_client.ensure_path(f"{base}/locked")
    kazoo_client.create(f"{base}/locked/instances", b"", acl=[acl])
    kazoo_client.create(f"{base}/svc-0/instances/hidden", b"{}", acl=[acl], ephemeral=True)
    try:
        with ZkReader(zk_server.hosts, base, timeout=10) as zk:
            kids = zk.bulk_children([f"{base}/locked/instances", f"{base}/svc-0/instances"])
            datas = zk.bulk_get([f"{base}/svc-0/instances/hidden", f"{base}/svc-0/instances/i0"])
            snap = zk.snapshot(["locked", "svc-0"])
            assert zk.use_multi_read is True
    finally:
        kazoo_client.add_auth("digest", "owner:secret")  # so the fixture can clean up
    assert isinstance(kids[f"{base}/locked/instances"], NotAuthorized)
    assert isinstance(datas[f"{base}/svc-0/instances/hidden"], NotAuthorized)
    assert "NOAUTH" in str(datas[f"{base}/svc-0/instances/hidden"])
    assert isinstance(datas[f"{base}/svc-0/instances/i0"], tuple)
    problems = {p.path: p.kind for s in snap.services for p in s.problems}
    assert problems[f"{base}/locked/instances"] == "unreadable"
    assert problems[f"{base}/svc-0/instances/hidden"] == "unreadable"
    assert len(snap.service("svc-0").instances) == 4


def test_server_without_multi_read_falls_back_to_fan_out(zk_server, base, monkeypatch):
    # An opcode ZooKeeper does not know gets what a 3.5 server answers to multiRead:
    # UNIMPLEMENTED, then the connection is closed (kazoo reconnects within the session).
    monkeypatch.setattr(zk_multi.MultiRead, "type", 199)
    with ZkReader(zk_server.hosts, base, timeout=10) as zk:
        session = zk.session_id
        snap = zk.snapshot()
        assert zk.use_multi_read is False
        assert sum(len(s.instances) for s in snap.services) == 120
        again = zk.snapshot(["svc-5"])  # remembered: no second attempt
        assert len(again.service("svc-5").instances) == 4
        assert zk.session_id == session


def test_multi_read_sets_no_watches_and_leaves_the_client_usable(zk_server, base):
    client = KazooClient(hosts=zk_server.hosts, timeout=10)
    client.start(timeout=15)
    try:
        res = zk_multi.multi_read_async(client, [(zk_multi.GET_CHILDREN, f"{base}/svc-0/instances"),
                                                 (zk_multi.GET_DATA, f"{base}/svc-0/instances/i0")]).get(timeout=10)
        assert sorted(res[0]) == ["i0", "i1", "i2", "i3"] and json.loads(res[1][0])["instance_id"] == "i0"
        assert not client._child_watchers and not client._data_watchers
        assert client.exists(base) is not None
    finally:
        client.stop()
        client.close()
