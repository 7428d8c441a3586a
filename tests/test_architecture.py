"""The code's shape: no import circle, small signatures in the core, thin commands, one deadline primitive."""

from __future__ import annotations

import ast
import inspect
import pathlib
import textwrap

import pytest

import regctl

pytestmark = pytest.mark.compat

SRC = pathlib.Path(regctl.__file__).parent


def _modules() -> dict:
    """Dotted module name -> its file, for every module of the package."""
    out = {}
    for path in SRC.rglob("*.py"):
        parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _imported(module: str, path: pathlib.Path, node: ast.AST) -> list:
    """The package's modules one import statement names (function-level imports included)."""
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    elif isinstance(node, ast.ImportFrom) and node.module != "__future__":
        base = node.module or ""
        if node.level:
            package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
            package = package[:len(package) - (node.level - 1)]
            base = ".".join(package + ([node.module] if node.module else []))
        names = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
    else:
        return []
    out = []
    for name in names:
        while name and name not in MODULES:
            name = name.rpartition(".")[0]
        if name and name != module:
            out.append(name)
    return out


def import_graph() -> dict:
    graph = {}
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        graph[module] = {dep for node in ast.walk(tree) for dep in _imported(module, path, node)}
    return graph


def cycles(graph: dict) -> list:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index, low, on_stack, stack, found = {}, {}, set(), [], []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_cycle_finder_finds_a_circle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_import_graph_sees_function_level_imports():
    graph = import_graph()
    assert "regctl.cli.completion.tree" in graph["regctl.cli.app"]  # imported inside _run, on the TAB path


def test_no_import_circle_anywhere():
    found = cycles(import_graph())
    assert not found, f"import circles (function-level imports count): {found}"


def _parameters(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    a = fn.args
    names = [p.arg for p in (*a.posonlyargs, *a.args, *a.kwonlyargs)]
    if names and names[0] in ("self", "cls"):
        names.pop(0)
    return len(names) + bool(a.vararg) + bool(a.kwarg)


def test_no_core_function_takes_more_than_eight_parameters():
    wide = []
    for module, path in MODULES.items():
        if module.startswith("regctl.cli"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and _parameters(node) > 8:
                wide.append(f"{module}.{node.name} ({_parameters(node)})")
    assert not wide, f"group these parameters in a dataclass: {wide}"


def _command_functions() -> list:
    """(command path, the plain function behind it) for every command of the CLI."""
    import typer

    from regctl.cli.app import get_app

    out = []

    def walk(cmd, path):
        for name, sub in (getattr(cmd, "commands", None) or {}).items():
            walk(sub, [*path, name])
        callback = getattr(cmd, "callback", None)
        fn = getattr(callback, "__regctl_command__", None)
        if fn is not None:
            out.append((" ".join(path), inspect.unwrap(fn)))

    walk(typer.main.get_command(get_app()), [])
    return out


def body_lines(fn) -> int:
    """Lines of a function's body after its signature and docstring."""
    node = ast.parse(textwrap.dedent(inspect.getsource(fn))).body[0]
    body = node.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]
    return body[-1].end_lineno - body[0].lineno + 1 if body else 0


def test_commands_are_thin():
    commands = _command_functions()
    assert len(commands) > 15 and any(path == "register" for path, _ in commands)
    long = [f"{path}: {body_lines(fn)} lines" for path, fn in commands if body_lines(fn) > 50]
    assert not long, f"move the logic into the core and return a report: {long}"


def test_one_deadline_primitive():
    """Threads with deadlines are started in one module; everything else asks it."""
    starters = []
    for module, path in MODULES.items():
        text = path.read_text(encoding="utf-8")
        if module in ("regctl.deadline",) or module.startswith("regctl.sandbox"):
            continue  # the sandbox's servers run their own threads: they serve, they are not waited for
        if "threading.Thread(" in text or "ThreadPoolExecutor(" in text:
            starters.append(module)
    assert not starters, f"use regctl.deadline instead of threads of your own: {starters}"


COMMAND_MODULES = ("services", "registration", "health", "doctor", "transfer", "watch", "config", "sandbox",
                   "version")


@pytest.mark.parametrize("name", COMMAND_MODULES)
def test_command_modules_print_only_through_the_renderer(name):
    """No print(), no stream writes, no Console of their own: the renderer (cli/render.py, cli/live.py)
    is the only printer, so every format and every terminal rule applies to everything a command says."""
    tree = ast.parse((SRC / "cli" / f"{name}.py").read_text(encoding="utf-8"))
    side_doors = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            fn = node.func
            called = fn.id if isinstance(fn, ast.Name) else fn.attr if isinstance(fn, ast.Attribute) else ""
            if called in ("print", "Console", "echo", "secho") or (
                    called == "write" and "std" in ast.unparse(fn.value)):
                side_doors.append(f"line {node.lineno}: {ast.unparse(node)[:60]}")
    assert not side_doors, side_doors
