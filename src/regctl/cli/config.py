"""``regctl config``: the config file with named contexts (see :mod:`regctl.contexts`).

``view``, ``get-contexts``, ``current-context``, ``use-context``, ``set-context``,
``delete-context``. These commands do not apply the selected context themselves
(a context whose token variable is unset must not stop you from switching away
from it), but a broken file is still reported with its line.
"""

from typing import Annotated, List, Optional

import typer

from regctl.cli.completion.lookup import complete_context_names
from regctl.cli.options import with_common_options
from regctl.cli.render import Column, Result, Table, to_yaml
from regctl.errors import NotFound

CTX_PANEL = "Context values"

ContextNameArg = Annotated[str, typer.Argument(metavar="NAME", help="Context name.", show_default=False,
                                               autocompletion=complete_context_names)]


def register(app: typer.Typer) -> None:
    group = typer.Typer(name="config", no_args_is_help=True, rich_markup_mode=None,
                        help="Config file with named contexts (like kubectl's): view, switch, create, delete.")
    _command(group, "view")(view)
    _command(group, "get-contexts")(get_contexts)
    _command(group, "current-context")(current_context)
    _command(group, "use-context")(use_context)
    _command(group, "set-context")(set_context)
    _command(group, "delete-context")(delete_context)
    app.add_typer(group, name="config")


def _command(group: typer.Typer, name: str):
    """Like options.command, but the selected context's values are not applied."""

    def deco(fn):
        from regctl.cli.runtime import run_command

        def handler(f, common, kwargs):
            return run_command(f, {**common, "_skip_context": True}, kwargs)

        group.command(name)(with_common_options(fn, handler))
        return fn

    return deco


def _load():
    from regctl import contexts

    return contexts.load()


# ---------------------------------------------------------------------------
# read
# ---------------------------------------------------------------------------

def view(rc, raw: Annotated[bool, typer.Option("--raw", help="Show secrets as they are in the file "
                                                                "(header values, credentials, URL passwords).")]
         = False) -> Result:
    """Show the config file with every secret replaced by ***.

    Redacted unless --raw: every header value, zk_auth.credential (any secret-looking
    key) and the password of any URL.
    Where the file is: $REGCTL_CONFIG, else $XDG_CONFIG_HOME/regctl/config.yaml.
    """
    from regctl import contexts

    cfg = _load()
    doc = cfg.to_dict() if raw else contexts.redact(cfg.to_dict())
    data = {"file": str(cfg.path), "exists": cfg.exists, **doc}
    result = Result(data=data, lines=to_yaml(doc, raw=raw).rstrip("\n").splitlines(), raw=raw)
    if not cfg.exists:
        result.notes.append(f"no config file at {cfg.path}; create one with: "
                            "regctl config set-context NAME --config-url URL --use")
    else:
        result.notes.append(f"file: {cfg.path}")
    result.warnings.extend(contexts.permission_warnings(cfg))
    return result


CONTEXT_COLUMNS = [
    Column("current", "current"),
    Column("name", "name"),
    Column("config_url", "config url"),
    Column("zk_hosts", "zookeeper"),
    Column("zk_base", "base path", wide=True),
    Column("timeout", "timeout", wide=True, justify="right"),
    Column("auth", "auth", wide=True),
    Column("description", "description", wide=True),
]


def get_contexts(rc) -> Result:
    """List the contexts; * marks the current one."""
    from regctl import contexts

    cfg = _load()
    rows = []
    for name in sorted(cfg.contexts):
        values = contexts.redact(cfg.contexts[name])
        auth = [k for k in ("headers", "token_file", "token_env", "ca_bundle", "insecure", "zk_auth")
                if values.get(k)]
        rows.append({"current": "*" if name == cfg.current else "", "name": name, **values,
                     "auth": auth or None})
    data = {"file": str(cfg.path), "current-context": cfg.current,
            "contexts": [{k: v for k, v in r.items() if k not in ("auth",)} | {"current": r["name"] == cfg.current}
                         for r in rows]}
    empty = f"no contexts in {cfg.path}; create one with: regctl config set-context NAME --config-url URL"
    return Result(data=data, tables=[Table(CONTEXT_COLUMNS, rows, empty=empty)])


def current_context(rc) -> Result:
    """Print the current context's name (exit 1 when none is set)."""
    cfg = _load()
    data = {"file": str(cfg.path), "current-context": cfg.current}
    if not cfg.current:
        return Result(data=data, error=NotFound("no current context is set", where=str(cfg.path),
                                                hint="regctl config use-context NAME"))
    return Result(data=data, lines=[cfg.current])


# ---------------------------------------------------------------------------
# write
# ---------------------------------------------------------------------------

