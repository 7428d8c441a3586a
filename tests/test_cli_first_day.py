"""Small things a first-day user trips on: a refused ZooKeeper fails fast in one short line, the exit code
survives a closed stdout, every message is said once, counts read right, usage errors in regctl's words,
and `register --dry-run -o json` has the keys docs/commands.md lists."""

import os
import re
import subprocess
import sys
import time
from pathlib import Path

from regctl.sandbox.proc import free_port
from tests.helpers import assert_one_line_error, run_cli
from tests.test_cli_health import endpoints, reg  # noqa: F401 - the fixture

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_a_refused_zookeeper_fails_fast_in_one_short_line():
    hosts = f"127.0.0.1:{free_port()}"
    started = time.monotonic()
    res = run_cli("list", "--source", "zk", "--timeout", "10", env={"ZOOKEEPER_HOSTS": hosts})
    elapsed = time.monotonic() - started
    line = assert_one_line_error(res, 3)
    assert hosts in line and "refused" in line and "--zk" in line, line
    assert "--zk-tls" not in line and "TLS" not in line, line  # TLS only when TLS is configured
    assert len(line) < 200, line
    assert elapsed < 5, elapsed  # a bound, not a timing: the deadline is 10 s


def test_a_refused_zookeeper_with_tls_configured_names_the_secure_port():
    hosts = f"127.0.0.1:{free_port()}"
    res = run_cli("list", "--source", "zk", "--timeout", "10", "--zk-tls", env={"ZOOKEEPER_HOSTS": hosts})
    line = assert_one_line_error(res, 3)
    assert "refused" in line and "secureClientPort" in line and len(line) < 200, line


def test_the_exit_code_is_the_verdict_when_stdout_closes_early(registry, endpoints):  # noqa: F811
    reg(registry, "sick", "sick-1", endpoints["bad"])
    reg(registry, "fine", "fine-1", endpoints["ok"])
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader went away before regctl wrote a byte (`| head` that already quit)
    try:
        proc = subprocess.run([sys.executable, "-m", "regctl", "health", "--all", "-o", "json"],
                              env={**os.environ, **registry.env}, stdout=write_end, stderr=subprocess.PIPE,
                              stdin=subprocess.DEVNULL, text=True, timeout=60)
    finally:
        os.close(write_end)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr, proc.stderr


def test_register_with_the_registry_down_says_so_once(zk_server):
    env = {"CONFIG_SERVICE_URL": f"http://127.0.0.1:{free_port()}", "ZOOKEEPER_HOSTS": f"127.0.0.1:{free_port()}"}
    res = run_cli("register", "--name", "foo", "--url", "http://foo.test:1", env=env)
    assert res.exit_code == 3, res
    lines = [l for l in res.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("regctl: error:"), res.stderr


def test_a_mistyped_service_gets_its_did_you_mean_once(registry, endpoints):  # noqa: F811
    reg(registry, "asr-service", "asr-1", endpoints["ok"])
    res = run_cli("health", "asr-servce", env=registry.env)
    assert res.exit_code == 1, res
    assert res.stderr.count("did you mean") == 1, res.stderr
    assert res.stderr.count("no live instances") == 1, res.stderr
    assert "asr-service" in res.stderr


def test_wait_probe_counts_more_instances_than_wanted_right(registry, endpoints):  # noqa: F811
    reg(registry, "two", "two-1", endpoints["ok"])
    reg(registry, "two", "two-2", endpoints["ok"])
    res = run_cli("wait", "two", "--probe", "--timeout", "10", env=registry.env)
    assert res.exit_code == 0, res
    assert "2 of 1" not in res.stdout + res.stderr, res
    assert "2 instances live (1 wanted)" in res.stdout, res


def test_a_missing_argument_is_said_in_regctls_words():
    res = run_cli("inspect")
    line = assert_one_line_error(res, 2)
    assert line == "regctl: error: inspect needs NAME; try: regctl inspect --help", line


def test_a_bad_number_is_said_in_regctls_words():
    res = run_cli("health", "--all", "--timeout", "5x")
    line = assert_one_line_error(res, 2)
    assert line.startswith("regctl: error: --timeout: '5x' is not a number; try: "), line
    assert "Input should" not in res.stderr and "valid float" not in res.stderr
    res = run_cli("health", "--all", "--concurrency=x")
    line = assert_one_line_error(res, 2)
    assert line.startswith("regctl: error: --concurrency: 'x' is not a whole number; try: "), line


def test_no_click_full_stop_before_the_hint():
    res = run_cli("config", "use")
    line = assert_one_line_error(res, 2)
    assert ".;" not in line, line


def _documented_register_keys() -> tuple[set, set]:
    text = (DOCS / "commands.md").read_text()
    start = text.index("With `-o json|yaml` it prints the whole result:")
    shape = text[start:text.index("}`", start) + 1].split("`", 1)[1]
    top = set(re.findall(r'"(\w+)"', re.sub(r"\[\{.*?\}\]", "", shape)))
    inner = re.search(r"\[\{(.*)\}\]", shape).group(1)
    per = set(re.findall(r'"(\w+)"', re.sub(r"\{[^{}]*\}", "", inner)))
    return top, per


def test_register_dry_run_json_has_every_key_the_doc_lists():
    top, per = _documented_register_keys()
    assert {"dry_run", "registrations", "instance_ids"} <= top and {"request", "instance_id", "zookeeper"} <= per
    res = run_cli("register", "--dry-run", "--name", "foo", "--url", "http://foo.test:1", "-o", "json")
    assert res.exit_code == 0, res
    doc = res.json
    assert top <= set(doc), (top, set(doc))
    for entry in doc["registrations"]:
        assert per <= set(entry), (per, set(entry))
        assert {"method", "url", "json"} <= set(entry["request"])


def test_both_sources_refused_is_one_short_line_naming_both():
    api, zk = f"http://127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    started = time.monotonic()
    res = run_cli("list", "--timeout", "10", env={"CONFIG_SERVICE_URL": api, "ZOOKEEPER_HOSTS": zk})
    elapsed = time.monotonic() - started
    line = assert_one_line_error(res, 3)
    assert api in line and zk in line and "refused" in line and "TLS" not in line, line
    assert len(line) < 200, line
    assert elapsed < 5, elapsed  # a bound: the deadline is 10 s
