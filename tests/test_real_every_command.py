"""Every read and write command against the real Config Service, both generations: right, or "could not check".

Healthy first (url, discover, health, wait, watch, export, deregister), then with Redis
stopped and with PostgreSQL stopped: no absence and no success that was not observed;
reads exit 3 naming what failed; a write the API answered 500 is reported from ZooKeeper.
"""

from __future__ import annotations

import http.server
import json
import threading

import pytest

from tests.helpers import register, run_cli
from tests.realservice import PgCluster


@pytest.fixture
def health_server():
    """An instance's health endpoint on loopback: 200 on /health."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            body = b'{"status": "ok"}'
            self.send_response(200 if self.path == "/health" else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}"
    finally:
        srv.shutdown()
        srv.server_close()




def _node_exists(cs, service: str, iid: str) -> bool:
    from kazoo.client import KazooClient

    zk = KazooClient(hosts=cs.zk_hosts, timeout=10)
    zk.start(timeout=10)
    try:
        return zk.exists(f"{cs.base_path}/{service}/instances/{iid}") is not None
    finally:
        zk.stop()
        zk.close()


@pytest.mark.parametrize("generation", ["earlier", "later"])
def test_every_command_healthy_then_redis_down(make_real_service, health_server, tmp_path, generation):
    cs = make_real_service(generation, session_timeout=8)
    env = cs.env
    for i in (1, 2):
        register(cs, "asr-service", f"asr-{i}", url=health_server)

    r = run_cli("url", "asr-service", "--verify", env=env)
    assert r.exit_code == 0 and r.stdout.strip() == health_server, r
    r = run_cli("discover", "asr-service", "-o", "json", env=env)
    assert r.exit_code == 0 and {i["instance_id"] for i in r.json["instances"]} == {"asr-1", "asr-2"}, r
    r = run_cli("health", "asr-service", "-o", "json", env=env)
    assert r.exit_code == 0, r
    r = run_cli("wait", "asr-service", "--min", "2", "--healthy", "--timeout", "10", env=env)
    assert r.exit_code == 0, r
    r = run_cli("url", "nobody-service", env=env)
    assert r.exit_code == 1, r  # observed: the API answered 404 "No healthy instances found"
    backup = tmp_path / "b.yaml"
    r = run_cli("export", "-f", backup, env=env)
    assert r.exit_code == 0, r
    assert "asr-2" in backup.read_text()
    r = run_cli("deregister", "asr-service", "asr-2", "--dry-run", env=env)
    assert r.exit_code == 0 and _node_exists(cs, "asr-service", "asr-2"), r
    r = run_cli("deregister", "asr-service", "asr-2", "--yes", env=env)
    assert r.exit_code == 0 and not _node_exists(cs, "asr-service", "asr-2"), r
    r = run_cli("watch", "--initial", "--for", "1", "-o", "json", env=env)
    assert r.exit_code == 0, r
    events = [json.loads(l) for l in r.stdout.splitlines() if l.strip()]
    added = [e for e in events if e.get("event") == "added"]
    assert {(e["service"], e["instance_id"]) for e in added} >= {("asr-service", "asr-1")}, r

    # Redis down: every per-service read is a 500 on the real service
    cs.redis.stop()
    for args in (("url", "asr-service"), ("discover", "asr-service"), ("inspect", "asr-service", "--source", "api")):
        r = run_cli(*args, env=env)
        assert r.exit_code == 3, (args, r)
        assert "500" in r.stderr and "asr-service" in r.stderr, (args, r)
        absences = ("no live", "no instance", "not registered", "0 instances", "no healthy")
        assert not any(a in r.stdout.lower() for a in absences), (args, r)  # no absence printed
    r = run_cli("wait", "asr-service", "--min", "1", "--healthy", "--timeout", "3", env=env)
    # the gate's question is answered: not discoverable, because /url itself fails (documented)
    assert r.exit_code == 1 and "/url fails" in r.stderr and "500" in r.stderr, r
    # a register answered 500 after the node was written: reported live from ZooKeeper
    r = run_cli("register", "--name", "asr-service", "--url", health_server, "--instance-id", "asr-3", env=env)
    assert _node_exists(cs, "asr-service", "asr-3")
    assert r.exit_code == 0 and "ZooKeeper" in r.stderr + r.stdout, r
    # a deregister answered 500 after the node was deleted: reported from ZooKeeper
    r = run_cli("deregister", "asr-service", "asr-1", "--yes", "-o", "json", env=env)
    assert not _node_exists(cs, "asr-service", "asr-1")
    assert r.exit_code == 0, r
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("generation", ["earlier", "later"])
def test_writes_with_postgres_down_are_reported_from_zookeeper(make_real_service, health_server, generation):
    pg = PgCluster()
    pg.start()
    try:
        cs = make_real_service(generation, session_timeout=8, pg=pg)
        env = cs.env
        register(cs, "tts-service", "tts-1", url=health_server)
        pg.stop()
        # register: the node is created, then the row fails: 500 with the instance live
        r = run_cli("register", "--name", "tts-service", "--url", health_server, "--instance-id", "tts-2",
                    "-o", "json", env=env)
        assert _node_exists(cs, "tts-service", "tts-2")
        assert r.exit_code == 0, r
        assert "ZooKeeper" in r.stderr + r.stdout, r
        # per-service reads still work without PostgreSQL
        r = run_cli("discover", "tts-service", "-o", "json", env=env)
        assert r.exit_code == 0 and {i["instance_id"] for i in r.json["instances"]} >= {"tts-1", "tts-2"}, r
        # deregister: node deleted, then the row fails: 500 with the node gone
        r = run_cli("deregister", "tts-service", "tts-1", "--yes", env=env)
        assert not _node_exists(cs, "tts-service", "tts-1")
        assert r.exit_code == 0, r
        # the services list comes from the database: could not check
        r = run_cli("list", "--source", "api", env=env)
        assert r.exit_code == 3 and "500" in r.stderr, r
    finally:
        pg.destroy()
