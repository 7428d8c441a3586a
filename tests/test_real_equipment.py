"""The real Config Service fixture itself: skips with one line outside CI, fails in CI, starts both generations."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parent.parent


def _run_probe_test(tmp_path: Path, ci: bool) -> subprocess.CompletedProcess:
    test = tmp_path / "test_probe_real.py"
    test.write_text(textwrap.dedent("""
        def test_uses_the_real_service(real_service):
            pass
    """))
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "PYTEST_ADDOPTS")}
    env["REGCTL_CONFIG_SERVICE_SRC"] = str(tmp_path / "no-such-source")
    if ci:
        env["CI"] = "true"
    # the suite's conftest applies through --rootdir/-p: copy nothing, point pytest at it
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
                           "--confcutdir", str(REPO / "tests"), "-c", str(REPO / "pyproject.toml"),
                           "--rootdir", str(REPO), str(test), "-p", "tests.conftest"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120)


def test_outside_ci_a_missing_source_skips_with_one_line_saying_how(tmp_path):
    proc = _run_probe_test(tmp_path, ci=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 skipped" in proc.stdout  # both generations
    skip = [l for l in proc.stdout.splitlines() if l.startswith("SKIPPED")]
    assert len(skip) == 1 and "REGCTL_CONFIG_SERVICE_SRC" in skip[0] and "config-service-venv.sh" in skip[0]


def test_in_ci_a_missing_source_fails(tmp_path):
    proc = _run_probe_test(tmp_path, ci=True)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "CI must run the real-service tests" in proc.stdout
    assert "skipped" not in proc.stdout.splitlines()[-1]


@pytest.mark.parametrize("generation", ["earlier", "later"])
def test_the_real_service_starts_registers_itself_and_serves(make_real_service, kazoo_srvr, generation):
    cs = make_real_service(generation, session_timeout=8)
    stat = kazoo_srvr.exists(cs.own_node)
    assert stat is not None and stat.ephemeralOwner != 0 and stat.version == 0
    assert cs.register("probe-svc", "probe-1").status_code == 201
    rows = httpx.get(cs.api + "/services", timeout=10).json()
    assert "probe-svc" in {r["service_name"] for r in rows}
    seeded = [r for r in rows if "registered_at" not in r]
    assert (len(seeded) >= 10) == (generation == "later")  # the later generation's migrations seed rows
    health = httpx.get(cs.url + "/health", timeout=10)
    assert health.status_code == 200 and health.json()["kafka"] == "unhealthy"


@pytest.fixture
def kazoo_srvr(zk_srvr_only):
    from kazoo.client import KazooClient

    client = KazooClient(hosts=zk_srvr_only.hosts, timeout=10)
    client.start(timeout=15)
    try:
        yield client
    finally:
        client.stop()
        client.close()
