"""regctl config ... and --context / REGCTL_CONTEXT against two real registries."""

import os
import stat
from pathlib import Path

import pytest

from tests.helpers import assert_one_line_error, register, run_cli

SECRETS = ("s3cr3t-bearer", "k3y-value", "pa55w0rd", "c00kie")


def config_file() -> Path:
    return Path(os.environ["REGCTL_CONFIG"])




def names(res):
    assert res.exit_code == 0, res
    return {s["name"] for s in res.json["services"]}


def set_ctx(name, reg, *extra):
    res = run_cli("config", "set-context", name, "--config-url", reg.url, "--zk", reg.zk_hosts,
                  "--zk-base", reg.base_path, *extra)
    assert res.exit_code == 0, res
    return res


@pytest.fixture
def two(make_registry):
    a, b = make_registry(), make_registry()
    register(a, "only-in-a", "a-1", health=None)
    register(b, "only-in-b", "b-1", health=None)
    set_ctx("a", a)
    set_ctx("b", b)
    return a, b


# --------------------------------------------------------------------------- lifecycle

def test_set_get_use_current_delete(tmp_path):
    res = run_cli("config", "current-context")
    assert_one_line_error(res, 1)
    res = run_cli("config", "set-context", "dev", "--config-url", "http://localhost:8082", "--zk", "localhost",
                  "--timeout", "3", "-H", "X-Team: ops", "--description", "laptop", "--use")
    assert res.exit_code == 0, res
    path = config_file()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert run_cli("config", "current-context").stdout == "dev\n"
    doc = run_cli("config", "get-contexts", "-o", "json").json
    dev = doc["contexts"][0]
    assert (dev["name"], dev["current"], dev["zk_hosts"], dev["timeout"]) == ("dev", True, "localhost:2181", 3)
    assert run_cli("config", "set-context", "prod", "--config-url", "https://gw.example.com").exit_code == 0
    table = run_cli("config", "get-contexts").stdout.splitlines()
    assert table[0].split()[:2] == ["CURRENT", "NAME"] and table[1].split()[:2] == ["*", "dev"]
    assert run_cli("config", "use-context", "prod").exit_code == 0
    assert run_cli("config", "current-context").stdout == "prod\n"
    res = run_cli("config", "delete-context", "prod")
    assert res.exit_code == 0 and "was the current context" in res.stderr
    assert_one_line_error(run_cli("config", "current-context"), 1)
    assert_one_line_error(run_cli("config", "use-context", "nope"), 2)
    assert_one_line_error(run_cli("config", "delete-context", "nope"), 2)


def test_set_context_validates_values_before_writing():
    line = assert_one_line_error(run_cli("config", "set-context", "x", "--config-url", "not-a-url"), 2)
    assert "--config-url" in line
    assert_one_line_error(run_cli("config", "set-context", "x", "--zk-auth", "nocolon"), 2)
    assert not config_file().exists()


def test_set_context_unset_and_header_removal():
    run_cli("config", "set-context", "d", "--config-url", "http://x:1", "--zk", "z:1", "-H", "X-A: 1", "-H", "X-B: 2")
    res = run_cli("config", "set-context", "d", "--unset", "zk_hosts", "-H", "X-A-", "-o", "json")
    assert res.exit_code == 0, res
    assert res.json["values"] == {"config_url": "http://x:1", "headers": {"X-B": "***"}}  # values masked


# --------------------------------------------------------------------------- which registry

def test_switching_contexts_switches_registry(two):
    assert run_cli("config", "use-context", "a").exit_code == 0
    assert "only-in-a" in names(run_cli("list", "-o", "json"))
    assert "only-in-b" not in names(run_cli("list", "-o", "json"))
    assert run_cli("config", "use-context", "b").exit_code == 0
    got = names(run_cli("list", "-o", "json"))
    assert "only-in-b" in got and "only-in-a" not in got


def test_context_precedence_flag_env_current(two):
    a, b = two
    run_cli("config", "use-context", "b")
    assert "only-in-a" in names(run_cli("list", "-o", "json", env={"REGCTL_CONTEXT": "a"}))
    assert "only-in-a" in names(run_cli("--context", "a", "list", "-o", "json"))
    assert "only-in-a" in names(run_cli("list", "--context", "a", "-o", "json"))
    # --context beats REGCTL_CONTEXT
    assert "only-in-b" in names(run_cli("list", "--context", "b", "-o", "json", env={"REGCTL_CONTEXT": "a"}))


def test_flag_and_env_beat_the_context_values(two):
    a, b = two
    run_cli("config", "use-context", "b")
    # environment beats the context (API only, so the context's ZooKeeper is not consulted)
    got = names(run_cli("list", "--source", "api", "-o", "json", env={"CONFIG_SERVICE_URL": a.url}))
    assert "only-in-a" in got and "only-in-b" not in got
    # a flag beats the environment
    got = names(run_cli("list", "--source", "api", "-o", "json", "--config-url", b.url,
                        env={"CONFIG_SERVICE_URL": a.url}))
    assert "only-in-b" in got and "only-in-a" not in got
    # the context's ZooKeeper settings stay in force for what flags and env do not set
    got = names(run_cli("list", "--source", "zk", "-o", "json", env={"CONFIG_SERVICE_URL": a.url}))
    assert "only-in-b" in got


