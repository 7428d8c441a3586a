"""ZooKeeper's four-letter words (``srvr``, and ``mntr``/``ruok`` where it is refused), one member at a time.

Every member of a connection string is asked on its own, over a plain socket,
under one deadline per member: a member that black-holes packets costs at most
``timeout`` seconds, never more. Nothing here raises for a network problem:
the answer is a :class:`MemberReport` saying what was seen.

ZooKeeper 3.5+ only answers the words listed in ``4lw.commands.whitelist``, whose
default, and a typical deployment's, is ``srvr`` alone (``srvr`` is answered whatever
the list says: ZooKeeper's own scripts use it); any other word gets the sentence
``"<word> is not executed because it is not in the whitelist."``. So
:func:`check_member` asks ``srvr`` and stops there when it answers; only a member
that refuses it (four-letter words switched off, an old server, something that is
not ZooKeeper) is asked ``mntr`` (the same facts) and ``ruok`` (is it running at
all), and, when asked, a ZooKeeper session to that member alone tells whether it
serves. What a member refused is
reported (:attr:`MemberReport.refused`) as "not allowed by the server's
four-letter-word whitelist", never as a failure of the member.
"""

from __future__ import annotations

import logging
import socket
import time
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Mapping

from regctl.deadline import Outcome, Raised, Value, run_all
from regctl.names import ZkHosts, parse_zk_hosts

log = logging.getLogger(__name__)

#: The phrase ZooKeeper answers for a word that is not whitelisted.
NOT_WHITELISTED = "not in the whitelist"
#: How regctl says it.
NOT_ALLOWED = "not allowed by the server's four-letter-word whitelist"
#: What ``srvr``/``stat`` say when the member has no quorum (or is still starting).
NOT_SERVING = "not currently serving requests"
#: Modes that count as serving clients.
SERVING_MODES = ("standalone", "leader", "follower", "observer")
#: Modes that vote in a quorum.
VOTING_MODES = ("leader", "follower")
MAX_ANSWER_BYTES = 1024 * 1024


@dataclass(frozen=True)
class WordAnswer:
    """The answer to one four-letter word: its text, or why there is none."""

    word: str
    text: str = ""
    #: None when an answer arrived; else a few words: refused, timeout, DNS, reset, closed, ...
    error: str | None = None
    elapsed_ms: float = 0.0

    @property
    def whitelisted(self) -> bool | None:
        """False when the server said the word is not whitelisted; None when nothing came back."""
        if self.error is not None and not self.text:
            return None
        return NOT_WHITELISTED not in self.text.lower()

    @property
    def ok(self) -> bool:
        return self.error is None and bool(self.text) and bool(self.whitelisted)


def _describe_socket_error(exc: BaseException) -> str:
    if isinstance(exc, socket.gaierror):
        return "DNS"
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return "timeout"
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
    if isinstance(exc, ConnectionResetError):
        return "reset"
    text = str(exc).lower()
    if "unreachable" in text:
        return "unreachable"
    return f"{type(exc).__name__}: {exc}".strip()


def send_word(host: str, port: int, word: str, timeout: float = 2.0) -> WordAnswer:
    """Send ``word`` to ``host:port`` and read the whole answer within ``timeout`` seconds.

    Never raises for network trouble: ``error`` says what happened. An empty
    answer (the server closed without a word) is ``error="closed"``.
    """
    if len(word) != 4 or not word.isalpha():
        raise ValueError(f"not a four-letter word: {word!r}")
    started = time.monotonic()
    deadline = started + max(0.01, timeout)
    chunks: list[bytes] = []
    size = 0
    error: str | None = None
    try:
        with socket.create_connection((host, port), timeout=max(0.01, timeout)) as sock:
            sock.sendall(word.encode("ascii"))
            try:
                sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise socket.timeout("four-letter word timed out")
                sock.settimeout(left)
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
                if size > MAX_ANSWER_BYTES:
                    break
    except OSError as exc:
        if not chunks:
            error = _describe_socket_error(exc)
    text = b"".join(chunks).decode("utf-8", errors="replace")
    if error is None and not text:
        error = "closed"
    return WordAnswer(word, text, error, round((time.monotonic() - started) * 1000, 1))


