"""The docs stay true to the CLI: links resolve, every command and option is documented,
the exit-code table matches the enum, and doctor's checks match ``--list-checks``."""

import json
import pathlib
import re

import pytest

from regctl.cli.app import get_app
from regctl.errors import ExitCode
from tests.helpers import run_cli

ROOT = pathlib.Path(__file__).parent.parent
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md"] + sorted(DOCS.glob("*.md"))
README_MAX_LINES = 250


def _text(path: pathlib.Path) -> str:
    return path.read_text(encoding="utf-8")


def _without_code(text: str) -> str:
    """The text with fenced code blocks and inline code removed (links there are not links)."""
    text = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    return re.sub(r"`[^`\n]*`", "", text)


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to dashes."""
    s = heading.strip().lower()
    s = re.sub(r"[^\w\- ]", "", s)
    return s.replace(" ", "-")


def anchors(path: pathlib.Path) -> set:
    out, seen = set(), {}
    code = False
    for line in _text(path).splitlines():
        if line.startswith("```"):
            code = not code
            continue
        m = None if code else re.match(r"^#{1,6} (.+?)\s*#*\s*$", line)
        if m:
            slug = _slug(m.group(1))
            n = seen.get(slug, 0)
            seen[slug] = n + 1
            out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def links(path: pathlib.Path) -> list:
    return re.findall(r"\]\(([^)\s]+)\)", _without_code(_text(path)))


def sections(path: pathlib.Path) -> list:
    """(heading, body) for every heading, the body running to the next heading of the same or a higher level."""
    lines = _text(path).splitlines()
    heads = []
    code = False
    for i, line in enumerate(lines):
        if line.startswith("```"):
            code = not code
        m = None if code else re.match(r"^(#{1,6}) (.+)$", line)
        if m:
            heads.append((i, len(m.group(1)), m.group(2)))
    out = []
    for n, (i, level, title) in enumerate(heads):
        end = len(lines)
        for j, lvl, _ in heads[n + 1:]:
            if lvl <= level:
                end = j
                break
        out.append((title, "\n".join(lines[i + 1:end])))
    return out


def test_readme_is_a_short_front_door():
    text = _text(ROOT / "README.md")
    assert len(text.splitlines()) <= README_MAX_LINES
    assert "bash scripts/try.sh" in text and "bash .ci/run" in text
    for page in sorted(DOCS.glob("*.md")):
        if page.name != "README.md":
            assert f"docs/{page.name}" in text, f"README does not link docs/{page.name}"


def test_the_readme_commands_exist():
    assert (ROOT / "scripts" / "try.sh").is_file()
    ci = ROOT / ".ci" / "run"
    assert ci.is_file()
    assert "pytest" in _text(ci)


def test_the_docs_index_lists_every_page():
    index = _text(DOCS / "README.md")
    for page in sorted(DOCS.glob("*.md")):
        if page.name != "README.md":
            assert f"]({page.name})" in index, f"docs/README.md does not list {page.name}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_and_anchor_resolves(page):
    bad = []
    for target in links(page):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        dest = (page.parent / file_part).resolve() if file_part else page
        if not dest.exists():
            bad.append(f"{target}: no such file")
            continue
        if anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            bad.append(f"{target}: no heading with anchor #{anchor} in {dest.name}")
    assert not bad, f"{page.name}: broken links: {bad}"


def test_link_checker_sees_a_broken_anchor(tmp_path):
    page = tmp_path / "p.md"
    page.write_text("# Title\n\n## Real one\n\nsee [x](#real-one) and [y](#missing) `[z](#code)`\n")
    assert anchors(page) == {"title", "real-one"}
    assert links(page) == ["#real-one", "#missing"]


NO_TRACKER = re.compile(r"\bissue \d+|\bissue\s*#\d+|\bdone when\b|\(point \d+\)|\b(?:contexts|docs|hostile|compat|monitor|sandbox|truth) helper\b", re.I)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_tracker_wording(page):
    found = NO_TRACKER.findall(_text(page))
    assert not found, f"{page.name}: tracker wording: {found}"


def test_no_tracker_wording_in_code_tests_scripts_or_completions():
    here = pathlib.Path(__file__).resolve()
    files = [p for top in ("src", "tests", "scripts", "bench", "completions", ".ci")
             for p in sorted((ROOT / top).rglob("*")) if p.is_file() and p.suffix != ".pyc" and p != here]
    assert len(files) > 50
    found = []
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        found += [f"{path.relative_to(ROOT)}: {m}" for m in NO_TRACKER.findall(text)]
    assert not found, f"tracker wording: {found}"


def test_tracker_wording_is_recognised():
    assert NO_TRACKER.findall("Auth and TLS (issue 7, points 4 and 6)") == ["issue 7"]


# ---------------------------------------------------------------------------
# commands and options
# ---------------------------------------------------------------------------

def _root_command():
    import typer.main

    return typer.main.get_command(get_app())


def command_paths():
    out = []

    def walk(cmd, prefix):
        for name, sub in getattr(cmd, "commands", {}).items():
            if getattr(sub, "hidden", False):
                continue
            if getattr(sub, "commands", None):
                walk(sub, prefix + [name])
            else:
                out.append((prefix + [name], sub))

    walk(_root_command(), [])
    return out


def _shared_option_help() -> dict:
    """name -> help text of every shared option (to tell a command's own options apart)."""
    from regctl.cli.options import COMMON_OPTIONS

    out = {}
    for name, ann in COMMON_OPTIONS.items():
        for meta in getattr(ann, "__metadata__", ()):
            if hasattr(meta, "help"):
                out[name] = meta.help
    return out


def _long_flag(param) -> str:
    flags = [o for o in list(param.opts) + list(param.secondary_opts) if o.startswith("--")]
    return flags[0] if flags else param.opts[0]


def _is_shared(param, shared: dict) -> bool:
    return param.name in shared and (param.help or "") == (shared[param.name] or "")


def _mentions(heading: str, path: list) -> bool:
    words = " ".join(path)
    return re.search(r"regctl " + re.escape(words) + r"(?![\w-])", heading) is not None


def _docs_for(path: list) -> str:
    """The text of every commands.md section whose heading names the command (or its group)."""
    secs = sections(DOCS / "commands.md")
    for n in range(len(path), 0, -1):
        found = [body for title, body in secs if _mentions(title, path[:n])]
        if found:
            return "\n".join(found)
    return ""


def test_every_command_and_option_is_in_commands_md():
    shared = _shared_option_help()
    paths = command_paths()
    assert ["list"] in [p for p, _ in paths] and ["sandbox", "up"] in [p for p, _ in paths]
    missing = []
    for path, cmd in paths:
        text = _docs_for(path)
        if not text:
            missing.append(f"regctl {' '.join(path)}: no section in docs/commands.md")
            continue
        for param in cmd.params:
            if param.param_type_name != "option" or getattr(param, "hidden", False) or _is_shared(param, shared):
                continue
            flag = _long_flag(param)
            if not re.search(re.escape(flag) + r"(?![\w-])", text):
                missing.append(f"regctl {' '.join(path)} {flag}")
    assert not missing, "not documented in docs/commands.md: " + ", ".join(missing)


def test_every_shared_option_is_in_commands_md():
    root = _root_command()
    text = dict(sections(DOCS / "commands.md"))["Shared options"]
    missing = [_long_flag(p) for p in root.params
               if p.param_type_name == "option" and not getattr(p, "hidden", False)
               and not re.search(re.escape(_long_flag(p)) + r"(?![\w-])", text)]
    assert not missing, f"shared options missing from 'Shared options' in docs/commands.md: {missing}"


def test_option_check_notices_an_undocumented_option():
    assert _docs_for(["list"]) and "--source" in _docs_for(["list"])
    assert not re.search(r"--no-such-option(?![\w-])", _docs_for(["list"]))
    assert _docs_for(["no-such-command"]) == ""


def test_every_command_has_help():
    for path, _ in command_paths():
        res = run_cli(*path, "--help")
        assert res.exit_code == 0, path
        assert "Usage:" in res.stdout


# ---------------------------------------------------------------------------
# exit codes and doctor checks
# ---------------------------------------------------------------------------

def test_exit_code_table_matches_the_enum():
    text = dict(sections(DOCS / "output.md"))["Exit codes"]
    documented = {int(m) for m in re.findall(r"^\| (\d+) \|", text, re.M)}
    assert documented == {int(c) for c in ExitCode}


def test_doctor_md_lists_exactly_the_checks_of_list_checks():
    res = run_cli("doctor", "--list-checks", "-o", "json")
    assert res.exit_code == 0, res.stderr
    listed = [c["name"] for c in json.loads(res.stdout)["checks"]]
    assert len(listed) > 10
    text = _text(DOCS / "doctor.md")
    documented = re.findall(r"^\| `([a-z]+\.[a-z-]+)` \|", text, re.M)
    assert sorted(documented) == sorted(listed)
    assert documented == listed, "doctor.md lists the checks in another order than --list-checks"


def test_tests_and_bench_scripts_named_in_the_docs_exist():
    """A page that says "tested by X" or "run bench/Y" names something that is there."""
    tests_text = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "tests").rglob("*.py"))
    missing = []
    for page in PAGES:
        text = _text(page)
        for path in set(re.findall(r"\b((?:tests|bench|scripts)/[\w/.-]+\.(?:py|sh))\b", text)):
            if not (ROOT / path).exists():
                missing.append(f"{page.name}: {path}")
        for name in set(re.findall(r"\b(test_\w+)\b", text)) - set(re.findall(r"\b(test_\w*_)\b", text)):
            if not re.search(rf"def {name}\b|/{name}\.py|^{name}\.py", tests_text + "\n" + "\n".join(
                    str(p.relative_to(ROOT)) for p in (ROOT / "tests").rglob("*.py")), re.M):
                missing.append(f"{page.name}: {name}")
    assert not missing, missing


