"""The ordered registry of doctor checks, selection by name, and the concurrent runner.

Timing contract: every check starts at once in its own daemon thread. Each
network step inside a check waits at most ``timeout`` seconds (less when the
check's deadline is nearer), and a check that has not finished after its deadline
(``1.5 * timeout + 0.5`` s) is reported as a failed row while the run moves on.
So the whole doctor ends within about one timeout even when hosts black-hole
packets. A check that raises becomes a failed row saying it crashed.

Results come in the registry's order, whatever order the checks finish in.
"""

from __future__ import annotations

import fnmatch
import time
from dataclasses import dataclass
from functools import partial
from typing import Any, Callable, Iterable, Sequence

from regctl.deadline import Raised, Value, start
from regctl.doctor.base import FAIL, PASS, SKIP, STATUSES, WARN, Check, CheckResult, CheckRun, DoctorConfig, \
    DoctorContext, ignored_by, log
from regctl.doctor.checks import cause, config, env, hygiene, service, zookeeper
from regctl.errors import RegctlError, UsageError

#: one module per area, in run and display order; a new check goes into its area's CHECKS
AREA_MODULES = (config, zookeeper, cause, env, service, hygiene)
# ---------------------------------------------------------------------------
# the registry of checks
# ---------------------------------------------------------------------------

