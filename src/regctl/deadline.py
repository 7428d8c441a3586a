"""Run calls in daemon threads and stop waiting for them at a deadline.

The one way regctl runs blocking work concurrently or under a time limit
(asyncio stays for the health probes' fan-out). Each call's outcome is typed:

* :class:`Value`, what it returned;
* :class:`Raised`, the exception it raised (handed over, never raised here);
* :class:`Cut`, it had not finished when the caller stopped waiting.

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

    def __init__(self, fn: Callable[[], Any]) -> None:
        self._fn = fn
        self._done = threading.Event()
        self._outcome: "Value[Any] | Raised | None" = None

    def run(self) -> None:
        """Run the call here, keeping what it returned or raised (called by the thread that owns it)."""
        try:
            self._outcome = Value(self._fn())
        except BaseException as exc:  # handed to the caller's thread
            self._outcome = Raised(exc)
        finally:
            self._done.set()

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
    jobs = [Running(fn) for fn in calls]
    if not jobs:
        return []
    workers = len(jobs) if max_workers is None else max(1, min(max_workers, len(jobs)))
    todo: "queue.SimpleQueue[Running]" = queue.SimpleQueue()
    for job in jobs:
        todo.put(job)
    abandoned = threading.Event()

    def worker() -> None:
        while not abandoned.is_set():
            try:
                job = todo.get_nowait()
            except queue.Empty:
                return
            job.run()

    for _ in range(workers):
        threading.Thread(target=worker, name=name, daemon=True).start()
    try:
        return _collect(jobs, deadline)
    finally:
        abandoned.set()  # returned, cut or interrupted: the calls still queued are not started


def _collect(jobs: Sequence[Running], deadline: float | None) -> list[Outcome]:
    if deadline is None:
        return [job.outcome() for job in jobs]
    end = time.monotonic() + deadline
    out: list[Outcome] = []
    for job in jobs:
        got = job.outcome(end - time.monotonic())
        out.append(Cut(deadline) if isinstance(got, Cut) else got)
    return out
