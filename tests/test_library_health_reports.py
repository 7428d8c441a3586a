"""The library's health and wait operations, called directly: the reports they return, against the sandbox registry."""

import io
import threading

import pytest

from regctl.cli.live import ProgressBar
from regctl.cli.render import Output
from regctl.errors import Unreachable, UsageError
from regctl.health import HealthInterrupted, HealthRequest, check_health
from regctl.sandbox.proc import free_port
from regctl.settings import Endpoint
from regctl.wait import WaitSpec, wait_for_instances
from tests.test_cli_health import endpoints, reg  # noqa: F401  (a fixture, used by name)


def via_zookeeper(registry, timeout=2.0) -> Endpoint:
    return Endpoint(config_url=registry.url, zk_hosts=registry.zk_hosts, zk_base=registry.base_path, timeout=timeout)


def via_api(registry, timeout=2.0) -> Endpoint:
    return Endpoint(config_url=registry.url, timeout=timeout)


# ---------------------------------------------------------------------------- check_health

def test_check_health_reports_what_was_asked_read_and_probed(registry, endpoints):  # noqa: F811
    for kind in ("ok", "refused", "bad"):
        reg(registry, "mixed", f"m-{kind}", endpoints[kind])
    progress = []
    request = HealthRequest(("mixed", "ghost"))
    report = check_health(via_zookeeper(registry), request, on_progress=lambda done, total: progress.append((done, total)))
    assert report.request is request and report.source == "zookeeper"
    assert {i.instance_id for i in report.instances["mixed"]} == {"m-ok", "m-refused", "m-bad"}
    assert report.missing == ["ghost"] and report.problems == ()
    verdicts = {r.instance_id: (r.verdict, r.error) for r in report.results}
    assert verdicts == {"m-ok": ("healthy", None), "m-refused": ("unhealthy", "refused"),
                        "m-bad": ("unhealthy", "HTTP 503")}
    assert (report.healthy, report.unhealthy, report.unchecked) == (1, 2, ())
    assert report.verdict == "unhealthy" and report.server is None and not report.interrupted
    assert progress[0] == (0, 3) and progress[-1] == (3, 3) and len(progress) == 4
    doc = report.to_dict()
    assert doc["summary"] == {"total": 3, "healthy": 1, "unhealthy": 2, "unreachable_from_here": 0,
                              "services_without_instances": ["ghost"]}
    assert doc["server"] is None and "generation" not in doc and "partial" not in doc


def test_check_health_reads_the_api_without_zookeeper_and_suggests_names(registry, endpoints):  # noqa: F811
    reg(registry, "speech", "s-1", endpoints["ok"])
    report = check_health(via_api(registry), HealthRequest(("speech",), expect=(200,)))
    assert report.source == "api" and report.verdict == "healthy"
    assert [r.status_code for r in report.results] == [200]
    report = check_health(via_api(registry), HealthRequest(("speeh",)))
    assert report.verdict == "nothing-to-probe" and report.results == ()
    assert report.suggestions == {"speeh": "did you mean: speech?"}
    everything = check_health(via_zookeeper(registry), HealthRequest())
    assert {"speech", "config-service"} <= set(everything.instances)


def test_check_health_with_the_servers_own_check(make_registry, endpoints):  # noqa: F811
    new = make_registry(detailed_health=True)
    reg(new, "s", "s-1", endpoints["ok"])
    reg(new, "s", "s-2", endpoints["refused"])
    report = check_health(via_zookeeper(new), HealthRequest(("s",), server=True))
    assert report.server is not None and report.server.errors == ()
    (verdict,) = report.server.verdicts
    assert verdict.service == "s" and verdict.status == "healthy" and verdict.detailed.startswith("healthy 1/2")
    assert report.server.by_url == {endpoints["ok"] + "/health": "healthy",
                                    endpoints["refused"] + "/health": "unhealthy"}
    (row,) = report.server_rows()
    assert row["regctl"] == "1/2 healthy" and row["server_status"] == "healthy"
    doc = report.to_dict()
    assert doc["generation"]["generation"] == report.server.generation.generation
    assert {r["instance_id"]: r["server"] for r in doc["results"]} == {"s-1": "healthy", "s-2": "unhealthy"}


