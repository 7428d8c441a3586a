"""doctor as signal: an ASCII terminal, no write unless asked, problems first, roll-ups, the ignore list,
the zombie among many hanging instances."""

import os
import pty
import subprocess
import sys
from pathlib import Path

from tests.helpers import register, run_cli

REGCTL = str(Path(sys.executable).with_name("regctl"))


def _on_pty(*args, env_extra=None):
    """Run regctl with stdout on a real pseudo-terminal; returns (exit code, stdout bytes, stderr text)."""
    master, slave = pty.openpty()
    env = dict(os.environ, PYTHONIOENCODING="ascii", LANG="C", LC_ALL="C", TERM="xterm", COLUMNS="80")
    env.pop("NO_COLOR", None)
    env.update(env_extra or {})
    proc = subprocess.Popen([REGCTL, *args], stdout=slave, stderr=subprocess.PIPE, env=env)
    os.close(slave)
    out = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    err = proc.stderr.read().decode()
    proc.wait(timeout=60)
    os.close(master)
    return proc.returncode, out, err


def test_doctor_on_an_ascii_terminal_writes_ascii_marks_not_a_crash():
    code, out, err = _on_pty("doctor", "config", "--config-url", "http://127.0.0.1:1", "--timeout", "0.5")
    assert code == 1, (code, err)
    assert "Traceback" not in err and "UnicodeEncodeError" not in err
    text = out.decode("ascii")  # every byte ASCII
    assert "[XX]" in text and "config.connect" in text


# --------------------------------------------------------------------------- problems first, in few lines

import re  # noqa: E402
import socket  # noqa: E402

import httpx  # noqa: E402
import yaml  # noqa: E402

from regctl.sandbox.proc import free_port  # noqa: E402


def _env(info, **extra):
    return {"CONFIG_SERVICE_URL": info.api_url, "ZOOKEEPER_HOSTS": info.zk_hosts,
            "REGCTL_DOCTOR_IN_CONTAINER": "0", **extra}


def test_demo_all_shows_its_three_problems_first_in_at_most_15_lines(demo_sandbox):
    res = run_cli("doctor", "--all", "--no-color", env=_env(demo_sandbox, COLUMNS="80"))
    assert res.exit_code == 1, res
    lines = res.stdout.splitlines()
    assert len(lines) <= 15, res.stdout
    assert max(len(line) for line in lines) <= 80, res.stdout
    heads = [line for line in lines if not line.startswith(" ")]
    assert heads[0].startswith("[XX]  hygiene.zombies tts-service/tts-service-1: ")
    assert heads[1].startswith("[XX]  hygiene.undiscoverable audit-service: ")
    assert heads[2].startswith("[!!]  hygiene.stale-rows legacy-billing: ")
    assert heads[3].startswith("[ok]  passed: Config Service ")
    assert "env.required" not in res.stdout and "service.registered" not in res.stdout  # no input: hidden
    assert re.fullmatch(r"\d+ passed, 1 warning, 2 failed, \d+ skipped \(-v shows \d+ without input\)", lines[-1])
    # words wrap whole: every word of the hint is on the screen, none cut
    assert "regctl deregister tts-service tts-service-1" in " ".join(line.strip() for line in lines)
    wide = run_cli("doctor", "--all", "--no-color", env=_env(demo_sandbox, COLUMNS="200"))
    assert len(wide.stdout.splitlines()) < len(lines) and max(map(len, wide.stdout.splitlines())) <= 200
    verbose = run_cli("doctor", "--all", "--no-color", "-v", env=_env(demo_sandbox, COLUMNS="80"))
    assert "env.required" in verbose.stdout and "config.dns" in verbose.stdout  # -v shows every row
    assert max(len(line) for line in verbose.stdout.splitlines() if not line.startswith("  ")) <= 80




def _deregister(registry, name, iid):
    r = httpx.post(registry.api + "/deregister", params={"service_name": name, "instance_id": iid}, timeout=10)
    assert r.status_code in (200, 204), r.text


def _stale(registry, *names):
    for name in names:
        register(registry, name, f"{name}-1", url="http://127.0.0.1:9")
        _deregister(registry, name, f"{name}-1")


def test_many_findings_of_one_kind_are_one_line_and_json_keeps_them_all(registry):
    names = [f"retired-{i}" for i in range(7)]
    _stale(registry, *names)
    res = run_cli("doctor", "hygiene.stale-rows", "--all", "--no-color", env={**registry.env, "COLUMNS": "80"})
    assert res.exit_code == 0, res
    text = " ".join(line.strip() for line in res.stdout.splitlines())
    assert "hygiene.stale-rows: 7 services have rows without instances: retired-0, retired-1" in text
    assert "(-o json for all)" in text and "--ignore hygiene.stale-rows:NAME" in text
    assert res.stdout.count("retired-6") <= 1  # one line for them, not one row each
    doc = run_cli("doctor", "hygiene.stale-rows", "--all", "-o", "json", env=registry.env).json
    assert sorted(r["target"] for r in doc["checks"] if r["status"] == "warn") == names


