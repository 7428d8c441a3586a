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
kazoo re-establishes within the same session); :mod:`regctl.zookeeper.reader` then falls back
to the asynchronous fan-out for that session.

No watches are set through a multi-read (ZooKeeper does not support them there).
"""

from __future__ import annotations

import math
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


# --------------------------------------------------------------------------- what the server may be made to hold

#: bytes of answers regctl lets ZooKeeper hold for it at once (every multi-read in flight): ZooKeeper builds
#: each answer whole in its heap (MultiResponse.serialize, plus copies), so 45 nodes of 900 KB in one answer
#: kill a server with a 256 MB heap
IN_FLIGHT_BYTES = 16 * 1024 * 1024
#: the largest node a default ZooKeeper holds (jute.maxbuffer, 1 MiB): a node nobody has read yet may be this big
NODE_MAX_BYTES = 1024 * 1024
#: multi-reads in flight at once, whatever their estimated size
MAX_IN_FLIGHT = 4
#: ln(1/delta) of the upper confidence bound on the mean node size (delta = 1/1000)
_CONFIDENCE = math.log(1000)


class ByteBudget:
    """How many nodes the next multi-read may carry so that the answers in flight stay near
    :data:`IN_FLIGHT_BYTES`, whatever the nodes hold.

    Sizes are unknown until read: ZooKeeper has no "stat many" in a multi-read, and one
    ``exists`` per node costs more than the reads themselves (about 50 us of server time and
    0.1 ms of kazoo per request). So regctl reads the paths in a random order it draws
    itself (an attacker naming nodes cannot choose which ones share an answer) and sizes
    each batch from the sizes seen so far:

    * the first batch is ``IN_FLIGHT_BYTES / NODE_MAX_BYTES`` (16) nodes: at most 16 MiB
      even if every one is as large as ZooKeeper allows, and alone in flight;
    * after ``n`` nodes, a node is taken to be as large as an empirical-Bernstein upper
      bound on the mean (mean + sqrt(2 var L / n) + NODE_MAX L / n, L = ln 1000): large
      nodes seen push it up at once, a registry of small nodes earns larger batches
      (about half of the nodes seen so far each time, up to ``max_batch``);
    * a batch is sized to a quarter of the budget at that estimate, and batches go out
      while the estimates of those in flight add up to the budget (at most
      :data:`MAX_IN_FLIGHT`).

    10,000 nodes of 250 bytes take about 20 requests instead of 10; 45 nodes of 900 KB
    are read 16 at a time, one request in flight.
    """

    def __init__(self, budget: int = IN_FLIGHT_BYTES, node_max: int = NODE_MAX_BYTES,
                 max_batch: int = DEFAULT_BATCH) -> None:
        self.budget = budget
        self.node_max = node_max
        self.max_batch = max(1, max_batch)
        self.floor = max(1, min(self.max_batch, budget // node_max))
        self.n = 0
        self.total = 0
        self.squares = 0
        self.largest = 0

    def observe(self, size: int) -> None:
        self.n += 1
        self.total += size
        self.squares += size * size
        self.largest = max(self.largest, size)

    def per_node(self) -> float:
        """The size to assume for a node not read yet."""
        if self.n == 0:
            return float(self.node_max)
        mean = self.total / self.n
        var = max(self.squares / self.n - mean * mean, 0.0)
        bound = mean + math.sqrt(2 * var * _CONFIDENCE / self.n) + self.node_max * _CONFIDENCE / self.n
        return max(1.0, min(float(self.node_max), bound))

    def batch_size(self) -> int:
        return max(self.floor, min(self.max_batch, int(self.budget / 4 / self.per_node())))


def answer_size(value: Any) -> int:
    """Bytes an answer of a multi-read took in ZooKeeper's reply (data, or the children's names)."""
    if isinstance(value, tuple) and len(value) == 2:
        return len(value[0] or b"")
    if isinstance(value, list):
        return sum(len(k) + 4 for k in value)
    return 0
