"""The multiRead wire format (regctl.zookeeper.multi) without a server: encoding, decoding, batching, chroot."""

import struct

import pytest
from kazoo.exceptions import NoAuthError, NoNodeError
from kazoo.protocol.paths import _prefix_root
from kazoo.protocol.serialization import GetChildren, GetData, MultiHeader, Transaction

from regctl.zookeeper import multi as zk_multi
from regctl.zookeeper.multi import GET_CHILDREN, GET_DATA, MultiRead, batches, with_chroot

STAT = struct.Struct("!qqqqiiiqiiq")


def test_request_is_transaction_framing_with_read_ops():
    ops = [(GET_CHILDREN, "/services/a/instances"), (GET_DATA, "/services/a/instances/é")]
    want = bytearray()
    for op, path in ops:
        req = GetChildren(path, None) if op == GET_CHILDREN else GetData(path, None)
        want += MultiHeader(op, False, -1).serialize() + req.serialize()
    want += MultiHeader(-1, True, -1).serialize()
    assert MultiRead(ops).serialize() == bytes(want)
    assert MultiRead.type == 22 and Transaction.type == 14


def _reply(*parts: bytes) -> bytes:
    return b"".join(parts) + MultiHeader(-1, True, -1).serialize()


def _str(s: str) -> bytes:
    raw = s.encode()
    return struct.pack("!i", len(raw)) + raw


def test_reply_decodes_children_data_and_per_op_errors():
    stat = STAT.pack(1, 2, 3000, 4000, 5, 6, 7, 0x1234, 9, 0, 11)
    buf = b"HEADERXX" + _reply(
        MultiHeader(GET_CHILDREN, False, 0).serialize() + struct.pack("!i", 2) + _str("a") + _str("ü"),
        MultiHeader(GET_DATA, False, 0).serialize() + _str("{}") + stat,
        MultiHeader(-1, False, NoNodeError.code).serialize() + struct.pack("!i", NoNodeError.code),
        MultiHeader(GET_DATA, False, 0).serialize() + struct.pack("!i", -1) + stat,
        MultiHeader(-1, False, NoAuthError.code).serialize() + struct.pack("!i", NoAuthError.code),
        MultiHeader(GET_CHILDREN, False, 0).serialize() + struct.pack("!i", 0),
    )
    out = MultiRead.deserialize(buf, 8)
    assert out[0] == ["a", "ü"]
    data, st = out[1]
    assert data == b"{}" and st.ephemeralOwner == 0x1234 and st.mtime == 4000 and st.dataLength == 9
    assert isinstance(out[2], NoNodeError)
    assert out[3][0] is None
    assert isinstance(out[4], NoAuthError)
    assert out[5] == []
    assert len(out) == 6


def test_reply_with_unknown_operation_is_an_error():
    with pytest.raises(ValueError):
        MultiRead.deserialize(_reply(MultiHeader(5, False, 0).serialize() + b"\0" * 80), 0)


def test_repr_never_lists_every_path():
    assert repr(MultiRead([(GET_DATA, f"/p/{i}") for i in range(5000)])) == "MultiRead(<5000 reads>)"


@pytest.mark.parametrize("chroot", ["", "/", "/chroot", "/a/b"])
@pytest.mark.parametrize("path", ["/", "/x", "/x/y", "x", "/x/", "//x", "/.x", "/x.y/z", "/ü/ß"])
def test_chroot_prefix_matches_kazoo(chroot, path):
    assert with_chroot(chroot, [(GET_DATA, path)]) == [(GET_DATA, _prefix_root(chroot, path))]


def test_batches_bound_count_and_bytes():
    paths = [f"/services/s{i}/instances" for i in range(2500)]
    groups = batches(paths, 1000)
    assert [len(g) for g in groups] == [1000, 1000, 500]
    assert [p for g in groups for p in g] == paths
    big = ["/" + "x" * 10_000 + str(i) for i in range(100)]
    groups = batches(big, 1000, max_bytes=50_000)
    assert all(sum(len(p) + 14 for p in g) <= 50_000 for g in groups) and sum(map(len, groups)) == 100
    assert batches([], 10) == []
    assert zk_multi.MAX_REQUEST_BYTES * 4 < 1024 * 1024  # UTF-8 at worst still under jute.maxbuffer
