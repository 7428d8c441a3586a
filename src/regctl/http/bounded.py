"""Bounded input: every HTTP answer body, every file and every YAML document regctl reads has a ceiling.

* :func:`read_body` / :func:`read_body_async`: the one reader of response bodies
  (API calls, health probes, doctor). It reads the *raw* bytes and decompresses
  them itself (gzip, deflate), never more than ``limit`` decompressed bytes and
  never past ``deadline``: a gzip bomb costs ``limit`` bytes of memory, a trickled
  answer ends at the deadline.
* :func:`read_file_text`: the one reader of files the operator names (import and
  register files, ``--token-file``, a context's ``token_file``, ``REGCTL_CONFIG``,
  ``--env-file``): regular files only (``/dev/zero``, a FIFO or a directory is bad
  input, exit 2, without reading a byte), at most ``limit`` bytes.
  :func:`read_stream_text` bounds ``-`` (stdin) the same way.
* :func:`load_yaml`: YAML with at most :data:`YAML_MAX_ALIASES` aliases and
  :data:`YAML_MAX_NODES` nodes once aliases are expanded (a 1 KB "billion laughs"
  document is refused as bad input, exit 2, instead of eating gigabytes).

No printing here; no httpx import at module level (``--version`` stays light).
"""

from __future__ import annotations

import os
import secrets
import stat
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator, Iterator


from regctl.errors import UsageError

#: what regctl asks servers for: only encodings :class:`Decoder` bounds itself
ACCEPT_ENCODING = "gzip, deflate"
#: raw bytes handed to zlib at once (so one call's output is bounded too)
_RAW_STEP = 16 * 1024
#: decoded bytes one zlib call may produce
_OUT_STEP = 256 * 1024
#: the largest file of registrations or an export regctl reads (as large as an API answer may be)
DATA_FILE_MAX_BYTES = 32 * 1024 * 1024
#: the largest config file (REGCTL_CONFIG) or env file (--env-file)
CONFIG_FILE_MAX_BYTES = 1024 * 1024
#: the largest token or credentials file (--token-file, token_file, --zk-auth-file)
TOKEN_FILE_MAX_BYTES = 64 * 1024
YAML_MAX_ALIASES = 100
YAML_MAX_NODES = 200_000


class BodyTooLarge(Exception):
    """The decompressed body passed ``limit`` bytes."""
    def __init__(self, limit: int) -> None:
        super().__init__(f"answer larger than {limit} bytes")
        self.limit = limit


class BodyTooSlow(Exception):
    """The body was still arriving at the deadline."""


class BadEncoding(Exception):
    """A Content-Encoding regctl did not ask for, or a corrupt compressed stream."""


class Decoder:
    """Incremental decoder for one Content-Encoding value whose output per call is bounded."""
    def __init__(self, content_encoding: "str | None") -> None:
        codings = [c.strip().lower() for c in (content_encoding or "").split(",") if c.strip()]
        codings = [c for c in codings if c != "identity"]
        if len(codings) > 1:
            raise BadEncoding(f"stacked content encodings {content_encoding!r}")
        self.coding = codings[0] if codings else None
        if self.coding in ("gzip", "x-gzip"):
            self._z = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif self.coding == "deflate":
            self._z = zlib.decompressobj()
            self._raw_deflate = False
            self._first = True
        elif self.coding is None:
            self._z = None
        else:
            raise BadEncoding(f"content encoding {self.coding!r} was not asked for")

    def feed(self, raw: bytes, room: int) -> bytes:
        """Decoded bytes of ``raw``, at most ``room + 1`` of them (one more than fits says "too large")."""
        sink = bytearray()
        self.feed_into(sink, raw, len(sink) + room)
        return bytes(sink)

    def feed_into(self, sink: bytearray, raw: bytes, limit: int) -> bool:
        """Append what ``raw`` decodes to onto ``sink``, never past ``limit + 1`` bytes in all, never more
        than :data:`_OUT_STEP` bytes per zlib call; True when ``sink`` went past ``limit``."""
        if self._z is None:
            sink += raw[: limit + 1 - len(sink)]
            return len(sink) > limit
        data = raw
        if self.coding == "deflate" and self._first and data:
            self._first = False
            try:
                probe = self._z.decompress(data, 1)
            except zlib.error:  # some servers send raw deflate without the zlib header
                self._z = zlib.decompressobj(-zlib.MAX_WBITS)
            else:
                sink += probe
                data = self._z.unconsumed_tail
        while data and len(sink) <= limit:
            try:
                sink += self._z.decompress(data, min(_OUT_STEP, limit + 1 - len(sink)))
            except zlib.error as exc:
                raise BadEncoding(f"corrupt {self.coding} body ({exc})") from None
            data = self._z.unconsumed_tail
        return len(sink) > limit


