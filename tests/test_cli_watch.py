"""regctl watch: live events from ZooKeeper in every output mode, across lost connections and a
ZooKeeper restart."""

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from regctl.http.api import RegistryApi
from tests.conftest import free_port
from tests.helpers import assert_one_line_error, register, run_cli




def deregister(url, name, iid):
    with RegistryApi(url, timeout=5) as api:
        api.deregister(name, iid)


class Watch:
    """``regctl watch`` in a child process (as when piped into jq), lines collected as they come."""

    def __init__(self, env, *args):
        full = {**os.environ, **env}
        self.proc = subprocess.Popen([sys.executable, "-m", "regctl", "watch", *args], env=full,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     stdin=subprocess.DEVNULL)
        self.lines: list = []
        self._q: queue.Queue = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self):
        for line in self.proc.stdout:
            self._q.put(line.rstrip("\n"))
        self._q.put(None)

    def wait_for(self, pred, timeout=30.0, what="line"):
        deadline = time.monotonic() + timeout
        for line in self.lines:
            if pred(line):
                return line
        while time.monotonic() < deadline:
            try:
                line = self._q.get(timeout=0.2)
            except queue.Empty:
                continue
            if line is None:
                break
            self.lines.append(line)
            if pred(line):
                return line
        self.stop()
        raise AssertionError(f"no {what} within {timeout}s; got {self.lines!r}; stderr {self.proc.stderr.read()!r}")

    def event(self, kind, service=None, iid=None, timeout=30.0, **match):
        def pred(line):
            try:
                ev = json.loads(line)
            except ValueError:
                return False
            return ev.get("event") == kind and (service is None or ev.get("service") == service) \
                and (iid is None or ev.get("instance_id") == iid) and all(ev.get(k) == v for k, v in match.items())
        return json.loads(self.wait_for(pred, timeout, f"{kind} {service}/{iid} event"))

    def finish(self, timeout=30.0):
        code = self.proc.wait(timeout=timeout)
        rest = self.proc.stdout.read() if self.proc.stdout else ""
        while True:
            try:
                line = self._q.get(timeout=1)
            except queue.Empty:
                break
            if line is None:
                break
            self.lines.append(line)
        self.lines.extend(line for line in rest.splitlines() if line)
        return code, self.proc.stderr.read()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


@pytest.fixture
def watches():
    started = []

    def start(env, *args):
        w = Watch(env, *args)
        started.append(w)
        return w

    yield start
    for w in started:
        w.stop()


# --------------------------------------------------------------------------- basics

def test_needs_zookeeper(registry):
    line = assert_one_line_error(run_cli("watch", "--for", "1", env={"CONFIG_SERVICE_URL": registry.url}), 2)
    assert "ZooKeeper" in line


def test_unreachable_zookeeper_fails_loudly():
    res = run_cli("watch", "--for", "5", "--zk", f"127.0.0.1:{free_port()}", "--timeout", "1")
    assert_one_line_error(res, 3)


def test_yaml_is_refused(registry):
    assert_one_line_error(run_cli("watch", "-o", "yaml", "--for", "1", env=registry.env), 2)


def test_json_lines_added_and_removed(registry, watches):
    w = watches(registry.env, "-o", "json", "--for", "60", "--count", "2")
    start = w.event("resync", reason="start")
    assert start["instances"] >= 1  # the registry's own config-service instance
    register(registry.url, "asr-service", "asr-1", health=None)
    added = w.event("added", "asr-service", "asr-1")
    assert added["service_url"] == "http://asr-service.test:8090" and added["status"] == "healthy"
    assert added["time"].endswith("Z")
    deregister(registry.url, "asr-service", "asr-1")
    w.event("removed", "asr-service", "asr-1")
    code, err = w.finish()
    assert code == 0, err
    assert all(json.loads(line) for line in w.lines)  # every line is one JSON object


def test_default_output_off_a_terminal_is_json_lines(registry, watches):
    w = watches(registry.env, "--for", "60", "--count", "1", "asr-service")
    w.event("resync", reason="start")
    register(registry.url, "other-service", "o-1", health=None)  # filtered out by NAME
    register(registry.url, "asr-service", "asr-9", health=None)
    w.event("added", "asr-service", "asr-9")
    code, err = w.finish()
    assert code == 0, err
    assert not any("other-service" in line for line in w.lines)


def test_changed_event_lists_what_changed(registry, watches):
    register(registry.url, "asr-service", "asr-1", url="http://a:1", health=None)
    w = watches(registry.env, "-o", "json", "--for", "60", "--count", "1")
    w.event("resync", reason="start")
    register(registry.url, "asr-service", "asr-1", url="http://a:2", health=None)
    ev = w.event("changed", "asr-service", "asr-1")
    assert ev["changes"]["service_url"] == ["http://a:1", "http://a:2"]
    assert w.finish()[0] == 0


def test_table_mode_off_a_terminal_prints_plain_lines(registry, watches):
    w = watches(registry.env, "-o", "table", "--for", "60", "--count", "2")
    w.wait_for(lambda line: " RESYNC start" in line, what="RESYNC line")
    register(registry.url, "audit-service", "audit-1", health=None)
    line = w.wait_for(lambda line: " ADDED audit-service/audit-1 " in line, what="ADDED line")
    assert "http://audit-service.test:8090 healthy" in line
    deregister(registry.url, "audit-service", "audit-1")
    w.wait_for(lambda line: " REMOVED audit-service/audit-1 " in line, what="REMOVED line")
    code, err = w.finish()
    assert code == 0, err
    assert not any(line.startswith("{") for line in w.lines)


