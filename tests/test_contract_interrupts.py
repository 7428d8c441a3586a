"""Ctrl-C: every command exits 130 at once, with no traceback (``watch``: 0, its normal end).

Real child processes get a real SIGINT while they are busy: waiting on a registry
that answers after 10 s, on a health endpoint that never answers, on a service that
never appears, in the middle of a deregistration batch.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from regctl.http.api import RegistryApi
from tests.helpers import register

pytestmark = pytest.mark.slow

PROMPT = 5.0  # seconds allowed between the signal and the exit


class Child:
    def __init__(self, args, env):
        self.proc = subprocess.Popen([sys.executable, "-m", "regctl", *args], env={**os.environ, **env},
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                     text=True)

    def interrupt(self):
        assert self.proc.poll() is None, self.proc.communicate()
        sent = time.monotonic()
        self.proc.send_signal(signal.SIGINT)
        try:
            out, err = self.proc.communicate(timeout=30)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
        return self.proc.returncode, out, err, time.monotonic() - sent


def assert_interrupted(code, out, err, elapsed, expected=130):
    assert code == expected, (code, out, err)
    assert "Traceback" not in err, err
    assert elapsed < PROMPT, (elapsed, err)
    assert not [l for l in err.splitlines() if l.startswith("regctl: error:")], err


@pytest.fixture
def hanging_server():
    """Accepts connections and never answers; ``.accepted`` is set once a client connected."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    accepted = threading.Event()
    held = []
    stop = threading.Event()

    def serve():
        sock.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
            except OSError:
                continue
            held.append(conn)
            accepted.set()

    t = threading.Thread(target=serve, daemon=True)
    t.start()

    class H:
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"

    H.accepted = accepted
    try:
        yield H
    finally:
        stop.set()
        t.join(2)
        for c in held:
            c.close()
        sock.close()




def wait_busy(server, requests_before: int, timeout: float = 15.0) -> None:
    """Until the (delayed) registry has received a request from the child."""
    deadline = time.monotonic() + timeout
    while server.requests <= requests_before:
        assert time.monotonic() < deadline, "the child never reached the registry"
        time.sleep(0.05)
    time.sleep(0.3)


@pytest.fixture
def slow_registry(make_registry):
    """A registry that counts requests; set ``.server.simulate["delay"]`` to slow it down."""
    from regctl.sandbox.registry import http as registry_http
    reg = make_registry(cache_ttl=0)
    reg.server.requests = 0
    original = registry_http.Handler.handle_one_request

    def counting(handler):
        if getattr(handler, "registry", None) is reg.server:
            reg.server.requests += 1
        return original(handler)

    registry_http.Handler.handle_one_request = counting
    try:
        yield reg
    finally:
        registry_http.Handler.handle_one_request = original


@pytest.mark.parametrize("args", [
    ("list",),
    ("list", "--source", "api"),
    ("inspect", "asr-service"),
    ("url", "asr-service"),
    ("discover", "asr-service"),
    ("health", "asr-service", "--server"),
    ("doctor",),
], ids=lambda a: " ".join(a))
def test_ctrl_c_while_the_registry_stalls(slow_registry, args):
    register(slow_registry.url, "asr-service", "asr-1", health=None)
    slow_registry.server.simulate["delay"] = 10
    before = slow_registry.server.requests
    child = Child([*args, "--timeout", "30"], slow_registry.env)
    wait_busy(slow_registry.server, before)
    assert_interrupted(*child.interrupt())


def test_ctrl_c_while_probing_a_health_endpoint_that_never_answers(registry, hanging_server):
    register(registry.url, "asr-service", "asr-1", health=hanging_server.url + "/health")
    child = Child(["health", "asr-service", "--timeout", "30"], registry.env)
    assert hanging_server.accepted.wait(15), child.proc.communicate(timeout=5)
    time.sleep(0.3)
    assert_interrupted(*child.interrupt())


