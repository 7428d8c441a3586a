"""regctl.monitor against answers a real server cannot easily produce (httpx.MockTransport)."""

import json

import httpx
import pytest

from regctl.http.api import RegistryApi, server_health_call
from regctl.errors import Unreachable
from regctl.monitor import (
    MAX_SERVER_DEADLINE,
    MonitorVerdict,
    contradiction,
    detect_generation,
    monitor_verdict,
    monitor_verdicts,
    server_health_deadline,
)


def api_with(handler, timeout=5.0):
    return RegistryApi("http://cs.test", timeout=timeout, transport=httpx.MockTransport(handler))


def later_handler(states, prefixed=False, seen=None):
    """A later-generation server: ``states`` maps service -> (status code, body)."""
    path = ("/api/v1/registry" if prefixed else "") + "/internal/health-status"

    def handler(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append((request.method, request.url.path, dict(request.url.params)))
        if request.url.path != path:
            return httpx.Response(404, json={"detail": "Not Found"})
        sid = request.url.params.get("service_id")
        if sid is None:
            return httpx.Response(422, json={"detail": [{"loc": ["query", "service_id"], "msg": "Field required"}]})
        code, body = states.get(sid, (404, {"detail": "Health status not found"}))
        return httpx.Response(code, json=body)
    return handler


def earlier_handler(seen=None):
    def handler(request):
        if seen is not None:
            seen.append((request.method, request.url.path))
        return httpx.Response(404, json={"detail": "Not Found"})
    return handler


@pytest.mark.parametrize("prefixed", [False, True])
def test_later_generation_detected_by_422_at_either_mount_point(prefixed):
    seen = []
    with api_with(later_handler({}, prefixed=prefixed, seen=seen)) as api:
        info = detect_generation(api)
    assert info.generation == "later" and info.later
    assert info.prefixed is prefixed
    assert "422" in info.evidence
    assert all(m == "GET" and "service_id" not in p for m, _, p in seen)  # no service looked up to detect
    assert len(seen) == (2 if prefixed else 1)


def test_earlier_generation_costs_two_small_gets():
    seen = []
    with api_with(earlier_handler(seen)) as api:
        info = detect_generation(api)
    assert info.generation == "earlier" and not info.later
    assert "404" in info.evidence
    assert len(seen) == 2 and all(m == "GET" for m, _ in seen)


def test_detection_is_unknown_when_gateway_refuses_or_network_fails():
    with api_with(lambda r: httpx.Response(401, json={"detail": "Not authenticated"})) as api:
        info = detect_generation(api)
    assert info.generation == "unknown" and "401" in info.evidence

    def refuse(request):
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)
    with api_with(refuse) as api:
        info = detect_generation(api)
    assert info.generation == "unknown" and "refused" in info.evidence


def test_verdict_200_is_read_with_counts():
    body = {"service_id": "asr", "state": "unhealthy", "last_check": "2026-12-03T08:00:00",
            "total_instances": 1, "healthy_instances": 0}
    with api_with(later_handler({"asr": (200, body)})) as api:
        v = monitor_verdict(api, "asr", detect_generation(api))
    assert v == MonitorVerdict("unhealthy", "2026-12-03T08:00:00", 0, 1)
    assert v.known and v.counts() == "0/1"


def test_missing_entry_is_not_known_yet_never_unhealthy():
    with api_with(later_handler({})) as api:
        v = monitor_verdict(api, "fresh")
    assert v.state == "not-known-yet"
    assert not v.known
    assert contradiction(v, 1) is None


def test_503_is_could_not_check_naming_redis():
    with api_with(later_handler({"asr": (503, {"detail": "Redis unavailable"})})) as api:
        v = monitor_verdict(api, "asr")
    assert v.state == "could-not-check" and "Redis" in v.detail


def test_earlier_generation_verdict_says_there_is_no_monitor():
    with api_with(earlier_handler()) as api:
        v = monitor_verdict(api, "asr")
    assert v.state == "could-not-check" and "no health monitor" in v.detail


def test_hostile_answers_are_bounded_and_never_raise():
    huge = "x" * 5000
    states = {"a": (200, {"state": huge}), "b": (200, ["not", "an", "object"]),
              "c": (200, {"state": "healthy", "healthy_instances": True, "total_instances": -3,
                          "last_check": {"nested": 1}})}
    with api_with(later_handler(states)) as api:
        got = monitor_verdicts(api, ["a", "b", "c"])
    assert got["a"].state == "could-not-check" and len(got["a"].detail) < 200
    assert got["b"].state == "could-not-check"
    assert got["c"] == MonitorVerdict("healthy", None, None, None)


