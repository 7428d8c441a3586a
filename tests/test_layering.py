"""Core modules never import typer or rich; startup paths never import httpx or kazoo."""

import pkgutil
import subprocess
import sys

import pytest

import regctl

CORE = sorted(m.name for m in pkgutil.walk_packages(regctl.__path__, "regctl.")
              if not m.name.startswith("regctl.cli") and m.name not in ("regctl.__main__",))


def loaded_after(code: str) -> set:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys; print(' '.join(m for m, v in list(sys.modules.items()) if v is not None))"],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    return set(out.split())


@pytest.mark.parametrize("module", CORE)
def test_core_module_does_not_import_cli_libraries(module):
    # httpx imports its own CLI (click + rich) when they are installed; regctl's entry point blocks that
    # module, and so does this test, so what remains is what regctl's core imports itself.
    mods = loaded_after(f"import sys; sys.modules['httpx._main'] = None\nimport {module}")
    assert not {m for m in mods if m.split(".")[0] in ("typer", "rich", "click")}, module


@pytest.mark.parametrize("argv", [["--version"], ["--help"], ["list", "--help"], ["sandbox", "--help"]])
def test_startup_paths_do_not_import_network_libraries(argv):
    mods = loaded_after(f"import sys; sys.argv = ['regctl'] + {argv!r}\n"
                        "from regctl.cli.app import main\n"
                        "import contextlib, io\n"
                        "with contextlib.redirect_stdout(io.StringIO()): main()")
    assert not {m for m in mods if m.split(".")[0] in ("httpx", "kazoo", "httpcore")}


def test_version_does_not_even_import_typer():
    mods = loaded_after("import sys; sys.argv = ['regctl', '--version']\nfrom regctl.cli.app import main\n"
                        "import contextlib, io\nwith contextlib.redirect_stdout(io.StringIO()): main()")
    assert "typer" not in mods and "rich" not in mods


def test_no_module_grows_past_its_budget():
    import pathlib
    src = pathlib.Path(regctl.__file__).parent
    big = {str(p.relative_to(src)): n for p in src.rglob("*.py") if (n := len(p.read_text().splitlines())) > 700}
    assert not big, f"split these modules: {big}"
