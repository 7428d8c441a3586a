"""Options every command shares, declared once, and the ``command`` decorator that adds them.

A command is a plain function ``fn(rc: RunContext, ...) -> Result``. The decorator
appends the shared options (``--context``, ``--config-url``, ``--zk``, ``--zk-base``,
``--timeout``, ``-o``, ``--no-color``, ``-v``, ``--traceback``) to its signature,
resolves :class:`~regctl.settings.Settings` from them (flag > env > context >
default), runs it, renders the result and turns a :class:`RegctlError` into the
documented exit code. The same options are accepted before the command name
(``regctl -o json list``); values given after it win.
"""

import inspect
import typing
from typing import Annotated, Any, Callable, Optional

import typer

from regctl.cli.completion import complete_context_names

CONNECTION = "Connection"
OUTPUT = "Output"

#: name -> (annotation) for every shared option; order is the --help order.
COMMON_OPTIONS: dict = {
    "context": Annotated[Optional[str], typer.Option(
        "--context", metavar="NAME", rich_help_panel=CONNECTION, show_default=False,
        help="Context from the config file to use [env REGCTL_CONTEXT; default: its current-context]; "
             "flags and environment variables still win over the context's values.",
        autocompletion=complete_context_names)],
    "config_url": Annotated[Optional[str], typer.Option(
        "--config-url", metavar="URL", rich_help_panel=CONNECTION, show_default=False,
        help="Config Service base URL [env CONFIG_SERVICE_URL; default http://config-service:8082].")],
    "zk": Annotated[Optional[str], typer.Option(
        "--zk", metavar="HOSTS", rich_help_panel=CONNECTION, show_default=False,
        help="ZooKeeper hosts 'h1:2181,h2:2181[/chroot]' [env ZOOKEEPER_HOSTS; default: not used].")],
    "zk_base": Annotated[Optional[str], typer.Option(
        "--zk-base", metavar="PATH", rich_help_panel=CONNECTION, show_default=False,
        help="Registry base path in ZooKeeper [env ZOOKEEPER_BASE_PATH; default /services].")],
    "timeout": Annotated[Optional[float], typer.Option(
        "--timeout", metavar="SECONDS", rich_help_panel=CONNECTION, show_default=False,
        help="Timeout for each network step [env REGCTL_TIMEOUT; default 5].")],
    "output": Annotated[Optional[str], typer.Option(
        "--output", "-o", metavar="FORMAT", rich_help_panel=OUTPUT, show_default=False,
        help="table, wide, json or yaml [env REGCTL_OUTPUT; default table].",
        autocompletion=lambda: ["table", "wide", "json", "yaml"])],
    "no_color": Annotated[Optional[bool], typer.Option(
        "--no-color", rich_help_panel=OUTPUT, show_default=False,
        help="No colour or box drawing (also when NO_COLOR is set or stdout is not a terminal).")],
    "verbose": Annotated[int, typer.Option(
        "--verbose", "-v", count=True, rich_help_panel=OUTPUT, show_default=False,
        help="More detail on stderr: -v what was called, -vv library debug logs.")],
    "traceback": Annotated[Optional[bool], typer.Option(
        "--traceback", hidden=True, help="Re-raise errors with a Python traceback.")],
}


def _common_parameters() -> list:
    params = []
    for name, annotation in COMMON_OPTIONS.items():
        default = 0 if name == "verbose" else None
        params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default,
                                        annotation=annotation))
    return params


def with_common_options(fn: Callable, handler: Callable) -> Callable:
    """A wrapper with ``fn``'s parameters (minus ``rc``) plus the shared options.

    ``handler(fn, common: dict, kwargs: dict)`` runs the call.
    """
    hints = typing.get_type_hints(fn, include_extras=True)
    own = []
    for p in inspect.signature(fn).parameters.values():
        if p.name == "rc":
            continue
        own.append(p.replace(annotation=hints.get(p.name, p.annotation)))
    params = own + _common_parameters()

    def wrapper(**kwargs: Any) -> Any:
        common = {name: kwargs.pop(name, None) for name in COMMON_OPTIONS}
        return handler(fn, common, kwargs)

    wrapper.__name__ = fn.__name__
    wrapper.__qualname__ = fn.__qualname__
    wrapper.__doc__ = fn.__doc__
    wrapper.__module__ = fn.__module__
    wrapper.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in params}
    return wrapper


def command(app: typer.Typer, name: "str | None" = None, **kwargs: Any) -> Callable:
    """Register ``fn(rc, ...) -> Result`` as a command with the shared options."""

    def deco(fn: Callable) -> Callable:
        from regctl.cli.runtime import run_command

        app.command(name, **kwargs)(with_common_options(fn, run_command))
        return fn

    return deco


# Options several commands share, declared once.
Yes = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation (required without a terminal).")]
DryRun = Annotated[bool, typer.Option("--dry-run", help="Show what would be done; change nothing.")]
SourceOpt = Annotated[str, typer.Option(
    "--source", metavar="auto|api|zk",
    help="Where to read: auto (API, plus ZooKeeper when configured and reachable), api or zk.",
    autocompletion=lambda: ["auto", "api", "zk"])]
