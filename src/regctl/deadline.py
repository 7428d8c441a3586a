"""Run calls in daemon threads and stop waiting for them at a deadline.

The one way regctl runs blocking work concurrently or under a time limit
(asyncio stays for the health probes' fan-out). Each call's outcome is typed:

* :class:`Value`, what it returned;
* :class:`Raised`, the exception it raised (handed over, never raised here);
* :class:`Cut`, it had not finished when the caller stopped waiting.

:func:`run_with_deadline` runs one call, :func:`run_all` many (outcomes in the
order given), :func:`start` hands back a :class:`Running` call to wait for at the
caller's choosing, and a :class:`Pool` bounds how many run at once and tells
which ended, as they end.

The threads are daemon threads: a call abandoned at its deadline never holds
up the process's exit, and the caller's thread only ever waits on an event, so
Ctrl-C interrupts it at once. Standard library only: completion's fast path
uses it.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Generic, Iterable, Sequence, TypeVar, Union, overload

T = TypeVar("T")


@dataclass(frozen=True)
class Value(Generic[T]):
    """The call returned ``value``."""

    value: T


@dataclass(frozen=True)
class Raised:
    """The call raised ``error``."""

    error: BaseException


@dataclass(frozen=True)
class Cut:
    """The call had not finished ``after`` seconds, when the caller stopped waiting (it may never have started)."""

    after: float


Outcome = Union[Value[Any], Raised, Cut]


class Running:
    """A call handed to a thread: :meth:`outcome` waits for it, for as long as the caller allows."""

    def __init__(self, fn: Callable[[], Any], on_end: "Callable[[Running], None] | None" = None) -> None:
        self._fn = fn
        self._on_end = on_end
        self._lock = threading.Lock()
        self._taken = False  # started, or cancelled: either way it is no longer waiting to start
        self._done = threading.Event()
        self._outcome: "Value[Any] | Raised | Cut | None" = None

    def _take(self) -> bool:
        with self._lock:
            taken, self._taken = self._taken, True
        return not taken

    def run(self) -> None:
        """Run the call here, keeping what it returned or raised (called by the thread that owns it);
        a cancelled call is not run."""
        if not self._take():
            return
        try:
            self._outcome = Value(self._fn())
        except BaseException as exc:  # handed to the caller's thread
            self._outcome = Raised(exc)
        finally:
            self._done.set()
        if self._on_end is not None:
            self._on_end(self)

    def cancel(self) -> bool:
        """Keep a call that has not started from ever starting (its outcome is then :class:`Cut`).
        False when it has started already: it runs on."""
        if not self._take():
            return False
        self._outcome = Cut(0.0)
        self._done.set()
        return True

    @property
    def done(self) -> bool:
        """Whether the call has ended (or was cancelled before it started)."""
        return self._done.is_set()

    def outcome(self, timeout: float | None = None) -> Outcome:
        """What the call came to, waiting at most ``timeout`` seconds (None: until it ends)."""
        wait = None if timeout is None else max(0.0, timeout)
        if self._done.wait(wait) and self._outcome is not None:
            return self._outcome
        return Cut(wait or 0.0)


def start(fn: Callable[[], Any], name: str = "regctl-call") -> Running:
    """Start ``fn()`` in its own daemon thread named ``name``."""
    running = Running(fn)
    threading.Thread(target=running.run, name=name, daemon=True).start()
    return running


def run_with_deadline(fn: Callable[[], Any], seconds: float, name: str = "regctl-call") -> Outcome:
    """``fn()``'s outcome, or :class:`Cut` when it has not finished within ``seconds``."""
    return start(fn, name).outcome(seconds)


@overload
def run_all(calls: Iterable[Callable[[], Any]], deadline: None = None, *,
            max_workers: int | None = None, name: str = "regctl-call") -> "list[Value[Any] | Raised]": ...


@overload
def run_all(calls: Iterable[Callable[[], Any]], deadline: float, *,
            max_workers: int | None = None, name: str = "regctl-call") -> list[Outcome]: ...


def run_all(calls: Iterable[Callable[[], Any]], deadline: float | None = None, *,
            max_workers: int | None = None, name: str = "regctl-call") -> Sequence[Outcome]:
    """Every call's outcome, in the order given, all waited for within one ``deadline`` (seconds; None: no limit).

    At most ``max_workers`` calls run at once (None: all of them). A call still
    running, or not started, when the deadline passes is :class:`Cut`; one not
    started by then never starts. Without a deadline nothing is cut.
    """
    calls = list(calls)
    if not calls:
        return []
    with Pool(len(calls) if max_workers is None else max_workers, name) as pool:
        # returned, cut or interrupted: leaving the pool keeps the calls not started from starting
        return _collect([pool.submit(fn) for fn in calls], deadline)


def _collect(jobs: Sequence[Running], deadline: float | None) -> list[Outcome]:
    if deadline is None:
        return [job.outcome() for job in jobs]
    end = time.monotonic() + deadline
    out: list[Outcome] = []
    for job in jobs:
        got = job.outcome(end - time.monotonic())
        out.append(Cut(deadline) if isinstance(got, Cut) else got)
    return out


class Pool:
    """At most ``max_workers`` calls at once, each in a daemon thread, for callers that take outcomes as
    calls end (:meth:`ended`) rather than all at the end (:func:`run_all`). Use it as a context manager:
    leaving it cancels the calls not started yet, and its idle threads end.
    """

    def __init__(self, max_workers: int, name: str = "regctl-call") -> None:
        self.max_workers = max(1, max_workers)
        self.name = name
        self._lock = threading.Lock()
        self._jobs: list[Running] = []
        self._todo: "queue.SimpleQueue[Running | None]" = queue.SimpleQueue()
        self._ended: "queue.SimpleQueue[Running]" = queue.SimpleQueue()
        self._workers = 0
        self._closed = False

    def __enter__(self) -> "Pool":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def submit(self, fn: Callable[[], Any]) -> Running:
        """Queue ``fn()``; it starts as soon as a worker is free."""
        job = Running(fn, on_end=self._ended.put)
        with self._lock:
            if self._closed:
                raise RuntimeError("the pool is closed")
            self._jobs.append(job)
            start_one = self._workers < self.max_workers
            self._workers += start_one
        self._todo.put(job)
        if start_one:
            threading.Thread(target=self._work, name=self.name, daemon=True).start()
        return job

    def ended(self, timeout: float | None = None) -> list[Running]:
        """The calls that ended since the last look, in the order they ended: waits at most ``timeout``
        seconds for the first (None: until one ends), so [] means none ended in that time."""
        try:
            out = [self._ended.get(timeout=None if timeout is None else max(0.0, timeout))]
        except queue.Empty:
            return []
        while True:
            try:
                out.append(self._ended.get_nowait())
            except queue.Empty:
                return out

    def close(self) -> None:
        """Cancel the calls not started; the ones running run on, abandoned, and their threads end after."""
        with self._lock:
            self._closed = True
            jobs, workers = list(self._jobs), self._workers
        for job in jobs:
            job.cancel()
        for _ in range(workers):
            self._todo.put(None)

    def _work(self) -> None:
        while True:
            job = self._todo.get()
            if job is None:
                return
            job.run()
