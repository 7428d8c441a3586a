"""Per-run state for commands: settings, the renderer, and lazily opened clients."""

import logging
import os
import sys
from typing import Any, Callable

import typer

from regctl import redaction
from regctl.cli.clickcompat import get_current_context
from regctl.cli.render import Output, Result, verdict
from regctl.connections import Connections
from regctl.errors import RegctlError, hint_words
from regctl.redaction import RedactingFormatter
from regctl.settings import AUTH_ENV_VARS, ENV_VARS, resolve

log = logging.getLogger("regctl")

#: The command line's words for the settings core hints name (``{config_url}`` ...): its flags, where the
#: library says its parameters (:data:`regctl.errors.LIBRARY_HINT_WORDS`). Installed while regctl runs.
CLI_HINT_WORDS = {
    "config_url": "--config-url",
    "config_url_sources": "--config-url (CONFIG_SERVICE_URL, the context's config_url)",
    "localhost_url": "--config-url http://localhost:8082",
    "timeout": "--timeout",
    "zk": "--zk ",
    "server_timeout": "--server-timeout",
    "headers": "--header",
    "credentials": "pass --header 'Authorization: Bearer ...', --token-file FILE or REGCTL_TOKEN "
                   "(or token_file/token_env in the context)",
    "ca_bundle": "--ca-bundle PEM (or REGCTL_CA_BUNDLE, context ca_bundle)",
    "insecure": "--insecure",
    "see_dry_run": " (see --dry-run)",
    "inspect": "regctl inspect ",
    "instance_id": "--instance-id",
    "status_example": "--status healthy",
}


def cli_hint_words():
    """While a command runs, hints name the CLI's flags (``--config-url``), not the library's parameters."""
    return hint_words(CLI_HINT_WORDS)


class RunContext(Connections):
    """What a command gets: ``rc.settings``, ``rc.out``, ``rc.api()``, ``rc.zk()``.

    Clients are created on first use (:class:`regctl.connections.Connections`) and closed when the command ends.
    """

    def __init__(self, settings: Any, out: Output) -> None:
        super().__init__(settings.endpoint)
        self.settings = settings
        self.out = out

    @property
    def target(self) -> str:
        """The registry a change goes to, for prompts: ``http://host:8082 (context 'prod')``."""
        e, context = self.settings.endpoint, self.settings.context
        where = e.config_url + (f" and ZooKeeper {e.zk_hosts}" if e.zk_hosts else "")
        return where + (f" (context {context!r})" if context else " (no context)")


def configure_logging(verbose: int) -> None:
    """No library logging on stderr unless -v: -v shows regctl's INFO, -vv everyone's DEBUG.

    Every record goes through :class:`regctl.redaction.RedactingFormatter`: a token
    or header value a library logs (httpx/httpcore at -vv) comes out as ``***``.
    """
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "_regctl", False):
            root.removeHandler(h)
    if verbose <= 0:
        handler: logging.Handler = logging.NullHandler()
        root.setLevel(logging.CRITICAL + 1)
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(RedactingFormatter("regctl: %(name)s: %(message)s"))
        root.setLevel(logging.DEBUG if verbose >= 2 else logging.WARNING)
        logging.getLogger("regctl").setLevel(logging.DEBUG if verbose >= 2 else logging.INFO)
        logging.getLogger("httpx").setLevel(logging.DEBUG if verbose >= 2 else logging.INFO)
    handler._regctl = True  # type: ignore[attr-defined]
    root.addHandler(handler)


def merged_common(common: dict) -> dict:
    """Command-level values win over the same options given before the command name."""
    ctx = get_current_context(silent=True)
    root: dict = {}
    while ctx is not None:
        if isinstance(ctx.obj, dict) and "common" in ctx.obj:
            root = ctx.obj["common"]
        ctx = ctx.parent
    merged = dict(root)
    for k, v in common.items():
        if k == "header" and v:  # repeatable: before and after the command name add up
            merged[k] = list(merged.get(k) or []) + list(v)
        elif v is not None and not (k == "verbose" and not v) and not (isinstance(v, (list, tuple)) and not v):
            merged[k] = v
    merged.setdefault("verbose", 0)
    return merged


def resolve_settings(common: dict):
    """Settings from the merged flags (and the context file, when one is selected)."""
    flags = {
        "config_url": common.get("config_url"),
        "zk_hosts": common.get("zk"),
        "zk_base": common.get("zk_base"),
        "timeout": common.get("timeout"),
        "output": common.get("output"),
        "no_color": common.get("no_color"),
        "headers": common.get("header") or None,
        "token_file": common.get("token_file"),
        "ca_bundle": common.get("ca_bundle"),
        "insecure": common.get("insecure"),
        "zk_auth_file": common.get("zk_auth_file"),
        "zk_tls": common.get("zk_tls"),
        "zk_ca": common.get("zk_ca"),
        "zk_cert": common.get("zk_cert"),
        "zk_key": common.get("zk_key"),
    }
    context_name, context_values = load_context(common)
    env = None
    if common.get("_skip_context"):  # `regctl config ...`: a bad connection variable must not block it
        skip = {v for k, v in ENV_VARS.items() if k != "output"} | set(AUTH_ENV_VARS.values())
        env = {k: v for k, v in os.environ.items() if k not in skip}
    return resolve(flags, env=env, context=context_values, context_name=context_name,
                   verbose=int(common.get("verbose") or 0),
                   context_from_flag=bool(common.get("context")) and context_name is not None)