def test_unknown_context_is_one_line_exit_2(two):
    line = assert_one_line_error(run_cli("list", "--context", "staging"), 2)
    assert "staging" in line and "--context" in line
    line = assert_one_line_error(run_cli("list", env={"REGCTL_CONTEXT": "staging"}), 2)
    assert "REGCTL_CONTEXT" in line


# --------------------------------------------------------------------------- broken files

@pytest.mark.parametrize("text,line,key", [
    ("contexts:\n  dev:\n    config_url: http://x:1\n    zk_host: y\n", 4, "zk_host"),
    ("current-context: dev\ncontexts:\n  dev:\n    config_url: [unclosed\n", None, None),
    ("contexts:\n  dev:\n    timeout: soon\n", 3, "timeout"),
])
def test_broken_file_gives_one_line_naming_file_and_line(text, line, key):
    path = config_file()
    path.write_text(text)
    for args in (["list"], ["config", "view"], ["config", "set-context", "dev", "--timeout", "2"]):
        err = assert_one_line_error(run_cli(*args), 2)
        assert str(path) in err and " line " in err, err
        if line:
            assert f"line {line}" in err
        if key:
            assert key in err
    assert path.read_text() == text  # never rewritten


# --------------------------------------------------------------------------- secrets

def test_config_view_never_shows_a_secret(tmp_path):
    token = tmp_path / "tok"
    token.write_text("from-file")
    token.chmod(0o600)
    res = run_cli("config", "set-context", "prod", "--config-url", "https://gw.example.com",
                  "-H", f"Authorization: Bearer {SECRETS[0]}", "-H", f"X-Api-Key: {SECRETS[1]}",
                  "-H", f"Cookie: {SECRETS[3]}", "-H", "X-Team: ops",
                  "--zk-auth", f"digest:admin:{SECRETS[2]}", "--token-file", str(token), "--use")
    assert res.exit_code == 0, res
    raw = config_file().read_text()
    assert all(s in raw for s in SECRETS)  # the file itself keeps them (mode 0600)
    outputs = [res]
    for fmt in ("table", "json", "yaml", "wide"):
        outputs.append(run_cli("config", "view", "-o", fmt))
        outputs.append(run_cli("config", "get-contexts", "-o", fmt))
    outputs.append(run_cli("config", "set-context", "prod", "--timeout", "4", "-o", "json"))
    for out in outputs:
        assert out.exit_code == 0, out
        for s in SECRETS:
            assert s not in out.stdout and s not in out.stderr, (s, out)
    view = run_cli("config", "view", "-o", "json").json
    prod = view["contexts"]["prod"]
    assert prod["headers"] == {"Authorization": "***", "X-Api-Key": "***", "Cookie": "***", "X-Team": "***"}
    assert prod["zk_auth"] == {"scheme": "digest", "credential": "***"}
    assert prod["token_file"] == str(token)


def test_warns_when_a_file_with_secrets_is_readable_by_others():
    run_cli("config", "set-context", "p", "--config-url", "http://x:1", "-H", "Authorization: Bearer zzz", "--use")
    config_file().chmod(0o644)
    res = run_cli("config", "view")
    assert res.exit_code == 0 and "chmod 600" in res.stderr and "zzz" not in res.stderr + res.stdout


def test_context_headers_reach_the_api(make_registry, tmp_path):
    """token_env becomes 'Authorization: Bearer ...' (the registry ignores it; a missing variable is exit 2)."""
    reg = make_registry()
    set_ctx("t", reg, "--token-env", "REGCTL_TEST_TOKEN", "--use")
    assert_one_line_error(run_cli("list"), 2)
    res = run_cli("list", "-o", "json", env={"REGCTL_TEST_TOKEN": "abc"})
    assert res.exit_code == 0, res


# --------------------------------------------------------------------------- concurrent and symlinked writes

def test_parallel_set_context_processes_keep_every_context():
    import subprocess
    import sys

    import yaml

    procs = [subprocess.Popen([sys.executable, "-m", "regctl", "config", "set-context", f"ctx-{n}",
                               "--config-url", f"http://host-{n}:8082", "--description", f"number {n}"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ))
             for n in range(10)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 10, outs
    doc = yaml.safe_load(config_file().read_text())
    assert set(doc["contexts"]) == {f"ctx-{n}" for n in range(10)}
    assert all(doc["contexts"][f"ctx-{n}"]["config_url"] == f"http://host-{n}:8082" for n in range(10))
    assert stat.S_IMODE(config_file().stat().st_mode) == 0o600
    assert not [p.name for p in config_file().parent.iterdir() if p.name.endswith(".tmp")]


def test_a_symlinked_config_file_stays_a_symlink_and_its_target_is_updated(tmp_path):
    real_dir = tmp_path / "dotfiles"
    real_dir.mkdir()
    target = real_dir / "regctl.yaml"
    set_a = run_cli("config", "set-context", "a", "--config-url", "http://a:1", env={"REGCTL_CONFIG": str(target)})
    assert set_a.exit_code == 0, set_a
    link = config_file()
    link.symlink_to(target)
    for args in (("set-context", "b", "--config-url", "http://b:1"), ("use-context", "b"), ("delete-context", "a")):
        res = run_cli("config", *args)
        assert res.exit_code == 0, res
        assert link.is_symlink() and os.readlink(link) == str(target)
    text = target.read_text()
    assert "http://b:1" in text and "http://a:1" not in text and "current-context: b" in text
