"""Every table of the README tour fits 80 columns, and widens with the terminal (COLUMNS 80 and 200).

Runs against the real demo sandbox (``regctl sandbox up --demo``): the rows are what a first user sees.
"""

import re

import pytest

from tests.helpers import run_cli

TOUR = [
    ("list",),
    ("list", "-o", "wide"),
    ("inspect", "audit-service"),
    ("inspect", "audit-service", "-o", "wide"),
    ("health", "--all"),
    ("url", "asr-service", "--verify"),
    ("discover", "asr-service"),
]


@pytest.fixture(scope="module")
def tour(demo_sandbox):
    env = {"CONFIG_SERVICE_URL": demo_sandbox.api_url, "ZOOKEEPER_HOSTS": demo_sandbox.zk_hosts}
    out = {}
    for cols in ("80", "200"):
        for args in TOUR:
            out[(cols, args)] = run_cli(*args, env={**env, "COLUMNS": cols})
    return out


@pytest.mark.parametrize("args", TOUR, ids=" ".join)
def test_every_tour_table_fits_80_columns(tour, args):
    res = tour[("80", args)]
    assert res.exit_code in (0, 1), res
    lines = res.stdout.splitlines()
    assert lines, res
    too_wide = [line for line in lines if len(line) > 80 and not line.startswith(("audit-service  (",))]
    assert not too_wide, "\n".join(too_wide)


def test_list_at_80_shows_ages_short_headers_and_whole_names(tour):
    lines = tour[("80", ("list",))].stdout.splitlines()
    assert lines[0].split() == ["NAME", "LIVE", "HEALTHY", "DISCOVERY", "DB", "AGE", "FLAGS"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert set(rows) >= {"asr-service", "audit-service", "legacy-billing", "tts-service"}
    assert re.fullmatch(r"\d+(s|m\d\ds|h\d\dm|d\d\dh)", rows["asr-service"][5])  # an age, not a timestamp
    assert rows["audit-service"][3] == "no-healthy-status"  # the verdict is never cut
    assert "HEALTHY  DISCOVERY" in lines[0]  # gaps of two spaces


def test_list_at_200_keeps_timestamps_and_full_headers(tour):
    res = tour[("200", ("list",))]
    lines = res.stdout.splitlines()
    assert lines[0].split() == ["NAME", "LIVE", "STATUS-HEALTHY", "DISCOVERY", "DB", "STATUS", "REGISTERED", "FLAGS"]
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", res.stdout)
    assert "none-discoverable" in res.stdout and "no-live-instance" in res.stdout
    assert max(len(line) for line in lines) > 80  # it uses the room it has


def test_wide_inspect_folds_its_extra_columns_under_the_row_at_80(tour):
    narrow = tour[("80", ("inspect", "audit-service", "-o", "wide"))].stdout
    wide = tour[("200", ("inspect", "audit-service", "-o", "wide"))].stdout
    assert "health url: http://" in narrow and "metadata: " in narrow and "/health" in narrow
    assert "HEALTH URL" in wide.splitlines()[1] and "health url:" not in wide


def test_health_at_80_keeps_verdicts_and_numbers_whole(tour):
    lines = tour[("80", ("health", "--all"))].stdout.splitlines()
    tts = next(line for line in lines if line.startswith("tts-service"))
    assert " 500 " in tts and "unhealthy" in tts and "HTTP 500" in tts
    full = tour[("200", ("health", "--all"))].stdout
    assert re.search(r"http://127\.0\.0\.1:\d+/health", full)


def test_a_pipe_without_columns_is_never_cut(demo_sandbox, monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)
    env = {"CONFIG_SERVICE_URL": demo_sandbox.api_url, "ZOOKEEPER_HOSTS": demo_sandbox.zk_hosts}
    res = run_cli("health", "--all", env=env)
    assert re.search(r"http://127\.0\.0\.1:\d+/health", res.stdout) and "..." not in res.stdout
