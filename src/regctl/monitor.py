"""Which generation of the Config Service answers, and its health monitor's verdicts.

The later generation runs a background monitor that probes every live instance,
rewrites the database row's status and keeps its last verdict per service in
Redis, readable at ``GET /internal/health-status?service_id=NAME``. The earlier
generation has no such endpoint (404 Not Found).

Detection is one cheap GET of that endpoint *without* ``service_id``: the later
generation validates the query first and answers 422 (even with Redis down);
the earlier one answers 404 Not Found. The path is tried at the root and under
``/api/v1/registry`` (deployments differ in where the router is mounted), so an
earlier-generation server costs two tiny 404s and nothing else. Nothing is
cached across runs: a deployment can be upgraded between two commands.

A verdict missing from the monitor (404 "Health status not found": before its
first cycle after registering, or after the 60 s entry expired) is
*not known yet*, never *unhealthy*; a plain-text 500 (Redis unreachable: the
read raises and nothing handles it) or a 503 (no Redis client at all) means the
monitor's view *could not be checked*.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

from regctl.errors import RegctlError
from regctl.http.api import PREFIX, monitor_status_call, server_health_call, server_health_detailed_call

if TYPE_CHECKING:  # pragma: no cover
    from regctl.http.api import Answer, RegistryApi

EARLIER = "earlier"
LATER = "later"
UNKNOWN = "unknown"

#: the monitor's own states (``GET /internal/health-status``)
MONITOR_STATES = ("healthy", "degraded", "unhealthy", "unknown")
#: states regctl adds: no entry (yet), and the monitor's view could not be read
NOT_KNOWN_YET = "not-known-yet"
COULD_NOT_CHECK = "could-not-check"

#: later generation's POST /services/{name}/health per failing endpoint: 3 tries of 3 s, back-off 1 s + 2 s
LATER_TRIES = 3
LATER_PROBE_TIMEOUT = 3.0
LATER_RETRY_DELAYS = (1.0, 2.0)
#: earlier generation: one try per endpoint; its probe timeout is assumed to be httpx's usual 5 s
EARLIER_PER_ENDPOINT = 5.0
#: no derived server deadline exceeds this (seconds); ``--server-timeout`` can still go higher
MAX_SERVER_DEADLINE = 600.0

#: a verdict's detail when the server has no monitor endpoint at all (the earlier generation)
NO_MONITOR = "this Config Service has no health monitor (earlier generation)"

_MAX_TEXT = 80  # registry data is untrusted: keep what is shown of it bounded


@dataclass(frozen=True)
class GenerationInfo:
    """Which Config Service generation answered, and the answer that says so."""
    generation: str  # "earlier" | "later" | "unknown"
    evidence: str
    #: whether the monitor endpoint lives under /api/v1/registry (later generation only)
    prefixed: bool = False

    @property
    def later(self) -> bool:
        return self.generation == LATER

    def to_dict(self) -> dict:
        return {"generation": self.generation, "evidence": self.evidence}


@dataclass(frozen=True)
class MonitorVerdict:
    """The server's own view of a service, as its health monitor last saw it."""
    state: str  # healthy|degraded|unhealthy|unknown|not-known-yet|could-not-check
    last_check: str | None = None
    healthy: int | None = None
    total: int | None = None
    detail: str | None = None

    @property
    def known(self) -> bool:
        """Whether the monitor gave a verdict (not a missing entry, not a failed read)."""
        return self.state in MONITOR_STATES

    def counts(self) -> str | None:
        """``"0/1"`` (healthy/total), or None without counts."""
        if self.healthy is None or self.total is None:
            return None
        return f"{self.healthy}/{self.total}"

    def to_dict(self) -> dict:
        return {"state": self.state, "last_check": self.last_check, "healthy_instances": self.healthy,
                "total_instances": self.total, "detail": self.detail}


def _short(text: Any) -> str:
    s = str(text)
    return s if len(s) <= _MAX_TEXT else s[:_MAX_TEXT] + "..."


def _endpoint_missing(ans: "Answer") -> bool:
    return ans.status_code in (404, 405) and ans.detail() in (None, "Not Found", "Method Not Allowed")


