"""Shell completion, the regctl side: committed scripts are current, the protocol answers what the
command line asks for (live names, files where a file is wanted, nothing else), and neither
`regctl completion` nor `regctl config` depends on the connection settings being valid.

The real shells (bash, zsh, fish with a real TAB) are driven in tests/test_cli_completion_shells.py.
"""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.helpers import assert_one_line_error, register, run_cli

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
#: enough for a loaded test machine; the default budget is for people (see bench/completion.py)
SLOW_OK = {"REGCTL_COMPLETION_BUDGET": "10"}




def complete(line: str, env: "dict | None" = None, shell: str = "bash", cur: "str | None" = None,
             cwd: "Path | None" = None) -> tuple:
    """Ask a real ``regctl`` process what the scripts ask on a TAB: (mode, [values], stderr)."""
    full = {**os.environ, **(env or {}), "_REGCTL_COMPLETE": shell, "_REGCTL_LINE": line,
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    if cur is not None:
        full["_REGCTL_CUR"] = cur
    proc = subprocess.run([str(BIN / "regctl")], env=full, capture_output=True, text=True, timeout=60,
                          cwd=cwd)
    assert proc.returncode == 0, proc
    lines = proc.stdout.splitlines()
    assert lines, proc
    return lines[0], [line.split("\t", 1)[0] for line in lines[1:]], proc.stderr


@pytest.fixture(autouse=True)
def cache_home(tmp_path, monkeypatch):
    path = tmp_path / "cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(path))
    return path


@pytest.fixture
def names_registry(registry):
    for name, iid in (("asr-service", "asr-1"), ("asr-service", "asr-2"), ("audit-service", "audit-1"),
                      ("billing", "billing-1")):
        register(registry, name, iid, health=None)
    return registry


# --------------------------------------------------------------------------- scripts

@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_committed_scripts_are_current(shell):
    res = run_cli("completion", shell)
    assert res.exit_code == 0, res
    committed = (ROOT / "completions" / f"regctl.{shell}").read_text()
    assert res.stdout == committed, f"completions/regctl.{shell} is stale: run regctl completion {shell} > it"
    assert f"_REGCTL_COMPLETE={shell}" in committed


def test_zsh_script_starts_with_compdef_and_completes_when_autoloaded():
    text = run_cli("completion", "zsh").stdout
    assert text.startswith("#compdef regctl\n")
    assert "loadautofunc" in text and '_regctl "$@"' in text


def test_unknown_shell_is_exit_2():
    assert_one_line_error(run_cli("completion", "tcsh"), 2)


@pytest.mark.parametrize("shell,check", [("bash", ["bash", "-n"]), ("zsh", ["zsh", "-n"]), ("fish", ["fish", "-n"])])
def test_scripts_parse_in_their_shell(shell, check):
    subprocess.run(check + [str(ROOT / "completions" / f"regctl.{shell}")], check=True, timeout=30)


@pytest.mark.parametrize("env", [
    {"REGCTL_CONTEXT": "no-such-context"},
    {"CONFIG_SERVICE_URL": "::not a url"},
    {"REGCTL_TIMEOUT": "0"},
    {"ZOOKEEPER_HOSTS": ":::"},
    {"REGCTL_HEADERS": "no colon"},
    {"REGCTL_OUTPUT": "json"},
    {"REGCTL_OUTPUT": "bogus"},
], ids=lambda e: ",".join(e))
def test_the_script_prints_whatever_the_environment_holds(env):
    expected = (ROOT / "completions" / "regctl.bash").read_text()
    res = run_cli("completion", "bash", env=env)
    assert (res.exit_code, res.stdout, res.stderr) == (0, expected, "")


def test_the_script_ignores_output_and_context_flags():
    expected = (ROOT / "completions" / "regctl.zsh").read_text()
    res = run_cli("--context", "missing", "completion", "zsh", "-o", "json", "--timeout", "0")
    assert (res.exit_code, res.stdout) == (0, expected)


@pytest.mark.parametrize("env", [
    {"REGCTL_CONTEXT": "no-such-context"},
    {"CONFIG_SERVICE_URL": "::not a url"},
    {"REGCTL_TIMEOUT": "0"},
    {"ZOOKEEPER_HOSTS": ":::"},
    {"REGCTL_HEADERS": "no colon"},
    {"REGCTL_CA_BUNDLE": "/no/such/bundle.pem"},
], ids=lambda e: ",".join(e))
def test_config_commands_do_not_need_valid_connection_settings(env):
    res = run_cli("config", "set-context", "lab", "--config-url", "http://localhost:8082", "--use", env=env)
    assert res.exit_code == 0, res
    res = run_cli("config", "get-contexts", "-o", "json", env=env)
    assert res.exit_code == 0, res
    assert [c["name"] for c in res.json["contexts"]] == ["lab"]
    assert run_cli("config", "use-context", "lab", env=env).exit_code == 0
    assert run_cli("config", "current-context", env=env).stdout.strip() == "lab"
    assert run_cli("config", "view", env=env).exit_code == 0
    assert run_cli("config", "delete-context", "lab", env=env).exit_code == 0


def test_config_set_context_still_validates_its_own_flags():
    assert_one_line_error(run_cli("config", "set-context", "lab", "--config-url", "::bad"), 2)


# --------------------------------------------------------------------------- the protocol

def test_commands_and_options_complete():
    assert complete("regctl ins") == ("plain", ["inspect"], "")
    assert "config" in complete("regctl con")[1]
    assert complete("regctl list --sou")[1] == ["--source"]
    assert complete("regctl list --source ")[1] == ["auto", "api", "zk"]
    assert complete("regctl -o y")[1] == ["yaml"]


def test_option_values_after_equals_keep_the_option(tmp_path):
    assert complete("regctl list --source=a", shell="zsh")[1] == ["--source=auto", "--source=api"]
    # bash replaces only what follows '=' (COMP_WORDBREAKS): it gets the bare values
    assert complete("regctl list --source=a", cur="a")[1] == ["auto", "api"]


def test_fixed_values_complete():
    assert complete("regctl register --status s")[1] == ["starting", "stopping"]
    assert complete("regctl sandbox up --ensemble ")[1] == ["1", "3"]
    assert complete("regctl completion ")[1] == ["bash", "zsh", "fish"]
    _, checks, _ = complete("regctl doctor zookeeper.")
    assert "zookeeper.quorum" in checks and all(c.startswith("zookeeper.") for c in checks)
    res = run_cli("doctor", "--list-checks", "-o", "json")
    assert complete("regctl doctor --skip hygiene.z")[1] == [
        c["name"] for c in res.json["checks"] if c["name"].startswith("hygiene.z")]


@pytest.mark.parametrize("line,mode", [
    ("regctl import ", "file"),
    ("regctl register -f ", "file"),
    ("regctl register --env-file ", "file"),
    ("regctl export --file ", "file"),
    ("regctl doctor --env-file ", "file"),
    ("regctl list --ca-bundle ", "file"),
    ("regctl --token-file ", "file"),
    ("regctl --zk-auth-file ", "file"),
    ("regctl sandbox up --dir ", "dir"),
])
def test_file_arguments_ask_the_shell_for_files(line, mode):
    assert complete(line)[0] == mode


def test_service_names_from_zookeeper(names_registry):
    env = {**names_registry.env, **SLOW_OK}
    assert complete("regctl inspect a", env) == ("plain", ["asr-service", "audit-service"], "")
    assert complete("regctl health b", env)[1] == ["billing"]
    assert complete("regctl doctor --service a", env)[1] == ["asr-service", "audit-service"]
    assert complete("regctl register --name au", env)[1] == ["audit-service"]


def test_service_names_from_the_api(names_registry):
    env = {"CONFIG_SERVICE_URL": names_registry.url, **SLOW_OK}
    assert complete("regctl url a", env)[1] == ["asr-service", "audit-service"]


def test_zookeeper_down_falls_back_to_the_api_like_list(names_registry):
    """ZooKeeper configured but not answering: names come from the API, as `regctl list` shows them."""
    env = {"CONFIG_SERVICE_URL": names_registry.url, "ZOOKEEPER_HOSTS": f"127.0.0.1:{free_port()}", **SLOW_OK}
    assert complete("regctl inspect a", env)[1] == ["asr-service", "audit-service"]
    assert complete("regctl deregister asr-service ", env)[1] == ["asr-1", "asr-2"]
    listed = run_cli("list", "-o", "json", env=env)
    assert {"asr-service", "audit-service"} <= {s["name"] for s in listed.json["services"]}


def test_names_follow_flags_typed_on_the_command_line(names_registry):
    """--zk h:2181 and --config-url=http://... are whole words here, whatever bash's COMP_WORDS say."""
    url, zk, base = names_registry.url, names_registry.zk_hosts, names_registry.base_path
    assert complete(f"regctl --config-url {url} discover au", SLOW_OK)[1] == ["audit-service"]
    assert complete(f"regctl --config-url={url} discover au", SLOW_OK)[1] == ["audit-service"]
    assert complete(f"regctl --zk {zk} --zk-base={base} inspect au", SLOW_OK)[1] == ["audit-service"]
    assert complete(f"regctl inspect --zk={zk} --zk-base {base} au", SLOW_OK)[1] == ["audit-service"]


def test_instance_ids_for_deregister(names_registry):
    env = {**names_registry.env, **SLOW_OK}
    assert complete("regctl deregister asr-service ", env)[1] == ["asr-1", "asr-2"]
    assert complete("regctl deregister asr-service asr-1 ", env)[1] == ["asr-2"]


def test_names_come_from_the_current_context(names_registry):
    res = run_cli("config", "set-context", "lab", "--config-url", names_registry.url, "--use")
    assert res.exit_code == 0, res
    assert complete("regctl wait asr", SLOW_OK)[1] == ["asr-service"]
    assert complete("regctl --context l")[1] == ["lab"]


def test_bad_timeout_or_output_in_the_environment_does_not_cost_the_names(names_registry):
    env = {**names_registry.env, **SLOW_OK, "REGCTL_TIMEOUT": "0", "REGCTL_OUTPUT": "bogus"}
    assert complete("regctl inspect a", env)[1] == ["asr-service", "audit-service"]


def test_names_are_cached_for_a_few_seconds(names_registry, cache_home):
    env = {**names_registry.env, **SLOW_OK}
    assert "apple-service" not in complete("regctl inspect a", env)[1]
    register(names_registry, "apple-service", "apple-1", health=None)
    assert "apple-service" not in complete("regctl inspect a", env)[1]  # served from the cache
    cache = cache_home / "regctl" / "completion.json"
    assert json.loads(cache.read_text()) and oct(cache.stat().st_mode & 0o777) == "0o600"
    cache.unlink()
    assert "apple-service" in complete("regctl inspect a", env)[1]


def test_registry_down_gives_no_candidates_and_no_files(tmp_path):
    """No file names in place of service names: the shell is told 'plain' with nothing in it."""
    (tmp_path / "asr-notes.txt").write_text("x")
    dead = free_port()
    for env in ({"CONFIG_SERVICE_URL": f"http://127.0.0.1:{dead}"},
                {"CONFIG_SERVICE_URL": f"http://127.0.0.1:{dead}", "ZOOKEEPER_HOSTS": f"127.0.0.1:{dead}"}):
        for line in ("regctl inspect a", "regctl deregister asr-service "):
            assert complete(line, env, cwd=tmp_path) == ("plain", [], "")


def test_a_server_that_never_answers_does_not_hang_completion():
    """A port that accepts connections and never speaks: the lookup budget cuts it off (no hang)."""
    with socket.socket() as blackhole:
        blackhole.bind(("127.0.0.1", 0))
        blackhole.listen(16)
        port = blackhole.getsockname()[1]
        for env in ({"CONFIG_SERVICE_URL": f"http://127.0.0.1:{port}"},
                    {"CONFIG_SERVICE_URL": f"http://127.0.0.1:{port}", "ZOOKEEPER_HOSTS": f"127.0.0.1:{port}"}):
            assert complete("regctl inspect a", env) == ("plain", [], "")


def test_names_with_control_characters_reach_the_shell_escaped():
    """A tab or newline in a registry name must not break the protocol or reach the terminal raw."""
    import http.server
    import threading

    body = json.dumps([{"service_name": n} for n in ("ok-service", "ok\tservice", "ok\nservice")]).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        env = {"CONFIG_SERVICE_URL": f"http://127.0.0.1:{server.server_address[1]}", **SLOW_OK}
        for shell in ("bash", "zsh", "fish"):
            mode, values, _ = complete("regctl inspect ok", env, shell=shell)
            assert mode == "plain" and "ok-service" in values and len(values) == 3, values
            assert not any(ch in v for v in values for ch in "\t\n\r\x1b"), values
    finally:
        server.shutdown()
        server.server_close()


def test_an_older_script_still_gets_answers():
    """Scripts installed from an earlier regctl speak typer's protocol (COMP_WORDS/COMP_CWORD)."""
    full = {**os.environ, "_REGCTL_COMPLETE": "complete_bash", "COMP_WORDS": "regctl ins", "COMP_CWORD": "1"}
    proc = subprocess.run([str(BIN / "regctl")], env=full, capture_output=True, text=True, timeout=60)
    assert (proc.returncode, proc.stdout.split(), proc.stderr) == (0, ["inspect"], "")


def test_completion_requests_do_not_import_network_libraries(names_registry):
    """Commands and options complete without httpx or kazoo; API names without httpx."""
    code = ("import os, sys\n"
            "from regctl.cli.app import main\n"
            "rc = main()\n"
            "sys.stderr.write(' '.join(sorted({m.split('.')[0] for m, v in sys.modules.items() if v is not None})))\n")
    for line, env in (("regctl ins", {}),
                      ("regctl inspect a", {"CONFIG_SERVICE_URL": names_registry.url, **SLOW_OK})):
        full = {**os.environ, **env, "_REGCTL_COMPLETE": "bash", "_REGCTL_LINE": line}
        proc = subprocess.run([sys.executable, "-c", code], env=full, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc
        mods = set(proc.stderr.split())
        assert len(proc.stdout.splitlines()) > 1, proc
        assert not mods & {"httpx", "httpcore", "kazoo"}, mods & {"httpx", "httpcore", "kazoo"}


@pytest.mark.parametrize("incomplete,cur,value,expected", [
    ("a", "a", "asr", "asr"),
    ("a:", ":", "a:bc", "bc"),          # bash shows ':' as the word and replaces the empty text after it
    ("a:b", "b", "a:bc", "bc"),
    ("--source=", "=", "--source=auto", "auto"),
    ("--source=a", "a", "--source=auto", "auto"),
    ("'a:b", "'a:b", "a:bc", "a:bc"),    # quoted: bash did not split the word
])
def test_bash_gets_the_part_after_its_word_breaks(incomplete, cur, value, expected):
    from regctl.cli.completion.tree import bash_word

    assert bash_word(value, incomplete, cur) == expected


# --------------------------------------------------------------------------- the quick path agrees

QUICK_LINES = [
    "regctl ", "regctl i", "regctl ins", "regctl -", "regctl --", "regctl --z", "regctl -o ", "regctl -o j",
    "regctl --output=y", "regctl list ", "regctl list -", "regctl list --s", "regctl list --source ",
    "regctl list --source=", "regctl list --source=a", "regctl list --source api -", "regctl -v list --",
    "regctl -vv -o json list --so", "regctl config ", "regctl config s", "regctl config set-context x --",
    "regctl config set-context x --insecure --", "regctl sandbox ", "regctl sandbox up --", "regctl sandbox up --dir ",
    "regctl sandbox up --ensemble ", "regctl register --status ", "regctl register -n x --st", "regctl import ",
    "regctl import x -", "regctl export -f ", "regctl export --file=", "regctl doctor --skip ",
    "regctl doctor config.", "regctl doctor --service x --", "regctl completion ", "regctl completion z",
    "regctl health --expect 200 --", "regctl deregister x y --", "regctl watch --for 3 -", "regctl --zk h:1 list --s",
    "regctl --config-url=http://h:1 list --", "regctl list -- -", "regctl nosuch ", "regctl list --nosuch ",
    "regctl 'li", "regctl list --source 'a", "regctl -H 'X: y' list --s", "regctl --context ",
]


def test_the_quick_path_answers_as_the_full_path_does(cache_home):
    """Line by line, shell by shell; only what the tree cannot know is handed to the full path."""
    from regctl.cli.completion import tree
    from regctl.cli.app import get_app
    from regctl.cli.completion.script import answer

    run_cli("config", "set-context", "lab", "--config-url", "http://127.0.0.1:9", "--use")
    handed_over = set()
    for line in QUICK_LINES:
        for shell in ("bash", "zsh", "fish"):
            cur = line.split(" ")[-1]
            full = answer(get_app, shell, line, cur)  # builds and saves the tree
            try:
                quick = tree.answer_from_tree(shell, line, cur)
            except tree.NotHere:
                handed_over.add(line)
                continue
            assert quick == full, (shell, line)
    assert handed_over <= {"regctl list --nosuch "}, handed_over


@pytest.mark.parametrize("line", ["regctl inspect a", "regctl deregister asr-service ", "regctl doctor --service a",
                                  "regctl health asr-service a", "regctl -o json url au", "regctl register --name a"])
def test_the_quick_path_completes_names_as_the_full_path_does(line, names_registry, monkeypatch):
    from regctl.cli.completion import tree
    from regctl.cli.app import get_app
    from regctl.cli.completion.script import answer

    for k, v in {**names_registry.env, **SLOW_OK}.items():
        monkeypatch.setenv(k, v)
    full = answer(get_app, "zsh", line, None)
    assert full.count("\n") > 1, full
    assert tree.answer_from_tree("zsh", line, None) == full


def test_the_quick_path_is_used_and_needs_no_typer(cache_home):
    """The second TAB reads the cached tree: no typer, no pydantic, no command modules."""
    complete("regctl ins")  # the first builds the tree
    assert (cache_home / "regctl" / "completion-tree.json").exists()
    code = ("import sys\nfrom regctl.cli.app import main\nmain()\n"
            "sys.stderr.write(' '.join(sorted(m for m, v in sys.modules.items() if v is not None)))\n")
    full = {**os.environ, "_REGCTL_COMPLETE": "bash", "_REGCTL_LINE": "regctl ins"}
    proc = subprocess.run([sys.executable, "-c", code], env=full, capture_output=True, text=True, timeout=60)
    assert proc.stdout == "plain\ninspect\n", proc
    mods = set(proc.stderr.split())
    assert not mods & {"typer", "click", "pydantic", "rich", "regctl.cli.services", "httpx", "kazoo"}, mods


def test_a_changed_cli_rebuilds_the_tree(cache_home):
    from regctl.cli.completion import tree
    complete("regctl ins")
    path = cache_home / "regctl" / "completion-tree.json"
    data = json.loads(path.read_text())
    data["root"]["commands"]["inspect"]["short_help"] = "stale"
    data["fingerprint"] = "from another regctl"
    path.write_text(json.dumps(data))
    assert tree.load_tree() is None
    assert complete("regctl ins", shell="zsh")[1] == ["inspect"]
    assert json.loads(path.read_text())["fingerprint"] == tree.fingerprint()


def test_an_explicit_context_wins_over_the_environment_for_names(names_registry):
    """As for the commands: `--context lab` uses lab's URL even with CONFIG_SERVICE_URL set elsewhere."""
    res = run_cli("config", "set-context", "lab", "--config-url", names_registry.url)
    assert res.exit_code == 0, res
    env = {"CONFIG_SERVICE_URL": f"http://127.0.0.1:{free_port()}", **SLOW_OK}
    assert complete("regctl inspect a", env)[1] == []
    assert complete("regctl --context lab inspect a", env)[1] == ["asr-service", "audit-service"]


def test_printing_the_script_prepares_the_quick_path(cache_home):
    """`source <(regctl completion bash)` builds the command tree, so the shell's first TAB is quick."""
    tree_file = cache_home / "regctl" / "completion-tree.json"
    assert not tree_file.exists()
    proc = subprocess.run([str(BIN / "regctl"), "completion", "bash"], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "XDG_CACHE_HOME": str(cache_home)})
    assert proc.returncode == 0 and proc.stdout == (ROOT / "completions" / "regctl.bash").read_text()
    from regctl.cli.completion import tree
    assert tree.load_tree() is not None


@pytest.mark.parametrize("mode", ["huge", "silent"])
def test_a_hostile_zookeeper_costs_completion_its_budget_and_bounded_memory(mode, cache_home):
    """A 0x7fffffff frame or a 30 s session then silence: no candidates, nothing else printed, the
    lookup's budget (twice it plus a second at most) and bounded memory, as for the main reader."""
    from tests.test_contract_bounded_reads import PEAK_RSS_MB, run_measured
    from tests.test_contract_untrusted_input import FakeZooKeeper

    budget = 2.0
    srv = FakeZooKeeper(mode)
    try:
        r = run_measured([], {"_REGCTL_COMPLETE": "bash", "_REGCTL_LINE": "regctl inspect a",
                              "REGCTL_COMPLETION_BUDGET": str(budget), "ZOOKEEPER_HOSTS": srv.hosts,
                              "CONFIG_SERVICE_URL": "http://127.0.0.1:9"})
    finally:
        srv.close()
    assert r["code"] == 0, r
    assert r["stdout"].splitlines() == ["plain"] and r["stderr"] == "", r
    assert r["rss_mb"] < PEAK_RSS_MB, r
    assert r["wall"] < 2 * budget + 1, r


@pytest.mark.parametrize("mode", ["huge", "silent"])
def test_the_completion_zookeeper_client_is_hardened_itself(mode):
    """Not only abandoned when the budget runs out: the ZooKeeper lookup itself ends within it."""
    from regctl.cli.completion.lookup import _from_zookeeper
    from regctl.settings import resolve
    from tests.test_contract_untrusted_input import FakeZooKeeper

    srv = FakeZooKeeper(mode)
    settings = resolve({"zk_hosts": srv.hosts, "config_url": "http://127.0.0.1:9"})
    started = time.monotonic()
    try:
        with pytest.raises(Exception):
            _from_zookeeper(settings, None, 2.0)
    finally:
        srv.close()
    assert time.monotonic() - started < 2 * 2 + 1, mode
