"""The typer root and :func:`main`, the single place that turns failures into exit codes.

``regctl --version`` is answered before typer (or anything else) is imported.
"""

import os
import sys

from regctl import __version__
from regctl.errors import ExitCode

_APP = None


def build_app():
    """Create the typer app and register every command group (imports stay light)."""
    import typer

    from regctl.cli import registration, sandbox, services
    from regctl.cli import health
    from regctl.cli import doctor
    from regctl.cli import completion, config, transfer, watch
    from regctl.cli.options import with_common_options

    app = typer.Typer(
        name="regctl",
        help="Operate the Config Service's service registry: list, inspect, register, "
             "deregister and health-check services, through its HTTP API and straight from ZooKeeper.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        context_settings={"help_option_names": ["-h", "--help"]},
        rich_markup_mode=None,
    )

    def root(version: bool = typer.Option(False, "--version", help="Print the version and exit.")) -> None:
        """Root options: the shared options are accepted before the command name too."""

    def handle_root(fn, common, kwargs):
        from regctl.cli.clickcompat import get_current_context

        if kwargs.get("version"):
            print(f"regctl {__version__}")
            raise typer.Exit(0)
        ctx = get_current_context()
        ctx.obj = {"common": common}

    app.callback()(with_common_options(root, handle_root))
    services.register(app)
    registration.register(app)
    health.register(app)
    doctor.register(app)
    sandbox.register(app)
    config.register(app)
    watch.register(app)
    transfer.register(app)
    completion.register(app)
    return app


def get_app():
    global _APP
    if _APP is None:
        _APP = build_app()
    return _APP


def _print_error(text: str) -> None:
    sys.stderr.write(f"regctl: error: {text}\n")
    sys.stderr.flush()


def main(argv: "list[str] | None" = None) -> int:
    """Run regctl; return the exit code (see README "Exit codes")."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args in (["--version"], ["-V"]):
        sys.stdout.write(f"regctl {__version__}\n")
        return ExitCode.OK
    if os.environ.get("_REGCTL_COMPLETE"):  # a TAB in the shell: answer fast, never a word on stderr
        from regctl.cli.completion import serve

        sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
        return serve(get_app)
    want_traceback = "--traceback" in args
    # httpx imports its own command line (click, rich.syntax, pygments) when those are installed;
    # regctl never uses it and it costs ~100 ms per run.
    sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
    try:
        import typer

        from regctl.cli.clickcompat import click_exceptions as cx
        from regctl.errors import RegctlError
    except KeyboardInterrupt:
        return ExitCode.INTERRUPTED
    try:
        rc = get_app()(args=args, prog_name="regctl", standalone_mode=False)
        return int(rc or 0)
    except typer.Exit as exc:
        return int(exc.exit_code)
    except (KeyboardInterrupt, typer.Abort):
        sys.stderr.write("\nregctl: interrupted\n")
        return ExitCode.INTERRUPTED
    except cx.NoArgsIsHelpError as exc:
        sys.stdout.write(exc.ctx.get_help() + "\n" if exc.ctx else str(exc))
        return ExitCode.OK
    except cx.ClickException as exc:
        if want_traceback:
            raise
        ctx = getattr(exc, "ctx", None)
        where = f"; try: {ctx.command_path} --help" if ctx is not None else "; try: regctl --help"
        _print_error(exc.format_message() + where)
        return ExitCode.USAGE
    except RegctlError as exc:
        if want_traceback:
            raise
        _print_error(str(exc))
        return int(exc.exit_code)
    except BrokenPipeError:
        return ExitCode.OK
    except Exception as exc:  # a bug: say so in one line, never a traceback
        if want_traceback:
            raise
        _print_error(f"internal error: {type(exc).__name__}: {exc}; try: run again with --traceback "
                     f"and report it")
        return ExitCode.INTERNAL


if __name__ == "__main__":
    raise SystemExit(main())
