"""``regctl health`` as an operation: read the instances, probe them (and ask the Config Service's own
check beside the probes), and return a :class:`HealthReport` the CLI renders and the library can use.
The probing itself is :mod:`regctl.prober`.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping

from regctl import deadline
from regctl.connections import Clients, connections
from regctl.discovery import did_you_mean, known_names
from regctl.errors import UsageError
from regctl.http.api import RegistryApi, instances_call
from regctl.models import Instance
from regctl.monitor import GenerationInfo, ServerCheck, run_server_checks
from regctl.names import validate_service_name
from regctl.prober import DEFAULT_CONCURRENCY, ProbeResult, ProbeTarget, probe_many, targets_for
from regctl.settings import Endpoint

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------
# check_health: read the instances, probe them (and ask the server), report
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class HealthRequest:
    """What :func:`check_health` probes, and how (``regctl health``'s options).

    ``names`` empty: every registered service. ``server``: also ask the Config Service's
    own check (``POST /services/NAME/health``, which WRITES the row's status), each
    service's call under ``server_timeout`` (None: derived, see :mod:`regctl.monitor`).
    """

    names: tuple[str, ...] = ()
    concurrency: int = DEFAULT_CONCURRENCY
    retries: int = 0
    #: healthy HTTP statuses (None: any 2xx)
    expect: tuple[int, ...] | None = None
    server: bool = False
    server_timeout: float | None = None

    def __post_init__(self) -> None:
        for name in self.names:
            validate_service_name(name)
        if self.concurrency < 1 or self.retries < 0:
            raise UsageError(f"concurrency {self.concurrency} / retries {self.retries} out of range",
                             hint="give a concurrency of 1 or more and retries of 0 or more")


@dataclass(frozen=True)
class ServerVerdict:
    """The Config Service's own check of one service: its verdict and ``/health/detailed``'s summary."""

    service: str
    #: seconds its call was given
    deadline: float
    #: the server's verdict; ``still running`` when its call was cut at ``deadline``, ``error`` when it failed
    status: str | None
    #: ``healthy 1/2``, ``n/a (older server)``, ``still running`` or ``error``
    detailed: str | None
    error: str | None = None
    still_running: bool = False

    def to_dict(self, regctl: str | None = None) -> dict:
        """A row of the ``server`` list (``regctl``: what regctl's own probes found for the service)."""
        row = {"service": self.service, "regctl": regctl, "server_status": self.status,
               "detailed": self.detailed, "deadline": f"{self.deadline:g}s"}
        if self.error is not None:
            row["error"] = self.error
        if self.still_running:
            row["still_running"] = True
        return row


@dataclass(frozen=True)
class ServerView:
    """What the Config Service's own check said: per service, and per endpoint URL where it tells."""

    generation: GenerationInfo
    verdicts: tuple[ServerVerdict, ...] = ()
    #: endpoint URL -> ``healthy``/``unhealthy`` (from ``/health/detailed``, later servers only)
    by_url: Mapping[str, str] = field(default_factory=dict)
    #: the calls that failed or were cut, one line each
    errors: tuple[str, ...] = ()


@dataclass(frozen=True)
class HealthReport:
    """What :func:`check_health` asked, read, probed and could not check."""

    request: HealthRequest
    #: where the instances were read: ``zookeeper`` or ``api``
    source: str
    #: per service read (every name asked for), its live instances
    instances: Mapping[str, tuple[Instance, ...]] = field(default_factory=dict)
    #: the probes' outcomes, in the order of :attr:`targets` (interrupted: those that had finished)
    results: tuple[ProbeResult, ...] = ()
    #: per name asked for that has no live instance, a did-you-mean from the names the registry holds
    suggestions: Mapping[str, str] = field(default_factory=dict)
    #: what ZooKeeper holds that does not fit the registry's layout (``path: detail``), read along
    problems: tuple[str, ...] = ()
    #: the Config Service's own check (``request.server``; None when not asked, or interrupted)
    server: ServerView | None = None
    #: Ctrl-C ended the probing: ``results`` holds what had finished, nothing else was probed
    interrupted: bool = False

    @property
    def targets(self) -> list[ProbeTarget]:
        """One probe per live instance read."""
        return targets_for(i for insts in self.instances.values() for i in insts)

    @property
    def missing(self) -> list[str]:
        """Services read without a live instance (a name asked for that is not registered is one)."""
        return [n for n, insts in self.instances.items() if not insts]

    @property
    def healthy(self) -> int:
        return sum(1 for r in self.results if r.healthy)

    @property
    def unchecked(self) -> tuple[ProbeResult, ...]:
        """Probes that could not be made from this machine (their host does not resolve here)."""
        return tuple(r for r in self.results if not r.checked)

    @property
    def unhealthy(self) -> int:
        return len(self.results) - self.healthy - len(self.unchecked)

    @property
    def verdict(self) -> str:
        """``healthy`` (every instance checked is), ``unhealthy`` (one is not, or a service has no live
        instance), ``nothing-to-probe``, ``could-not-check`` (none could be checked from here) or
        ``interrupted``."""
        if self.interrupted:
            return "interrupted"
        if not self.results:
            return "nothing-to-probe"
        if self.unhealthy or self.missing:
            return "unhealthy"
        return "healthy" if self.healthy else "could-not-check"

    def server_rows(self) -> list[dict]:
        """The ``server`` list: each service's own check beside what regctl's probes found."""
        probed: dict[str, list[int]] = {}  # service -> [healthy, probed], counted in one pass
        for r in self.results:
            count = probed.setdefault(r.service_name, [0, 0])
            count[0] += bool(r.healthy)
            count[1] += 1
        return [v.to_dict("{}/{} healthy".format(*probed.get(v.service, (0, 0))))
                for v in (self.server.verdicts if self.server is not None else ())]

    def result_rows(self) -> list[dict]:
        """One dict per probe; with the server's check, what it said of the same endpoint (``server``)."""
        if self.server is None:
            return [r.to_dict() for r in self.results]
        return [{**r.to_dict(), "server": self.server.by_url.get(r.url or "")} for r in self.results]

    def to_dict(self) -> dict:
        doc = {"results": self.result_rows(),
               "summary": {"total": len(self.results), "healthy": self.healthy, "unhealthy": self.unhealthy,
                           "unreachable_from_here": len(self.unchecked),
                           "services_without_instances": list(self.missing)},
               "source": self.source,
               "server": self.server_rows() if self.server is not None else None}
        if self.server is not None:
            doc["generation"] = self.server.generation.to_dict()
        if self.interrupted:
            doc["partial"] = True
        return doc


class HealthInterrupted(KeyboardInterrupt):
    """Ctrl-C while :func:`check_health` probed; ``report`` holds what had been probed by then."""

    def __init__(self, report: HealthReport) -> None:
        super().__init__("interrupted while probing")
        self.report = report


def check_health(endpoint: Endpoint, request: HealthRequest,
                 on_progress: Callable[[int, int], None] | None = None,
                 clients: Clients | None = None) -> HealthReport:
    """Probe every live instance of ``request.names`` (all services when empty) and report.

    Instances are read from ZooKeeper when ``endpoint`` has it, else from the API (a
    failed read raises: :class:`~regctl.errors.Unreachable` and kin). Each probe gets
    ``endpoint.timeout`` seconds; with ``request.server`` the Config Service's own
    check runs at the same time. ``on_progress(done, total)`` is called before the
    first probe and as each one finishes. Ctrl-C while probing raises
    :class:`HealthInterrupted` carrying the partial report. ``clients``: the caller's (default:
    opened from ``endpoint`` and closed here).
    """
    with connections(endpoint, clients) as clients:
        report = _read_targets(endpoint, request, clients)
        server = deadline.start(functools.partial(_server_view, clients.api(), report, endpoint.timeout),
                                name="regctl-server-health") if request.server else None
        targets = report.targets
        probed: list = []

        def finished(result: ProbeResult) -> None:
            probed.append(result)
            if on_progress is not None:
                on_progress(len(probed), len(targets))

        if on_progress is not None:
            on_progress(0, len(targets))
        try:
            results = probe_many(targets, timeout=endpoint.timeout, concurrency=request.concurrency,
                                 retries=request.retries, expect=request.expect, verify=endpoint.verify,
                                 on_result=finished)
        except KeyboardInterrupt:
            order = {(t.service_name, t.instance_id): i for i, t in enumerate(targets)}
            probed.sort(key=lambda r: order.get((r.service_name, r.instance_id), 0))
            raise HealthInterrupted(replace(report, results=tuple(probed), interrupted=True)) from None
        view = None
        if server is not None:
            outcome = server.outcome()
            if isinstance(outcome, deadline.Raised):
                raise outcome.error
            view = outcome.value  # type: ignore[union-attr]
        return replace(report, results=tuple(results), server=view)


def _read_targets(endpoint: Endpoint, request: HealthRequest, clients: Clients) -> HealthReport:
    """The report before probing: the instances read (ZooKeeper, else the API), what is missing, the targets."""
    names = list(request.names) or None
    problems: list[str] = []
    if endpoint.zk_configured:
        snap = clients.zk().snapshot(names)
        by_service = {s.name: list(s.instances) for s in snap.services}
        problems = [f"{p.path}: {p.detail}" for p in snap.all_problems() if p.kind != "base-missing"]
        for n in names or []:
            by_service.setdefault(n, [])
        suggestions = _suggestions(request, by_service, clients.zk, clients.api)
        source = "zookeeper"
    else:
        api = clients.api()
        if names is None:
            names = [row.service_name for row in api.list_services()]
        by_service = dict(zip(names, api.map([instances_call(n) for n in names], concurrency=16)))
        suggestions = _suggestions(request, by_service, None, clients.api)
        source = "api"
    return HealthReport(request, source, instances={n: tuple(insts) for n, insts in by_service.items()},
                        suggestions=suggestions, problems=tuple(problems))


def _suggestions(request: HealthRequest, by_service: Mapping[str, list], zk: Callable[[], Any] | None,
                 api: Callable[[], RegistryApi]) -> dict:
    """A did-you-mean per name asked for that has no live instance (the registry's names read once more)."""
    missing = [n for n in request.names if not by_service.get(n)]
    if not missing:
        return {}
    known = known_names(api, zk)
    return {n: hint for n in missing if (hint := did_you_mean(n, known))}


def _server_view(api: RegistryApi, report: HealthReport, timeout: float) -> ServerView:
    """Ask the Config Service's own check for every service read, all at once (see :mod:`regctl.monitor`)."""
    info, checks = run_server_checks(api, report.instances, timeout=timeout,
                                     server_timeout=report.request.server_timeout)
    verdicts, by_url, errors = [], {}, []
    for check in checks:
        verdicts.append(_server_verdict(check))
        errors += [str(e) for e in (check.error, check.detailed_error) if e is not None]
        for item in (check.detailed or {}).get("check_results") or []:
            if isinstance(item, dict) and isinstance(item.get("endpoint_url"), str):
                by_url[item["endpoint_url"]] = "healthy" if item.get("is_healthy") else "unhealthy"
    return ServerView(info, tuple(verdicts), by_url, tuple(errors))


def _server_verdict(check: ServerCheck) -> ServerVerdict:
    status, error = check.status, None
    if check.error is not None:
        status, error = ("still running" if check.still_running else "error"), str(check.error)
    if check.detailed_error is not None:
        detailed = "still running" if getattr(check.detailed_error, "still_running_after", None) else "error"
    elif check.detailed is None:
        detailed = "n/a (older server)"
    else:
        d = check.detailed
        detailed = f"{d.get('overall_status')} {d.get('healthy_instances')}/{d.get('total_instances')}"
    return ServerVerdict(check.service, check.deadline, status, detailed, error, check.still_running)
