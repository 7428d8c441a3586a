"""kubectl habits: --no-headers, --sort-by (natural order), --filter, -o name, --field, version, help,
a did-you-mean that never proposes an unrelated command or flag."""

import re

import pytest

from tests.helpers import run_cli
from tests.helpers import register
from tests.test_cli_services import deregister


@pytest.fixture
def bulk(registry):
    for n in (10, 2, 1):
        register(registry, f"bulk-{n}", f"bulk-{n}-a")
    register(registry, "audit-service", "audit-1", status="unhealthy")
    register(registry, "billing", "billing-1")
    deregister(registry, "billing", "billing-1")
    return registry


def names(stdout):
    return stdout.split()


def test_list_is_in_natural_order_and_o_name_prints_one_name_a_line(bulk):
    res = run_cli("list", "-o", "name", env=bulk.env)
    assert res.exit_code == 0, res
    assert names(res.stdout) == ["audit-service", "billing", "bulk-1", "bulk-2", "bulk-10", "config-service"]
    assert res.stdout.endswith("\n") and "NAME" not in res.stdout


def test_no_headers_leaves_the_rows_only(bulk):
    with_header = run_cli("list", env=bulk.env).stdout.splitlines()
    bare = run_cli("list", "--no-headers", env=bulk.env).stdout.splitlines()
    assert with_header[0].startswith("NAME") and not bare[0].startswith("NAME")
    assert [l.split()[0] for l in bare] == [l.split()[0] for l in with_header[1:]]
    title = run_cli("inspect", "bulk-2", "--no-headers", env=bulk.env).stdout.splitlines()
    assert len(title) == 1 and title[0].startswith("bulk-2-a")


def test_sort_by_a_column_in_natural_order_and_json_follows(bulk):
    res = run_cli("list", "--sort-by", "live", "-o", "name", env=bulk.env)
    assert names(res.stdout)[0] == "billing"  # 0 live first
    desc = run_cli("list", "--sort-by", "db-status", "-o", "json", env=bulk.env)
    statuses = [s["db_status"] for s in desc.json["services"]]
    assert statuses == sorted(statuses, key=lambda v: (v is None, v or ""))
    bad = run_cli("list", "--sort-by", "nosuch", env=bulk.env)
    assert bad.exit_code == 2 and "no such column" in bad.stderr and "live" in bad.stderr


def test_filter_on_discovery_flags_and_status(bulk):
    no = run_cli("list", "--filter", "discovery=no", "-o", "name", env=bulk.env)
    assert no.exit_code == 0, no
    assert names(no.stdout) == ["audit-service", "billing"]
    ok = run_cli("list", "--filter", "discovery=ok", "-o", "name", env=bulk.env)
    assert names(ok.stdout) == ["bulk-1", "bulk-2", "bulk-10", "config-service"]
    flagged = run_cli("list", "--filter", "flags=no-live-instance", "-o", "json", env=bulk.env)
    assert [s["name"] for s in flagged.json["services"]] == ["billing"]  # the document is filtered too
    both = run_cli("list", "--filter", "discovery=ok", "--filter", "name!=config-service", "-o", "name",
                   env=bulk.env)
    assert names(both.stdout) == ["bulk-1", "bulk-2", "bulk-10"]
    status = run_cli("inspect", "audit-service", "--filter", "status=unhealthy", "-o", "name", env=bulk.env)
    assert names(status.stdout) == ["audit-1"]
    bad = run_cli("list", "--filter", "discovery", env=bulk.env)
    assert bad.exit_code == 2 and "COLUMN=VALUE" in bad.stderr.replace("KEY=VALUE", "COLUMN=VALUE")


def test_field_prints_whole_values_tab_separated(bulk, monkeypatch):
    monkeypatch.setenv("COLUMNS", "40")  # never cut, whatever the width
    res = run_cli("list", "--field", "name", "--field", "discovery.reason", "--field", "live", env=bulk.env)
    assert res.exit_code == 0, res
    rows = [line.split("\t") for line in res.stdout.splitlines()]
    assert ["audit-service", "no-healthy-status", "1"] in rows
    assert ["bulk-10", "-", "1"] in rows
    url = run_cli("inspect", "bulk-10", "--field", "url", env=bulk.env)
    assert url.stdout == "http://bulk-10.test:8090\n"


def test_version_client_only_and_against_the_sandbox(make_registry, monkeypatch):
    from regctl import __version__

    monkeypatch.setenv("CONFIG_SERVICE_URL", "http://127.0.0.1:9")  # --client asks nothing
    res = run_cli("version", "--client", "-o", "json")
    assert res.exit_code == 0 and res.json["client"]["version"] == __version__ and res.json["server"] is None
    later = make_registry(generation="later")
    res = run_cli("version", "-o", "json", env=later.env)
    assert res.exit_code == 0, res
    assert res.json["server"]["generation"] == "later"
    assert res.json["zookeeper"][0]["version"] and res.json["zookeeper"][0]["mode"] == "standalone"
    table = run_cli("version", env=later.env).stdout
    assert "later generation" in table and "zookeeper" in table


def test_version_says_could_not_tell_and_exits_3_when_the_service_is_down():
    res = run_cli("version", env={"CONFIG_SERVICE_URL": "http://127.0.0.1:9", "ZOOKEEPER_HOSTS": ""})
    assert res.exit_code == 3, res
    assert "could not tell" in res.stdout and "regctl" in res.stdout
    assert res.stderr.count("regctl: error:") == 1 and "Config Service" in res.stderr


def test_version_tells_each_real_generation_and_zookeeper_from_srvr(real_service):
    res = run_cli("version", "-o", "json", env=real_service.env)
    assert res.exit_code == 0, res
    assert res.json["server"]["generation"] == real_service.generation
    member = res.json["zookeeper"][0]
    assert re.match(r"\d+\.\d+\.\d+", member["version"]) and member["error"] is None


def test_help_command_and_did_you_mean_never_unrelated():
    res = run_cli("help", "list")
    assert res.exit_code == 0 and res.stdout.startswith("Usage: regctl list")
    assert run_cli("help", "config", "use-context").stdout.startswith("Usage: regctl config use-context")
    typo = run_cli("help", "lst")
    assert typo.exit_code == 2 and "did you mean: list?" in typo.stderr and "health" not in typo.stderr
    far = run_cli("help", "hepl")
    assert far.exit_code == 2 and "health" not in far.stderr
    cmd = run_cli("helth")
    assert cmd.exit_code == 2 and "'health'" in cmd.stderr and "'help'" not in cmd.stderr
    flag = run_cli("list", "--no-header")
    assert flag.exit_code == 2 and "--no-headers" in flag.stderr and "--header)" not in flag.stderr
    assert "Possible options: --header" not in run_cli("list", "--no-headerss").stderr
    unrelated = run_cli("list", "--nosuch")
    assert unrelated.exit_code == 2 and "Possible" not in unrelated.stderr


def test_close_matches_rules():
    from regctl.cli.help import close_matches

    assert close_matches("--no-headerz", ["--header", "--no-headers"]) == ["--no-headers"]
    assert close_matches("--no-header", ["--header"]) == []
    assert close_matches("help", ["health", "list"]) == []
    assert close_matches("inpsect", ["inspect", "import"]) == ["inspect"]


def test_deregister_all_says_instances():
    text = run_cli("deregister", "--help").stdout
    assert re.search(r"--all\s+Every instance of NAME", text)
