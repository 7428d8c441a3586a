"""Wait until a service has enough live (and optionally healthy) instances, within a deadline.

:func:`wait_for_instances` takes the :class:`~regctl.settings.Endpoint` and a
:class:`WaitSpec` (what to wait for) and returns a :class:`WaitReport`.
With ZooKeeper configured it sets a child watch on ``{base}/{name}/instances``
(an existence watch while the service does not exist yet) and re-reads as soon
as it fires, so a registration is seen at once. Without ZooKeeper it polls the
API's ``GET /services/{name}`` every ``spec.interval`` seconds. ``spec.healthy``
counts only instances a client can be handed: status ``healthy`` (what ``/url``
picks from) and, with ``spec.url_check``, only once the Config Service's
``GET /services/{name}/url`` actually answers (a cache outage or a bad status
elsewhere in the service makes it fail although the nodes look fine).
``spec.probe`` also requires their health URL to answer, probed on every round.

Every network step is bounded by ``min(step_timeout, time remaining)``; the whole
wait never outlasts ``deadline_s`` by more than a fraction of a second (a wait that
saw no instance at all then reads the registry's names once more, one step, for a
did-you-mean). Transient failures are retried until the deadline; when the backend
could not be reached even once, :class:`~regctl.errors.Unreachable` is raised (exit 3).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Callable

from kazoo.exceptions import NoNodeError

from regctl.connections import Connections
from regctl.discovery import did_you_mean, known_names
from regctl.errors import RegctlError, Unreachable, UsageError
from regctl.models import Instance
from regctl.names import validate_service_name, zk_join
from regctl.prober import probe_many, targets_for
from regctl.settings import Endpoint
from regctl.zookeeper.reader import ZkReader

log = logging.getLogger(__name__)

#: Longest a single network step inside a wait may take.
STEP_TIMEOUT = 5.0
#: Shortest bound given to a step near the deadline.
MIN_STEP = 0.2


@dataclass(frozen=True)
class WaitSpec:
    """What a wait waits for (``regctl wait``'s options); checked when made (:class:`UsageError`)."""

    name: str
    min_count: int = 1
    #: count only discoverable instances: status ``healthy`` (``probe`` implies it)
    healthy: bool = False
    #: also require each counted instance's health URL to answer
    probe: bool = False
    #: with ``healthy``: also require the Config Service's ``/url`` to answer
    url_check: bool = False
    #: the whole wait's deadline (seconds)
    deadline_s: float = 60.0
    #: seconds between API polls and health re-probes
    interval: float = 1.0
    #: with ``probe``: healthy HTTP statuses (None: any 2xx)
    expect: tuple[int, ...] | None = None
    #: the longest one network step inside the wait may take
    step_timeout: float = STEP_TIMEOUT

    def __post_init__(self) -> None:
        validate_service_name(self.name)
        if self.min_count < 1:
            raise UsageError(f"--min {self.min_count} is below 1", hint="give --min 1 or more")
        if self.deadline_s <= 0:
            raise UsageError(f"wait deadline {self.deadline_s:g}s is not positive",
                             hint="give --timeout SECONDS > 0")
        if self.interval <= 0:
            raise UsageError(f"--interval {self.interval:g} is not positive", hint="give --interval SECONDS > 0")

    @property
    def discoverable(self) -> bool:
        """Whether only discoverable instances count (``healthy``, implied by ``probe``)."""
        return self.healthy or self.probe


@dataclass(frozen=True)
class WaitReport:
    """How a wait ended: what was wanted, what was there, where it was read."""

    service: str
    ok: bool
    wanted: int
    live: int
    #: live instances with status ``healthy`` (None when --healthy was not asked for)
    healthy: int | None
    elapsed: float
    source: str
    instance_ids: tuple[str, ...] = ()
    #: the last error seen while reading (the wait went on regardless)
    last_error: str | None = None
    rounds: int = 0
    probes: tuple = field(default=())
    #: of those, the ones whose health URL answered (None without probing)
    answering: int | None = None
    #: what /url answered last (the URL), None when not asked or it failed
    url: str | None = None
    #: why /url failed on the last round (None when it answered or was not asked)
    url_error: str | None = None
    #: what was asked (None for a report made by hand)
    spec: WaitSpec | None = None
    #: timed out with no live instance: a did-you-mean from the names the registry holds
    suggestion: str | None = None

    def summary(self) -> str:
        """One line, e.g. ``2 of 3 instances live, 1 with status healthy, 0 answering after 30s``."""
        if self.live > self.wanted:  # more than asked for: "2 of 1" reads as a miscount
            text = f"{self.live} instances live ({self.wanted} wanted)"
        else:
            text = f"{self.live} of {self.wanted} {'instance' if self.wanted == 1 else 'instances'} live"
        if self.healthy is not None:
            text += f", {self.healthy} with status healthy"
        if self.answering is not None:
            text += f", {self.answering} answering"
        if self.url_error:
            text += f"; /url fails ({self.url_error})"
        text += f" after {self.elapsed:.0f}s" if self.elapsed >= 10 else f" after {self.elapsed:.1f}s"
        return text

    def to_dict(self) -> dict:
        return {"service": self.service, "ok": self.ok, "wanted": self.wanted, "live": self.live,
                "healthy": self.healthy, "answering": self.answering, "url": self.url,
                "url_error": self.url_error, "elapsed_seconds": round(self.elapsed, 2), "source": self.source,
                "instance_ids": list(self.instance_ids), "last_error": self.last_error,
                "probes": [p.to_dict() for p in self.probes]}



@dataclass
class _Round:
    """What the latest round of a wait saw (the loop's own state, turned into the report at the end)."""

    live: list = field(default_factory=list)
    healthy: int | None = None
    answering: int | None = None
    probes: tuple = ()
    url: str | None = None
    url_error: str | None = None
    last_error: RegctlError | None = None
    reached: bool = False
    rounds: int = 0


def wait_for_instances(endpoint: Endpoint, spec: WaitSpec,
                       on_round: Callable[[int, int | None], None] | None = None) -> WaitReport:
    """Block until ``spec.name`` has ``spec.min_count`` live (with ``healthy``: discoverable) instances.

    Reads ZooKeeper when ``endpoint`` has it, else polls the API at ``endpoint.config_url``
    (``endpoint.timeout`` is not used: each step gets ``min(spec.step_timeout, time left)``).
    Returns a :class:`WaitReport` (``ok`` False on timeout); raises :class:`Unreachable` when
    the registry could not be read even once. ``on_round(live, counted)`` is called after
    every evaluation (for progress displays).
    """
    if not endpoint.zk_configured and not endpoint.config_url:
        raise UsageError("nothing to wait on", hint="configure ZooKeeper (--zk) or the Config Service URL")
    source: _Source = _ZkSource(spec.name, endpoint) if endpoint.zk_configured else _ApiSource(spec.name, endpoint)
    started = time.monotonic()
    end = started + spec.deadline_s

    def step() -> float:
        return max(MIN_STEP, min(spec.step_timeout, end - time.monotonic()))

    now = _Round(healthy=0 if spec.discoverable else None, answering=0 if spec.probe else None)
    try:
        while True:
            have = _evaluate(endpoint, spec, source, now, step)
            if on_round is not None:
                on_round(len(now.live), now.answering if spec.probe else now.healthy)
            if now.reached and have >= spec.min_count:
                return _report(spec, now, started, source, ok=True)
            left = end - time.monotonic()
            if left <= 0:
                break
            # a watch fires at once on a change; the interval bounds re-probing and retries.
            # After the last wait the loop reads once more, so a change at the very end counts.
            source.wait_change(min(spec.interval, left))
        report = _report(spec, now, started, source, ok=False)
        if now.reached and not now.live:
            report = replace(report, suggestion=_suggest(endpoint, spec, source))
    finally:
        source.close()
    if not now.reached:
        assert now.last_error is not None
        err = now.last_error
        raise Unreachable(f"could not read {spec.name!r} for the whole wait of {spec.deadline_s:g}s: {err.message}",
                          where=err.where, hint=err.hint or "check the connection settings")
    return report


def _evaluate(endpoint: Endpoint, spec: WaitSpec, source: "_Source", now: _Round, step: Callable[[], float]) -> int:
    """One round: read, count (probe, ask /url as the spec says); how many instances count now."""
    now.rounds += 1
    try:
        now.live = source.read(step())
        now.reached = True
        now.last_error = None
    except RegctlError as exc:
        if isinstance(exc, UsageError):
            raise
        now.last_error = exc
        log.info("wait: %s", exc)
    have = len(now.live)
    if spec.discoverable:
        candidates = [i for i in now.live if i.discoverable]
        now.healthy = have = len(candidates)
        if spec.probe:
            now.probes = tuple(probe_many(targets_for(candidates), timeout=step(), expect=spec.expect,
                                          concurrency=32, verify=endpoint.verify)) if candidates else ()
            now.answering = have = sum(1 for p in now.probes if p.healthy)
    if spec.url_check and spec.discoverable and endpoint.config_url and now.reached and have >= spec.min_count:
        now.url, now.url_error = _ask_url(replace(endpoint, timeout=step()), spec.name)
        if now.url is None:
            have = 0
    return have


def _report(spec: WaitSpec, now: _Round, started: float, source: "_Source", ok: bool) -> WaitReport:
    return WaitReport(spec.name, ok, spec.min_count, len(now.live), now.healthy, time.monotonic() - started,
                      source.kind, tuple(i.instance_id for i in now.live),
                      None if now.last_error is None else str(now.last_error), now.rounds, now.probes,
                      now.answering, now.url, now.url_error, spec)


def _ask_url(endpoint: Endpoint, name: str) -> tuple:
    """(the URL /url answered, None) or (None, why it failed in a few words)."""
    try:
        with endpoint.api() as api:
            return api.url(name), None
    except RegctlError as exc:
        return None, exc.message


def _suggest(endpoint: Endpoint, spec: WaitSpec, source: "_Source") -> str | None:
    """A did-you-mean for a name that never showed up (the registry's names read once more, one step)."""
    bounded = replace(endpoint, timeout=min(spec.step_timeout, endpoint.timeout))
    zk = (lambda: source.connect(bounded.timeout)) if isinstance(source, _ZkSource) else None
    with Connections(bounded) as clients:
        return did_you_mean(spec.name, known_names(clients.api, zk))


class _Source:
    kind = "?"

    def read(self, timeout: float) -> list[Instance]:  # pragma: no cover - interface
        raise NotImplementedError

    def wait_change(self, seconds: float) -> None:
        time.sleep(max(0.0, seconds))

    def close(self) -> None:
        pass


class _ApiSource(_Source):
    """Polls ``GET /services/{name}``; a fresh client per poll so each call has the step's bound."""

    kind = "api"

    def __init__(self, name: str, endpoint: Endpoint) -> None:
        self.name, self.endpoint = name, endpoint

    def read(self, timeout: float) -> list[Instance]:
        with replace(self.endpoint, timeout=timeout).api() as api:
            return api.instances(self.name)


class _ZkSource(_Source):
    """Reads ``{base}/{name}/instances`` and keeps a watch on it (or on its existence)."""

    kind = "zookeeper"

    def __init__(self, name: str, endpoint: Endpoint) -> None:
        self.name, self.endpoint = name, endpoint
        self.path = zk_join(endpoint.zk_base, name, "instances")
        self.changed = threading.Event()
        self.reader: ZkReader | None = None

    def _watch(self, event: object) -> None:
        self.changed.set()

    def connect(self, timeout: float) -> ZkReader:
        """The connected reader (connected now if it is not), its reads bounded by ``timeout``."""
        if self.reader is None:
            reader = replace(self.endpoint, timeout=timeout).zk_reader()
            reader.connect()
            self.reader = reader
        self.reader.timeout = timeout
        return self.reader

    def read(self, timeout: float) -> list[Instance]:
        reader = self.connect(timeout)
        client = reader.client
        self.changed.clear()
        deadline = time.monotonic() + timeout
        # arm the watch first, then read: a change between the two still wakes us
        try:
            reader._wait(client.get_children_async(self.path, watch=self._watch), self.path, deadline)
        except NoNodeError:
            stat = reader._wait(client.exists_async(self.path, watch=self._watch), self.path, deadline)
            if stat is None:
                return []
            self.changed.set()  # created in between: read again at once
            return []
        except Unreachable:
            self._drop()
            raise
        try:
            svc = reader.service(self.name)
        except Unreachable:
            self._drop()
            raise
        return list(svc.instances)

    def _drop(self) -> None:
        if self.reader is not None:
            self.reader.close()
            self.reader = None

    def wait_change(self, seconds: float) -> None:
        self.changed.wait(max(0.0, seconds))

    def close(self) -> None:
        self._drop()
