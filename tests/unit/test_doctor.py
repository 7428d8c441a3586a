"""Doctor core without a registry: parsers, selection, the runner's deadline and crash handling, env checks.

Network behaviour is exercised against tiny real socket servers on loopback (no mocks).
"""

from __future__ import annotations

import io
import socket
import threading
import time

import pytest

from tests.helpers import doctor_config

from regctl import doctor

from regctl.zookeeper import admin as zk_admin
from regctl.cli.render import Column, Output, Result, Table, status_mark
from regctl.doctor import FAIL, PASS, SKIP, WARN, Check
from regctl.doctor.checks.config import classify_health_answer
from regctl.doctor.facts import HttpAnswer, is_docker_name, is_loopback
from regctl.errors import UsageError

SRVR_STANDALONE = """Zookeeper version: 3.8.4-9316c2a7a97e1666d8f4593f34dd6fc36ecc436c, built on 2024-02-12 22:16 UTC
Latency min/avg/max: 0/0.4412/12
Received: 120
Sent: 119
Connections: 2
Outstanding: 0
Zxid: 0x2a
Mode: standalone
Node count: 42
"""

SRVR_NOT_SERVING = "This ZooKeeper instance is not currently serving requests\n"

MNTR = ("zk_version\t3.9.1-abc, built on 2023\nzk_avg_latency\t1.5\nzk_max_latency\t9\nzk_min_latency\t0\n"
        "zk_server_state\tfollower\nzk_znode_count\t17\nzk_num_alive_connections\t3\n")


# --------------------------------------------------------------------------- zk_admin parsers

def test_parse_srvr_reads_mode_latency_and_node_count():
    info = zk_admin.parse_srvr(SRVR_STANDALONE)
    assert info.mode == "standalone"
    assert (info.latency_min, info.latency_avg, info.latency_max) == (0.0, 0.4412, 12.0)
    assert info.node_count == 42
    assert info.connections == 2
    assert info.version == "3.8.4-9316c2a7a97e1666d8f4593f34dd6fc36ecc436c"
    assert info.serving
    assert info.latency_text() == "0/0.4412/12 ms"


def test_parse_srvr_not_serving():
    info = zk_admin.parse_srvr(SRVR_NOT_SERVING)
    assert not info.serving
    assert info.mode is None


def test_parse_mntr_and_fallback_fields():
    values = zk_admin.parse_mntr(MNTR)
    assert values["zk_server_state"] == "follower"
    info = zk_admin.srvr_from_mntr(values)
    assert info.mode == "follower" and info.node_count == 17 and info.latency_avg == 1.5
    assert info.version == "3.9.1-abc"


def _report(mode, serving=True, error=None, session_ok=None):
    srvr = zk_admin.SrvrInfo(mode=mode, serving=serving) if mode or not serving else None
    return zk_admin.MemberReport("h", 1, error=error, srvr=srvr, session_ok=session_ok)


def test_quorum_majority_and_tolerance():
    q = zk_admin.quorum([_report("leader"), _report("follower"), _report(None, error="refused")])
    assert q.has_quorum and q.voters_serving == 2 and q.members == 3 and q.tolerates == 0
    q = zk_admin.quorum([_report("leader"), _report(None, error="timeout"), _report(None, error="refused")])
    assert not q.has_quorum
    q = zk_admin.quorum([_report("standalone")])
    assert q.has_quorum and q.standalone
    # four-letter words disabled, but a session worked: counts as serving
    q = zk_admin.quorum([_report(None, session_ok=True)])
    assert q.has_quorum and q.serving == 1


# --------------------------------------------------------------------------- tiny TCP servers

class WordServer:
    """Answers every connection with a fixed text (or never answers), then closes."""

    def __init__(self, answer: str | None) -> None:
        self.answer = answer
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self._stop = False
        self.held = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            if self.answer is None:
                self.held.append(conn)  # never answer
                continue
            try:
                conn.recv(16)
                conn.sendall(self.answer.encode())
            finally:
                conn.close()

    def close(self) -> None:
        self._stop = True
        self.sock.close()
        for c in self.held:
            c.close()


@pytest.fixture
def word_server():
    servers = []

    def make(answer):
        s = WordServer(answer)
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_send_word_reads_the_answer(word_server):
    srv = word_server(SRVR_STANDALONE)
    ans = zk_admin.send_word("127.0.0.1", srv.port, "srvr", 2)
    assert ans.ok and ans.error is None and "Mode: standalone" in ans.text


