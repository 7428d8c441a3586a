"""Options every command shares, declared once, and the ``command`` decorator that adds them.

A command is a plain function ``fn(rc: RunContext, ...) -> Result``. The decorator
appends the shared options (``--context``, ``--config-url``, ``--zk``, ``--zk-base``,
``--timeout``, the auth/TLS options ``--header``, ``--token-file``, ``--ca-bundle``,
``--insecure``, ``--zk-auth-file``, ``--zk-tls``, ``--zk-ca``, ``--zk-cert``, ``--zk-key``,
``-o``, ``--no-headers``, ``--sort-by``, ``--filter``, ``--field``, ``--no-color``, ``-v``, ``--traceback``) to its signature,
resolves :class:`~regctl.settings.Settings` from them (flag > env > context >
default), runs it, renders the result and turns a :class:`RegctlError` into the
documented exit code. The same options are accepted before the command name
(``regctl -o json list``); values given after it win.
"""

import copy
import inspect
import typing
from typing import Annotated, Any, Callable, List, Optional

import typer

from regctl.cli.completion.lookup import complete_context_names, complete_service_names

CONNECTION = "Connection"
SECURITY = "Auth and TLS"
OUTPUT = "Output"

#: name -> (annotation) for every shared option; order is the --help order.
COMMON_OPTIONS: dict = {
    "context": Annotated[Optional[str], typer.Option(
        "--context", metavar="NAME", rich_help_panel=CONNECTION, show_default=False,
        help="Context from the config file to use [env REGCTL_CONTEXT; default: its current-context]; "
             "its values beat environment variables when named here, flags beat both.",
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
    "header": Annotated[Optional[List[str]], typer.Option(
        "--header", "-H", metavar="'NAME: VALUE'", rich_help_panel=SECURITY, show_default=False,
        help="Extra HTTP header for the Config Service (e.g. a gateway's), repeatable; replaces a context or "
             "REGCTL_HEADERS header of the same name. Never sent to service health URLs.")],
    "token_file": Annotated[Optional[str], typer.Option(
        "--token-file", metavar="PATH", rich_help_panel=SECURITY, show_default=False,
        help="Send 'Authorization: Bearer <token in PATH>' [env REGCTL_TOKEN holds the token itself; "
             "context token_file/token_env].")],
    "ca_bundle": Annotated[Optional[str], typer.Option(
        "--ca-bundle", metavar="PEM", rich_help_panel=SECURITY, show_default=False,
        help="CA certificates to verify https:// URLs with [env REGCTL_CA_BUNDLE; context ca_bundle].")],
    "insecure": Annotated[Optional[bool], typer.Option(
        "--insecure", rich_help_panel=SECURITY, show_default=False,
        help="Do NOT verify TLS certificates (warns on every run) [env REGCTL_INSECURE=1; context insecure].")],
    "zk_auth_file": Annotated[Optional[str], typer.Option(
        "--zk-auth-file", metavar="PATH", rich_help_panel=SECURITY, show_default=False,
        help="File holding ZooKeeper auth 'digest:user:password' [env REGCTL_ZK_AUTH; context zk_auth].")],
    "zk_tls": Annotated[Optional[bool], typer.Option(
        "--zk-tls", rich_help_panel=SECURITY, show_default=False,
        help="Connect to ZooKeeper over TLS (its secureClientPort) [env REGCTL_ZK_TLS=1; context zk_tls].")],
    "zk_ca": Annotated[Optional[str], typer.Option(
        "--zk-ca", metavar="PEM", rich_help_panel=SECURITY, show_default=False,
        help="CA certificates for ZooKeeper TLS; implies --zk-tls [env REGCTL_ZK_CA; context zk_ca].")],
    "zk_cert": Annotated[Optional[str], typer.Option(
        "--zk-cert", metavar="PEM", rich_help_panel=SECURITY, show_default=False,
        help="Client certificate for ZooKeeper TLS (with --zk-key) [env REGCTL_ZK_CERT; context zk_cert].")],
    "zk_key": Annotated[Optional[str], typer.Option(
        "--zk-key", metavar="PEM", rich_help_panel=SECURITY, show_default=False,
        help="Client private key for ZooKeeper TLS [env REGCTL_ZK_KEY; context zk_key].")],
    "output": Annotated[Optional[str], typer.Option(
        "--output", "-o", metavar="FORMAT", rich_help_panel=OUTPUT, show_default=False,
        help="table, wide, json, yaml or name (one name per line) [env REGCTL_OUTPUT; default table].",
        autocompletion=lambda: ["table", "wide", "json", "yaml", "name"])],
    "no_headers": Annotated[Optional[bool], typer.Option(
        "--no-headers", rich_help_panel=OUTPUT, show_default=False,
        help="Tables without their header line (and title), for scripts.")],
    "sort_by": Annotated[Optional[str], typer.Option(
        "--sort-by", metavar="COLUMN", rich_help_panel=OUTPUT, show_default=False,
        help="Sort a table's rows by COLUMN (its header, e.g. live, db-status, age), in natural order "
             "(bulk-2 before bulk-10); -o json/yaml lists the same order. Default: by name, natural order.")],
    "filter": Annotated[Optional[List[str]], typer.Option(
        "--filter", metavar="COLUMN=VALUE", rich_help_panel=OUTPUT, show_default=False,
        help="Only rows whose COLUMN is VALUE (a list column: contains it; 'a,b': either; != negates), "
             "repeatable (all must hold), e.g. --filter discovery=no --filter flags=seeded; -o json/yaml too.")],
    "field": Annotated[Optional[List[str]], typer.Option(
        "--field", metavar="COLUMN", rich_help_panel=OUTPUT, show_default=False,
        help="Print only these values, tab-separated, one row per line, never cut (a column header or a "
             "dotted path such as discovery.reason), repeatable.")],
    "no_color": Annotated[Optional[bool], typer.Option(
        "--no-color", rich_help_panel=OUTPUT, show_default=False,
        help="No colour or box drawing (also when NO_COLOR is set or stdout is not a terminal).")],
    "verbose": Annotated[int, typer.Option(
        "--verbose", "-v", count=True, rich_help_panel=OUTPUT, show_default=False,
        help="More detail on stderr: -v what was called, -vv library debug logs.")],
    "traceback": Annotated[Optional[bool], typer.Option(
        "--traceback", hidden=True, help="Re-raise errors with a Python traceback.")],
}


def _common_parameters(skip: "set | frozenset" = frozenset(), hidden: bool = False) -> list:
    params = []
    for name, annotation in COMMON_OPTIONS.items():
        if name in skip:
            continue
        default = 0 if name == "verbose" else None
        if hidden:
            annotation = _hidden(annotation)
        params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default,
                                        annotation=annotation))
    return params


