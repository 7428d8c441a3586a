"""regctl.deadline: calls run in daemon threads, each outcome typed (value, raised, cut), order kept."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading

import pytest

from regctl.deadline import Cut, Pool, Raised, Value, run_all, run_with_deadline, start


@pytest.fixture
def gate():
    """An event the test's blocked calls wait on; set at the end so no thread outlives the test for long."""
    event = threading.Event()
    yield event
    event.set()


def test_a_value_comes_back_as_value():
    assert run_with_deadline(lambda: 42, 30) == Value(42)


def test_a_raised_exception_is_handed_over_not_raised():
    boom = ValueError("boom")

    def fail():
        raise boom

    got = run_with_deadline(fail, 30)
    assert isinstance(got, Raised) and got.error is boom


def test_a_call_still_running_at_the_deadline_is_cut(gate):
    got = run_with_deadline(gate.wait, 0.05)
    assert got == Cut(0.05)


def test_run_all_keeps_the_order_given_whatever_order_the_calls_end_in():
    # each call waits for the next one to end: they end last to first
    ended = [threading.Event() for _ in range(5)]

    def call(i):
        def fn():
            if i + 1 < len(ended):
                assert ended[i + 1].wait(30)
            ended[i].set()
            if i == 2:
                raise KeyError(i)
            return i
        return fn

    got = run_all([call(i) for i in range(5)])
    assert [type(g) for g in got] == [Value, Value, Raised, Value, Value]
    assert [g.value for g in got if isinstance(g, Value)] == [0, 1, 3, 4]
    assert isinstance(got[2], Raised) and got[2].error.args == (2,)


def test_run_all_cuts_only_the_calls_still_running_at_its_deadline(gate):
    got = run_all([lambda: "quick", gate.wait, lambda: 1 / 0], 0.2)
    assert got[0] == Value("quick")
    assert got[1] == Cut(0.2)
    assert isinstance(got[2], Raised) and isinstance(got[2].error, ZeroDivisionError)


def test_run_all_of_nothing_is_nothing():
    assert run_all([]) == []
    assert run_all([], 1.0) == []


def test_run_all_runs_at_most_max_workers_at_once():
    # a barrier of two: the calls only pass it two at a time, so with two workers they all pass,
    # and any third call running at once would show in the peak
    barrier = threading.Barrier(2, timeout=30)
    lock = threading.Lock()
    active = peak = 0

    def call():
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        try:
            barrier.wait()
        finally:
            with lock:
                active -= 1
        return "ok"

    got = run_all([call] * 8, max_workers=2)
    assert got == [Value("ok")] * 8
    assert peak == 2


def test_a_call_not_started_by_the_deadline_never_starts(gate):
    started = []

    def second():
        started.append("second")

    got = run_all([gate.wait, second], 0.05, max_workers=1, name="regctl-test-one-worker")
    assert got == [Cut(0.05), Cut(0.05)]
    gate.set()  # the worker is free now: it must not take the abandoned call
    for t in [t for t in threading.enumerate() if t.name == "regctl-test-one-worker"]:
        t.join(30)
        assert not t.is_alive()
    assert started == []


def test_start_hands_back_a_call_to_wait_for_as_long_as_the_caller_chooses(gate):
    job = start(gate.wait, name="regctl-test-start")
    assert job.outcome(0.01) == Cut(0.01)
    gate.set()
    assert job.outcome() == Value(True)


def test_a_pool_tells_which_calls_ended_as_they_end(gate):
    second_may_end = threading.Event()
    with Pool(4, name="regctl-test-pool") as pool:
        slow = pool.submit(gate.wait)
        first = pool.submit(lambda: "first")
        second = pool.submit(lambda: second_may_end.wait(30) and "second")
        assert pool.ended(30) == [first]
        assert pool.ended(0.01) == []  # nothing else ended in that time
        second_may_end.set()
        assert pool.ended(30) == [second]
        assert second.outcome() == Value("second") and first.done and not slow.done
    assert slow.outcome(0) == Cut(0)  # abandoned, still running


def test_leaving_a_pool_cancels_the_calls_not_started(gate):
    ran = []
    with Pool(1, name="regctl-test-pool-one") as pool:
        busy = pool.submit(gate.wait)
        waiting = [pool.submit(lambda i=i: ran.append(i)) for i in range(3)]
        assert not waiting[0].done
        assert waiting[0].cancel() is True  # not started: it never will
        assert waiting[0].cancel() is False  # only once
    assert busy.cancel() is False  # started: it runs on
    assert all(isinstance(w.outcome(30), Cut) for w in waiting)
    gate.set()
    assert busy.outcome(30) == Value(True)
    for t in [t for t in threading.enumerate() if t.name == "regctl-test-pool-one"]:
        t.join(30)
        assert not t.is_alive()  # its worker ended once the pool was left and the call it ran was done
    assert ran == []
    with pytest.raises(RuntimeError):
        pool.submit(lambda: None)


def test_an_abandoned_call_neither_delays_the_return_nor_holds_the_process_open():
    # the process prints the cut outcome and exits although its call would block forever
    code = ("import threading\n"
            "from regctl.deadline import run_all, run_with_deadline\n"
            "print(run_with_deadline(threading.Event().wait, 0.05))\n"
            "print(run_all([threading.Event().wait], 0.05))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["Cut(after=0.05)", "[Cut(after=0.05)]"]


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread() or not hasattr(signal, "pthread_kill"),
                    reason="needs the main thread and POSIX signals")
def test_ctrl_c_interrupts_the_caller_waiting_for_a_call(gate):
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    main = threading.main_thread().ident
    timer = threading.Timer(0.1, signal.pthread_kill, args=(main, signal.SIGINT))
    try:
        timer.start()
        with pytest.raises(KeyboardInterrupt):
            run_all([gate.wait, gate.wait], 120)
    finally:
        timer.cancel()
        signal.signal(signal.SIGINT, previous)
