"""The deregister operation: plan against what is live, run one instance at a time, verify.

:func:`deregister_plan` reads what is live (ZooKeeper when configured, else the API's list) and plans a
:class:`DeregisterAsk` against it (:func:`plan_deregister`); :func:`deregister` runs the plan
(:func:`run_deregister`, which survives Ctrl-C and says how far it got), checks each instance is gone
(:func:`verify_gone`) and returns a :class:`DeregisterReport` (what was asked, done, verified, failed).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

from regctl.connections import Clients, connections
from regctl.errors import NotFound, RegctlError, Unreachable, UsageError
from regctl.http.api import deregister_call
from regctl.names import validate_instance_id, validate_service_name
from regctl.registration.writes import (
    WriteCheck,
    describe_request,
    failed_write_consequence,
    live_reader,
    write_unverified,
)
from regctl.settings import Endpoint

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------
# the plan
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class DeregisterAsk:
    """What ``deregister`` was asked: named instances of a service, or every live one (validated here)."""

    service: str
    instance_ids: tuple[str, ...] = ()
    #: every instance of ``service`` live at plan time, and only those
    all_live: bool = False
    #: send even for ids that are not live
    force: bool = False

    def __post_init__(self) -> None:
        validate_service_name(self.service)
        for iid in self.instance_ids:
            validate_instance_id(iid)
        if self.all_live and self.instance_ids:
            raise UsageError("--all cannot be combined with instance ids", hint="give ids or --all, not both")
        if not self.all_live and not self.instance_ids:
            raise UsageError("no instance ids given", hint="give INSTANCE_ID..., or --all for every live instance")


@dataclass(frozen=True)
class DeregisterPlan:
    """What ``deregister`` will remove, decided before anything is sent."""

    service: str
    instance_ids: tuple[str, ...]
    #: ids that were live at plan time (None when liveness was not read)
    live: frozenset[str] | None
    #: where liveness was read: "zookeeper" or "api"
    source: str
    #: ids asked for that were not live (only with --force)
    not_live: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {"service": self.service, "instance_ids": list(self.instance_ids),
                "live_at_plan_time": None if self.live is None else sorted(self.live),
                "liveness_source": self.source, "not_live": list(self.not_live)}


def plan_deregister(service: str, instance_ids: Sequence[str], all_live: bool, live: Iterable[str],
                    source: str, force: bool = False) -> DeregisterPlan:
    """Decide exactly which instances to remove.

    With ``all_live``: exactly the ids live now. Otherwise the ids named (duplicates
    dropped); an id that is not live is refused (:class:`NotFound`, exit 1) unless
    ``force``, because the API answers ok for any id and nothing would tell the
    operator that the id was wrong.
    """
    validate_service_name(service)
    live_set = frozenset(live)
    where = "ZooKeeper" if source == "zookeeper" else "the API's instance list"
    if all_live:
        if instance_ids:
            raise UsageError("--all cannot be combined with instance ids", hint="give ids or --all, not both")
        if not live_set:
            raise NotFound(f"service {service!r} has no live instances to deregister (read from {where})",
                           hint="see what is registered with: regctl list")
        return DeregisterPlan(service, tuple(sorted(live_set)), live_set, source)
    if not instance_ids:
        raise UsageError("no instance ids given", hint="give INSTANCE_ID..., or --all for every live instance")
    ids: list[str] = []
    for iid in instance_ids:
        validate_instance_id(iid)
        if iid not in ids:
            ids.append(iid)
    missing = tuple(i for i in ids if i not in live_set)
    if missing and not force:
        shown = ", ".join(missing)
        raise NotFound(f"{'instance' if len(missing) == 1 else 'instances'} {shown} of {service!r} "
                       f"{'is' if len(missing) == 1 else 'are'} not live in {where}; nothing was sent "
                       f"(the API would answer ok regardless)",
                       hint=f"check the ids with: regctl inspect {service}; pass --force to send anyway")
    return DeregisterPlan(service, tuple(ids), live_set, source, missing)


# ---------------------------------------------------------------------------
# the run and its check
# ---------------------------------------------------------------------------

#: per-instance outcomes
REMOVED, STILL_PRESENT, FAILED, NOT_ATTEMPTED, INTERRUPTED, UNVERIFIED = (
    "removed", "still-present", "failed", "not-attempted", "interrupted", "unverified")


@dataclass
class DeregisterRun:
    """What happened, instance by instance (filled in as the run goes)."""

    service: str
    #: instance id -> "sent" | FAILED | INTERRUPTED | NOT_ATTEMPTED, then after verification the final word
    outcome: dict[str, str] = field(default_factory=dict)
    errors: dict[str, RegctlError] = field(default_factory=dict)
    interrupted: bool = False
    #: a failure that stopped the batch (the backend went away)
    stopped_by: RegctlError | None = None
    #: instances the API reported failing (5xx, timeout) that ZooKeeper shows removed all the same
    removed_despite: dict[str, RegctlError] = field(default_factory=dict)

    def rows(self) -> list[dict]:
        def error(iid: str) -> str | None:
            if iid in self.errors:
                return str(self.errors[iid])
            if iid in self.removed_despite:
                return f"removed, although the Config Service answered: {self.removed_despite[iid].message}"
            return None

        return [{"instance_id": iid, "result": res, "error": error(iid)} for iid, res in self.outcome.items()]


def run_deregister(deregister: Callable[[str, str], Any], plan: DeregisterPlan) -> DeregisterRun:
    """Send one ``POST /deregister`` per planned instance, in order.

    Ctrl-C stops the batch: the instance in flight is marked ``interrupted`` (its
    fate is settled by :func:`verify_gone`), the rest ``not-attempted``; the
    :class:`KeyboardInterrupt` is not re-raised, ``run.interrupted`` says so.
    An unreachable registry stops the batch the same way (``run.stopped_by``).
    """
    run = DeregisterRun(plan.service, {iid: NOT_ATTEMPTED for iid in plan.instance_ids})
    for iid in plan.instance_ids:
        try:
            deregister(plan.service, iid)
            run.outcome[iid] = "sent"
        except KeyboardInterrupt:
            run.outcome[iid] = INTERRUPTED
            run.interrupted = True
            log.info("interrupted while deregistering %s/%s", plan.service, iid)
            break
        except Unreachable as exc:
            run.outcome[iid] = FAILED
            run.errors[iid] = exc
            run.stopped_by = exc
            break
        except RegctlError as exc:
            run.outcome[iid] = FAILED
            run.errors[iid] = exc
    return run


def verify_gone(run: DeregisterRun, live_ids: Callable[[], Iterable[str]] | None,
                settle_s: float = 2.0, poll_s: float = 0.2) -> RegctlError | None:
    """Settle each sent/interrupted instance as ``removed`` or ``still-present``.

    ``live_ids()`` reads what is live now (ZooKeeper's children, or the API's list).
    Instances still present are re-read for up to ``settle_s`` seconds. Returns the
    error when the check itself failed (those instances become ``unverified``).
    """
    failed = {i for i, r in run.outcome.items()
              if r == FAILED and i in run.errors and write_unverified(run.errors[i])}
    pending = [i for i, r in run.outcome.items() if r in ("sent", INTERRUPTED) or i in failed]
    if not pending:
        return None
    try:
        return _settle(run, pending, live_ids, settle_s, poll_s)
    finally:
        for iid in failed:  # a 5xx or timeout: ZooKeeper decides what happened
            if run.outcome[iid] == REMOVED:
                run.removed_despite[iid] = run.errors.pop(iid)
            elif run.outcome[iid] == STILL_PRESENT:
                run.outcome[iid] = FAILED


def _settle(run: DeregisterRun, pending: list, live_ids: Callable[[], Iterable[str]] | None,
            settle_s: float, poll_s: float) -> RegctlError | None:
    if live_ids is None:
        for iid in pending:
            run.outcome[iid] = UNVERIFIED
        return None
    deadline = time.monotonic() + settle_s
    while True:
        try:
            live = set(live_ids())
        except RegctlError as exc:
            for iid in pending:
                run.outcome[iid] = UNVERIFIED
            return exc
        still = [i for i in pending if i in live]
        for iid in pending:
            if iid not in live:
                run.outcome[iid] = REMOVED
        if not still or time.monotonic() >= deadline:
            for iid in still:
                # an interrupted call that never reached the server leaves the node: not removed
                run.outcome[iid] = STILL_PRESENT
            return None
        pending = still
        time.sleep(poll_s)


# ---------------------------------------------------------------------------
# the operation
# ---------------------------------------------------------------------------

def deregister_plan(endpoint: Endpoint, ask: DeregisterAsk, clients: Clients | None = None) -> DeregisterPlan:
    """Read what is live (ZooKeeper when configured, else the API's list) and plan ``ask`` against it
    (see :func:`plan_deregister`: an id that is not live is refused unless ``ask.force``)."""
    with connections(endpoint, clients) as clients:
        live, source = live_reader(endpoint, clients, ask.service)
        return plan_deregister(ask.service, ask.instance_ids, ask.all_live, live(), source, force=ask.force)


@dataclass(frozen=True)
class DeregisterOutcome:
    """One planned instance after the run and the check."""

    instance_id: str
    #: REMOVED, STILL_PRESENT, FAILED, NOT_ATTEMPTED, INTERRUPTED or UNVERIFIED
    result: str
    error: str | None = None

    def to_dict(self) -> dict:
        return {"instance_id": self.instance_id, "result": self.result, "error": self.error}


@dataclass(frozen=True)
class DeregisterReport:
    """What :func:`deregister` was asked (the plan), did and verified, and what failed."""

    plan: DeregisterPlan
    #: per planned instance, in order
    outcomes: tuple[DeregisterOutcome, ...]
    #: where each instance was checked: "zookeeper" or "api"
    verified_in: str
    #: Ctrl-C stopped the batch (then ``error`` is None: the outcomes say how far it got)
    interrupted: bool = False
    #: instances the API failed on (5xx, timeout) and what ZooKeeper shows
    verified_after_error: tuple[WriteCheck, ...] = ()
    error: RegctlError | None = None

    @property
    def removed(self) -> list[str]:
        return [o.instance_id for o in self.outcomes if o.result == REMOVED]

    @property
    def not_removed(self) -> list[str]:
        return [o.instance_id for o in self.outcomes if o.result != REMOVED]

    def counts(self) -> dict[str, int]:
        """result -> how many, in the order first met."""
        out: dict[str, int] = {}
        for o in self.outcomes:
            out[o.result] = out.get(o.result, 0) + 1
        return out

    def to_dict(self) -> dict:
        return {"dry_run": False, "plan": self.plan.to_dict(), "results": [o.to_dict() for o in self.outcomes],
                "verified_in": self.verified_in, "interrupted": self.interrupted, "confirmed": True,
                "verified_after_error": [c.to_dict() for c in self.verified_after_error]}


def deregister(endpoint: Endpoint, plan: DeregisterPlan, clients: Clients | None = None) -> DeregisterReport:
    """Run ``plan`` (:func:`run_deregister`), then check each instance is gone (:func:`verify_gone`).

    An instance the API failed on with a 5xx or a timeout is looked up in ZooKeeper
    (``verified_after_error``). Ctrl-C stops the batch and is reported, not raised; other
    failures are in ``error``. ``clients``: the caller's (default: opened from ``endpoint`` and
    closed here).
    """
    with connections(endpoint, clients) as clients:
        live, source = live_reader(endpoint, clients, plan.service)
        run = run_deregister(clients.api().deregister, plan)
        check_error = verify_gone(run, live, settle_s=min(2.0, endpoint.timeout))
        outcomes = tuple(DeregisterOutcome(r["instance_id"], r["result"], r["error"]) for r in run.rows())
        checks = _deregister_checks(clients, run, source)
    error = None if run.interrupted else _deregister_error(run, outcomes, check_error)
    return DeregisterReport(plan, outcomes, source, run.interrupted, checks, error)


def _deregister_checks(clients: Clients, run: DeregisterRun, source: str) -> tuple[WriteCheck, ...]:
    """Per instance the API failed on (5xx, timeout): what ZooKeeper shows."""
    suspects = {**run.removed_despite, **{i: e for i, e in run.errors.items() if write_unverified(e)}}
    if not suspects or source != "zookeeper":
        return ()
    consequence = failed_write_consequence(clients, next(iter(suspects.values())), run.service)
    checks = []
    for iid, err in suspects.items():
        outcome = run.outcome.get(iid)
        happened = True if outcome == REMOVED else (None if outcome == UNVERIFIED else False)
        checks.append(WriteCheck("deregister", run.service, iid, happened, err, consequence))
    return tuple(checks)


def _deregister_error(run: DeregisterRun, outcomes: tuple[DeregisterOutcome, ...],
                      check_error: RegctlError | None) -> RegctlError | None:
    """What failed, as the one error to report (None: every instance was removed)."""
    not_removed = [o for o in outcomes if o.result != REMOVED]
    if run.stopped_by is not None and (not_removed or not run.removed_despite):
        return run.stopped_by
    if check_error is not None:
        return Unreachable(f"deregistration sent but not verified: {check_error.message}",
                           where=check_error.where, hint=check_error.hint_template)
    if run.errors:
        first = next(iter(run.errors.values()))
        return first if len(run.errors) == 1 else first.__class__(
            f"{len(run.errors)} deregistrations failed; first: {first.message}", where=first.where,
            hint=first.hint_template)
    if not_removed:
        return NotFound("not every instance was removed: " + ", ".join(f"{o.instance_id} {o.result}"
                                                                       for o in not_removed),
                        hint=f"look with: regctl inspect {run.service}")
    return None


def deregister_requests(endpoint: Endpoint, plan: DeregisterPlan) -> list[dict]:
    """The ``POST /deregister`` requests :func:`deregister` sends for ``plan``, in order."""
    return [describe_request(endpoint.config_url, deregister_call(plan.service, i)) for i in plan.instance_ids]