def detect_generation(api: "RegistryApi") -> GenerationInfo:
    """Probe once, cheaply, which generation answers (see the module docstring).

    Never raises for an answer or a transport failure: those give ``unknown``
    with the reason as evidence.
    """

    for prefixed in (False, True):
        call = monitor_status_call(None, prefixed=prefixed)
        shown = (PREFIX if prefixed else "") + call.path
        try:
            ans = api.execute(call)
        except RegctlError as exc:
            return GenerationInfo(UNKNOWN, f"GET {shown} failed: {exc.message}")
        if ans.status_code in (422, 200):
            return GenerationInfo(LATER, f"GET {shown} answered {ans.status_code}: the health monitor's "
                                         "endpoint exists", prefixed=prefixed)
        if _endpoint_missing(ans):
            continue
        return GenerationInfo(UNKNOWN, f"GET {shown} answered HTTP {ans.status_code}"
                                       + (f": {_short(ans.detail())}" if ans.detail() else ""))
    return GenerationInfo(EARLIER, f"GET {PREFIX}/internal/health-status and /internal/health-status answered "
                                   "404 Not Found: no health monitor")


def _as_count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def verdict_from_answer(ans: "Answer") -> MonitorVerdict:
    """Read one ``GET /internal/health-status?service_id=`` answer."""
    code = ans.status_code
    if code == 200:
        try:
            data = ans.json()
        except RegctlError as exc:
            return MonitorVerdict(COULD_NOT_CHECK, detail=exc.message)
        if not isinstance(data, dict):
            return MonitorVerdict(COULD_NOT_CHECK, detail=f"expected a JSON object, got {type(data).__name__}")
        state = data.get("state")
        last = data.get("last_check")
        last = _short(last) if isinstance(last, (str, int, float)) and not isinstance(last, bool) else None
        healthy, total = _as_count(data.get("healthy_instances")), _as_count(data.get("total_instances"))
        if state not in MONITOR_STATES:
            return MonitorVerdict(COULD_NOT_CHECK, last, healthy, total,
                                  detail=f"the monitor answered an unknown state {_short(state)!r}")
        return MonitorVerdict(str(state), last, healthy, total)
    if code == 404 and not _endpoint_missing(ans):
        return MonitorVerdict(NOT_KNOWN_YET, detail="the monitor has no entry (before its first cycle after "
                                                    "registering, or the entry expired)")
    if _endpoint_missing(ans):
        return MonitorVerdict(COULD_NOT_CHECK, detail=NO_MONITOR)
    if code == 503:
        return MonitorVerdict(COULD_NOT_CHECK, detail="HTTP 503: the monitor's verdicts live in Redis, "
                                                      "which the Config Service cannot reach")
    said = ans.detail()
    if code == 500 and not said:
        return MonitorVerdict(COULD_NOT_CHECK, detail="HTTP 500 with no detail: the monitor's verdicts live in "
                                                      "Redis, which the Config Service could not read (Redis down?)")
    return MonitorVerdict(COULD_NOT_CHECK, detail=f"HTTP {code}" + (f": {_short(said)}" if said else ""))


def monitor_verdict(api: "RegistryApi", name: str, info: GenerationInfo | None = None) -> MonitorVerdict:
    """The monitor's last verdict on ``name``; never raises for what the server or network did.

    ``info`` (from :func:`detect_generation`) says where the endpoint is; without
    it the root path is asked, then the prefixed one when the root has none.
    """
    return monitor_verdicts(api, [name], info)[name]


def monitor_verdicts(api: "RegistryApi", names: Iterable[str], info: GenerationInfo | None = None,
                     concurrency: int = 16) -> dict[str, MonitorVerdict]:
    """:func:`monitor_verdict` for many services at once (concurrently), keyed by name."""
    names = list(dict.fromkeys(names))
    if not names:
        return {}
    prefixed = info.prefixed if info is not None else False
    answers = api.map([monitor_status_call(n, prefixed=prefixed) for n in names], concurrency=concurrency,
                      return_exceptions=True)
    if info is None and not prefixed and any(not isinstance(a, Exception) and _endpoint_missing(a)
                                             for a in answers):
        again = api.map([monitor_status_call(n, prefixed=True) for n in names], concurrency=concurrency,
                        return_exceptions=True)
        answers = [b if not isinstance(b, Exception) and not _endpoint_missing(b) else a
                   for a, b in zip(answers, again)]
    out = {}
    for name, ans in zip(names, answers):
        if isinstance(ans, RegctlError):
            out[name] = MonitorVerdict(COULD_NOT_CHECK, detail=ans.message)
        else:
            out[name] = verdict_from_answer(ans)
    return out


