"""``regctl doctor`` against the real Config Service, both generations: the cause it names is the one broken.

One started service per generation is shared by the healthy-state assertions (fresh, then with
registrations) and by Redis down (Redis is started again afterwards). PostgreSQL down runs on a
cluster of its own; a crash-restart and a pause longer than the session each get their service.
Every failure must exit 1 with the cause failing; nothing may pass on evidence nobody observed.
"""

from __future__ import annotations

import os
import signal

import httpx
import pytest

from tests import realservice as rs
from tests.helpers import register, run_cli

GENERATIONS = ["earlier", "later"]


@pytest.fixture(scope="module")
def answering(real_equipment):
    """An instance's health endpoint on loopback (200 on /health), for the whole module."""
    import http.server
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_response(200 if self.path == "/health" else 404)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}"
    finally:
        srv.shutdown()
        srv.server_close()


@pytest.fixture(scope="module", params=GENERATIONS)
def shared(request, real_equipment, pg_cluster, zk_srvr_only, tmp_path_factory):
    """One real Config Service per generation for this module (8 s session)."""
    cs = rs.ConfigService(request.param, zk_srvr_only.hosts, pg_cluster,
                          tmp_path_factory.mktemp(f"real-doctor-{request.param}"), session_timeout=8)
    try:
        cs.start()
        yield cs
    finally:
        cs.close()




def doctor(cs, *args, container: str | None = None):
    env = dict(cs.env)
    if container is not None:
        env["REGCTL_DOCTOR_IN_CONTAINER"] = container
    return run_cli("doctor", *args, "-o", "json", env=env)


def rows(res) -> dict:
    out: dict = {}
    for r in res.json["checks"]:
        out.setdefault(r["name"], []).append(r)
    return out


def one(res, name: str) -> dict:
    (row,) = rows(res)[name]
    return row


def hints(res) -> str:
    return " ".join(r["hint"] or "" for r in res.json["checks"])


def failing(res) -> list:
    return [r["name"] for r in res.json["checks"] if r["status"] == "fail"]


def no_unobserved_pass(res) -> None:
    """A cause row passes only on what was observed: never on a component /health did not report."""
    for r in res.json["checks"]:
        if r["name"].startswith("cause.") and r["status"] == "pass":
            assert "not reported" not in r["finding"], r


# --------------------------------------------------------------------------- healthy


def test_a_healthy_deployment_fresh_then_in_use_passes_and_never_blames_itself(shared, answering):
    for container in ("1", "0"):  # a name resolving only inside Docker: checked here either way
        res = doctor(shared, "--all", container=container)
        assert res.exit_code == 0, (container, failing(res), res)
        assert one(res, "cause.restart")["status"] == "pass"
        assert "deregister config-service" not in hints(res)
        no_unobserved_pass(res)
    stale = rows(res)["hygiene.stale-rows"]
    if shared.generation == "later":  # a dozen seeded rows: one passing summary, no warning each
        (summary,) = [r for r in stale if r["target"] == "seeded"]
        assert len(summary["details"]["seeded"]) >= 10 and summary["status"] == "pass"
    assert all(r["status"] == "pass" for r in stale), stale

    for i in (1, 2):
        register(shared, "asr-service", f"asr-{i}", url=answering)  # a seeded name on the later generation
    register(shared, "foo-service", "foo-1", url=answering)
    for container in ("1", "0"):
        res = doctor(shared, "--all", container=container)
        assert res.exit_code == 0, (container, failing(res), res)
        assert "deregister config-service" not in hints(res)
        assert {r["status"] for r in rows(res)["hygiene.zombies"]} == {"pass"}
        assert {one(res, c)["status"] for c in ("cause.redis", "cause.postgres", "cause.restart")} == {"pass"}


def test_redis_down_is_named_from_the_apis_answers(shared, answering):
    register(shared, "asr-service", "asr-1", url=answering)
    shared.redis.stop()
    try:
        assert httpx.get(shared.url + "/health", timeout=10).json() == {"detail": "Service unhealthy"}
        res = doctor(shared, "--service", "asr-service")
        assert res.exit_code == 1, res
        redis = one(res, "cause.redis")
        assert redis["status"] == "fail" and "Redis is down" in redis["finding"] and "500" in redis["finding"]
        assert redis["hint"].startswith("restart or fix Redis")
        assert one(res, "cause.postgres")["status"] == "pass"  # GET /services answered: observed
        assert one(res, "cause.zk-client")["status"] == "skip"  # a bare 503 says nothing of ZooKeeper
        assert one(res, "config.health")["details"]["explained_by"] == "cause.redis"
        assert failing(res) == ["cause.redis"], failing(res)
        no_unobserved_pass(res)
        everything = doctor(shared, "--all")
        assert everything.exit_code == 1 and one(everything, "cause.redis")["status"] == "fail"
    finally:
        shared.redis.start()
    rs.wait_until(lambda: httpx.get(shared.api + "/services/asr-service", timeout=10).status_code == 200, 20,
                  what="the real service reads through Redis again")


