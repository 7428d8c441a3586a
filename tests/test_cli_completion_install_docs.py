"""docs/completion.md's install lines run as written on a fresh machine (a new, empty HOME) in bash, zsh
and fish, and the completion they install loads: no missing directory, no root-owned target."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "completion.md"
BIN = str(Path(sys.executable).parent)


def install_blocks() -> list:
    """(shell, where, code) for every fenced block of 'Installing'; where is 'run', '~/.bashrc' or '~/.zshrc'."""
    text = PAGE.read_text(encoding="utf-8")
    section = text.split("## Installing\n", 1)[1].split("\n## ", 1)[0]
    out = []
    for m in re.finditer(r"```(\w+)\n(.*?)```", section, re.S):
        before = section[: m.start()].rstrip().rsplit("\n\n", 1)[-1]  # the paragraph that introduces it
        where = "run"
        for rc in ("~/.bashrc", "~/.zshrc"):
            if f"to `{rc}`" in before:
                where = rc
        out.append((m.group(1), where, m.group(2)))
    return out


BLOCKS = install_blocks()


def blocks(shell: str, where: str) -> list:
    return [code for sh, w, code in BLOCKS if sh == shell and w == where]


@pytest.fixture
def home(tmp_path):
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    return home


def env(home: Path) -> dict:
    keep = {k: os.environ[k] for k in ("LANG", "LC_ALL", "TERM") if k in os.environ}
    return {**keep, "HOME": str(home), "PATH": f"{BIN}:/usr/local/bin:/usr/bin:/bin", "ZDOTDIR": str(home),
            "XDG_CACHE_HOME": str(home / ".cache")}




def run(argv: list, home: Path) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, env=env(home), cwd=home, timeout=60)


def need(shell: str) -> None:
    if shutil.which(shell) is None:
        pytest.fail(f"{shell} is not installed (.ci/run installs it: apt-get install zsh fish)")


def test_the_page_documents_a_block_for_each_way():
    assert blocks("bash", "run") and blocks("bash", "~/.bashrc")
    assert blocks("zsh", "run") and len(blocks("zsh", "~/.zshrc")) == 2
    assert blocks("fish", "run")
    for _, _, code in BLOCKS:  # no system directory, no sudo
        assert "sudo" not in code and "fpath[1]" not in code and "/usr/" not in code, code


def test_bash_file_install_loads_through_bash_completion(home):
    for code in blocks("bash", "run"):
        res = run(["bash", "-euc", code], home)
        assert res.returncode == 0, res.stderr
    loader = Path("/usr/share/bash-completion/bash_completion")
    if not loader.is_file():
        pytest.fail("bash-completion is not installed (.ci/run installs it)")
    res = run(["bash", "-c", f"source {loader}; __load_completion regctl; complete -p regctl"], home)
    assert res.returncode == 0 and "regctl" in res.stdout, res


def test_bash_rc_line_loads(home):
    (home / ".bashrc").write_text("\n".join(blocks("bash", "~/.bashrc")))
    res = run(["bash", "-i", "-c", "complete -p regctl"], home)
    assert res.returncode == 0 and res.stdout.strip().endswith(" regctl"), res


def test_zsh_file_install_loads_from_a_directory_of_ours(home):
    need("zsh")
    for code in blocks("zsh", "run"):
        res = run(["zsh", "-euc", code], home)
        assert res.returncode == 0, res.stderr
    (home / ".zshrc").write_text(blocks("zsh", "~/.zshrc")[0])
    res = run(["zsh", "-i", "-c", "print -r -- $_comps[regctl]"], home)
    assert res.returncode == 0 and res.stdout.strip() == "_regctl", res
    assert (home / ".zfunc" / "_regctl").is_file()


def test_zsh_rc_line_loads(home):
    need("zsh")
    (home / ".zshrc").write_text("autoload -U compinit && compinit\n" + blocks("zsh", "~/.zshrc")[1])
    res = run(["zsh", "-i", "-c", "print -r -- ${+_comps[regctl]}"], home)
    assert res.returncode == 0 and res.stdout.strip() == "1", res


def test_fish_install_completes_commands(home):
    need("fish")
    for code in blocks("fish", "run"):
        res = run(["fish", "-c", code], home)
        assert res.returncode == 0, res.stderr
    res = run(["fish", "-c", "complete -C 'regctl insp'"], home)
    assert res.returncode == 0 and res.stdout.startswith("inspect"), res
