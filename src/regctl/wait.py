"""Wait until a service has enough live (and optionally healthy) instances, within a deadline.

With ZooKeeper configured, :func:`wait_for_instances` sets a child watch on
``{base}/{name}/instances`` (an existence watch while the service does not exist
yet) and re-reads as soon as it fires, so a registration is seen at once.
Without ZooKeeper it polls the API's ``GET /services/{name}`` every ``interval``
seconds. ``healthy=True`` counts only instances a client can be handed:
status ``healthy`` (what ``/url`` picks from) and, when ``url_check``, only once
the Config Service's ``GET /services/{name}/url`` actually answers (a cache
outage or a bad status elsewhere in the service makes it fail although the
nodes look fine). ``probe=True`` also requires their health URL to answer,
probed on every round.

Every network step is bounded by ``min(step_timeout, time remaining)``; the whole
wait never outlasts ``deadline_s`` by more than a fraction of a second. Transient
failures are retried until the deadline; when the backend could not be reached
even once, :class:`~regctl.errors.Unreachable` is raised (exit 3).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

from regctl.errors import RegctlError, Unreachable, UsageError
from regctl.models import Instance
from regctl.names import validate_service_name, zk_join

log = logging.getLogger(__name__)

#: Longest a single network step inside a wait may take.
STEP_TIMEOUT = 5.0
#: Shortest bound given to a step near the deadline.
MIN_STEP = 0.2


@dataclass(frozen=True)
class WaitOutcome:
    """How a wait ended."""

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


def wait_for_instances(name: str, *, min_count: int = 1, healthy: bool = False, deadline_s: float = 60.0,
                       interval: float = 1.0, zk_hosts: str | None = None, zk_base: str = "/services",
                       config_url: str | None = None, headers: dict | None = None, verify: bool | str = True,
                       step_timeout: float = STEP_TIMEOUT, expect: Sequence[int] | None = None,
                       on_round: Callable[[int, int | None], None] | None = None,
                       zk_auth_data: list | None = None, zk_client_kwargs: dict | None = None,
                       probe: bool = False, url_check: bool = False) -> WaitOutcome:
    """Block until ``name`` has ``min_count`` live (with ``healthy``: discoverable) instances.

    ``probe`` implies ``healthy``; ``url_check`` (with ``healthy``) also needs
    ``/url`` at ``config_url`` to answer.

    Returns a :class:`WaitOutcome` (``ok`` False on timeout). Reads ZooKeeper when
    ``zk_hosts`` is given, else the API at ``config_url``. ``on_round(live, healthy)``
    is called after every evaluation (for progress displays).
    """
    validate_service_name(name)
    if min_count < 1:
        raise UsageError(f"--min {min_count} is below 1", hint="give --min 1 or more")
    if deadline_s <= 0:
        raise UsageError(f"wait deadline {deadline_s:g}s is not positive", hint="give --timeout SECONDS > 0")
    if interval <= 0:
        raise UsageError(f"--interval {interval:g} is not positive", hint="give --interval SECONDS > 0")
    if not zk_hosts and not config_url:
        raise UsageError("nothing to wait on", hint="configure ZooKeeper (--zk) or the Config Service URL")
    if zk_hosts:
        source: _Source = _ZkSource(name, zk_hosts, zk_base, zk_auth_data, zk_client_kwargs)
    else:
        source = _ApiSource(name, config_url or "", headers or {}, verify)
    started = time.monotonic()
    deadline = started + deadline_s

    def remaining() -> float:
        return deadline - time.monotonic()

    def step() -> float:
        return max(MIN_STEP, min(step_timeout, remaining()))

    healthy = healthy or probe
    url_check = url_check and healthy and bool(config_url)
    reached = False
    last_error: RegctlError | None = None
    live: list[Instance] = []
    counts: dict = {"healthy": 0 if healthy else None, "answering": 0 if probe else None,
                    "url": None, "url_error": None}
    probes: tuple = ()
    rounds = 0

    def outcome(ok: bool) -> WaitOutcome:
        return WaitOutcome(name, ok, min_count, len(live), counts["healthy"], time.monotonic() - started,
                           source.kind, tuple(i.instance_id for i in live),
                           None if last_error is None else str(last_error), rounds, tuple(probes),
                           counts["answering"], counts["url"], counts["url_error"])

    try:
        while True:
            rounds += 1
            try:
                live = source.read(step())
                reached = True
                last_error = None
            except RegctlError as exc:
                if isinstance(exc, UsageError):
                    raise
                last_error = exc
                log.info("wait: %s", exc)
            have = len(live)
            if healthy:
                candidates = [i for i in live if i.discoverable]
                counts["healthy"] = have = len(candidates)
                if probe:
                    probes = ()
                    if candidates:
                        from regctl.health import probe_many, targets_for

                        probes = tuple(probe_many(targets_for(candidates), timeout=step(), expect=expect,
                                                  concurrency=32, verify=verify))
                    counts["answering"] = have = sum(1 for p in probes if p.healthy)
            if url_check and reached and have >= min_count:
                counts["url"], counts["url_error"] = _ask_url(name, config_url or "", headers or {}, verify, step())
                if counts["url"] is None:
                    have = 0
            if on_round is not None:
                on_round(len(live), counts["answering"] if probe else counts["healthy"])
            if reached and have >= min_count:
                return outcome(True)
            left = remaining()
            if left <= 0:
                break
            # a watch fires at once on a change; the interval bounds re-probing and retries.
            # After the last wait the loop reads once more, so a change at the very end counts.
            source.wait_change(min(interval, left))
    finally:
        source.close()
    if not reached:
        assert last_error is not None
        raise Unreachable(f"could not read {name!r} for the whole wait of {deadline_s:g}s: {last_error.message}",
                          where=last_error.where, hint=last_error.hint or "check the connection settings")
    return outcome(False)


def _ask_url(name: str, url: str, headers: dict, verify: bool | str, timeout: float) -> tuple:
    """(the URL /url answered, None) or (None, why it failed in a few words)."""
    from regctl.http.api import RegistryApi

    try:
        with RegistryApi(url, timeout=timeout, headers=headers, verify=verify) as api:
            return api.url(name), None
    except RegctlError as exc:
        return None, exc.message


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

    def __init__(self, name: str, url: str, headers: dict, verify: bool | str) -> None:
        self.name, self.url, self.headers, self.verify = name, url, headers, verify

    def read(self, timeout: float) -> list[Instance]:
        from regctl.http.api import RegistryApi

        with RegistryApi(self.url, timeout=timeout, headers=self.headers, verify=self.verify) as api:
            return api.instances(self.name)


class _ZkSource(_Source):
    """Reads ``{base}/{name}/instances`` and keeps a watch on it (or on its existence)."""

    kind = "zookeeper"

    def __init__(self, name: str, hosts: str, base: str, auth: list | None,
                 client_kwargs: dict | None = None) -> None:
        self.name, self.hosts, self.base, self.auth = name, hosts, base, auth
        self.client_kwargs = client_kwargs
        self.path = zk_join(base, name, "instances")
        self.changed = threading.Event()
        self.reader = None

    def _watch(self, event: object) -> None:
        self.changed.set()

    def _connect(self, timeout: float):
        from regctl.zookeeper.reader import ZkReader

        if self.reader is None:
            reader = ZkReader(self.hosts, self.base, timeout=timeout, auth_data=self.auth,
                              client_kwargs=self.client_kwargs)
            reader.connect()
            self.reader = reader
        return self.reader

    def read(self, timeout: float) -> list[Instance]:
        reader = self._connect(timeout)
        reader.timeout = timeout
        client = reader.client
        self.changed.clear()
        deadline = time.monotonic() + timeout
        # arm the watch first, then read: a change between the two still wakes us
        from kazoo.exceptions import NoNodeError

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