def test_send_word_refused_and_timeout(word_server):
    ans = zk_admin.send_word("127.0.0.1", free_port(), "ruok", 1)
    assert ans.error == "refused" and not ans.ok
    srv = word_server(None)
    ans = zk_admin.send_word("127.0.0.1", srv.port, "ruok", 0.5)
    assert ans.error == "timeout"


def test_send_word_detects_the_whitelist_sentence(word_server):
    srv = word_server("ruok is not executed because it is not in the whitelist.\n")
    ans = zk_admin.send_word("127.0.0.1", srv.port, "ruok", 1)
    assert ans.whitelisted is False and not ans.ok


def test_check_member_whitelist_disabled_without_session(word_server):
    srv = word_server("srvr is not executed because it is not in the whitelist.\n")
    rep = zk_admin.check_member("127.0.0.1", srv.port, 1.0, session_fallback=False)
    assert rep.error is None
    assert rep.four_letter_words is False
    assert not rep.serving


def test_check_member_whitelist_disabled_session_fails(word_server):
    """Words refused and no ZooKeeper behind it: the session fallback is tried and fails."""
    srv = word_server("ruok is not executed because it is not in the whitelist.\n")
    rep = zk_admin.check_member("127.0.0.1", srv.port, 1.5)
    assert rep.four_letter_words is False
    assert rep.session_ok is False
    assert not rep.serving


def test_check_ensemble_members_in_order(word_server):
    srv = word_server(SRVR_STANDALONE)
    dead = free_port()
    reps = zk_admin.check_ensemble(f"127.0.0.1:{srv.port},127.0.0.1:{dead}", 1.0, session_fallback=False)
    assert [r.port for r in reps] == [srv.port, dead]
    assert reps[0].serving and reps[0].mode == "standalone"
    assert reps[1].error == "refused" and not reps[1].serving


# --------------------------------------------------------------------------- classification helpers

def test_host_kinds():
    assert is_docker_name("config-service") and not is_docker_name("localhost")
    assert not is_docker_name("api.example.com") and not is_docker_name("10.0.0.1")
    assert is_loopback("localhost") and is_loopback("127.0.0.1") and is_loopback("::1")
    assert not is_loopback("config-service")


def ans(code, body=b"", ctype="application/json", location=None):
    return HttpAnswer("http://x/health", code, ctype, body, 3.0, None, location)


@pytest.mark.parametrize("answer,status,word", [
    (ans(200, b'{"status": "healthy", "redis": "healthy"}'), PASS, "overall 'healthy'"),
    (ans(503, b'{"detail": "Service unhealthy"}'), PASS, "Service unhealthy"),
    (ans(200, b"<html><title>Squid proxy</title></html>", "text/html"), FAIL, "HTML"),
    (ans(404, b'{"detail": "Not Found"}'), FAIL, "no /health"),
    (ans(301, b"", location="https://x/health"), FAIL, "redirects"),
    (ans(401, b'{"detail": "Unauthorized"}'), FAIL, "credentials"),
    (ans(502, b"bad gateway", "text/plain"), FAIL, "gateway"),
    (ans(200, b"ok", "text/plain"), FAIL, "not JSON"),
    (ans(200, b'{"hello": 1}'), FAIL, "not the Config Service"),
])
def test_classify_health_answer(answer, status, word):
    got, finding, hint = classify_health_answer(answer, "http")
    assert got == status, finding
    assert word in finding
    assert (hint is None) == (status == PASS)


def test_https_redirect_hint():
    _s, _f, hint = classify_health_answer(ans(308, b"", location="https://x/health"), "http")
    assert "https://" in hint


# --------------------------------------------------------------------------- selection

def test_select_by_name_area_glob_and_skip():
    assert [c.name for c in doctor.select_checks(["config.dns"])] == ["config.dns"]
    zk = [c.name for c in doctor.select_checks(["zookeeper"])]
    assert zk == ["zookeeper.members", "zookeeper.quorum", "zookeeper.session", "zookeeper.base"]
    env = doctor.select_checks(["env.*"], skip=["env.port"])
    assert "env.port" not in [c.name for c in env] and "env.required" in [c.name for c in env]
    everything = doctor.select_checks(None, skip=["hygiene"])
    assert not any(c.area == "hygiene" for c in everything)