def test_ignore_acknowledges_a_finding_from_the_flag_and_from_the_context(registry, tmp_path):
    _stale(registry, "legacy", "other")
    args = ("doctor", "hygiene.stale-rows", "--all", "--strict")
    assert run_cli(*args, env=registry.env).exit_code == 1  # two warnings fail --strict
    one = run_cli(*args, "--ignore", "hygiene.stale-rows:legacy", "-o", "json", env=registry.env)
    assert one.exit_code == 1  # the other one still warns
    by = {r["target"]: r for r in one.json["checks"]}
    assert by["legacy"].get("acknowledged") is True and by["legacy"]["status"] == "warn"
    assert by["legacy"]["details"]["acknowledged"] == "hygiene.stale-rows:legacy"
    assert "acknowledged" not in by["other"]
    assert one.json["summary"]["acknowledged"] == 1 and one.json["summary"]["warnings"] == 1
    both = run_cli(*args, "--ignore", "hygiene.stale-rows:legacy", "--ignore", "hygiene.stale-rows:other",
                   "--no-color", env=registry.env)
    assert both.exit_code == 0, both  # acknowledged findings never fail --strict
    last = both.stdout.splitlines()[-1]
    assert "0 warnings" in last and "2 acknowledged" in last
    assert "legacy" not in both.stdout  # not shown again without -v
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump({"current-context": "ci", "contexts": {"ci": {
        "config_url": registry.url, "ignore": ["hygiene.stale-rows"]}}}))
    cfg.chmod(0o600)
    ctx = run_cli(*args, "-o", "json", env={**registry.env, "REGCTL_CONFIG": str(cfg)})
    assert ctx.exit_code == 0, ctx
    assert ctx.json["summary"]["acknowledged"] == 2
    cfg.write_text(yaml.safe_dump({"contexts": {"ci": {"ignore": "hygiene.stale-rows"}}}))
    bad = run_cli(*args, "--context", "ci", env={**registry.env, "REGCTL_CONFIG": str(cfg)})
    assert bad.exit_code == 2 and "ignore" in bad.stderr  # a list, not a string


def test_zombies_are_named_among_40_hanging_instances(registry):
    hang = socket.socket()
    hang.bind(("127.0.0.1", 0))
    hang.listen(200)  # accepted by the kernel, never answered: every probe hangs to its timeout
    port = hang.getsockname()[1]
    try:
        for i in range(40):
            register(registry, "slow", f"slow-{i}", url=f"http://127.0.0.1:{port}/i{i}")
        register(registry, "dead", "dead-1", url=f"http://127.0.0.1:{free_port()}")
        env = {**registry.env, "COLUMNS": "80"}
        doc = run_cli("doctor", "hygiene.zombies", "--all", "--timeout", "1", "-o", "json", env=env).json
        rows = [r for r in doc["checks"] if r["name"] == "hygiene.zombies"]
        assert not any(r["details"].get("timed_out") for r in rows), rows[:1]
        dead = [r for r in rows if r["target"] == "dead/dead-1"]
        assert len(dead) == 1 and dead[0]["status"] == "fail" and "refused" in dead[0]["finding"]
        assert sum(1 for r in rows if r["target"].startswith("slow/")) == 40
        text = run_cli("doctor", "hygiene.zombies", "--all", "--timeout", "1", "--no-color", env=env).stdout
        assert "[XX]  hygiene.zombies dead/dead-1:" in text  # the real zombie, on its own row
        assert "40 instances fail their health check (timeout)" in " ".join(text.split())
    finally:
        hang.close()


def test_progress_goes_to_a_terminal_stderr_after_the_delay_and_is_erased():
    import io
    import time

    from regctl.cli.live import CountLine

    class TTY(io.StringIO):
        def isatty(self):
            return True

    class Out:
        stderr = TTY()
        output = "table"

        def is_tty(self, stream):
            return stream.isatty()

    class Rc:
        out = Out()

    progress = CountLine(Rc.out, "doctor", 3, "checks")
    progress.DELAY = 0.05
    with progress:
        deadline = time.monotonic() + 10
        while "checks done" not in Rc.out.stderr.getvalue() and time.monotonic() < deadline:
            time.sleep(0.02)
    text = Rc.out.stderr.getvalue()
    assert "doctor: 0 of 3 checks done..." in text and text.endswith("\r\x1b[K")
    Rc.out.output = "json"
    assert not CountLine(Rc.out, "doctor", 3, "checks").enabled  # never around a document