def test_ctrl_c_while_probing_hands_over_what_was_probed(registry, endpoints):  # noqa: F811
    reg(registry, "part", "p-refused", endpoints["refused"])
    reg(registry, "part", "p-hang", endpoints["hang"])

    def interrupt(done, total):
        if done:  # the refused probe is back; the hanging one never will be
            raise KeyboardInterrupt

    with pytest.raises(HealthInterrupted) as stop:
        check_health(via_zookeeper(registry, timeout=30), HealthRequest(("part",)), on_progress=interrupt)
    assert isinstance(stop.value, KeyboardInterrupt)
    report = stop.value.report
    assert report.interrupted and report.verdict == "interrupted"
    assert [r.instance_id for r in report.results] == ["p-refused"] and len(report.targets) == 2
    assert report.to_dict()["partial"] is True


@pytest.mark.parametrize("request_args", [{"names": ("bad/name",)}, {"names": ("a",), "concurrency": 0},
                                          {"retries": -1}])
def test_a_health_request_is_checked_when_made(request_args):
    with pytest.raises(UsageError):
        HealthRequest(**request_args)


def test_check_health_could_not_read_the_registry_raises():
    with pytest.raises(Unreachable):
        check_health(Endpoint(config_url=f"http://127.0.0.1:{free_port()}", timeout=1), HealthRequest(("a",)))


# ---------------------------------------------------------------------------- wait_for_instances

@pytest.mark.parametrize("read", [via_zookeeper, via_api], ids=["zookeeper-watch", "api-poll"])
def test_wait_reports_the_instances_that_came(registry, endpoints, read):  # noqa: F811
    later = threading.Timer(0.5, reg, args=(registry, "late", "late-1", endpoints["ok"]))
    later.start()
    rounds = []
    spec = WaitSpec("late", healthy=True, probe=True, deadline_s=15, interval=0.2)
    try:
        report = wait_for_instances(read(registry), spec, on_round=lambda live, counted: rounds.append(counted))
    finally:
        later.join()
    assert report.ok and report.spec is spec and report.instance_ids == ("late-1",)
    assert report.source == ("zookeeper" if read is via_zookeeper else "api")
    assert (report.live, report.healthy, report.answering) == (1, 1, 1)
    assert [p.verdict for p in report.probes] == ["healthy"] and rounds[-1] == 1
    assert report.to_dict()["instance_ids"] == ["late-1"]


def test_wait_that_times_out_says_what_was_there_and_suggests_a_name(registry, endpoints):  # noqa: F811
    reg(registry, "speech", "s-1", endpoints["ok"])
    report = wait_for_instances(via_zookeeper(registry), WaitSpec("speeh", deadline_s=0.5, interval=0.1))
    assert not report.ok and report.live == 0 and report.rounds >= 1
    assert report.suggestion == "did you mean: speech?"
    assert report.summary().startswith("0 of 1 instance live after")
    report = wait_for_instances(via_zookeeper(registry), WaitSpec("speech", min_count=2, deadline_s=0.5,
                                                                  interval=0.1))
    assert not report.ok and report.live == 1 and report.suggestion is None


def test_wait_that_never_reads_the_registry_raises():
    with pytest.raises(Unreachable, match="could not read"):
        wait_for_instances(Endpoint(config_url=f"http://127.0.0.1:{free_port()}"),
                           WaitSpec("x", deadline_s=0.5, interval=0.1))


@pytest.mark.parametrize("spec_args", [{"name": "bad/name"}, {"name": "x", "min_count": 0},
                                       {"name": "x", "interval": 0}, {"name": "x", "deadline_s": 0}])
def test_a_wait_spec_is_checked_when_made(spec_args):
    with pytest.raises(UsageError):
        WaitSpec(**spec_args)


# ---------------------------------------------------------------------------- the progress display

class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_progress_bar_shows_only_for_many_targets_on_a_terminal():
    terminal = _Terminal()
    with ProgressBar(Output(stderr=terminal, color=False), "probing", threshold=2) as bar:
        for done in range(6):
            bar(done, 5)
    assert "probing" in terminal.getvalue()
    for total, stream, output in ((2, _Terminal(), "table"), (5, io.StringIO(), "table"), (5, _Terminal(), "json")):
        with ProgressBar(Output(output=output, stderr=stream), "probing", threshold=2) as bar:
            bar(0, total)
            bar(total, total)
        assert stream.getvalue() == "", (total, output)