# --------------------------------------------------------------------------- PostgreSQL down


@pytest.fixture(scope="module")
def stoppable_pg(real_equipment):
    """A PostgreSQL cluster of this module's own: its tests stop it."""
    pg = rs.PgCluster()
    try:
        yield pg
    finally:
        pg.destroy()


@pytest.mark.parametrize("generation", GENERATIONS)
def test_postgres_down_fails_the_run(make_real_service, stoppable_pg, answering, generation):
    if not stoppable_pg.running:
        stoppable_pg.start()
    cs = make_real_service(generation, session_timeout=8, pg=stoppable_pg)
    register(cs, "asr-service", "asr-1", url=answering)
    stoppable_pg.stop()
    res = doctor(cs, "--service", "asr-service")
    assert res.exit_code == 1, res
    pg = one(res, "cause.postgres")
    assert pg["status"] == "fail" and "PostgreSQL is down" in pg["finding"]
    assert "GET /services answers 500" in pg["finding"] and "fix PostgreSQL" in pg["hint"]
    assert one(res, "cause.redis")["status"] == "pass"  # a per-service read answered: observed
    assert one(res, "config.health")["details"]["explained_by"] == "cause.postgres"
    assert failing(res) == ["cause.postgres"], failing(res)
    no_unobserved_pass(res)


# --------------------------------------------------------------------------- the session lost


def assert_everything_gone(res, lost: set) -> None:
    """cause.restart fails saying every instance went with the session, or is explained by a failing
    cause.zk-client (after a pause the earlier generation's kazoo client may give up for good)."""
    assert res.exit_code == 1, res
    row = one(res, "cause.restart")
    root = row["details"].get("explained_by")
    status = row["details"]["status_before"] if root else row["status"]
    assert status == "fail", "\n".join(f"{r['name']} {r['status']} {r['finding'][:200]}" for r in res.json["checks"]
                                       if r["status"] != "pass")
    if root:
        assert root == "cause.zk-client" and one(res, root)["status"] == "fail", row
        assert "restart the Config Service" in one(res, root)["hint"] and "regctl import FILE" in one(res, root)["hint"]
    else:
        assert "regctl import FILE" in row["hint"]
    assert "every instance is gone" in row["finding"] and "its own node is gone" in row["finding"]
    assert lost <= set(row["details"]["lost"]), row
    assert "--zk-base" not in hints(res)


@pytest.mark.parametrize("generation", GENERATIONS)
def test_a_crash_restart_then_the_old_session_expiring(make_real_service, answering, generation):
    cs = make_real_service(generation, session_timeout=8)
    for i in (1, 2):
        register(cs, "asr-service", f"asr-{i}", url=answering)
    register(cs, "foo-service", "foo-1", url=answering)
    cs.kill9()
    cs.start()
    res = doctor(cs, "--all")  # before the expiry: every node, its own included, is the dead session's
    assert res.exit_code == 1, res
    row = one(res, "cause.restart")
    assert row["status"] == "fail" and "rewritten in place" in row["finding"], row
    assert "3 instance(s) of 2 service(s)" in row["finding"] and "import now" in row["hint"]
    rs.wait_until(lambda: not cs.self_registered(), 60, what="the old session expired")
    res = doctor(cs, "--all")
    assert_everything_gone(res, {"asr-service", "foo-service"})
    stale = {r["target"]: r for r in rows(res)["hygiene.stale-rows"]}
    assert {stale[n]["details"].get("explained_by") for n in ("asr-service", "foo-service")} == {"cause.restart"}
    if generation == "later":  # seeded rows never had an instance: not counted as lost
        assert not {"llm-service", "nmt-service"} & set(one(res, "cause.restart")["details"]["lost"])
    plain = doctor(cs)
    assert_everything_gone(plain, {"asr-service", "foo-service"})


@pytest.mark.parametrize("generation", GENERATIONS)
def test_a_pause_longer_than_the_session(make_real_service, answering, generation):
    cs = make_real_service(generation, session_timeout=8)
    register(cs, "foo-service", "foo-1", url=answering)
    os.killpg(cs.proc.pid, signal.SIGSTOP)
    try:
        rs.wait_until(lambda: not cs.self_registered(), 60, what="the paused service's session expired")
    finally:
        os.killpg(cs.proc.pid, signal.SIGCONT)
    rs.wait_until(lambda: httpx.get(cs.url + "/live", timeout=5).status_code == 200, 20, what="it answers again")
    res = doctor(cs)
    assert_everything_gone(res, {"foo-service"})
