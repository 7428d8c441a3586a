"""list, inspect, watch and doctor as library calls: each returns the report its command renders.

Against the real ZooKeeper and the sandbox registry; the CLI's documents are compared with the
reports' own so the library and the command cannot drift apart.
"""

import json

import pytest

from regctl.connections import Connections
from regctl.doctor import DoctorRequest, plan_doctor
from regctl.errors import NotFound, UsageError
from regctl.inspection import ListQuery, inspect_service, list_services
from regctl.settings import Endpoint
from regctl.zookeeper.watch import WatchRequest, watch_registry
from tests.helpers import register, run_cli


def endpoint_of(registry) -> Endpoint:
    return Endpoint(config_url=registry.url, zk_hosts=registry.zk_hosts, zk_base=registry.base_path)


def cli_json(registry, *args: str):
    res = run_cli(*args, "-o", "json", env=registry.env)
    return res.exit_code, json.loads(res.stdout)


# --------------------------------------------------------------------------- list


def test_list_report_is_the_document_list_prints(registry):
    register(registry, "asr-service", "asr-1")
    register(registry, "nmt-service", "nmt-1", status="starting")
    report = list_services(endpoint_of(registry), ListQuery(monitor=True))
    assert report.error is None and report.api_read
    by_name = {s.name: s for s in report.services}
    assert by_name["asr-service"].summary.discovery.discoverable is True
    assert by_name["nmt-service"].summary.discovery.reason == "no-healthy-status"
    assert "none-discoverable" in by_name["nmt-service"].flags
    assert report.read_note.startswith(f"read: API {registry.url} and ZooKeeper {registry.zk_hosts}")
    code, doc = cli_json(registry, "list")
    assert code == 0
    assert doc == json.loads(json.dumps(report.to_dict()))


def test_list_gate_is_the_reports_error(registry):
    register(registry, "nmt-service", "nmt-1", status="starting")
    query = ListQuery(names=("nmt-service",), fail_undiscoverable=True)
    report = list_services(endpoint_of(registry), query)
    assert isinstance(report.error, NotFound)
    assert "1 of 1 service(s) not discoverable" in report.error.message
    assert report.query is query and report.to_dict()["probed"] is False
    assert run_cli("list", "nmt-service", "--fail-undiscoverable", env=registry.env).exit_code == 1


def test_list_refuses_a_source_it_cannot_read_before_any_network():
    no_zk = Endpoint(config_url="http://127.0.0.1:9")
    with pytest.raises(UsageError, match="--source zk needs ZooKeeper"):
        list_services(no_zk, ListQuery(source="zk"))
    with pytest.raises(UsageError, match="is unknown"):
        list_services(no_zk, ListQuery(source="both"))


# --------------------------------------------------------------------------- inspect


def test_inspect_report_merges_both_sources(registry):
    register(registry, "asr-service", "asr-1")
    with Connections(endpoint_of(registry)) as clients:  # the caller's clients, reused and closed by it
        report = inspect_service(endpoint_of(registry), "asr-service", clients=clients)
    assert report.error is None and report.detail.registered is True
    assert [(v.instance.instance_id, v.in_zookeeper) for v in report.detail.instances] == [("asr-1", True)]
    assert report.verdict.discoverable is True and not report.zk_unread
    doc = report.to_dict()
    code, printed = cli_json(registry, "inspect", "asr-service")
    assert code == 0
    assert {k: v for k, v in printed.items() if k != "instances"} == \
        json.loads(json.dumps({k: v for k, v in doc.items() if k != "instances"}))
    assert [i["instance_id"] for i in printed["instances"]] == [i["instance_id"] for i in doc["instances"]]


def test_inspect_of_a_service_nobody_knows_raises_not_found_with_a_suggestion(registry):
    register(registry, "asr-service", "asr-1")
    with pytest.raises(NotFound) as caught:
        inspect_service(endpoint_of(registry), "asr-servce")
    assert "is not registered" in caught.value.message
    assert caught.value.hint == "did you mean: asr-service?"


# --------------------------------------------------------------------------- watch


class Collect:
    """A sink that registers an instance once the watch is set, and keeps every event."""

    def __init__(self, registry) -> None:
        self.registry = registry
        self.events: list = []
        self.warnings: list = []
        self.closed = False

    def open(self, watcher, warnings) -> None:
        self.warnings = list(warnings)
        register(self.registry, "asr-service", "asr-2")

    def emit(self, event) -> None:
        self.events.append(event)

    def close(self) -> None:
        self.closed = True