@dataclass(frozen=True)
class MonitorView:
    """The server's view for a set of services: the generation, and verdicts when it has a monitor."""
    info: GenerationInfo
    verdicts: "dict[str, MonitorVerdict]"

    def get(self, name: str) -> MonitorVerdict | None:
        return self.verdicts.get(name)


def monitor_view(api: "RegistryApi", names: Iterable[str]) -> MonitorView:
    """Detect the generation; on the later one, read every named service's verdict (concurrently).

    The earlier generation costs the detection's two small GETs and nothing per service.
    """
    info = detect_generation(api)
    verdicts = monitor_verdicts(api, names, info) if info.later else {}
    return MonitorView(info, verdicts)


def service_monitor(api: "RegistryApi", name: str) -> MonitorVerdict | None:
    """One service's verdict, the request itself telling the generation: None on the earlier one."""
    verdict = monitor_verdict(api, name)
    return None if verdict.detail == NO_MONITOR else verdict


#: why a service without a live instance has no monitor entry
SKIPPED = "no live instance: the monitor does not check it"


def skipped(verdict: MonitorVerdict | None, live: int | None) -> bool:
    """No entry because there is nothing to check: the monitor skips services without a live instance."""
    return verdict is not None and verdict.state == NOT_KNOWN_YET and live == 0


def describe(verdict: MonitorVerdict, live: int | None = None) -> str:
    """A few words for the server's view: ``unhealthy 0/1 healthy, checked 2026-12-03 08:00:01``."""
    if skipped(verdict, live):
        return f"not checked ({SKIPPED})"
    if verdict.state == NOT_KNOWN_YET:
        return "not known yet (no monitor entry: before its first cycle, or expired)"
    if verdict.state == COULD_NOT_CHECK:
        return f"could not check ({verdict.detail})"
    text = verdict.state
    if verdict.counts():
        text += f" {verdict.counts()} healthy"
    if verdict.last_check:
        text += f", checked {verdict.last_check.replace('T', ' ')[:19]}"
    return text


def contradiction_warning(name: str, flag: str, verdict: MonitorVerdict) -> str:
    """The warning for a :func:`contradiction` flag, with what to do."""
    counts = f" ({verdict.counts()} healthy)" if verdict.counts() else ""
    return (f"{name}: the Config Service's monitor says {verdict.state}{counts} while instances are registered "
            f"'healthy', so /url still hands them out ({flag}); the service's health endpoint fails on the "
            f"server's side: probe it from here with: regctl health {name}")


def contradiction(verdict: MonitorVerdict | None, discoverable: int | None) -> str | None:
    """A flag when ``/url`` hands out instances the monitor found failing, else None.

    ``discoverable``: live instances whose registered status is ``healthy`` (what
    ``/url`` picks from). ``monitor-unhealthy``: the monitor found none healthy;
    ``monitor-degraded``: it found fewer healthy than ``/url`` can hand out.
    """
    if verdict is None or not discoverable or verdict.state not in ("unhealthy", "degraded"):
        return None
    if verdict.state == "unhealthy" or verdict.healthy == 0:
        return "monitor-unhealthy"
    if verdict.healthy is None or verdict.healthy < discoverable:
        return "monitor-degraded"
    return None


#: flags :func:`contradiction` sets, with their meaning (shown in docs and ``list --help``)
FLAGS = {
    "monitor-unhealthy": "the server's monitor finds no instance healthy, yet /url still hands one out "
                         "(its registered status is 'healthy')",
    "monitor-degraded": "the server's monitor finds fewer instances healthy than /url hands out",
}


