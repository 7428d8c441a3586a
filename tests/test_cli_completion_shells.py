"""Completion in the real shells, installed the documented ways, with a real TAB on a terminal.

Each shell runs interactively on a pseudo-terminal. A key bound to print the line buffer shows
what the TAB did; listing keys insert every candidate into the line (bash's insert-completions,
zsh's _all_matches), and fish answers `complete -C`, its own entry point.

bash: `source <(regctl completion bash)` in the rc file, and the bash-completion package's lazy
loading from ~/.local/share/bash-completion/completions/regctl; zsh: `_regctl` on $fpath with
compinit (the first TAB of a new shell), and `source <(regctl completion zsh)`; fish:
~/.config/fish/completions/regctl.fish.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import shutil
import signal
import struct
import sys
import termios
import time
from pathlib import Path

import pytest

from regctl.http.api import RegistryApi
from tests.conftest import free_port

BIN = Path(sys.executable).parent
BASH_COMPLETION = Path("/usr/share/bash-completion/bash_completion")
ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[()][A-Za-z0-9]|\x1b[=>]|\x1b\][^\x07]*\x07|\r")
#: the names lookup may take this long on a loaded test machine; the default is for people
SLOW_OK = {"REGCTL_COMPLETION_BUDGET": "10"}
TAB, SHOW, LIST_ALL = "\t", "\x07", "\x14"  # TAB; Ctrl-G prints the line; Ctrl-T inserts every candidate


def need(shell: str) -> None:
    if shutil.which(shell) is None:
        pytest.fail(f"{shell} is not installed (.ci/run installs it: apt-get install zsh fish)")


class Terminal:
    """An interactive shell on a pseudo-terminal."""

    def __init__(self, argv: list, env: dict, cwd: Path) -> None:
        pid, fd = pty.fork()
        if pid == 0:  # pragma: no cover - the child
            os.chdir(cwd)
            os.execvpe(argv[0], argv, env)
        self.pid, self.fd, self.buf = pid, fd, b""
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 400, 0, 0))

    def send(self, keys: str) -> None:
        os.write(self.fd, keys.encode())

    def expect(self, pattern: str, timeout: float = 90) -> "re.Match":
        rx = re.compile(pattern)
        end = time.monotonic() + timeout
        while True:
            text = ANSI.sub("", self.buf.decode("utf-8", "replace"))
            m = rx.search(text)
            if m:
                self.buf = b""
                return m
            left = end - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{pattern!r} not seen within {timeout}s; the terminal shows: {text[-3000:]!r}")
            ready, _, _ = select.select([self.fd], [], [], left)
            if ready:
                try:
                    chunk = os.read(self.fd, 65536)
                except OSError:
                    chunk = b""
                if not chunk:
                    raise AssertionError(f"the shell exited; it showed: {text[-3000:]!r}")
                self.buf += chunk

    def line_after(self, keys: str) -> str:
        """Type ``keys`` on an empty line; return the line buffer afterwards (and clear it)."""
        self.send(keys + SHOW)
        line = self.expect(r"<<(.*?)>>\n").group(1)
        self.send("\x01\x0b")  # Ctrl-A Ctrl-K: empty the line
        return line

    def close(self) -> None:
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        os.waitpid(self.pid, 0)
        os.close(self.fd)


@pytest.fixture
def home(tmp_path):
    """A home directory with a file to complete; XDG dirs inside it."""
    home = tmp_path / "home"
    (home / "work").mkdir(parents=True)
    (home / "work" / "backup.yaml").write_text("version: 1\n")
    return home


def shell_env(home: Path, extra: dict) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "BASH", "ZDOTDIR", "fish"))}
    env.update({"HOME": str(home), "TERM": "dumb", "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
                "XDG_CACHE_HOME": str(home / ".cache"), "INPUTRC": "/dev/null", **extra})
    env.pop("XDG_CONFIG_HOME", None)
    return env


def regctl_script(shell: str) -> str:
    from regctl.cli.completion.script import script

    return script(shell)


@pytest.fixture
def names(registry):
    with RegistryApi(registry.url, timeout=5) as api:
        for name, iid in (("asr-service", "asr-1"), ("asr-service", "asr-2"), ("audit-service", "audit-1")):
            api.register({"service_name": name, "service_url": f"http://{name}.test:80", "health_check_url": None,
                          "service_metadata": {"instance_id": iid, "status": "healthy"}})
    return registry


# --------------------------------------------------------------------------- starting each shell

def start_bash(home: Path, env: dict, how: str) -> Terminal:
    need("bash")
    rc = home / ".bashrc"
    lines = ["PS1='$ '"]
    if how == "bash-completion":
        if not BASH_COMPLETION.exists():
            pytest.fail("the bash-completion package is missing (.ci/run installs it)")
        target = home / ".local" / "share" / "bash-completion" / "completions" / "regctl"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(regctl_script("bash"))
        lines.append(f"source {BASH_COMPLETION}")
    else:
        lines.append("source <(regctl completion bash)")
    lines += ["bind 'set show-all-if-ambiguous on'", "bind 'set completion-query-items -1'",
              "bind 'set bell-style none'",
              "bind -x '\"\\C-g\": printf \"<<%s>>\\n\" \"$READLINE_LINE\"'",
              "bind '\"\\C-t\": insert-completions'", "echo READY"]
    rc.write_text("\n".join(lines) + "\n")
    term = Terminal(["bash", "--rcfile", str(rc), "-i"], shell_env(home, env), home / "work")
    term.expect(r"(?:^|\n)READY\n")
    return term


def start_zsh(home: Path, env: dict, how: str) -> Terminal:
    need("zsh")
    lines = ["PS1='%% '", "unsetopt BEEP"]
    if how == "fpath":
        fdir = home / ".zfunc"
        fdir.mkdir(exist_ok=True)
        (fdir / "_regctl").write_text(regctl_script("zsh"))
        lines += [f"fpath=({fdir} $fpath)", "autoload -U compinit && compinit -D"]
    else:
        lines += ["autoload -U compinit && compinit -D", "source <(regctl completion zsh)"]
    lines += ["_show() { zle -I; print -r -- \"<<$BUFFER>>\" }", "zle -N _show", "bindkey '^G' _show",
              "zle -C all-matches complete-word _generic", "bindkey '^T' all-matches",
              "zstyle ':completion:all-matches:*' completer _all_matches _complete",
              "zstyle ':completion:all-matches:*' insert true", "echo READY"]
    (home / ".zshrc").write_text("\n".join(lines) + "\n")
    term = Terminal(["zsh", "-i"], shell_env(home, {"ZDOTDIR": str(home), **env}), home / "work")
    term.expect(r"(?:^|\n)READY\n")
    return term


def start_fish(home: Path, env: dict) -> Terminal:
    need("fish")
    target = home / ".config" / "fish" / "completions" / "regctl.fish"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(regctl_script("fish"))
    term = Terminal(["fish", "-i"], shell_env(home, env), home / "work")
    term.send("function fish_prompt; echo -n '> '; end; function fish_greeting; end; "
              "bind \\cg 'echo \"<<\"(commandline)\">>\"'; echo READY\n")
    term.expect(r"(?:^|\n)READY\n")
    return term


def fish_candidates(term: Terminal, line: str) -> list:
    term.send(f"for c in (complete -C'{line}'); echo \"C<$c>\"; end; echo END\n")
    m = term.expect(r"\n((?:C<[^\n]*>\n)*)END\n")
    return [c.split("\t")[0] for c in re.findall(r"C<([^\n]*)>", m.group(1))]


def bash_like(term: Terminal, reg) -> None:
    """The checks bash and zsh share (a first TAB has been typed already)."""
    zk, base, url = reg.zk_hosts, reg.base_path, reg.url
    assert term.line_after("regctl inspect aud" + TAB) == "regctl inspect audit-service "
    assert term.line_after("regctl inspect a" + LIST_ALL) == "regctl inspect asr-service audit-service "
    assert term.line_after("regctl deregister asr-service " + LIST_ALL) == "regctl deregister asr-service asr-1 asr-2 "
    # ':' and '=' in earlier words: bash splits COMP_WORDS there, regctl must not
    assert term.line_after(f"regctl --zk {zk} --zk-base {base} inspect aud" + TAB) == \
        f"regctl --zk {zk} --zk-base {base} inspect audit-service "
    assert term.line_after(f"regctl --config-url={url} inspect aud" + TAB) == \
        f"regctl --config-url={url} inspect audit-service "
    assert term.line_after("regctl list --source=a" + LIST_ALL).startswith("regctl list --source=a")
    # a file where a file is wanted, none where a service name is
    assert term.line_after("regctl import back" + TAB) == "regctl import backup.yaml "
    assert term.line_after("regctl inspect back" + TAB) == "regctl inspect back"


# --------------------------------------------------------------------------- bash

@pytest.mark.parametrize("how", ["source", "bash-completion"])
def test_bash(home, names, how):
    term = start_bash(home, {**names.env, **SLOW_OK}, how)
    try:
        assert term.line_after("regctl ins" + TAB) == "regctl inspect "  # the first TAB of the shell
        bash_like(term, names)
        assert term.line_after("regctl list --source=a" + LIST_ALL) == "regctl list --source=api auto "
    finally:
        term.close()


# --------------------------------------------------------------------------- zsh

@pytest.mark.parametrize("how", ["fpath", "source"])
def test_zsh(home, names, how):
    term = start_zsh(home, {**names.env, **SLOW_OK}, how)
    try:
        assert term.line_after("regctl ins" + TAB) == "regctl inspect "  # the first TAB of the shell
        assert term.line_after("regctl ins" + TAB) == "regctl inspect "  # and the second
        bash_like(term, names)
        assert term.line_after("regctl list --source=a" + LIST_ALL) == "regctl list --source=auto --source=api "
    finally:
        term.close()


def test_zsh_first_tab_completes_a_service_name(home, names):
    """The very first TAB of a new shell, with _regctl autoloaded from $fpath, completes live names."""
    term = start_zsh(home, {**names.env, **SLOW_OK}, "fpath")
    try:
        assert term.line_after("regctl inspect aud" + TAB) == "regctl inspect audit-service "
    finally:
        term.close()


# --------------------------------------------------------------------------- fish

def test_fish(home, names):
    term = start_fish(home, {**names.env, **SLOW_OK})
    try:
        assert term.line_after("regctl ins" + TAB) == "regctl inspect "  # the first TAB of the shell
        assert term.line_after("regctl inspect aud" + TAB) == "regctl inspect audit-service "
        assert term.line_after("regctl import back" + TAB) == "regctl import backup.yaml "
        assert term.line_after("regctl inspect back" + TAB) == "regctl inspect back"
        assert fish_candidates(term, "regctl inspect a") == ["asr-service", "audit-service"]
        assert fish_candidates(term, "regctl deregister asr-service ") == ["asr-1", "asr-2"]
        zk, base, url = names.zk_hosts, names.base_path, names.url
        assert fish_candidates(term, f"regctl --zk {zk} --zk-base {base} inspect aud") == ["audit-service"]
        assert fish_candidates(term, f"regctl --config-url={url} inspect aud") == ["audit-service"]
        assert fish_candidates(term, "regctl list --source=a") == ["--source=api", "--source=auto"]
    finally:
        term.close()


# --------------------------------------------------------------------------- registry down, ZooKeeper down

def down_env() -> dict:
    dead = free_port()
    return {"CONFIG_SERVICE_URL": f"http://127.0.0.1:{dead}", "ZOOKEEPER_HOSTS": f"127.0.0.1:{dead}"}


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_registry_down_offers_no_file_names(home, shell):
    (home / "work" / "asr-notes.txt").write_text("x")
    if shell == "bash":
        term = start_bash(home, down_env(), "source")
    elif shell == "zsh":
        term = start_zsh(home, down_env(), "fpath")
    else:
        term = start_fish(home, down_env())
    try:
        assert term.line_after("regctl inspect asr" + TAB) == "regctl inspect asr"
        assert term.line_after("regctl deregister asr-service asr" + TAB) == "regctl deregister asr-service asr"
        assert term.line_after("regctl import asr" + TAB) == "regctl import asr-notes.txt "
    finally:
        term.close()


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_zookeeper_down_names_come_from_the_api(home, names, shell):
    env = {"CONFIG_SERVICE_URL": names.url, "ZOOKEEPER_HOSTS": f"127.0.0.1:{free_port()}", **SLOW_OK}
    if shell == "bash":
        term = start_bash(home, env, "source")
    elif shell == "zsh":
        term = start_zsh(home, env, "fpath")
    else:
        term = start_fish(home, env)
    try:
        assert term.line_after("regctl inspect aud" + TAB) == "regctl inspect audit-service "
    finally:
        term.close()


def test_a_bad_setting_in_the_rc_environment_does_not_break_sourcing(home, names):
    """source <(regctl completion bash) in ~/.bashrc keeps working with a bad unrelated setting."""
    env = {"REGCTL_CONTEXT": "no-such-context", "REGCTL_TIMEOUT": "0", "REGCTL_OUTPUT": "json"}
    term = start_bash(home, env, "source")
    try:
        assert term.line_after("regctl ins" + TAB) == "regctl inspect "
    finally:
        term.close()


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_a_name_with_a_space_stays_one_word(home, registry, shell):
    """Registry names are untrusted: a space (or a $) in one must not split the command line."""
    with RegistryApi(registry.url, timeout=5) as api:
        api.register({"service_name": "odd name$x", "service_url": "http://odd.test:80", "health_check_url": None,
                      "service_metadata": {"instance_id": "odd-1", "status": "healthy"}})
    env = {**registry.env, **SLOW_OK}
    if shell == "bash":
        term = start_bash(home, env, "source")
    elif shell == "zsh":
        term = start_zsh(home, env, "fpath")
    else:
        term = start_fish(home, env)
    try:
        assert term.line_after("regctl inspect od" + TAB) == "regctl inspect odd\\ name\\$x "
    finally:
        term.close()