def test_watch_report_counts_the_events_the_sink_got(registry):
    register(registry, "asr-service", "asr-1")
    sink = Collect(registry)
    report = watch_registry(endpoint_of(registry), WatchRequest(names=("asr-service",), count=1, seconds=60,
                                                                      initial=True), sink)
    assert sink.closed and sink.warnings == []
    assert [(e.event, e.instance_id) for e in sink.events if e.is_instance_event] == [("added", "asr-1"),
                                                                                         ("added", "asr-2")]
    assert sink.events[0].detail == {"initial": True}
    assert any(e.event == "resync" and e.detail["reason"] == "start" for e in sink.events)
    assert (report.seen, report.interrupted, report.error) == (1, False, None)


def test_watch_report_says_when_time_ran_out_first(registry):
    report = watch_registry(endpoint_of(registry), WatchRequest(names=("quiet",), count=1, seconds=0.5),
                            Collect(registry))  # asr-service's registration is not watched
    assert (report.seen, report.interrupted) == (0, False)
    assert isinstance(report.error, NotFound) and report.error.message == "saw 0 of 1 events within 0.5s"
    assert registry.base_path in report.error.hint


def test_a_watch_request_is_checked_before_any_connection():
    no_zk = Endpoint(config_url="http://127.0.0.1:9")
    with pytest.raises(UsageError, match="watch needs ZooKeeper"):
        watch_registry(no_zk, WatchRequest(), Collect(None))
    zk = Endpoint(zk_hosts="127.0.0.1:9")
    with pytest.raises(UsageError, match="--count 0 must be at least 1"):
        WatchRequest(count=0).check(zk)
    with pytest.raises(UsageError, match="--for 0 must be more than 0 seconds"):
        WatchRequest(seconds=0).check(zk)


# --------------------------------------------------------------------------- doctor


def test_doctor_plan_selects_the_checks_and_builds_their_config(tmp_path):
    env_file = tmp_path / "svc.env"
    env_file.write_text("SERVICE_NAME=asr-service\n")
    request = DoctorRequest(checks=("config.*",), skip=("config.kafka",), env_file=env_file,
                            ignore=("hygiene.stale-rows:legacy",))
    plan = plan_doctor(Endpoint(config_url="http://127.0.0.1:9"), request,
                       environ={"REGCTL_DOCTOR_IN_CONTAINER": "0"})
    names = [c.name for c in plan.checks]
    assert names[0] == "config.dns" and "config.kafka" not in names and all(n.startswith("config.") for n in names)
    assert plan.config.selected_service == "asr-service" and plan.config.env_source == f"env file {env_file}"
    assert plan.config.in_container is False
    assert "config.kafka" in plan.config.explicit  # named (by glob), then skipped: still "explicit"
    assert plan.config.ignore == (("hygiene.stale-rows", "legacy"),)


def test_doctor_plan_refuses_what_cannot_run(tmp_path):
    endpoint = Endpoint(config_url="http://127.0.0.1:9")
    with pytest.raises(UsageError, match="every check was skipped"):
        plan_doctor(endpoint, DoctorRequest(checks=("config.dns",), skip=("config",)))
    with pytest.raises(UsageError, match="cannot read the env file"):
        plan_doctor(endpoint, DoctorRequest(env_file=tmp_path / "missing.env"))


def test_doctor_plan_runs_to_the_report_its_command_prints(registry):
    plan = plan_doctor(endpoint_of(registry), DoctorRequest(checks=("config.http",)))
    seen: list = []
    report = plan.run(on_result=seen.append)
    assert [r.name for r in report.results] == ["config.http"] == [r.name for r in seen]
    assert report.results[0].status == "pass" and report.exit_code() == 0
    code, doc = cli_json(registry, "doctor", "config.http")
    assert code == 0 and [c["name"] for c in doc["checks"]] == ["config.http"]
    assert doc["checks"][0]["status"] == report.to_dict()["checks"][0]["status"]


def test_the_operations_example_in_library_md_runs_and_names_real_functions(registry, capsys):
    """The example under "The operator's operations", run as written against the sandbox registry and
    ZooKeeper; every function the paragraph after it names exists."""
    import importlib
    import pathlib
    import re

    text = (pathlib.Path(__file__).parent.parent / "docs" / "library.md").read_text()
    section = text.split("## The operator's operations", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    code = code.replace('"http://localhost:8082"', repr(registry.url))
    code = code.replace('"localhost:2181"', repr(registry.zk_hosts)).replace(
        "timeout=5.0)", f"timeout=5.0, zk_base={registry.base_path!r})")
    register(registry, "asr-service", "asr-1", url="http://127.0.0.1:9")  # registered, not answering
    exec(compile(code, "library.md", "exec"), {})
    services, verdict, ok = capsys.readouterr().out.rsplit(" ", 2)
    assert "asr-service" in services and verdict == "unhealthy" and ok.strip() == "True"
    for dotted in re.findall(r"`(regctl(?:\.\w+)+)`", section.split("```", 2)[2]):
        module, _, name = dotted.rpartition(".")
        try:
            target = importlib.import_module(dotted)
        except ImportError:
            target = getattr(importlib.import_module(module), name, None)
        assert target is not None, dotted