def test_the_man_page_is_generated_from_the_cli_and_renders():
    import shutil
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "man.py")], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0 and proc.stderr == "", proc
    page = proc.stdout
    assert page.startswith(".TH REGCTL 1 ")
    shared = _shared_option_help()
    for path, cmd in command_paths():
        assert f"\\fBregctl {' '.join(path)}\\fR" in page, path
        for param in cmd.params:
            if param.param_type_name == "option" and not getattr(param, "hidden", False) \
                    and not _is_shared(param, shared):
                assert _long_flag(param).replace("-", "\\-") in page, (path, _long_flag(param))
    if shutil.which("groff"):
        render = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z"], input=page, capture_output=True,
                                text=True, timeout=60)
        assert render.returncode == 0 and render.stderr == "", render.stderr


# --------------------------------------------------------------------------- the design map

def _design_map() -> set:
    """The paths docs/design.md's module map names, relative to src/regctl (``cli/app.py``, ``doctor/checks/``)."""
    text = _text(DOCS / "design.md")
    block = re.search(r"^```\nsrc/regctl/\n(.*?)^```", text, re.S | re.M).group(1)
    named, stack = set(), []
    for line in block.splitlines():
        m = re.match(r"^( +)(\S+)", line)
        if not m or not re.fullmatch(r"[\w.]+\.py|\w+/", m.group(2)):
            continue
        depth = len(m.group(1)) // 2 - 1
        stack = stack[:depth] + [m.group(2)]
        named.add("".join(stack))
    return named