def load_context(common: dict) -> tuple:
    """The context from the config file: (name, values for settings.resolve) or (None, {}).

    ``--context`` > ``REGCTL_CONTEXT`` > the file's ``current-context`` (see
    :mod:`regctl.contexts`). A broken file or an unknown context is a
    :class:`UsageError` (exit 2). Secrets readable by others give a warning.
    """
    from regctl import contexts  # on use: contexts loads yaml, which --help and a TAB never need

    if common.get("_skip_context"):  # `regctl config ...` manages the file; it does not apply a context
        contexts.load()  # still: a broken file is reported with its line
        return None, {}
    name, values, warnings = contexts.load_selected(common.get("context"))
    if warnings:
        out = Output(color=False if common.get("no_color") else None)
        for w in warnings:
            out.warn(w)
    return name, values


class CommandFailed(Exception):
    """A command's run ended in ``error``; raised by :func:`run_command` for :func:`regctl.cli.app.main`,
    the one place that prints errors, with ``out``: the renderer the run resolved (its format, colour,
    verbosity), so the error document comes out as -o asked.

    ``rendered``: the result's own document is already on stdout (only the error line is left to say).
    """

    def __init__(self, error: RegctlError, out: Output, rendered: bool = False) -> None:
        super().__init__(str(error))
        self.error = error
        self.out = out
        self.rendered = rendered


def stdout_gone() -> None:
    """The reader of stdout went away: point stdout at /dev/null so no later flush fails again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.__stdout__.fileno())  # type: ignore[union-attr]
    except (OSError, ValueError, AttributeError):
        pass


def run_command(fn: Callable, common: dict, kwargs: dict) -> Any:
    """Resolve settings, run ``fn``, render its result, exit with its code.

    A failure is raised, never printed here: :class:`CommandFailed` (the error and this run's renderer),
    or the error itself with --traceback.
    """
    with cli_hint_words():
        return _run_command(fn, common, kwargs)


def _fallback_output(common: dict, verbose: int) -> Output:
    """The renderer for a failure before settings are resolved: -o (else ``REGCTL_OUTPUT``) as given."""
    output = common.get("output") or os.environ.get("REGCTL_OUTPUT") or "table"
    return Output(output=output.lower(), verbose=verbose, color=False if common.get("no_color") else None)


def _run_command(fn: Callable, common: dict, kwargs: dict) -> Any:
    common = merged_common(common)
    verbose = int(common.get("verbose") or 0)
    redaction.clear_secrets()
    configure_logging(verbose)
    try:
        settings = resolve_settings(common)
    except RegctlError as exc:
        if common.get("traceback"):
            raise
        raise CommandFailed(exc, _fallback_output(common, verbose)) from exc
    redaction.add_secrets(settings.secret_values())
    try:
        out = Output(output=settings.output, color=settings.color, verbose=verbose,
                     no_headers=bool(common.get("no_headers")), sort_by=common.get("sort_by"),
                     filters=common.get("filter"), fields=common.get("field"))
    except RegctlError as exc:  # a --filter that is not COLUMN=VALUE
        raise CommandFailed(exc, Output(output=settings.output, color=settings.color, verbose=verbose)) from exc
    for warning in getattr(settings, "warnings", ()):  # e.g. "TLS certificate verification is OFF"
        out.warn(warning)
    for note in getattr(settings, "notes", ()):  # an environment variable against the context's value
        out.debug(note)
    rc = RunContext(settings, out)
    try:
        code = _run_and_render(fn, rc, kwargs)
    except RegctlError as exc:
        if common.get("traceback"):
            raise
        raise CommandFailed(exc, out) from exc
    finally:
        rc.close()
    raise typer.Exit(code)


def _run_and_render(fn: Callable, rc: RunContext, kwargs: dict) -> int:
    """Run the command and print its result; its code, or :class:`CommandFailed` for a result's error."""
    result = fn(rc, **kwargs)
    if not isinstance(result, Result):
        return int(result or 0)
    try:
        code = rc.out.render(result)
    except BrokenPipeError:  # `regctl health --all -o json | head`: the verdict is still the exit code
        stdout_gone()
        code = verdict(result)
        for w in result.warnings:
            rc.out.warn(w)
    if result.error is not None:
        raise CommandFailed(result.error, rc.out, rendered=True)
    return code
