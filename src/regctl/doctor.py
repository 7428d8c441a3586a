"""``regctl doctor``'s core: named checks, run concurrently, each under its own deadline.

The checks live in :mod:`regctl.doctor_checks` (config, zookeeper),
:mod:`regctl.doctor_service` (env, service) and :mod:`regctl.doctor_hygiene`
(hygiene), sharing :mod:`regctl.doctor_facts`; this module holds the
plain data (:class:`CheckResult`, :class:`Check`, :class:`DoctorConfig`,
:class:`DoctorReport`), the ordered registry of checks (:func:`list_checks`),
selection by name (:func:`select_checks`) and the runner (:func:`run_checks`).

Timing contract: every check starts at once in its own daemon thread. Each
network step inside a check waits at most ``timeout`` seconds (less when the
check's deadline is nearer), and a check that has not finished after its deadline
(``1.5 * timeout + 0.5`` s) is reported as a failed row while the run moves on.
So the whole doctor ends within about one timeout even when hosts black-hole
packets. A check that raises becomes a failed row saying it crashed.

Results come in the registry's order, whatever order the checks finish in.
No printing here, no typer or rich: the CLI renders :meth:`DoctorReport.to_dict`.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

from regctl.errors import RegctlError, Unreachable, UsageError

log = logging.getLogger(__name__)

PASS, WARN, FAIL, SKIP = "pass", "warn", "fail", "skip"
STATUSES = (PASS, WARN, FAIL, SKIP)

#: area -> title, in display order
AREAS = {
    "config": "Config Service",
    "zookeeper": "ZooKeeper",
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

    def to_dict(self) -> dict:
        return {"name": self.name, "area": self.area, "target": self.target, "status": self.status,
                "finding": self.finding, "hint": self.hint, "duration_ms": self.duration_ms,
                "details": dict(self.details)}


@dataclass(frozen=True)
class Check:
    """A named check: ``fn(run) -> CheckResult | list[CheckResult]``."""

    name: str
    area: str
    catches: str
    fn: Callable[["CheckRun"], Any]

    def to_dict(self) -> dict:
        return {"name": self.name, "area": self.area, "area_title": AREAS.get(self.area, self.area),
                "catches": self.catches}


@dataclass(frozen=True)
class DoctorConfig:
    """Everything the checks need to know; built by the CLI from settings and flags."""

    config_url: str
    zk_hosts: str | None = None
    zk_base: str = "/services"
    timeout: float = 5.0
    headers: Mapping[str, str] = field(default_factory=dict)
    verify: bool | str = True
    #: ZooKeeper auth [(scheme, credential)] and kazoo TLS options (settings.zk_options())
    zk_auth_data: Any = None
    zk_client_kwargs: Mapping[str, Any] = field(default_factory=dict)
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

    @property
    def deadline(self) -> float:
        return self.check_deadline if self.check_deadline is not None else 1.5 * self.timeout + 0.5

    @property
    def selected_service(self) -> str | None:
        """--service, else SERVICE_NAME from the environment / --env-file."""
        if self.service:
            return self.service
        name = (self.env.get("SERVICE_NAME") or "").strip()
        return name or None

    def describe(self) -> dict:
        return {"config_url": self.config_url, "zk_hosts": self.zk_hosts, "zk_base": self.zk_base,
                "timeout": self.timeout, "service": self.selected_service, "all": self.all_services,
                "env_source": self.env_source, "in_container": detect_container(self.in_container)}


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

        t = threading.Thread(target=run, daemon=True, name="doctor-close")
        t.start()
        t.join(wait)


class CheckRun:
    """What a check function gets: the shared context, its deadline, and result builders."""

    def __init__(self, check: Check, ctx: DoctorContext, started: float) -> None:
        self.check = check
        self.ctx = ctx
        self.config = ctx.config
        self.started = started
        self.deadline = started + ctx.config.deadline

    def remaining(self) -> float:
        return max(0.0, self.deadline - time.monotonic())

    def step_timeout(self) -> float:
        """The timeout for the next network step: ``--timeout``, or less when the deadline is near."""
        return max(0.05, min(self.config.timeout, self.remaining() - 0.1))

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


# ---------------------------------------------------------------------------
# the registry of checks
# ---------------------------------------------------------------------------

def list_checks() -> list[Check]:
    """Every check, in run and display order (fundamental ones first)."""
    from regctl.doctor_checks import CHECKS
    from regctl.doctor_hygiene import HYGIENE_CHECKS
    from regctl.doctor_service import SERVICE_CHECKS

    return [*CHECKS, *SERVICE_CHECKS, *HYGIENE_CHECKS]


def check_names() -> list[str]:
    return [c.name for c in list_checks()]


def select_checks(names: Sequence[str] | None = None, skip: Sequence[str] | None = None) -> list[Check]:
    """The checks to run: ``names`` (check names, area names or globs like ``config.*``) minus ``skip``.

    An unknown name is a :class:`UsageError` naming it.
    """
    checks = list_checks()

    def matching(pattern: str) -> list[Check]:
        p = pattern.strip()
        found = [c for c in checks if c.name == p or c.area == p or fnmatch.fnmatchcase(c.name, p)]
        if not found:
            close = [c.name for c in checks if p.split(".")[0] in c.name][:5]
            raise UsageError(f"no check is called {pattern!r}",
                             hint=("did you mean " + ", ".join(close) + "? " if close else "")
                             + "see: regctl doctor --list-checks")
        return found

    if names:
        wanted = {c.name for n in names for c in matching(n)}
        selected = [c for c in checks if c.name in wanted]
    else:
        selected = checks
    dropped = {c.name for n in (skip or []) for c in matching(n)}
    return [c for c in selected if c.name not in dropped]


# ---------------------------------------------------------------------------
# running
# ---------------------------------------------------------------------------

@dataclass
class DoctorReport:
    """Every row, in registry order, plus what was asked."""

    results: list[CheckResult]
    config: DoctorConfig
    selected: list[str]
    duration_ms: float = 0.0

    def counts(self) -> dict[str, int]:
        out = {s: 0 for s in STATUSES}
        for r in self.results:
            out[r.status] += 1
        return out

    def exit_code(self, strict: bool = False) -> int:
        """0 when nothing fails (warnings count as failures with ``strict``), else 1."""
        c = self.counts()
        return 1 if c[FAIL] or (strict and c[WARN]) else 0

    def summary_line(self) -> str:
        c = self.counts()
        parts = [f"{c[PASS]} passed",
                 f"{c[WARN]} warning" + ("" if c[WARN] == 1 else "s"),
                 f"{c[FAIL]} failed",
                 f"{c[SKIP]} skipped"]
        return ", ".join(parts)

    def to_dict(self, strict: bool = False) -> dict:
        """The documented JSON/YAML shape (README, "regctl doctor")."""
        c = self.counts()
        return {
            "checks": [r.to_dict() for r in self.results],
            "summary": {"passed": c[PASS], "warnings": c[WARN], "failed": c[FAIL], "skipped": c[SKIP],
                        "total": len(self.results), "strict": strict, "text": self.summary_line(),
                        "duration_ms": round(self.duration_ms, 1)},
            "config": self.config.describe(),
            "selected": list(self.selected),
            "exit_code": self.exit_code(strict),
        }


def _as_results(check: Check, value: Any) -> list[CheckResult]:
    if isinstance(value, CheckResult):
        return [value]
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, CheckResult) for v in value):
        return list(value)
    return [CheckResult(check.name, check.area, FAIL, f"the check crashed: it returned {type(value).__name__}",
                        "this is a bug in regctl; please report it")]


def _crash_result(check: Check, exc: BaseException) -> CheckResult:
    if isinstance(exc, RegctlError):
        return CheckResult(check.name, check.area, FAIL, exc.message + (f" ({exc.where})" if exc.where else ""),
                           exc.hint or "run it alone with -v: regctl doctor " + check.name,
                           details={"error": type(exc).__name__})
    text = str(exc).splitlines()[0][:200] if str(exc) else ""
    return CheckResult(check.name, check.area, FAIL,
                       f"the check crashed: {type(exc).__name__}" + (f": {text}" if text else ""),
                       "this is a bug in regctl; run it alone with -vv and report it: regctl doctor "
                       + check.name, details={"crashed": True, "exception": type(exc).__name__})


def run_checks(config: DoctorConfig, checks: Iterable[Check] | None = None, *,
               on_result: Callable[[CheckResult], None] | None = None) -> DoctorReport:
    """Run ``checks`` (default: all) concurrently; each is cut off at its deadline.

    ``on_result`` is called (from the checks' threads) with each row as it is ready.
    """
    selected = list(checks) if checks is not None else list_checks()
    ctx = DoctorContext(config)
    started = time.monotonic()
    slots: list[dict] = [{"done": threading.Event(), "results": None} for _ in selected]

    def run_one(i: int, check: Check) -> None:
        t0 = time.monotonic()
        run = CheckRun(check, ctx, started)
        try:
            results = _as_results(check, check.fn(run))
        except BaseException as exc:  # a crashing check is a row, never a traceback
            log.debug("check %s crashed", check.name, exc_info=True)
            results = [_crash_result(check, exc)]
        ms = round((time.monotonic() - t0) * 1000, 1)
        results = [r if r.duration_ms is not None else
                   CheckResult(r.name, r.area, r.status, r.finding, r.hint, r.target, r.details, ms)
                   for r in results]
        slots[i]["results"] = results
        slots[i]["done"].set()
        if on_result is not None:
            for r in results:
                try:
                    on_result(r)
                except Exception:  # a progress callback must not break the run
                    log.debug("on_result failed", exc_info=True)

    for i, check in enumerate(selected):
        threading.Thread(target=run_one, args=(i, check), daemon=True, name=f"doctor-{check.name}").start()

    end = started + config.deadline
    results: list[CheckResult] = []
    try:
        for check, slot in zip(selected, slots):
            if slot["done"].wait(max(0.0, end - time.monotonic())) and slot["results"] is not None:
                results.extend(slot["results"])
            else:
                results.append(CheckResult(
                    check.name, check.area, FAIL,
                    f"the check did not finish within {config.deadline:.1f}s",
                    f"something it waits on does not answer; run it alone with -v to see what: "
                    f"regctl doctor {check.name} -v (or raise --timeout)",
                    details={"timed_out": True}, duration_ms=round(config.deadline * 1000, 1)))
    finally:
        ctx.close()
    return DoctorReport(results, config, [c.name for c in selected], (time.monotonic() - started) * 1000)