def test_design_map_names_every_module_and_only_real_ones():
    src = ROOT / "src" / "regctl"
    named = _design_map()
    assert "cli/app.py" in named and "doctor/checks/" in named
    missing = sorted(n for n in named if not (src / n).exists())
    assert not missing, f"docs/design.md names what does not exist: {missing}"
    real = {str(p.relative_to(src)) for p in src.rglob("*.py") if "__pycache__" not in p.parts}
    def covered(path: str) -> bool:  # a package's __init__.py is named by its package's line
        return path in named or path.endswith("__init__.py") and path[:-len("__init__.py")] in named \
            or any(path.startswith(n) for n in named if n.endswith("/") and n.count("/") > 1)
    unnamed = sorted(p for p in real if not covered(p))
    assert not unnamed, f"docs/design.md does not name: {unnamed}"


def test_the_readme_test_command_is_the_one_ci_runs():
    readme = _text(ROOT / "README.md")
    said = re.search(r"then runs the test suite: (python -m pytest[^\n`]*)", readme).group(1).strip()
    shown = re.search(r"^(python -m pytest[^#\n]*?)\s+# inside the \.venv", readme, re.M).group(1).strip()
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    run = re.search(r"&& (python -m pytest[^)\n]*)\)", ci).group(1).strip()
    assert said == shown == run
    assert f"python -m pytest {run.split('pytest ', 1)[1]}" in _text(DOCS / "reliability.md")