@dataclass
class Body:
    data: bytes
    #: the body went on past ``limit`` (only with ``truncate=True``)
    truncated: bool = False


def _steps(chunk: bytes) -> Iterator[bytes]:
    for i in range(0, len(chunk), _RAW_STEP):
        yield chunk[i:i + _RAW_STEP]


class _BodyCollector:
    """The decisions of one capped body read, fed chunk by chunk by the sync or the async loop."""

    def __init__(self, response: Any, limit: int, deadline: "float | None", truncate: bool) -> None:
        self.decoder = Decoder(response.headers.get("content-encoding"))
        self.body = bytearray()
        self.limit, self.deadline, self.truncate = limit, deadline, truncate

    def feed(self, chunk: bytes) -> "Body | None":
        """Take ``chunk``; a :class:`Body` when reading must stop here (truncated), else None."""
        for step in _steps(chunk):
            if self.decoder.feed_into(self.body, step, self.limit):
                del self.body[self.limit:]
                if self.truncate:
                    return Body(bytes(self.body), True)
                raise BodyTooLarge(self.limit)
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise BodyTooSlow()
        return None

    def result(self) -> Body:
        return Body(bytes(self.body))


def _already_read(response: Any, limit: int, truncate: bool) -> "Body | None":
    """A response built in memory (tests' mock transports) has its decoded content already."""
    content = getattr(response, "_content", None)
    if content is None:
        return None
    if len(content) > limit:
        if truncate:
            return Body(bytes(content[:limit]), True)
        raise BodyTooLarge(limit)
    return Body(bytes(content))


def read_body(response: Any, limit: int, deadline: "float | None" = None, truncate: bool = False) -> Body:
    """Read an httpx streaming ``response`` body: at most ``limit`` decoded bytes, done by ``deadline``
    (``time.monotonic()`` value). Over the limit: :class:`BodyTooLarge`, or the first ``limit`` bytes
    with ``truncate``. Past the deadline: :class:`BodyTooSlow`. Unknown encoding: :class:`BadEncoding`."""
    already = _already_read(response, limit, truncate)
    if already is not None:
        return already
    collector = _BodyCollector(response, limit, deadline, truncate)
    for chunk in response.iter_raw():
        stop = collector.feed(chunk)
        if stop is not None:
            return stop
    return collector.result()


async def read_body_async(response: Any, limit: int, deadline: "float | None" = None,
                          truncate: bool = False) -> Body:
    """:func:`read_body` for an httpx async streaming response."""
    already = _already_read(response, limit, truncate)
    if already is not None:
        return already
    collector = _BodyCollector(response, limit, deadline, truncate)
    chunks: AsyncIterator[bytes] = response.aiter_raw()
    async for chunk in chunks:
        stop = collector.feed(chunk)
        if stop is not None:
            return stop
    return collector.result()


# ---------------------------------------------------------------------------
# files
# ---------------------------------------------------------------------------

def size_text(n: int) -> str:
    """``32 MiB``, ``64 KiB``, ``900 bytes``."""
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size and n % size == 0:
            return f"{n // size} {unit}"
    return f"{n} bytes"


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a pipe (FIFO)"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def read_file_bytes(path: "str | os.PathLike", limit: int, what: str = "file", where: "str | None" = None) -> bytes:
    """The bytes of the regular file ``path``: at most ``limit`` of them.

    Not a regular file (``/dev/zero``, a FIFO, a directory, a socket) or larger than
    ``limit``: a :class:`UsageError` (exit 2) naming ``what`` and ``where`` (default: the
    path), before more than ``limit + 1`` bytes are read. A missing or unreadable file
    raises the :class:`OSError` (callers word it). A FIFO is opened without blocking.
    """
    name = os.fspath(path)
    where = where or name
    if "\0" in str(name):  # os.open would raise ValueError: no file can have this name
        raise UsageError(f"{what}: a file name cannot contain a NUL character", where=repr(str(name)),
                         hint="check the path")
    fd = os.open(name, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UsageError(f"the {what} is {_kind(st.st_mode)}, not a regular file", where=where,
                             hint=f"give a regular file as the {what}")
        too_large = UsageError(f"the {what} is larger than {size_text(limit)}", where=where,
                               hint=f"give a smaller file: regctl reads at most {size_text(limit)} as the {what}")
        if st.st_size > limit:
            raise too_large
        chunks: list[bytes] = []
        got = 0
        while got <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - got))
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
        if got > limit:  # it grew while being read
            raise too_large
        return b"".join(chunks)
    finally:
        os.close(fd)