def use_context(rc, name: ContextNameArg) -> Result:
    """Make NAME the current context (what commands use without --context or REGCTL_CONTEXT)."""
    import os

    from regctl import contexts

    with contexts.editing() as cfg:
        contexts.use_context(cfg, name)
    path = cfg.path
    result = Result(data={"file": str(path), "current-context": name}, notes=[f"switched to context {name!r}"])
    env = os.environ.get("REGCTL_CONTEXT", "")
    if env and env != name:
        result.warnings.append(f"REGCTL_CONTEXT={env} is set and wins over the current context; unset it")
    return result


def set_context(
    rc,
    name: ContextNameArg,
    header: Annotated[Optional[List[str]], typer.Option(
        "--header", "-H", metavar="'NAME: VALUE'", rich_help_panel=CTX_PANEL, show_default=False,
        help="HTTP header sent with every API call, repeatable; 'NAME-' or 'NAME:' removes it.")] = None,
    token_file: Annotated[Optional[str], typer.Option(
        "--token-file", metavar="PATH", rich_help_panel=CTX_PANEL, show_default=False,
        help="File holding a bearer token (sent as 'Authorization: Bearer <token>').")] = None,
    token_env: Annotated[Optional[str], typer.Option(
        "--token-env", metavar="VAR", rich_help_panel=CTX_PANEL, show_default=False,
        help="Environment variable holding a bearer token.")] = None,
    ca_bundle: Annotated[Optional[str], typer.Option(
        "--ca-bundle", metavar="PATH", rich_help_panel=CTX_PANEL, show_default=False,
        help="CA bundle (PEM) for the Config Service's TLS certificate.")] = None,
    insecure: Annotated[Optional[bool], typer.Option(
        "--insecure/--no-insecure", rich_help_panel=CTX_PANEL, show_default=False,
        help="Do not verify TLS certificates.")] = None,
    zk_auth: Annotated[Optional[str], typer.Option(
        "--zk-auth", metavar="SCHEME:CREDENTIAL", rich_help_panel=CTX_PANEL, show_default=False,
        help="ZooKeeper auth, e.g. digest:user:password.")] = None,
    description: Annotated[Optional[str], typer.Option(
        "--description", metavar="TEXT", rich_help_panel=CTX_PANEL, show_default=False,
        help="Free text shown by get-contexts -o wide.")] = None,
    unset: Annotated[Optional[List[str]], typer.Option(
        "--unset", metavar="KEY", rich_help_panel=CTX_PANEL, show_default=False,
        help="Remove a key from the context, repeatable (e.g. --unset zk_hosts).")] = None,
    use: Annotated[bool, typer.Option("--use", rich_help_panel=CTX_PANEL,
                                      help="Also make it the current context.")] = False,
) -> Result:
    """Create or update context NAME.

    --config-url, --zk, --zk-base and --timeout given to this command are stored in
    the context (validated first). The file is written atomically with mode 0600.

    Example: regctl config set-context dev --config-url http://localhost:8082 --zk localhost:2181 --use
    """
    from regctl import contexts

    s = rc.settings
    updates: dict = {}
    for key in ("config_url", "zk_hosts", "zk_base", "timeout"):
        if s.sources.get(key) == "flag":
            updates[key] = getattr(s.endpoint, key)
    if isinstance(updates.get("timeout"), float) and updates["timeout"].is_integer():
        updates["timeout"] = int(updates["timeout"])
    updates.update({"token_file": token_file, "token_env": token_env, "ca_bundle": ca_bundle,
                    "insecure": insecure, "description": description})
    if zk_auth is not None:
        from regctl.settings import parse_zk_auth

        scheme, credential = parse_zk_auth(zk_auth, "--zk-auth")
        updates["zk_auth"] = {"scheme": scheme, "credential": credential}
    headers = dict(contexts.parse_header(h) for h in (header or []))
    with contexts.editing() as cfg:
        created = name not in cfg.contexts
        values = contexts.set_context(cfg, name, updates, tuple(unset or ()), headers)
        if use:
            cfg.current = name
    path = cfg.path
    word = "created" if created else "updated"
    notes = [f"context {name!r} {word} in {path}" + (" and made current" if use else "")]
    if created and not use and cfg.current != name:
        notes.append(f"use it with: regctl --context {name} ... or regctl config use-context {name}")
    return Result(data={"file": str(path), "context": name, "created": created, "current": cfg.current == name,
                        "values": contexts.redact(values)},
                  notes=notes, warnings=contexts.permission_warnings(cfg, only=name))


def delete_context(rc, name: ContextNameArg) -> Result:
    """Delete context NAME (the current-context is unset if it was NAME)."""
    from regctl import contexts

    with contexts.editing() as cfg:
        was_current = contexts.delete_context(cfg, name)
    path = cfg.path
    result = Result(data={"file": str(path), "deleted": name, "was_current": was_current},
                    notes=[f"deleted context {name!r} from {path}"])
    if was_current:
        result.warnings.append(f"{name!r} was the current context; no context is current now "
                               "(regctl config use-context NAME)")
    return result
