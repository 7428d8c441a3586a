"""The plain data of ``regctl doctor`` and what a check function gets.

:class:`CheckResult` (one row), :class:`Check` (a named check), :class:`DoctorConfig`
(everything the checks need to know) and :class:`CheckRun` (a check's view of one
run: its deadline, shared facts, result builders). Imports nothing else of the
doctor package, so every other module can import it.
"""

from __future__ import annotations

import fnmatch
import functools
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from regctl.deadline import run_with_deadline
from regctl.errors import Unreachable
from regctl.settings import Endpoint

log = logging.getLogger("regctl.doctor")

PASS, WARN, FAIL, SKIP = "pass", "warn", "fail", "skip"
STATUSES = (PASS, WARN, FAIL, SKIP)

#: area -> title, in display order
AREAS = {
    "config": "Config Service",
    "zookeeper": "ZooKeeper",
    "cause": "What broke",
    "env": "Environment",
    "service": "Service",
    "hygiene": "Registry hygiene",
}


@dataclass(frozen=True)
class CheckResult:
    """One row of the doctor's report.

    ``name`` is the check's stable name; ``target`` tells rows of one check
    apart (an ensemble member, an instance, a service), None for single-row
    checks. ``hint`` says what to do; it is set for every row that does not pass.
    """

    name: str
    area: str
    status: str
    finding: str
    hint: str | None = None
    target: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)
    duration_ms: float | None = None

    @property
    def acknowledged(self) -> bool:
        """A warn/fail row matched by the ignore list: shown as acknowledged, failing nothing."""
        return self.status in (WARN, FAIL) and bool(self.details.get("acknowledged"))

    @property
    def problem(self) -> bool:
        return self.status in (WARN, FAIL) and not self.acknowledged

    def to_dict(self) -> dict:
        out = {"name": self.name, "area": self.area, "target": self.target, "status": self.status,
               "finding": self.finding, "hint": self.hint, "duration_ms": self.duration_ms,
               "details": dict(self.details)}
        if self.acknowledged:
            out["acknowledged"] = True
        return out


def parse_ignore(entries) -> tuple:
    """``CHECK[:TARGET]`` strings -> ((check, target or None), ...); the target may contain ':' (URLs)."""
    out = []
    for entry in entries or ():
        text = str(entry).strip()
        if not text:
            continue
        check, sep, target = text.partition(":")
        out.append((check.strip(), target.strip() or None if sep else None))
    return tuple(out)


def ignored_by(ignore: tuple, row: "CheckResult") -> "str | None":
    """The ignore entry (as written) that acknowledges ``row``, or None."""
    for check, target in ignore:
        if not (row.name == check or fnmatch.fnmatchcase(row.name, check)):
            continue
        if target is None or (row.target is not None and (row.target == target
                                                           or fnmatch.fnmatchcase(row.target, target))):
            return check + (f":{target}" if target else "")
    return None


@dataclass(frozen=True)
class Check:
    """A named check: ``fn(run) -> CheckResult | list[CheckResult]``."""

    name: str
    area: str
    catches: str
    fn: Callable[["CheckRun"], Any]
    #: the check's own deadline from the config (seconds); None: the run's ``config.deadline``
    deadline: Callable[["DoctorConfig"], float] | None = None
    #: the row's status when the check is cut at its deadline: ``fail``, or ``skip`` for a check whose
    #: answer is only "could not tell" when what it reads does not answer (the cause checks)
    cut_status: str = "fail"

    def deadline_for(self, config: "DoctorConfig") -> float:
        return self.deadline(config) if self.deadline is not None else config.deadline

    def to_dict(self) -> dict:
        return {"name": self.name, "area": self.area, "area_title": AREAS.get(self.area, self.area),
                "catches": self.catches}


@dataclass(frozen=True)
class DoctorConfig:
    """Everything the checks need to know; built by the CLI from settings and flags."""

    #: the Config Service and ZooKeeper the checks read (URL, headers, TLS, timeout, ZooKeeper auth/TLS)
    endpoint: Endpoint = field(default_factory=Endpoint)
    #: the environment the guide's variables are read from (process env, --env-file on top)
    env: Mapping[str, str] = field(default_factory=dict)
    #: where ``env`` came from, for findings ("environment" or the --env-file path)
    env_source: str = "environment"
    #: --service NAME (wins over SERVICE_NAME in ``env``)
    service: str | None = None
    #: --all: registry hygiene over every service
    all_services: bool = False
    #: True/False to force container detection; None: look at /.dockerenv and /proc/1/cgroup
    in_container: bool | None = None
    #: how the Config Service URL was chosen, for hints (e.g. "from CONFIG_SERVICE_URL")
    config_url_source: str | None = None
    #: a check's deadline in seconds; None: 1.5 * timeout + 0.5
    check_deadline: float | None = None
    #: checks named explicitly (hygiene runs for those even without --all)
    explicit: frozenset = frozenset()
    #: --server-timeout: the Config Service's own health call's deadline; None: derived from the instance count
    server_timeout: float | None = None
    #: acknowledged findings: (check name or glob, target or None for every target), from --ignore and the
    #: context's ``ignore:`` list; a matching warn/fail row is kept but marked acknowledged and fails nothing
    ignore: tuple = ()

    @property
    def deadline(self) -> float:
        return self.check_deadline if self.check_deadline is not None else 1.5 * self.endpoint.timeout + 0.5

    @property
    def selected_service(self) -> str | None:
        """--service, else SERVICE_NAME from the environment / --env-file."""
        if self.service:
            return self.service
        name = (self.env.get("SERVICE_NAME") or "").strip()
        return name or None

    def describe(self) -> dict:
        e = self.endpoint
        return {"config_url": e.config_url, "zk_hosts": e.zk_hosts, "zk_base": e.zk_base,
                "timeout": e.timeout, "service": self.selected_service, "all": self.all_services,
                "env_source": self.env_source, "in_container": detect_container(self.in_container)}