@dataclass(frozen=True)
class SrvrInfo:
    """What ``srvr`` says (fields None when absent)."""

    version: str | None = None
    mode: str | None = None
    latency_min: float | None = None
    latency_avg: float | None = None
    latency_max: float | None = None
    node_count: int | None = None
    connections: int | None = None
    zxid: str | None = None
    #: False when the member said it is "not currently serving requests"
    serving: bool = True

    def latency_text(self) -> str | None:
        if self.latency_avg is None:
            return None
        return f"{_num(self.latency_min)}/{_num(self.latency_avg)}/{_num(self.latency_max)} ms"

    def to_dict(self) -> dict:
        return {"version": self.version, "mode": self.mode,
                "latency_ms": None if self.latency_avg is None else
                {"min": self.latency_min, "avg": self.latency_avg, "max": self.latency_max},
                "node_count": self.node_count, "connections": self.connections, "zxid": self.zxid,
                "serving": self.serving}


def _num(value: float | None) -> str:
    if value is None:
        return "?"
    return f"{value:g}"


def _to_float(text: str) -> float | None:
    try:
        return float(text.strip())
    except ValueError:
        return None


def _to_int(text: str) -> int | None:
    try:
        return int(text.strip())
    except ValueError:
        return None


def parse_srvr(text: str) -> SrvrInfo:
    """Parse ``srvr`` output::

        Zookeeper version: 3.8.4-..., built on ...
        Latency min/avg/max: 0/0.4/12
        Connections: 2
        Zxid: 0x2a
        Mode: follower
        Node count: 42
    """
    fields: dict[str, Any] = {}
    serving = NOT_SERVING not in text.lower()
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key = key.strip().lower()
        value = value.strip()
        if key == "zookeeper version":
            fields["version"] = value.split(",")[0].strip() or None
        elif key == "mode":
            fields["mode"] = value or None
        elif key.startswith("latency min/avg/max"):
            parts = value.split("/")
            if len(parts) == 3:
                fields["latency_min"], fields["latency_avg"], fields["latency_max"] = (_to_float(p) for p in parts)
        elif key == "node count":
            fields["node_count"] = _to_int(value)
        elif key == "connections":
            fields["connections"] = _to_int(value)
        elif key == "zxid":
            fields["zxid"] = value or None
    return SrvrInfo(serving=serving, **fields)