def list_checks() -> list[Check]:
    """Every check, in run and display order (fundamental ones first)."""
    return [c for area in AREA_MODULES for c in area.CHECKS]


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
        """Rows per status; acknowledged warn/fail rows count under ``acknowledged``, not their status."""
        out = {s: 0 for s in STATUSES}
        out["acknowledged"] = 0
        for r in self.results:
            out["acknowledged" if r.acknowledged else r.status] += 1
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
        if c["acknowledged"]:
            parts.append(f"{c['acknowledged']} acknowledged")
        return ", ".join(parts)

    def to_dict(self, strict: bool = False) -> dict:
        """The documented JSON/YAML shape (README, "regctl doctor")."""
        c = self.counts()
        return {
            "checks": [r.to_dict() for r in self.results],
            "summary": {"passed": c[PASS], "warnings": c[WARN], "failed": c[FAIL], "skipped": c[SKIP],
                        "acknowledged": c["acknowledged"], "total": len(self.results), "strict": strict, "text": self.summary_line(),
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


def _cut_result(check: Check, limit: float) -> CheckResult:
    """The row of a check still running at its deadline (``limit`` seconds after the run started)."""
    return CheckResult(check.name, check.area, check.cut_status,
                       f"the check did not finish within {limit:.1f}s"
                       + (": could not tell" if check.cut_status == SKIP else ""),
                       f"something it waits on does not answer; run it alone with -v to see what: "
                       f"regctl doctor {check.name} -v (or raise --timeout)",
                       details={"timed_out": True}, duration_ms=round(limit * 1000, 1))


def run_checks(config: DoctorConfig, checks: Iterable[Check] | None = None, *,
               on_result: Callable[[CheckResult], None] | None = None) -> DoctorReport:
    """Run ``checks`` (default: all) concurrently; each is cut off at its deadline.

    ``on_result`` is called (from the checks' threads) with each row as it is ready, before
    :func:`attribute` turns rows explained by a cause into skips (the report has the final rows).
    """
    selected = list(checks) if checks is not None else list_checks()
    ctx = DoctorContext(config)
    started = time.monotonic()

    def run_one(check: Check) -> list[CheckResult]:
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
        if on_result is not None:
            for r in results:
                try:
                    on_result(r)
                except Exception:  # a progress callback must not break the run
                    log.debug("on_result failed", exc_info=True)
        return results

    running = [start(partial(run_one, check), name=f"doctor-{check.name}") for check in selected]
    results: list[CheckResult] = []
    try:
        for check, job in zip(selected, running):
            limit = check.deadline_for(config)
            got = job.outcome(started + limit - time.monotonic())
            if isinstance(got, Value):
                results.extend(got.value)
            elif isinstance(got, Raised):
                results.append(_crash_result(check, got.error))
            else:
                results.append(_cut_result(check, limit))
    finally:
        ctx.close()
    results = acknowledge(attribute(results), config.ignore)
    return DoctorReport(results, config, [c.name for c in selected], (time.monotonic() - started) * 1000)


def acknowledge(results: list[CheckResult], ignore: tuple) -> list[CheckResult]:
    """Mark each warn/fail row the ignore list matches as acknowledged (``details["acknowledged"]``: the
    entry): it keeps its status and finding, is counted apart and fails nothing, not even with --strict."""
    if not ignore:
        return results
    out = []
    for r in results:
        entry = ignored_by(ignore, r) if r.status in (WARN, FAIL) else None
        if entry is not None:
            r = CheckResult(r.name, r.area, r.status, r.finding, r.hint, r.target,
                            {**r.details, "acknowledged": entry}, r.duration_ms)
        out.append(r)
    return out


# ---------------------------------------------------------------------------
# cause attribution
# ---------------------------------------------------------------------------

def _matches(selector: dict, row: CheckResult) -> bool:
    if not selector:
        return False
    def ok(key: str, value: Any) -> bool:
        want = selector.get(key)
        if want is None:
            return True
        options = want if isinstance(want, (list, tuple, set, frozenset)) else [want]
        if key == "check":
            return any(fnmatch.fnmatchcase(str(value), str(w)) for w in options)
        return value in options

    return (ok("check", row.name) and ok("target", row.target)
            and ok("api_status", row.details.get("api_status")) and ok("api_read", row.details.get("api_read")))


def attribute(results: list[CheckResult]) -> list[CheckResult]:
    """Turn each symptom row a found cause explains into a skip saying so.

    A cause row (area ``cause``, warn or fail) lists in ``details["explains"]``
    selectors (``check`` name or glob, ``target``, ``api_status``, ``api_read``;
    a list means any of) for the rows its cause explains. Those rows, when they
    do not pass, become ``skip`` rows "explained by <cause>", keeping what they
    found: one row names the cause, not one per symptom. A cause row is itself
    explained only by a selector naming its check exactly (a restart explains the
    stale cache it leaves behind).

    A cause carries the severity of what it explains: a warning cause that explains
    a failing row becomes a failure itself (``details["fails_for"]`` names those
    rows), so explaining a failure never turns the run's exit code to 0.
    """
    def is_cause(r: CheckResult) -> bool:
        return r.area == "cause" and r.status in (FAIL, WARN) and bool(r.details.get("explains"))

    def claims(cause: CheckResult, row: CheckResult) -> bool:
        sels = cause.details["explains"]
        if row.area == "cause":
            sels = [s for s in sels if row.name in (s.get("check") if isinstance(s.get("check"), (list, tuple))
                                                    else [s.get("check")])]
        return cause is not row and any(_matches(sel, row) for sel in sels)

    candidates = [r for r in results if is_cause(r)]
    if not candidates:
        return results
    def root(c: CheckResult) -> CheckResult:
        for _ in range(len(candidates)):
            up = next((o for o in candidates if claims(o, c)), None)
            if up is None:
                break
            c = up
        return c

    causes = [c for c in candidates if root(c) is c]
    out = []
    fails_for: dict[int, list[str]] = {}
    for row in results:
        if row.status in (FAIL, WARN) and not any(row is c for c in causes):
            claimant = next((c for c in candidates if claims(c, row)), None)
            cause = root(claimant) if claimant is not None else None
            if cause is not None and cause is not row:
                if row.status == FAIL:
                    fails_for.setdefault(id(cause), []).append(row.name + (f" {row.target}" if row.target else ""))
                row = CheckResult(row.name, row.area, SKIP, f"explained by {cause.name}: {row.finding}",
                                  f"see {cause.name}", row.target,
                                  {**row.details, "explained_by": cause.name, "status_before": row.status},
                                  row.duration_ms)
        out.append(row)
    return [_raised(r, fails_for[id(r)]) if id(r) in fails_for and r.status != FAIL else r for r in out]


def _raised(cause: CheckResult, failed: list[str]) -> CheckResult:
    """``cause`` as a failure: it explains rows that failed."""
    return CheckResult(cause.name, cause.area, FAIL, cause.finding, cause.hint, cause.target,
                       {**cause.details, "raised_from": cause.status, "fails_for": failed[:50]},
                       cause.duration_ms)