def test_select_unknown_name_is_a_usage_error():
    with pytest.raises(UsageError) as err:
        doctor.select_checks(["config.dnss"])
    assert "config.dnss" in err.value.message and "--list-checks" in err.value.hint


def test_check_names_are_unique_and_areas_known():
    names = doctor.check_names()
    assert len(names) == len(set(names))
    assert all(c.area in doctor.AREAS for c in doctor.list_checks())
    assert all(c.catches for c in doctor.list_checks())


# --------------------------------------------------------------------------- runner

def cfg(**kw):
    kw.setdefault("config_url", "http://127.0.0.1:1")
    kw.setdefault("timeout", 1.0)
    kw.setdefault("in_container", False)
    return doctor_config(**kw)


def test_a_crashing_check_is_a_failed_row_not_a_traceback():
    def boom(run):
        raise KeyError("nope")

    rep = doctor.run_checks(cfg(), [Check("x.boom", "config", "crash", boom)])
    (row,) = rep.results
    assert row.status == FAIL and "crashed" in row.finding and "KeyError" in row.finding
    assert row.hint and rep.exit_code() == 1


def test_a_hanging_check_is_cut_off_at_its_deadline():
    never = threading.Event()

    def hang(run):
        never.wait(30)
        return run.passed("late")

    def quick(run):
        return run.passed("fine")

    rep = doctor.run_checks(cfg(check_deadline=0.5), [Check("x.hang", "config", "h", hang),
                                                      Check("x.quick", "config", "q", quick)])
    assert [r.name for r in rep.results] == ["x.hang", "x.quick"]
    assert rep.results[0].status == FAIL and "did not finish" in rep.results[0].finding
    assert rep.results[1].status == PASS
    never.set()


def test_results_keep_registry_order_and_counts():
    def slow(run):
        time.sleep(0.2)
        return [run.warn("a", "do a", target="t1"), run.passed("b", target="t2")]

    def fast(run):
        return run.skip("c", "do c")

    rep = doctor.run_checks(cfg(), [Check("a.slow", "config", "", slow), Check("b.fast", "config", "", fast)])
    assert [(r.name, r.target) for r in rep.results] == [("a.slow", "t1"), ("a.slow", "t2"), ("b.fast", None)]
    assert rep.counts() == {PASS: 1, WARN: 1, FAIL: 0, SKIP: 1, "acknowledged": 0}
    assert rep.exit_code() == 0 and rep.exit_code(strict=True) == 1
    assert rep.summary_line() == "1 passed, 1 warning, 0 failed, 1 skipped"
    doc = rep.to_dict()
    assert set(doc) == {"checks", "summary", "config", "selected", "exit_code"}
    assert set(doc["checks"][0]) == {"name", "area", "target", "status", "finding", "hint", "duration_ms", "details"}


def test_facts_are_computed_once_for_concurrent_checks():
    calls = []

    def shared(run):
        def compute():
            calls.append(1)
            time.sleep(0.2)
            return 42
        return run.passed(str(run.fact("answer", compute)))

    checks = [Check(f"x.{i}", "config", "", shared) for i in range(5)]
    rep = doctor.run_checks(cfg(), checks)
    assert len(calls) == 1
    assert [r.finding for r in rep.results] == ["42"] * 5


def test_everything_unreachable_ends_within_about_one_timeout():
    """Refused Config Service and ZooKeeper: all failures, well within the deadline."""
    rep = doctor.run_checks(cfg(config_url=f"http://127.0.0.1:{free_port()}", zk_hosts=f"127.0.0.1:{free_port()}"))
    by = {r.name: r for r in rep.results}
    assert by["config.connect"].status == FAIL and "refused" in by["config.connect"].finding
    assert by["zookeeper.session"].status == FAIL
    assert by["zookeeper.members"].status == FAIL
    assert all(r.hint for r in rep.results if r.status != PASS)


# --------------------------------------------------------------------------- env checks (pure)

def env_rows(env, **kw):
    rep = doctor.run_checks(cfg(env=env, **kw), doctor.select_checks(["env"]))
    return {r.name: r for r in rep.results}


def test_env_checks_skip_without_service_name():
    rows = env_rows({})
    assert all(r.status == SKIP for r in rows.values())
    assert "--env-file" in rows["env.required"].hint