def given(applies: Callable[["CheckRun"], tuple[Any, Any]]) -> Callable[[Callable], Callable]:
    """Decorator factory: ``applies(run)`` returns ``(input, None)`` or ``(None, row)``; the decorated
    check is called as ``check(run, input)``, or the row (a skip or fail) is returned instead."""

    def decorate(check: Callable[["CheckRun", Any], Any]) -> Callable[["CheckRun"], Any]:
        @functools.wraps(check)
        def run_check(run: "CheckRun") -> Any:
            value, row = applies(run)
            return row if row is not None else check(run, value)

        return run_check

    return decorate


def detect_container(forced: bool | None = None) -> bool:
    """True inside a Docker/containerd/Kubernetes container (``/.dockerenv`` or ``/proc/1/cgroup``)."""
    if forced is not None:
        return forced
    if os.path.exists("/.dockerenv"):
        return True
    try:
        with open("/proc/1/cgroup", encoding="utf-8", errors="replace") as fh:
            text = fh.read(65536)
    except OSError:
        return False
    return any(word in text for word in ("docker", "containerd", "kubepods", "libpod"))


# ---------------------------------------------------------------------------
# shared facts: fetched once, by whichever check asks first
# ---------------------------------------------------------------------------

class _Fact:
    __slots__ = ("event", "value", "error")

    def __init__(self) -> None:
        self.event = threading.Event()
        self.value: Any = None
        self.error: BaseException | None = None


class Facts:
    """A thread-safe memo: ``get(key, compute, wait)`` computes once, others wait (bounded)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._facts: dict[str, _Fact] = {}

    def get(self, key: str, compute: Callable[[], Any], wait: float) -> Any:
        with self._lock:
            fact = self._facts.get(key)
            owner = fact is None
            if owner:
                fact = self._facts[key] = _Fact()
        assert fact is not None
        if owner:
            try:
                fact.value = compute()
            except BaseException as exc:  # stored and re-raised to every reader
                fact.error = exc
            finally:
                fact.event.set()
        elif not fact.event.wait(max(0.0, wait)):
            raise Unreachable(f"still waiting for {key.replace('_', ' ')} after {wait:.1f}s",
                              hint="raise --timeout, or run the checks that need it alone")
        if fact.error is not None:
            raise fact.error
        return fact.value

    def has(self, key: str) -> bool:
        with self._lock:
            return key in self._facts

    def put(self, key: str, value: Any, error: BaseException | None = None) -> None:
        """Store a fact computed elsewhere (e.g. in a batch); a fact already there wins."""
        with self._lock:
            if key in self._facts:
                return
            fact = self._facts[key] = _Fact()
        fact.value, fact.error = value, error
        fact.event.set()


class DoctorContext:
    """Per-run shared state: the config, the facts, and clients to close at the end."""

    def __init__(self, config: DoctorConfig) -> None:
        self.config = config
        self.facts = Facts()
        self.in_container = detect_container(config.in_container)
        self._closers: list[Callable[[], None]] = []
        self._lock = threading.Lock()

    def on_close(self, fn: Callable[[], None]) -> None:
        with self._lock:
            self._closers.append(fn)

    def close(self, wait: float = 1.0) -> None:
        """Close clients in the background; wait at most ``wait`` seconds for them."""
        with self._lock:
            closers, self._closers = self._closers, []

        def run() -> None:
            for fn in closers:
                try:
                    fn()
                except Exception:  # closing must never raise
                    log.debug("closing a doctor client failed", exc_info=True)

        run_with_deadline(run, wait, name="doctor-close")


class CheckRun:
    """What a check function gets: the shared context, its deadline, and result builders."""

    def __init__(self, check: Check, ctx: DoctorContext, started: float) -> None:
        self.check = check
        self.ctx = ctx
        self.config = ctx.config
        self.started = started
        self.deadline = started + check.deadline_for(ctx.config)

    def remaining(self) -> float:
        return max(0.0, self.deadline - time.monotonic())

    def step_timeout(self) -> float:
        """The timeout for the next network step: ``--timeout``, or less when the deadline is near."""
        return max(0.05, min(self.config.endpoint.timeout, self.remaining() - 0.1))

    def fact(self, key: str, compute: Callable[[], Any]) -> Any:
        return self.ctx.facts.get(key, compute, self.remaining())

    def result(self, status: str, finding: str, hint: str | None = None, /, *, target: str | None = None,
               **details: Any) -> CheckResult:
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}")
        return CheckResult(self.check.name, self.check.area, status, finding, hint, target,
                           {k: v for k, v in details.items() if v is not None})

    def passed(self, finding: str, hint: str | None = None, /, **kw: Any) -> CheckResult:
        return self.result(PASS, finding, hint, **kw)

    def warn(self, finding: str, hint: str, /, **kw: Any) -> CheckResult:
        return self.result(WARN, finding, hint, **kw)

    def fail(self, finding: str, hint: str, /, **kw: Any) -> CheckResult:
        return self.result(FAIL, finding, hint, **kw)

    def skip(self, finding: str, hint: str | None = None, /, **kw: Any) -> CheckResult:
        return self.result(SKIP, finding, hint, **kw)

    def no_input(self, finding: str, hint: str, /, **kw: Any) -> CheckResult:
        """A skip for lack of input (no service selected, no --all, nothing configured); hidden by
        ``--service`` without ``-v``."""
        return self.result(SKIP, finding, hint, no_input=True, **kw)