def test_html_answer_is_could_not_check():
    def handler(request):
        return httpx.Response(200, text="<html>gateway</html>", headers={"content-type": "text/html"})
    with api_with(handler) as api:
        v = monitor_verdict(api, "asr")
    assert v.state == "could-not-check" and "HTML" in v.detail


def test_contradiction_flags():
    assert contradiction(MonitorVerdict("unhealthy", None, 0, 1), 1) == "monitor-unhealthy"
    assert contradiction(MonitorVerdict("degraded", None, 1, 2), 2) == "monitor-degraded"
    assert contradiction(MonitorVerdict("degraded", None, 1, 2), 1) is None  # /url hands out one; one is fine
    assert contradiction(MonitorVerdict("unhealthy", None, 0, 1), 0) is None  # /url hands out nothing
    assert contradiction(MonitorVerdict("healthy", None, 1, 1), 1) is None
    assert contradiction(MonitorVerdict("could-not-check"), 1) is None
    assert contradiction(None, 1) is None


def test_server_health_deadline_follows_the_retry_timing():
    assert server_health_deadline(1, 5.0, "later") == 17.0  # 5 s + 3 x 3 s + 1 s + 2 s
    assert server_health_deadline(3, 5.0, "later") == 41.0
    assert server_health_deadline(0, 5.0, "later") == 17.0  # at least one endpoint's worth
    assert server_health_deadline(2, 5.0, "unknown") == server_health_deadline(2, 5.0, "later")
    assert server_health_deadline(2, 5.0, "earlier") == 15.0
    assert server_health_deadline(10_000, 5.0, "later") == MAX_SERVER_DEADLINE
    assert server_health_deadline(1, 0.5, "later") == 13.0  # rounded up


def test_slow_server_call_says_still_running_not_host_and_port():
    def handler(request):
        raise httpx.ReadTimeout("timed out", request=request)
    with api_with(handler, timeout=0.2) as api:
        with pytest.raises(Unreachable) as exc:
            api.execute(server_health_call("asr", timeout=1.5))
    text = str(exc.value)
    assert "the Config Service's health call is still running after 1.5s" in text
    assert "host and port" not in text
    assert "raise the call's timeout" in text and "--" not in text  # the library's words by default
    from regctl.cli.runtime import cli_hint_words

    with cli_hint_words():  # the CLI's while it runs
        assert "raise --server-timeout" in str(exc.value)


def test_server_call_gets_its_own_read_deadline():
    seen = {}

    def handler(request):
        seen.update(request.extensions["timeout"])
        return httpx.Response(200, json={"status": "healthy"})
    with api_with(handler, timeout=2.0) as api:
        assert api.execute(server_health_call("asr", timeout=40.0)) == "healthy"
    assert seen["read"] == 40.0 and seen["connect"] == 2.0
    assert api.limit_for(server_health_call("asr", timeout=40.0)) == 42.0
    assert api.limit_for(server_health_call("asr")) == 2.0  # one --timeout for the whole call


def test_ordinary_timeout_still_blames_the_network():
    def handler(request):
        raise httpx.ReadTimeout("timed out", request=request)
    with api_with(handler, timeout=0.2) as api:
        with pytest.raises(Unreachable) as exc:
            api.execute(server_health_call("asr"))
    assert "host and port" in str(exc.value)


def test_verdict_json_shape():
    v = MonitorVerdict("degraded", "t", 1, 2)
    assert json.loads(json.dumps(v.to_dict())) == {"state": "degraded", "last_check": "t",
                                                   "healthy_instances": 1, "total_instances": 2,
                                                   "detail": None}


def test_server_checks_run_concurrently_per_service_with_derived_deadlines():
    import threading

    barrier = threading.Barrier(6, timeout=10)  # 3 services x (health + detailed): all in flight at once
    seen = {}

    def handler(request):
        if request.url.path.endswith("/internal/health-status"):
            return httpx.Response(422, json={"detail": []})
        barrier.wait()  # breaks (BrokenBarrierError -> error rows) if the calls ran one after another
        name = request.url.path.split("/")[5]
        seen[(name, request.url.path.endswith("detailed"))] = request.extensions["timeout"]["read"]
        if request.url.path.endswith("detailed"):
            return httpx.Response(200, json={"overall_status": "healthy", "total_instances": 1,
                                             "healthy_instances": 1, "check_results": []})
        return httpx.Response(200, json={"status": "healthy"})

    from regctl.monitor import run_server_checks

    with api_with(handler, timeout=2.0) as api:
        info, checks = run_server_checks(api, {"a": 1, "b": 2, "c": 0}, timeout=2.0)
    assert info.generation == "later"
    assert [(c.service, c.status, c.error) for c in checks] == [("a", "healthy", None), ("b", "healthy", None),
                                                                ("c", "healthy", None)]
    assert [c.deadline for c in checks] == [14.0, 26.0, 14.0]
    assert seen[("b", False)] == 26.0 and seen[("b", True)] == 26.0


