"""Both Config Service generations over real HTTP and ZooKeeper: detection, the monitor's view, server health calls."""

from regctl.http.api import RegistryApi
from regctl.monitor import detect_generation, monitor_verdict
from tests.helpers import run_cli
from tests.test_cli_health import endpoints, reg  # noqa: F401  (a fixture, used by name)


def test_earlier_generation_detected_and_monitor_not_asked(registry):
    with RegistryApi(registry.url) as api:
        info = detect_generation(api)
        verdict = monitor_verdict(api, "anything")
    assert info.generation == "earlier", info
    assert verdict.state == "could-not-check" and "earlier generation" in verdict.detail


def test_health_server_waits_for_the_servers_verdict_by_default(make_registry, endpoints):  # noqa: F811
    # the server's probe of a hanging endpoint outlasts --timeout; its own call gets a derived, longer deadline
    slow = make_registry(health_timeout=2.0)
    reg(slow, "s", "s-1", endpoints["hang"])
    res = run_cli("health", "s", "--server", "--timeout", "0.5", "-o", "json", env=slow.env)
    assert res.exit_code == 1, res
    (row,) = res.json["server"]
    # the earlier generation never says unhealthy: no instance answering below 500 is "unknown"
    assert row["server_status"] == "unknown", res
    assert row["deadline"] == "6s"  # 0.5 s + one endpoint on the earlier generation (5 s), rounded up
    assert res.json["generation"]["generation"] == "earlier"
    assert "still running" not in res.stderr


def test_health_server_cut_says_still_running_not_host_and_port(make_registry, endpoints):  # noqa: F811
    slow = make_registry(health_timeout=3.0)
    reg(slow, "s", "s-1", endpoints["hang"])
    res = run_cli("health", "s", "--server", "--timeout", "0.5", "--server-timeout", "0.5", env=slow.env)
    assert res.exit_code == 1, res
    assert "the Config Service's health call is still running after 0.5s" in res.stderr
    assert "host and port" not in res.stderr
    assert "still running" in res.stdout  # the server-status cell
    assert "writes its verdict" in res.stderr


def test_health_server_timeout_is_documented_in_help():
    res = run_cli("health", "--help")
    assert res.exit_code == 0
    text = " ".join(res.stdout.split())
    assert "--server-timeout" in text and "12 s per endpoint" in text
    assert "WRITES" in text
