"""ZooKeeper's multi-read request (opcode 22, ZooKeeper >= 3.6) for kazoo.

Why: reading a registry of 1,000 services x 10 instances node by node is 11,000
requests. Issued one after another they cost a round trip each; issued all at
once with kazoo's ``*_async`` calls most of the time still goes into kazoo
itself: every request is queued, the connection thread is woken through its
socket pair, writes one packet, then reads one reply and resolves one
``AsyncResult`` (a lock and a condition each). ZooKeeper answers reads in
microseconds; the per-request Python work and thread hand-offs are the floor.

ZooKeeper 3.6 added ``multiRead``: one request carrying many ``getChildren`` /
``getData`` operations, answered with one reply holding a result (or an error
code) per operation, in order. 1,000 reads become one request, one wake-up and
one reply; what remains is encoding the paths and decoding the answers, which
:class:`MultiRead` does with precompiled ``struct`` formats.

Wire format (jute, big-endian), the same framing as kazoo's ``Transaction``
(``multi``, opcode 14) but with read operations::

    request  = { MultiHeader(type=op, done=false, err=-1) op-request }*  MultiHeader(-1, true, -1)
      op-request (getChildren=8, getData=4) = ustring path, bool watch
    response = { MultiHeader(type, done=false, err) op-response }*  MultiHeader(-1, true, -1)
      getChildren -> vector<ustring> children
      getData     -> buffer data, Stat stat
      error (-1)  -> int err            (per operation: NONODE, NOAUTH ...)

A failing operation does not fail the others: NONODE for one path is an error
result for that path only. A server that predates multiRead (3.5 and older)
answers the whole request with UNIMPLEMENTED (and closes the connection, which
kazoo re-establishes within the same session); :mod:`regctl.zk` then falls back
to the asynchronous fan-out for that session.

No watches are set through a multi-read (ZooKeeper does not support them there).
"""

from __future__ import annotations

import struct
from collections import namedtuple
from typing import Any, Iterable, Sequence

from kazoo.exceptions import EXCEPTIONS
from kazoo.protocol.paths import _prefix_root
from kazoo.protocol.states import ZnodeStat

#: ZooKeeper's OpCode.multiRead
MULTI_READ = 22
GET_DATA = 4
GET_CHILDREN = 8
ERROR = -1

_HEADER = struct.Struct("!iBi")  # MultiHeader: type, done, err
_INT = struct.Struct("!i")
_STAT = struct.Struct("!qqqqiiiqiiq")
_OP_HEAD = {op: _HEADER.pack(op, 0, -1) for op in (GET_DATA, GET_CHILDREN)}
_END = _HEADER.pack(-1, 1, -1)

#: operations per request; ZooKeeper's jute.maxbuffer (1 MiB by default) bounds the request size, and
#: smaller batches let the server work on one while the client decodes the previous one
DEFAULT_BATCH = 1000
#: encoded request bytes per batch (well under jute.maxbuffer)
MAX_REQUEST_BYTES = 200 * 1024


class MultiRead(namedtuple("MultiRead", "operations")):
    """A kazoo request: ``operations`` is a sequence of ``(opcode, full_path)``.

    The reply (``deserialize``) is a list with one entry per operation, in order:
    ``list[str]`` for getChildren, ``(bytes | None, ZnodeStat)`` for getData, and
    an exception instance (``NoNodeError()``, ``NoAuthError()`` ...) for a failed one.
    """

    type = MULTI_READ

    def serialize(self) -> bytes:
        parts: list[bytes] = []
        add = parts.append
        for op, path in self.operations:
            raw = path.encode("utf-8")
            add(_OP_HEAD[op])
            add(_INT.pack(len(raw)))
            add(raw)
            add(b"\x00")  # no watch
        add(_END)
        return b"".join(parts)

    @classmethod
    def deserialize(cls, buf: bytes, offset: int) -> list[Any]:
        results: list[Any] = []
        add = results.append
        header = _HEADER.unpack_from
        int_at = _INT.unpack_from
        stat_at = _STAT.unpack_from
        make_stat = ZnodeStat._make
        while True:
            op, done, err = header(buf, offset)
            offset += 9
            if done:
                return results
            if op == GET_DATA:
                (n,) = int_at(buf, offset)
                offset += 4
                if n < 0:
                    data = None
                else:
                    data = buf[offset:offset + n]
                    offset += n
                add((data, make_stat(stat_at(buf, offset))))
                offset += 68
            elif op == GET_CHILDREN:
                (count,) = int_at(buf, offset)
                offset += 4
                kids = []
                for _ in range(max(count, 0)):
                    (n,) = int_at(buf, offset)
                    offset += 4
                    kids.append(buf[offset:offset + n].decode("utf-8"))
                    offset += n
                add(kids)
            elif op == ERROR:
                (code,) = int_at(buf, offset)
                offset += 4
                add(EXCEPTIONS[code]())
            else:
                raise ValueError(f"unexpected operation type {op} in a multiRead reply")

    def __repr__(self) -> str:  # kazoo logs requests at DEBUG: never thousands of paths
        return f"MultiRead(<{len(self.operations)} reads>)"


def multi_read_async(client: Any, operations: Iterable[tuple[int, str]]) -> Any:
    """Send one multiRead through ``client`` (a started ``KazooClient``); return its ``IAsyncResult``.

    ``operations`` are ``(GET_CHILDREN | GET_DATA, path)``; paths are relative to the
    client's chroot like every kazoo call.
    """
    ops = with_chroot(client.chroot, operations)
    result = client.handler.async_result()
    client._call(MultiRead(ops), result)  # kazoo's own entry point for every request type
    return result


def with_chroot(chroot: str | None, operations: Iterable[tuple[int, str]]) -> list[tuple[int, str]]:
    """Prefix the chroot as kazoo does, without kazoo's per-path normalisation for clean absolute paths.

    kazoo's ``_prefix_root`` splits and re-joins every path (~15 us each, the largest
    single cost of a 10,000-node read); a path that is already normal (absolute, no
    ``//``, no trailing ``/``, no ``.`` component) only needs the chroot in front.
    """
    prefix = _prefix_root(chroot, "/") if chroot else ""
    prefix = "" if prefix == "/" else prefix
    out = []
    for op, path in operations:
        if path.startswith("/") and "//" not in path and "/." not in path and (len(path) == 1 or path[-1] != "/"):
            out.append((op, prefix + path if prefix and path != "/" else (prefix or path)))
        else:
            out.append((op, _prefix_root(chroot, path)))
    return out


def batches(paths: Sequence[str], size: int = DEFAULT_BATCH,
            max_bytes: int = MAX_REQUEST_BYTES) -> list[list[str]]:
    """Split ``paths`` into batches of at most ``size`` paths and about ``max_bytes`` encoded bytes."""
    out: list[list[str]] = []
    cur: list[str] = []
    cur_bytes = 0
    for p in paths:
        cost = len(p) + 14  # header 9 + length 4 + watch 1 + path (x4 at worst for UTF-8: still < 1 MiB)
        if cur and (len(cur) >= size or cur_bytes + cost > max_bytes):
            out.append(cur)
            cur, cur_bytes = [], 0
        cur.append(p)
        cur_bytes += cost
    if cur:
        out.append(cur)
    return out
