"""One error funnel: ``main()`` (regctl.cli.app) is the only place that turns an error into output: the one
line on stderr, the error document on stdout with -o json|yaml, the exit code. Commands, the per-run
runtime and settings resolution raise; they never print an error themselves."""

import ast
import socket
from pathlib import Path

import pytest

import regctl
from tests.helpers import run_cli

SRC = Path(regctl.__file__).parent
LOGGERS = {"log", "logger", "logging"}


def _module(path: Path) -> str:
    return path.relative_to(SRC).as_posix()


def _error_printer_calls(path: Path) -> list:
    """Calls of ``<something>.error(...)`` that are not a logger's: the renderer's error printer."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "error":
            receiver = node.func.value
            if not (isinstance(receiver, ast.Name) and receiver.id in LOGGERS):
                found.append(f"{_module(path)}:{node.lineno}")
    return found


def test_only_main_calls_the_error_printer():
    calls = [c for path in sorted((SRC / "cli").rglob("*.py")) for c in _error_printer_calls(path)]
    assert calls, "the scan found no call of the error printer at all: it no longer sees the funnel"
    assert {c.split(":")[0] for c in calls} == {"cli/app.py"}, calls


class _ErrorPrefixes(ast.NodeVisitor):
    """Where the text ``error: `` (the error line's prefix) is written: (module, enclosing function)."""

    def __init__(self, module: str) -> None:
        self.module, self.stack, self.found = module, ["<module>"], []

    def visit_FunctionDef(self, node: ast.AST) -> None:
        self.stack.append(node.name)  # type: ignore[attr-defined]
        self.generic_visit(node)
        self.stack.pop()

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Constant(self, node: ast.Constant) -> None:
        if isinstance(node.value, str) and ("error: " in node.value and node.value.strip() in ("error:", "regctl: error:")
                                            or "regctl: error" in node.value):
            self.found.append((self.module, self.stack[-1]))


#: programs of their own (``python -m regctl.sandbox.stack``, the sandbox's tooling): not regctl's command line
OTHER_PROGRAMS = {("sandbox/stack.py", "main")}


def test_the_error_line_is_written_by_one_function():
    found = []
    for path in sorted(SRC.rglob("*.py")):
        visitor = _ErrorPrefixes(_module(path))
        visitor.visit(ast.parse(path.read_text(encoding="utf-8")))
        found += [place for place in visitor.found if place not in OTHER_PROGRAMS]
    assert found == [("cli/render.py", "error")], found


def _one_error_line(result) -> str:
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("regctl: error: "), result
    return lines[0]


def test_a_settings_error_from_the_environment_prints_one_line_and_the_json_document():
    r = run_cli("list", "-o", "json", env={"REGCTL_TIMEOUT": "5x"})
    assert r.exit_code == 2, r
    line = _one_error_line(r)
    assert "'5x' is not a number" in line and "REGCTL_TIMEOUT" in line
    error = r.json["error"]
    assert error["code"] == 2 and error["type"] == "UsageError" and error["where"] == "REGCTL_TIMEOUT"
    assert "'5x' is not a number" in error["message"] and error["hint"]


def test_regctl_output_from_the_environment_gets_the_document_of_a_settings_error_too():
    r = run_cli("list", env={"REGCTL_TIMEOUT": "5x", "REGCTL_OUTPUT": "yaml"})
    assert r.exit_code == 2, r
    _one_error_line(r)
    assert r.yaml["error"]["where"] == "REGCTL_TIMEOUT"


def test_a_filter_error_prints_one_line_and_the_yaml_document():
    r = run_cli("list", "-o", "yaml", "--filter", "no-equals-sign")
    assert r.exit_code == 2, r
    line = _one_error_line(r)
    assert "--filter 'no-equals-sign' is not KEY=VALUE" in line
    error = r.yaml["error"]
    assert error["code"] == 2 and error["type"] == "UsageError"
    assert error["message"] == "--filter 'no-equals-sign' is not KEY=VALUE or KEY!=VALUE"


@pytest.mark.parametrize("args, env", [
    (["list", "--filter", "no-equals-sign"], {}),
    (["list"], {"REGCTL_TIMEOUT": "5x"}),
    (["list", "--bogus"], {}),
])
def test_without_json_or_yaml_stdout_stays_empty(args, env):
    r = run_cli(*args, env=env)
    assert r.exit_code == 2, r
    _one_error_line(r)
    assert r.stdout == ""


def test_a_usage_error_gets_the_document_in_the_format_asked():
    r = run_cli("list", "-o", "yaml", "--bogus")
    assert r.exit_code == 2, r
    assert _one_error_line(r) == "regctl: error: No such option: --bogus; try: regctl list --help"
    assert r.yaml["error"] == {"code": 2, "type": "UsageError", "message": "No such option: --bogus",
                               "where": None, "hint": "regctl list --help"}


def test_a_result_with_an_error_keeps_its_own_document_and_says_the_error_once():
    """A command that answers and fails (no current context): its data on stdout, no second document."""
    r = run_cli("config", "current-context", "-o", "json")
    assert r.exit_code == 1, r
    assert "no current context is set" in _one_error_line(r)
    assert "error" not in r.json and r.json["current-context"] is None


def test_a_command_failure_with_v_adds_its_detail_under_the_one_error_line():
    with socket.socket() as closed:  # bound, never listening: a connection is refused
        closed.bind(("127.0.0.1", 0))
        r = run_cli("list", "--config-url", f"http://127.0.0.1:{closed.getsockname()[1]}", "-o", "json", "-v")
    assert r.exit_code == 3, r
    errors = [l for l in r.stderr.splitlines() if l.startswith("regctl: error:")]
    assert len(errors) == 1 and "connection refused" in errors[0], r
    assert "regctl:   detail: " in r.stderr
    assert r.json["error"]["type"] == "Unreachable" and r.json["error"]["code"] == 3