def _hidden(annotation: Any) -> Any:
    """The same ``Annotated[T, typer.Option(...)]`` with the option left out of --help (still accepted)."""
    base, *metadata = typing.get_args(annotation)
    copies = []
    for meta in metadata:
        meta = copy.copy(meta)
        if hasattr(meta, "hidden"):
            meta.hidden = True
        copies.append(meta)
    return Annotated[(base, *copies)]  # type: ignore[valid-type]


def with_common_options(fn: Callable, handler: Callable, hide_shared: bool = True) -> Callable:
    """A wrapper with ``fn``'s parameters (minus ``rc``) plus the shared options.

    ``handler(fn, common: dict, kwargs: dict)`` runs the call. A shared option whose
    name (or one of whose flags) ``fn`` declares itself is left out: the command's
    own parameter wins (``config set-context --header`` stores a header in the
    context instead of sending it). With ``hide_shared`` (commands; not the root) the
    shared options stay out of --help (``regctl options`` and ``regctl --help`` list them once).
    """
    # eval_str resolves string annotations but keeps Annotated as written: typing.get_type_hints
    # on Python 3.10 turns ``Annotated[Optional[X], typer.Argument()] = None`` into
    # ``Optional[Annotated[...]]``, which hides the typer metadata (the argument becomes an option).
    own = [p for p in inspect.signature(fn, eval_str=True).parameters.values() if p.name != "rc"]
    own_flags = {d for p in own for d in _flags_of(p.annotation)}
    skip = frozenset(name for name, ann in COMMON_OPTIONS.items()
                     if name in {p.name for p in own} or own_flags & set(_flags_of(ann)))
    params = own + _common_parameters(skip, hidden=hide_shared)
    shared = [name for name in COMMON_OPTIONS if name not in skip]

    def wrapper(**kwargs: Any) -> Any:
        common = {name: kwargs.pop(name, None) for name in shared}
        return handler(fn, common, kwargs)

    wrapper.__name__ = fn.__name__
    wrapper.__qualname__ = fn.__qualname__
    wrapper.__doc__ = fn.__doc__
    wrapper.__module__ = fn.__module__
    wrapper.__regctl_command__ = fn  # type: ignore[attr-defined]
    wrapper.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in params}
    return wrapper


def _flags_of(annotation: Any) -> tuple:
    """The option strings (``--header``, ``-H``) of an ``Annotated[..., typer.Option(...)]``."""
    out: list = []
    for meta in getattr(annotation, "__metadata__", ()):
        decls = list(getattr(meta, "param_decls", None) or ())
        default = getattr(meta, "default", None)
        if isinstance(default, str) and default.startswith("-"):  # Annotated form: the first flag
            decls.insert(0, default)
        for d in decls:
            for part in str(d).split("/"):
                if part.startswith("-"):
                    out.append(part)
    return tuple(out)


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


#: a service NAME argument with live completion (inspect, url, discover, health, wait, deregister, watch)
ServiceNameArg = Annotated[str, typer.Argument(metavar="NAME", help="Service name.", show_default=False,
                                               autocompletion=complete_service_names)]
ServiceNamesArg = Annotated[Optional[List[str]], typer.Argument(
    metavar="NAME...", help="Service names [default: every service].", show_default=False,
    autocompletion=complete_service_names)]
