"""The doctor package's layout: no import cycle, every module importable alone, one module per area."""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys

import pytest

import regctl.doctor
from regctl.doctor import AREAS, list_checks
from regctl.doctor.registry import AREA_MODULES

PKG = pathlib.Path(regctl.doctor.__file__).parent


def module_name(path: pathlib.Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return "regctl." + ".".join(parts)


MODULES = {module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def imports_of(name: str, path: pathlib.Path) -> set[str]:
    """Modules of the doctor package that ``name`` imports (at any level, lazy imports included)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    is_pkg = path.name == "__init__.py"
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_pkg else name.split(".")[:-1]
                base = base[:len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            targets = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in MODULES else mod for a in node.names]
        else:
            continue
        out.update(t for t in targets if t in MODULES)
    return out


GRAPH = {name: imports_of(name, path) for name, path in MODULES.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state:
                found = visit(m)
                if found:
                    return found
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state:
            found = visit(n)
            if found:
                return found
    return None


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_parser_sees_the_imports():
    assert "regctl.doctor.base" in GRAPH["regctl.doctor.facts"]
    assert "regctl.doctor.checks.config" in GRAPH["regctl.doctor.registry"]
    assert "regctl.doctor.registry" in GRAPH["regctl.doctor"]


def test_no_import_cycle_inside_the_doctor_package():
    assert find_cycle(GRAPH) is None, " -> ".join(find_cycle(GRAPH) or [])


def test_no_module_imports_the_package_front_door():
    # the package's __init__ imports the registry, which imports every check module: a check that imported
    # ``regctl.doctor`` itself would close a cycle through it
    offenders = [n for n, deps in GRAPH.items() if n != "regctl.doctor" and "regctl.doctor" in deps]
    assert not offenders


def test_checks_do_not_import_the_registry():
    offenders = [n for n, deps in GRAPH.items()
                 if n.startswith("regctl.doctor.checks") and "regctl.doctor.registry" in deps]
    assert not offenders


@pytest.mark.parametrize("module", sorted(MODULES))
def test_each_module_imports_alone_in_a_fresh_interpreter(module):
    proc = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_one_module_per_area_and_each_check_in_its_area_module():
    assert [m.__name__.rsplit(".", 1)[-1] for m in AREA_MODULES] == list(AREAS)
    for mod in AREA_MODULES:
        area = mod.__name__.rsplit(".", 1)[-1]
        assert mod.CHECKS and all(c.area == area and c.name.startswith(area + ".") for c in mod.CHECKS)
    assert len(list_checks()) == sum(len(m.CHECKS) for m in AREA_MODULES)