def parse_mntr(text: str) -> dict[str, str]:
    """``mntr`` output (``key<TAB>value`` lines) -> dict."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        if "\t" in line:
            key, value = line.split("\t", 1)
            out[key.strip()] = value.strip()
    return out


def srvr_from_mntr(values: dict[str, str]) -> SrvrInfo:
    """The :class:`SrvrInfo` fields ``mntr`` also carries (when ``srvr`` is not whitelisted)."""
    return SrvrInfo(
        version=(values.get("zk_version") or "").split(",")[0].strip() or None,
        mode=values.get("zk_server_state") or None,
        latency_min=_to_float(values.get("zk_min_latency", "")),
        latency_avg=_to_float(values.get("zk_avg_latency", "")),
        latency_max=_to_float(values.get("zk_max_latency", "")),
        node_count=_to_int(values.get("zk_znode_count", "")),
        connections=_to_int(values.get("zk_num_alive_connections", "")),
        serving=bool(values),
    )


@dataclass(frozen=True)
class MemberReport:
    """One ensemble member as seen from here."""

    host: str
    port: int
    #: the first network failure (refused, timeout, DNS ...), None when the member answered
    error: str | None = None
    #: "imok", another text, or None (not asked: only a member that refuses srvr is asked ruok)
    ruok: str | None = None
    #: True: srvr or mntr answered; False: the member refused them (whitelist) or closed on them;
    #: None: not known
    four_letter_words: bool | None = None
    srvr: SrvrInfo | None = None
    #: session fallback: True/False when tried, None when not tried
    session_ok: bool | None = None
    session_error: str | None = None
    elapsed_ms: float = 0.0
    answers: tuple[WordAnswer, ...] = field(default=(), repr=False)
    #: the words the member answered with its "not in the whitelist" sentence, in the order asked
    refused: tuple[str, ...] = ()

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def serving(self) -> bool:
        """Serves clients: a serving mode in srvr/mntr, or (words disabled) a session worked."""
        if self.error is not None:
            return False
        if self.srvr is not None and self.srvr.mode:
            return self.srvr.serving and self.srvr.mode in SERVING_MODES
        if self.srvr is not None and not self.srvr.serving:
            return False
        return bool(self.session_ok)

    @property
    def mode(self) -> str | None:
        return self.srvr.mode if self.srvr else None

    def words_text(self) -> str:
        """What the words told, in a few words: ``srvr and mntr not allowed by ...`` or why none answered."""
        if self.refused:
            words = self.refused
            listed = words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]
            return f"{listed} {NOT_ALLOWED}"
        if self.four_letter_words is False:
            return "no four-letter-word answer (the member closed the connection)"
        return "no four-letter-word answer"

    def to_dict(self) -> dict:
        return {"address": self.address, "host": self.host, "port": self.port, "error": self.error,
                "ruok": self.ruok, "four_letter_words": self.four_letter_words, "refused": list(self.refused),
                "srvr": self.srvr.to_dict() if self.srvr else None, "serving": self.serving,
                "session_ok": self.session_ok, "session_error": self.session_error,
                "elapsed_ms": self.elapsed_ms}


def session_to(hosts: str, timeout: float, zk_options: Mapping[str, Any] | None = None) -> tuple[bool, str | None]:
    """Try to open (and close) a ZooKeeper session to ``hosts`` within ``timeout``.

    ``zk_options`` are :meth:`regctl.settings.Settings.zk_options` (auth data, TLS).
    """
    # kazoo only here: `regctl sandbox` imports this module on the start-up path (send_word), which must not load it
    from kazoo.client import KazooClient
    from kazoo.retry import KazooRetry

    opts = dict(zk_options or {})
    client = KazooClient(hosts=hosts, timeout=max(timeout, 4.0),
                         connection_retry=KazooRetry(max_tries=-1, delay=0.1, max_delay=0.5),
                         command_retry=KazooRetry(max_tries=0), auth_data=opts.get("auth_data") or None,
                         **dict(opts.get("client_kwargs") or {}))
    try:
        client.start(timeout=max(0.05, timeout))
        return True, None
    except Exception as exc:  # KazooTimeoutError and odd host strings
        text = str(exc) or type(exc).__name__
        if "timeout" in type(exc).__name__.lower() or "timed out" in text.lower():
            text = f"no session within {timeout:g}s"
        return False, text
    finally:
        for fn in (client.stop, client.close):
            try:
                fn()
            except Exception:  # closing must never raise
                log.debug("kazoo close failed", exc_info=True)


def check_member(host: str, port: int, timeout: float = 2.0, *, session_fallback: bool = True,
                 mntr: bool = True, zk_options: Mapping[str, Any] | None = None) -> MemberReport:
    """Ask one member ``srvr``; only if it refuses that, ``mntr`` and ``ruok``; all within ``timeout``.

    ``srvr`` is the word every ZooKeeper 3.5+ answers, whatever its whitelist (a
    deployment's allows it alone): when it answers, nothing else is sent. When the words give no
    mode and ``session_fallback`` is set, a session to this member alone tells
    whether it serves. ``mntr=False`` skips ``mntr`` and ``ruok``.
    """
    started = time.monotonic()
    deadline = started + timeout

    def left() -> float:
        return max(0.05, deadline - time.monotonic())

    answers: list[WordAnswer] = []

    def done(**kw: Any) -> MemberReport:
        return MemberReport(host, port, elapsed_ms=round((time.monotonic() - started) * 1000, 1),
                            answers=tuple(answers), refused=tuple(a.word for a in answers if a.whitelisted is False),
                            **kw)

    srvr = send_word(host, port, "srvr", left())
    answers.append(srvr)
    if srvr.error is not None and srvr.error != "closed":
        return done(error=srvr.error)
    info: SrvrInfo | None = None
    words: bool | None = None
    ruok_text: str | None = None
    if srvr.ok:
        info, words = parse_srvr(srvr.text), True
    else:
        # refused by the whitelist, or closed without a word (4lw disabled on old servers)
        words = False
        if mntr:
            m = send_word(host, port, "mntr", left())
            answers.append(m)
            if m.ok:
                info, words = srvr_from_mntr(parse_mntr(m.text)), True
            else:
                r = send_word(host, port, "ruok", left())
                answers.append(r)
                if r.ok:
                    ruok_text = r.text.strip() or None
    session_ok: bool | None = None
    session_error: str | None = None
    if (info is None or not info.mode) and session_fallback and deadline - time.monotonic() > 0.1:
        session_ok, session_error = session_to(f"{host}:{port}" if ":" not in host else f"[{host}]:{port}",
                                               left(), zk_options)
    return done(ruok=ruok_text, four_letter_words=words, srvr=info, session_ok=session_ok,
                session_error=session_error)


def check_ensemble(hosts: str | ZkHosts, timeout: float = 2.0, *, session_fallback: bool = True,
                   zk_options: Mapping[str, Any] | None = None) -> list[MemberReport]:
    """:func:`check_member` for every member of a connection string, concurrently, in order."""
    parsed = hosts if isinstance(hosts, ZkHosts) else parse_zk_hosts(hosts)
    members = list(parsed.members)
    checks = [partial(check_member, host, port, timeout, session_fallback=session_fallback, zk_options=zk_options)
              for host, port in members]
    outcomes = run_all(checks, timeout + 1.0, name="zk-4lw")
    return [_member_report(got, host, port) for got, (host, port) in zip(outcomes, members)]


def _member_report(got: Outcome, host: str, port: int) -> MemberReport:
    if isinstance(got, Value):
        return got.value
    if isinstance(got, Raised):  # a bug in one member's check must not hide the others
        log.debug("member check crashed", exc_info=got.error)
        return MemberReport(host, port, error=f"{type(got.error).__name__}: {got.error}")
    return MemberReport(host, port, error="timeout")


@dataclass(frozen=True)
class Quorum:
    """How many members serve, of how many listed, and what that means."""

    members: int
    serving: int
    voters_serving: int
    leaders: int
    standalone: bool
    has_quorum: bool

    @property
    def tolerates(self) -> int:
        """How many more members may fail before quorum is lost."""
        if self.standalone or self.members <= 1:
            return 0
        return max(0, self.voters_serving - (self.members // 2 + 1))

    def to_dict(self) -> dict:
        return {"members": self.members, "serving": self.serving, "voters_serving": self.voters_serving,
                "leaders": self.leaders, "standalone": self.standalone, "has_quorum": self.has_quorum,
                "tolerates": self.tolerates}


def quorum(reports: list[MemberReport]) -> Quorum:
    """Judge the ensemble from its members' reports.

    A member whose mode is unknown (words disabled) but that accepted a session
    counts as a serving voter.
    """
    n = len(reports)
    serving = [r for r in reports if r.serving]
    standalone = any(r.mode == "standalone" for r in serving)
    voters = [r for r in serving if r.mode in VOTING_MODES or r.mode in (None, "standalone")]
    leaders = sum(1 for r in serving if r.mode == "leader")
    if standalone or n == 1:
        has = bool(serving)
    else:
        has = len(voters) > n // 2
    return Quorum(n, len(serving), len(voters), leaders, standalone, has)