def test_server_checks_override_and_still_running():
    def handler(request):
        if request.url.path.endswith("/internal/health-status"):
            return httpx.Response(404, json={"detail": "Not Found"})
        raise httpx.ReadTimeout("timed out", request=request)

    from regctl.monitor import run_server_checks

    with api_with(handler, timeout=1.0) as api:
        info, (check,) = run_server_checks(api, {"a": 3}, timeout=1.0, server_timeout=2.5)
    assert info.generation == "earlier"
    assert check.deadline == 2.5 and check.status is None
    assert check.still_running
    assert "still running after 2.5s" in str(check.error)
    assert check.to_dict()["still_running"] is True


def test_monitor_view_reads_verdicts_only_on_the_later_generation():
    from regctl.monitor import monitor_view

    seen = []
    with api_with(earlier_handler(seen)) as api:
        view = monitor_view(api, ["a", "b", "c"])
    assert view.info.generation == "earlier" and view.verdicts == {}
    assert len(seen) == 2  # the detection only, nothing per service

    body = {"state": "degraded", "total_instances": 2, "healthy_instances": 1, "last_check": "2026-12-03T08:00:01"}
    with api_with(later_handler({"a": (200, body)})) as api:
        view = monitor_view(api, ["a", "b"])
    assert view.info.later
    assert view.get("a").state == "degraded" and view.get("b").state == "not-known-yet"


def test_service_monitor_is_none_on_the_earlier_generation():
    from regctl.monitor import service_monitor

    with api_with(earlier_handler()) as api:
        assert service_monitor(api, "a") is None
    with api_with(later_handler({}, prefixed=True)) as api:
        assert service_monitor(api, "a").state == "not-known-yet"


def test_describe_and_warning_texts():
    from regctl.monitor import contradiction_warning, describe

    v = MonitorVerdict("unhealthy", "2026-12-03T08:00:01.123+00:00", 0, 1)
    assert describe(v) == "unhealthy 0/1 healthy, checked 2026-12-03 08:00:01"
    assert describe(MonitorVerdict("not-known-yet")).startswith("not known yet")
    assert "Redis" in describe(MonitorVerdict("could-not-check", detail="HTTP 503: ... Redis ..."))
    text = contradiction_warning("asr", "monitor-unhealthy", v)
    assert "/url still hands them out" in text and "regctl health asr" in text


def test_an_instance_without_health_url_is_two_endpoints_on_the_later_generation():
    from regctl.models import Instance
    from regctl.monitor import server_endpoints

    with_url = Instance("s", "a", "http://a:1", "http://a:1/health", "healthy", {})
    without = Instance("s", "b", "http://b:1", None, "healthy", {})
    assert server_endpoints([with_url, without], "later") == 3
    assert server_endpoints([with_url, without], "unknown") == 3
    assert server_endpoints([with_url, without], "earlier") == 2


def test_server_checks_count_endpoints_from_instances():
    from regctl.models import Instance
    from regctl.monitor import run_server_checks

    def handler(request):
        if request.url.path.endswith("/internal/health-status"):
            return httpx.Response(422, json={"detail": []})
        return httpx.Response(200, json={"status": "healthy"} if request.url.path.endswith("health") else {})

    without = Instance("s", "b", "http://b:1", None, "healthy", {})
    with api_with(handler, timeout=1.0) as api:
        _, (check,) = run_server_checks(api, {"s": [without]}, timeout=1.0)
    assert check.deadline == 25.0  # 1 s + 2 endpoints x 12 s


def test_async_client_honours_the_calls_own_deadline():
    import asyncio

    from regctl.http.api import AsyncRegistryApi

    seen = {}

    async def handler(request):
        seen.update(request.extensions["timeout"])
        raise httpx.ReadTimeout("timed out", request=request)

    async def go():
        async with AsyncRegistryApi("http://cs.test", timeout=0.5, transport=httpx.MockTransport(handler)) as api:
            await api.execute(server_health_call("asr", timeout=2.0))

    with pytest.raises(Unreachable) as exc:
        asyncio.run(go())
    assert seen["read"] == 2.0 and seen["connect"] == 0.5
    assert "still running after 2s" in str(exc.value)