def per_endpoint_seconds(generation: str) -> float:
    """Worst case the server spends on one failing endpoint in its own health call."""
    if generation == EARLIER:
        return EARLIER_PER_ENDPOINT
    return LATER_TRIES * LATER_PROBE_TIMEOUT + sum(LATER_RETRY_DELAYS)


def server_endpoints(instances: "Iterable[Any]", generation: str) -> int:
    """How many endpoints the server's health call probes for these instances.

    The later generation tries ``/health`` and ``/api/v1/health`` for an instance
    registered without a ``health_check_url``: two endpoints; otherwise one each.
    """
    items = list(instances)
    if generation == EARLIER:
        return len(items)
    return sum(1 if getattr(i, "health_check_url", None) else 2 for i in items)


def server_health_deadline(instances: int, timeout: float, generation: str) -> float:
    """Deadline (seconds) for the Config Service's own ``POST /services/{name}/health``.

    ``instances``: the instance count, or better the endpoint count
    (:func:`server_endpoints`). The server probes them one after another and, in
    the later generation, tries each failing endpoint 3 times (3 s each, 1 s and
    2 s back-off): about 12 s per hanging endpoint. The deadline is ``timeout``
    (the network's share) plus that worst case for each (at least one: the API's
    cache may list an instance regctl did not count), rounded up, at most
    :data:`MAX_SERVER_DEADLINE`. ``generation`` "unknown" is treated as later.
    """
    n = max(1, int(instances))
    total = max(0.0, float(timeout)) + n * per_endpoint_seconds(generation)
    return float(min(MAX_SERVER_DEADLINE, math.ceil(total)))


@dataclass
class ServerCheck:
    """One service's answer from the Config Service's own health calls (``health --server``)."""
    service: str
    #: seconds the server's call was given
    deadline: float
    status: str | None = None
    error: RegctlError | None = None
    #: ``/health/detailed``'s answer; None where it does not exist (older servers)
    detailed: dict | None = None
    detailed_error: RegctlError | None = None

    @property
    def still_running(self) -> bool:
        """The server's call was cut at its deadline (the server keeps going and writes the row)."""
        return getattr(self.error, "still_running_after", None) is not None

    def to_dict(self) -> dict:
        return {"service": self.service, "deadline_s": self.deadline, "status": self.status,
                "error": str(self.error) if self.error else None, "still_running": self.still_running,
                "detailed": self.detailed,
                "detailed_error": str(self.detailed_error) if self.detailed_error else None}


def run_server_checks(api: "RegistryApi", instances: "Mapping[str, int | Sequence[Any]]", *, timeout: float,
                      server_timeout: float | None = None, info: GenerationInfo | None = None,
                      concurrency: int = 32) -> "tuple[GenerationInfo, list[ServerCheck]]":
    """Ask the Config Service's own health check for every service, all at once.

    ``instances``: per service, its live instances (or their count).
    ``POST /services/{name}/health`` WRITES the row's status (its verdict), in
    both generations. Each service's call gets ``server_timeout`` or
    :func:`server_health_deadline` for its endpoints; ``/health/detailed``
    is asked alongside (older servers answer 404 at once).
    """

    if info is None:
        info = detect_generation(api)
    checks, calls = [], []
    for name, given in instances.items():
        count = given if isinstance(given, int) else server_endpoints(given, info.generation)
        deadline = server_timeout if server_timeout is not None else \
            server_health_deadline(count, timeout, info.generation)
        checks.append(ServerCheck(name, deadline))
        calls += [server_health_call(name, timeout=deadline), server_health_detailed_call(name, timeout=deadline)]
    # no more at once than the client has connections: a call queued for one would time out waiting
    concurrency = min(concurrency, getattr(api, "max_connections", 32), len(calls) or 1)
    answers = iter(api.map(calls, concurrency=max(1, concurrency), return_exceptions=True)
                   if calls else [])
    for check in checks:
        status = next(answers)
        if isinstance(status, RegctlError):
            check.error = status
        else:
            check.status = status
        detailed = next(answers)
        if isinstance(detailed, RegctlError):
            check.detailed_error = detailed
        else:
            check.detailed = detailed
    return info, checks