def read_file_text(path: "str | os.PathLike", limit: int, what: str = "file", where: "str | None" = None) -> str:
    """:func:`read_file_bytes` decoded as UTF-8 (:class:`UnicodeDecodeError` propagates)."""
    return read_file_bytes(path, limit, what, where).decode("utf-8")


def read_stream_text(stream: Any, limit: int, what: str = "input", where: str = "stdin") -> str:
    """At most ``limit`` characters of a text stream (stdin for ``-``); more is a :class:`UsageError`."""
    text = stream.read(limit + 1)
    if len(text) > limit:
        raise UsageError(f"the {what} on {where} is larger than {size_text(limit)}", where=where,
                         hint=f"regctl reads at most {size_text(limit)} there")
    return text


# ---------------------------------------------------------------------------
# YAML
# ---------------------------------------------------------------------------

def compose_yaml(text: str, where: str) -> Any:
    """The YAML node tree of ``text`` (None when empty), refused beyond the alias/size budget.

    Syntax errors propagate as ``yaml.YAMLError`` (callers name the line); an
    alias bomb is a :class:`UsageError` naming ``where``.
    """
    import yaml  # on use: this module is on the start-up path, yaml is not needed there

    loader = yaml.SafeLoader(text)
    aliases = [0]
    compose_node = loader.compose_node

    def counting_compose(parent, index):  # every alias use passes here
        if loader.check_event(yaml.AliasEvent):
            aliases[0] += 1
            if aliases[0] > YAML_MAX_ALIASES:
                raise UsageError(f"YAML uses more than {YAML_MAX_ALIASES} aliases (*name)", where=where,
                                 hint="write the values out instead of repeating anchors")
        return compose_node(parent, index)

    loader.compose_node = counting_compose  # type: ignore[method-assign]
    try:
        node = loader.get_single_node()
    finally:
        loader.dispose()
    if node is not None:
        _check_expanded_size(node, where)
    return node


def _check_expanded_size(root: Any, where: str) -> None:
    import yaml

    sizes: dict = {}

    def size(node: Any) -> int:
        key = id(node)
        if key in sizes:
            if sizes[key] < 0:
                raise UsageError("YAML holds a recursive alias", where=where, hint="remove the self-reference")
            return sizes[key]
        sizes[key] = -1
        total = 1
        if isinstance(node, yaml.SequenceNode):
            for child in node.value:
                total += size(child)
        elif isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                total += size(k) + size(v)
        if total > YAML_MAX_NODES:
            raise UsageError(f"YAML expands to more than {YAML_MAX_NODES} values through its aliases",
                             where=where, hint="write the values out instead of repeating anchors")
        sizes[key] = total
        return total

    size(root)


def construct_yaml(node: Any) -> Any:
    """The Python value of a node from :func:`compose_yaml` (safe types only)."""
    if node is None:
        return None
    import yaml

    constructor = yaml.constructor.SafeConstructor()
    return constructor.construct_document(node)


def load_yaml(text: str, where: str) -> Any:
    """``yaml.safe_load`` within the alias/size budget (see :func:`compose_yaml`)."""
    return construct_yaml(compose_yaml(text, where))


def replace_file(path: "str | os.PathLike", raw: bytes, mode: int = 0o600, durable: bool = False) -> None:
    """Replace ``path`` with ``raw``: a new temp file beside it (``O_EXCL|O_NOFOLLOW``, ``mode``)
    renamed over it, removed again on any failure; ``durable`` fsyncs the data first.

    The rename never follows a symlink at ``path``: it replaces the link, its target untouched.
    """

    target = Path(path)
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
                 | getattr(os, "O_CLOEXEC", 0), mode)
    try:
        os.fchmod(fd, mode)  # whatever the umask
        with os.fdopen(fd, "wb") as fh:
            fh.write(raw)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