def test_ctrl_c_while_the_config_service_never_answers(hanging_server):
    child = Child(["list", "--source", "api", "--timeout", "30"], {"CONFIG_SERVICE_URL": hanging_server.url})
    assert hanging_server.accepted.wait(15)
    time.sleep(0.3)
    assert_interrupted(*child.interrupt())


@pytest.mark.parametrize("zk", [True, False], ids=["zookeeper-watch", "api-polling"])
def test_ctrl_c_while_waiting_for_a_service(registry, zk):
    env = registry.env if zk else {"CONFIG_SERVICE_URL": registry.url}
    child = Child(["wait", "never-there", "--timeout", "30"], env)
    time.sleep(2.5)
    assert_interrupted(*child.interrupt())


def test_ctrl_c_ends_watch_normally(registry):
    child = Child(["watch", "-o", "json", "--timeout", "5"], registry.env)
    deadline = time.monotonic() + 15
    line = child.proc.stdout.readline()  # the start resync: it is watching
    assert '"resync"' in line and time.monotonic() < deadline
    assert_interrupted(*child.interrupt(), expected=0)


def test_ctrl_c_in_the_middle_of_a_deregister_batch(slow_registry):
    for iid in ("a-1", "a-2", "a-3", "a-4"):
        register(slow_registry.url, "svc", iid, health=None)
    slow_registry.server.simulate["delay"] = 1.2
    before = slow_registry.server.requests
    child = Child(["deregister", "svc", "a-1", "a-2", "a-3", "a-4", "--yes", "--timeout", "10", "-o", "json"],
                  slow_registry.env)
    # the plan reads ZooKeeper (no HTTP); the first POST /deregister takes 1.2 s, the second is in flight at ~1.9 s
    wait_busy(slow_registry.server, before)
    time.sleep(1.6)
    code, out, err, elapsed = child.interrupt()
    assert code == 130, (code, out, err)
    assert "Traceback" not in err
    assert elapsed < PROMPT + 3  # the check of what was removed reads ZooKeeper (bounded)
    import json

    doc = json.loads(out)
    results = {r["instance_id"]: r["result"] for r in doc["results"]}
    assert doc["interrupted"] is True
    assert results["a-1"] == "removed", results
    assert results["a-4"] == "not-attempted", results
    assert set(results.values()) <= {"removed", "still-present", "not-attempted", "interrupted"}
    (line,) = [l for l in err.splitlines() if "interrupted: removed" in l]
    removed = [i for i, r in results.items() if r == "removed"]
    assert ("removed " + ", ".join(removed)) in line
    # what the report says is what ZooKeeper holds
    slow_registry.server.simulate["delay"] = 0
    with RegistryApi(slow_registry.url, timeout=10) as api:
        live = {i.instance_id for i in api.instances("svc")}
    assert live == {i for i, r in results.items() if r != "removed"}


def test_ctrl_c_in_health_all_shows_what_was_probed_marked_partial(registry, hanging_server, tmp_path):
    from regctl.sandbox.proc import free_port

    refused = f"http://127.0.0.1:{free_port()}"
    register(registry.url, "gone-service", "gone-1", health=refused + "/health")
    for i in range(3):
        register(registry.url, "stuck-service", f"stuck-{i}", health=hanging_server.url + "/health")
    child = Child(["health", "--all", "--timeout", "30"], registry.env)
    assert hanging_server.accepted.wait(15), child.proc.communicate(timeout=5)
    time.sleep(1.0)  # the refused probe has its answer by now; the hanging ones never will
    code, out, err, elapsed = child.interrupt()
    assert_interrupted(code, out, err, elapsed)
    assert "gone-1" in out, (out, err)  # what was probed is shown
    assert "stuck-" not in out, (out, err)  # nothing is shown that was not observed
    assert "partial results" in err and "instance(s) probed before Ctrl-C" in err, err