def test_initial_lists_what_is_live_and_for_ends_it(registry):
    register(registry.url, "asr-service", "asr-1", health=None)
    res = run_cli("watch", "-o", "json", "--for", "1", "--initial", env=registry.env)
    assert res.exit_code == 0, res
    events = [json.loads(line) for line in res.stdout.splitlines()]
    initial = {(e["service"], e["instance_id"]) for e in events if e["event"] == "added" and e.get("initial")}
    assert ("asr-service", "asr-1") in initial and ("config-service", "config-service-1") in initial


def test_count_not_reached_is_exit_1(registry):
    res = run_cli("watch", "-o", "json", "--for", "1", "--count", "1", env=registry.env)
    assert_one_line_error(res, 1)


def test_ctrl_c_exits_0(registry, watches):
    w = watches(registry.env, "-o", "json")
    w.event("resync", reason="start")
    w.proc.send_signal(signal.SIGINT)
    code, err = w.finish()
    assert code == 0, err
    assert "Traceback" not in err


# --------------------------------------------------------------------------- connection loss

class Proxy:
    """A TCP proxy to ZooKeeper that can be cut (connections dropped, new ones refused) and restored."""

    def __init__(self, target_port: int) -> None:
        self.target = ("127.0.0.1", target_port)
        self.port = free_port()
        self.conns: list = []
        self.lock = threading.Lock()
        self.server = None
        self.restore()

    def restore(self) -> None:
        srv = socket.socket()
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("127.0.0.1", self.port))
        srv.listen(16)
        self.server = srv
        threading.Thread(target=self._accept, args=(srv,), daemon=True).start()

    def _accept(self, srv) -> None:
        while True:
            try:
                client, _ = srv.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src, dst) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.close()
            except OSError:
                pass

    def cut(self) -> None:
        try:
            self.server.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept()
        except OSError:
            pass
        self.server.close()
        with self.lock:
            for s in self.conns:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                    s.close()
                except OSError:
                    pass
            self.conns = []

    @property
    def hosts(self) -> str:
        return f"127.0.0.1:{self.port}"


def test_lost_connection_reports_the_gap_and_what_changed_during_it(zk_server, make_registry, watches):
    reg = make_registry()
    register(reg.url, "asr-service", "asr-1", health=None)
    register(reg.url, "asr-service", "asr-2", url="http://old:1", health=None)
    proxy = Proxy(zk_server.port)
    try:
        w = watches({**reg.env, "ZOOKEEPER_HOSTS": proxy.hosts}, "-o", "json", "--timeout", "5")
        w.event("resync", reason="start", instances=3)
        proxy.cut()
        w.event("disconnected")
        # changes the watcher cannot see: the registry's own connection is direct
        register(reg.url, "tts-service", "tts-1", health=None)
        deregister(reg.url, "asr-service", "asr-1")
        register(reg.url, "asr-service", "asr-2", url="http://new:1", health=None)
        time.sleep(1.0)
        proxy.restore()
        back = w.event("reconnected", timeout=30)
        assert back["gap_seconds"] >= 1.0 and back["session"] in ("same", "new")
        assert w.event("added", "tts-service", "tts-1")["during_gap"] is True
        assert w.event("removed", "asr-service", "asr-1")["during_gap"] is True
        changed = w.event("changed", "asr-service", "asr-2")
        assert changed["during_gap"] is True and changed["changes"]["service_url"] == ["http://old:1", "http://new:1"]
        resync = w.event("resync", reason="reconnect")
        assert (resync["added_during_gap"], resync["removed_during_gap"], resync["changed_during_gap"]) == (1, 1, 1)
        # and it keeps watching afterwards
        register(reg.url, "nmt-service", "nmt-1", health=None)
        assert w.event("added", "nmt-service", "nmt-1").get("during_gap") is None
        w.proc.send_signal(signal.SIGINT)
        assert w.finish()[0] == 0
    finally:
        proxy.cut()


@pytest.mark.slow
def test_keeps_going_across_a_zookeeper_restart(tmp_path, watches):
    from regctl.sandbox import zookeeper as zk
    from regctl.sandbox.registry.server import Identity, RegistryServer

    install = zk.find_zookeeper()
    port = free_port()
    members = zk.start_zookeeper(tmp_path / "zk", port, 1, install=install)
    server = None
    try:
        zk.wait_for(members, timeout=60)
        hosts = members[0].hosts
        server = RegistryServer(zk_hosts=hosts, base_path="/restart/services", identity=Identity(self_url=None)).start()
        env = {"CONFIG_SERVICE_URL": server.url, "ZOOKEEPER_HOSTS": hosts, "ZOOKEEPER_BASE_PATH": "/restart/services"}
        w = watches(env, "-o", "json", "--timeout", "5")
        w.event("resync", reason="start")
        register(server.url, "asr-service", "before-1", health=None)
        w.event("added", "asr-service", "before-1")

        zk.stop_zookeeper(members)
        w.event("disconnected", timeout=30)
        members = zk.start_zookeeper(tmp_path / "zk", port, 1, install=install)
        zk.wait_for(members, timeout=60)
        w.event("reconnected", timeout=60)
        w.event("resync", reason="reconnect", timeout=30)

        register(server.url, "asr-service", "after-1", tries=40, health=None)
        w.event("added", "asr-service", "after-1", timeout=30)
        deregister(server.url, "asr-service", "after-1")
        w.event("removed", "asr-service", "after-1", timeout=30)
        w.proc.send_signal(signal.SIGINT)
        code, err = w.finish()
        assert code == 0, err
    finally:
        if server is not None:
            server.stop()
        zk.stop_zookeeper(members)