def test_env_good_docker_setup():
    rows = env_rows({"SERVICE_NAME": "my-service", "SERVICE_PORT": "8090", "SERVICE_HOST": "my-service",
                     "SERVICE_INSTANCE_ID": "my-service-1", "CONFIG_SERVICE_URL": "http://config-service:8082"})
    # doctor runs outside Docker here: the service's Config Service name cannot be checked, and nothing is
    # registered to compare with (the Config Service doctor checks does not answer)
    assert rows.pop("env.registered-url").status == SKIP
    config_url = rows.pop("env.config-url")
    assert config_url.status == WARN and "not checked" in config_url.finding
    assert "docker compose exec" in config_url.hint and "published" in config_url.hint.replace("publishes", "published")
    assert {n: r.status for n, r in rows.items()} == {n: PASS for n in rows}
    assert "http://my-service:8090" in rows["env.service-url"].finding
    assert "my-service-1" in rows["env.service-url"].finding


def test_env_missing_port_and_bad_port():
    rows = env_rows({"SERVICE_NAME": "my-service"})
    assert rows["env.required"].status == FAIL and "SERVICE_PORT" in rows["env.required"].finding
    assert rows["env.service-url"].status == FAIL
    rows = env_rows({"SERVICE_NAME": "my-service", "SERVICE_PORT": "80x"})
    assert rows["env.port"].status == FAIL and "not a number" in rows["env.port"].finding
    rows = env_rows({"SERVICE_NAME": "my-service", "SERVICE_PORT": "70000"})
    assert rows["env.port"].status == FAIL and "out of range" in rows["env.port"].finding


def test_env_public_url_wins_and_is_validated():
    rows = env_rows({"SERVICE_NAME": "s", "SERVICE_PORT": "8090", "SERVICE_PUBLIC_URL": "https://api.example.com/s/"})
    assert rows["env.public-url"].status == PASS
    assert "https://api.example.com/s (health" in rows["env.service-url"].finding
    rows = env_rows({"SERVICE_NAME": "s", "SERVICE_PORT": "8090", "SERVICE_PUBLIC_URL": "api.example.com"})
    assert rows["env.public-url"].status == FAIL


def test_env_network_mixes_warn():
    rows = env_rows({"SERVICE_NAME": "my-service", "SERVICE_PORT": "8090", "SERVICE_HOST": "localhost",
                     "CONFIG_SERVICE_URL": "http://config-service:8082"})
    assert rows["env.network"].status == WARN and "SERVICE_HOST=my-service" in rows["env.network"].hint
    rows = env_rows({"SERVICE_NAME": "my-service", "SERVICE_PORT": "8090",
                     "CONFIG_SERVICE_URL": "http://localhost:8082"})
    assert rows["env.network"].status == WARN and "SERVICE_HOST=localhost" in rows["env.network"].hint
    rows = env_rows({"SERVICE_NAME": "my-service", "SERVICE_PORT": "8090", "SERVICE_HOST": "localhost",
                     "CONFIG_SERVICE_URL": "http://localhost:8082"})
    assert rows["env.network"].status == PASS


# --------------------------------------------------------------------------- rendering pieces

def test_status_marks_glyph_and_ascii():
    assert status_mark("pass", True) == "\u2714" and status_mark("fail", True) == "\u2718"
    assert [status_mark(s, False) for s in (PASS, WARN, FAIL, SKIP)] == ["[ok]", "[!!]", "[XX]", "[--]"]


def test_plain_table_with_marks_details_and_footer():
    cols = [Column("status", "", mark=True), Column("name", "check"), Column("target", "target"),
            Column("finding", "finding")]
    rows = [{"status": "fail", "name": "a.b", "target": "", "finding": "broken", "_lines": ["-> fix it"]},
            {"status": "pass", "name": "a.c", "target": "", "finding": "fine", "_lines": []}]
    out, err = io.StringIO(), io.StringIO()
    Output(stdout=out, stderr=err).render(Result(tables=[Table(cols, rows, title="Area", details_key="_lines",
                                                               details_column="finding", hide_empty=True)],
                                                 footer=["1 passed"]))
    lines = out.getvalue().splitlines()
    assert lines[0] == "Area"
    assert lines[2].startswith("[XX]  a.b") and lines[2].endswith("broken")
    assert lines[3].strip() == "-> fix it" and lines[3].index("->") == lines[2].index("broken")
    assert lines[4].startswith("[ok]")
    assert lines[-1] == "1 passed"
    assert "TARGET" not in lines[1]
