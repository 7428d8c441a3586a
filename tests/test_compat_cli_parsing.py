"""Command-line parsing: positionals, short flags and typed options reach the commands as declared.

These are the cases that broke on Python 3.10, where ``typing.get_type_hints`` turned
``Annotated[Optional[X], typer.Argument()] = None`` into ``Optional[Annotated[...]]``
and typer saw a plain option. They parse through the real click command tree (no
command runs), so they are fast and run in the oldest/newest-Python CI legs too.
"""

from __future__ import annotations

import inspect

import pytest

from regctl.cli.app import get_app
from tests.helpers import run_cli

pytestmark = pytest.mark.compat


def _root():
    import typer.main

    return typer.main.get_command(get_app())


def parse(*argv: str) -> dict:
    """``ctx.params`` of the leaf command that ``regctl *argv`` names (nothing is run)."""
    root = _root()
    ctx = root.context_class(root, info_name="regctl")
    cmd, args = root, list(argv)
    while hasattr(cmd, "get_command") and args:
        sub = cmd.get_command(ctx, args[0])
        assert sub is not None, f"no command {args[0]!r}"
        ctx = sub.context_class(sub, info_name=args[0], parent=ctx) if hasattr(sub, "get_command") else ctx
        cmd, args = sub, args[1:]
    leaf = cmd.make_context(argv[0], args, parent=ctx)
    return leaf.params


def test_health_takes_service_names_as_positionals():
    params = parse("health", "asr-service", "nmt-service")
    assert list(params["names"]) == ["asr-service", "nmt-service"]


def test_doctor_takes_check_names_as_positionals():
    params = parse("doctor", "config.reachable", "zookeeper")
    assert list(params["checks"]) == ["config.reachable", "zookeeper"]


def test_watch_takes_names_and_for_seconds():
    params = parse("watch", "asr-service", "--for", "2.5", "--count", "3")
    assert list(params["names"]) == ["asr-service"]
    assert params["for_"] == 2.5
    assert params["count"] == 3


def test_export_takes_names_and_short_file_flag(tmp_path):
    target = str(tmp_path / "out.yaml")
    params = parse("export", "asr-service", "-f", target)
    assert list(params["names"]) == ["asr-service"]
    assert params["file"] == target


def test_deregister_takes_name_then_instance_ids():
    params = parse("deregister", "asr-service", "asr-1", "asr-2", "--yes")
    assert params["name"] == "asr-service"
    assert list(params["instance_ids"]) == ["asr-1", "asr-2"]
    assert params["yes"] is True


def test_register_short_name_flag():
    params = parse("register", "-n", "asr-service", "--url", "http://asr:8090")
    assert params["name"] == "asr-service"
    assert params["url"] == "http://asr:8090"


def test_shared_options_parse_after_the_command():
    params = parse("list", "-o", "json", "--timeout", "2")
    assert params["output"] == "json"
    assert params["timeout"] == 2.0


def _declared_flags(fn) -> dict:
    """parameter name -> (kind, flags) as the command function declares them."""
    out = {}
    for p in inspect.signature(fn, eval_str=True).parameters.values():
        for meta in getattr(p.annotation, "__metadata__", ()):
            kind = type(meta).__name__
            if kind in ("ArgumentInfo", "OptionInfo"):
                decls = list(getattr(meta, "param_decls", None) or ())
                if isinstance(meta.default, str) and meta.default.startswith("-"):
                    decls.insert(0, meta.default)
                flags = {part for d in decls for part in str(d).split("/") if part.startswith("-")}
                out[p.name] = ("argument" if kind == "ArgumentInfo" else "option", flags)
    return out


def _walk(cmd, path=()):
    if hasattr(cmd, "commands"):
        for name, sub in cmd.commands.items():
            yield from _walk(sub, path + (name,))
    else:
        yield path, cmd


def test_every_declared_argument_and_flag_reaches_click():
    """Generic form of the cases above, over every command: nothing declared is lost."""
    checked = 0
    for path, cmd in _walk(_root()):
        if path in (("options",), ("help",)):  # help topics: not run through options.command
            continue
        fn = cmd.callback
        while not hasattr(fn, "__regctl_command__") and hasattr(fn, "__wrapped__"):
            fn = fn.__wrapped__  # typer's own wrapper around regctl's
        assert hasattr(fn, "__regctl_command__"), path  # every command goes through options.command
        fn = fn.__regctl_command__
        by_name = {p.name: p for p in cmd.params}
        for name, (kind, flags) in _declared_flags(fn).items():
            param = by_name.get(name)
            assert param is not None, (path, name)
            assert type(param).__name__.lower().endswith(kind), (path, name, type(param).__name__)
            assert flags <= set(param.opts) | set(param.secondary_opts), (path, name, flags, param.opts)
            checked += 1
    assert checked > 40  # the walk really saw the commands' own parameters


def test_health_positional_end_to_end(registry):
    """Through main(): the name is a service to probe, not an 'unexpected extra argument'."""
    r = run_cli("health", "no-such-service", "--config-url", registry.url, "-o", "json")
    assert "unexpected extra argument" not in r.stderr
    assert r.exit_code == 1, r  # the registry answered: no such service is a no, not a could-not-check


@pytest.mark.parametrize("args,fmt", [
    (["list", "-o", "json", "--bogus"], "json"),
    (["-o", "yaml", "inspect"], "yaml"),
    (["list", "--output=json", "--timeout", "5x"], "json"),
])
def test_a_usage_error_with_a_document_format_prints_the_error_document(args, fmt):
    import json as json_mod

    import yaml

    r = run_cli(*args)
    assert r.exit_code == 2, r
    doc = json_mod.loads(r.stdout) if fmt == "json" else yaml.safe_load(r.stdout)
    assert doc["error"]["code"] == 2 and doc["error"]["type"] == "UsageError"
    assert doc["error"]["message"] and doc["error"]["hint"].endswith("--help")
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("regctl: error: ")


def test_a_usage_error_in_table_output_leaves_stdout_empty():
    r = run_cli("list", "--bogus")
    assert r.exit_code == 2 and r.stdout == "" and "--bogus" in r.stderr
