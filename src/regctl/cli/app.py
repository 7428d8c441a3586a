"""The typer root and :func:`main`, the one error funnel: the single place that turns a failure into
output (the line on stderr, the error document on stdout with -o json|yaml) and an exit code.

``regctl --version`` is answered before typer (or anything else) is imported: this module's top level
imports only the standard library, and a TAB (``_REGCTL_COMPLETE``) is answered without typer when the
cached command tree can (the start-up path: its imports are made on use).
"""

import os
import re
import signal
import sys
import threading
from typing import List

from regctl import __version__
from regctl.errors import ExitCode, RegctlError, UsageError

_APP = None


def build_app():
    """Create the typer app and register every command group (imported here, not at the top: the
    start-up path answers ``--version`` and TABs without them)."""
    import typer

    from regctl.cli import config, doctor, health, registration, sandbox, services, transfer, watch
    from regctl.cli.clickcompat import get_current_context
    from regctl.cli.completion import script as completion
    from regctl.cli.help import RegctlCommand, RegctlGroup, print_command_help, print_shared_options
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
        cls=RegctlGroup,
        epilog="The shared options above work after the command too (regctl list -o json); "
               "'regctl options' lists them alone. Example: regctl list -o wide",
    )

    def root(version: bool = typer.Option(False, "--version", help="Print the version and exit.")) -> None:
        """Root options: the shared options are accepted before the command name too."""

    def handle_root(fn, common, kwargs):
        if kwargs.get("version"):
            print(f"regctl {__version__}")
            raise typer.Exit(0)
        ctx = get_current_context()
        ctx.obj = {"common": common}

    app.callback()(with_common_options(root, handle_root, hide_shared=False))
    services.register(app)
    registration.register(app)
    health.register(app)
    doctor.register(app)
    sandbox.register(app)
    config.register(app)
    watch.register(app)
    transfer.register(app)
    completion.register(app)

    def options() -> None:
        """The options every command accepts (connection, auth and TLS, output), and their lookup order."""
        print_shared_options(get_current_context())

    app.command("options", cls=type("OptionsCommand", (RegctlCommand,), {"regctl_shared_note": False}))(options)

    def help_command(command: List[str] = typer.Argument(
            None, metavar="[COMMAND...]", show_default=False,
            help="The command (or group and command: config use-context) to show the help of.")) -> None:
        """Show the help of a command, as 'regctl COMMAND --help' does; the options every command shares: regctl options.

        Example: regctl help list
        """
        print_command_help(get_current_context(), list(command or []))

    app.command("help", cls=type("HelpCommand", (RegctlCommand,), {"regctl_shared_note": False}))(help_command)
    _use_command_class(app, RegctlCommand)
    return app


def _use_command_class(app, cls) -> None:
    """Every command (groups' too) renders its help through ``cls`` unless it chose a class itself."""
    import typer.core

    from regctl.cli.help import RegctlGroup

    for info in app.registered_commands:
        if info.cls is None or info.cls is typer.core.TyperCommand:  # typer's default (0.2x fills it in)
            info.cls = cls
    for group in app.registered_groups:
        for info in (group, group.typer_instance.info):
            if info.cls is None or info.cls is typer.core.TyperGroup or type(info.cls).__name__ == "DefaultPlaceholder":
                info.cls = RegctlGroup  # its did-you-mean too
        _use_command_class(group.typer_instance, cls)


def get_app():
    global _APP
    if _APP is None:
        _APP = build_app()
    return _APP


def _requested_output(args: "list[str]") -> "str | None":
    """The -o/--output the command line asked for (the last one wins), else ``REGCTL_OUTPUT``."""
    chosen = None
    for i, arg in enumerate(args):
        if arg == "--":
            break
        if arg in ("-o", "--output") and i + 1 < len(args):
            chosen = args[i + 1]
        elif arg.startswith("--output="):
            chosen = arg.split("=", 1)[1]
        elif arg.startswith("-o") and len(arg) > 2 and not arg.startswith("--"):
            chosen = arg[2:]
    return (chosen or os.environ.get("REGCTL_OUTPUT") or "").lower() or None


def _report(out, error, whole: bool = True) -> int:
    """Print ``error`` through ``out`` (the line on stderr; with ``whole``, the -v detail and with -o json|yaml
    the error document too) and return its exit code: every error regctl prints comes through here."""
    try:
        out.error(error, whole=whole)
    except BrokenPipeError:
        return _stdout_gone()
    return int(getattr(error, "exit_code", ExitCode.INTERNAL))


def _complete() -> int:
    """Answer a TAB: from the cached command tree when it can (typer is not imported), else the full path."""
    from regctl.cli.completion import tree

    if tree.serve_quick():
        return ExitCode.OK
    from regctl.cli.completion import script

    return script.serve(get_app)


def _exit_now_if_threads_linger(code: int) -> None:
    """After Ctrl-C, end the process at once when worker threads are still busy.

    A request in flight in a thread pool (or a kazoo thread) would otherwise be
    joined at interpreter exit, which can take as long as the request's timeout.
    """
    busy = [t for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon and t.is_alive()]
    if not busy:
        return
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    os._exit(int(code))


def _interrupted_if_130(code: int, argv: "list[str] | None") -> int:
    if code == ExitCode.INTERRUPTED and argv is None:
        _exit_now_if_threads_linger(code)
    return code


def _stdout_gone() -> int:
    """The reader of stdout went away (``regctl inspect X | head -1``): not an error, exit 0.

    stdout is pointed at /dev/null so the interpreter's final flush cannot fail again.
    """
    from regctl.cli.runtime import stdout_gone

    stdout_gone()
    return ExitCode.OK


def _param_label(param) -> str:
    """``--timeout`` for an option (its long name), ``NAME`` for an argument."""
    opts = list(getattr(param, "opts", None) or [])
    if getattr(param, "param_type_name", "") == "argument" or not opts:
        return str(getattr(param, "metavar", None) or str(getattr(param, "name", "") or "").upper() or "a value")
    longs = [o for o in opts if o.startswith("--")]
    return (longs or opts)[0]


def _given_value(args: "list[str]", param) -> "str | None":
    """The value given on the command line for option ``param`` (the last one), None when not found."""
    value = None
    opts = list(getattr(param, "opts", None) or []) + list(getattr(param, "secondary_opts", None) or [])
    for i, arg in enumerate(args):
        for opt in opts:
            if arg == opt and i + 1 < len(args):
                value = args[i + 1]
            elif opt.startswith("--") and arg.startswith(opt + "="):
                value = arg[len(opt) + 1:]
    return value


def _usage_text(exc, args: "list[str]", cx) -> str:
    """A usage error in regctl's words: ``register needs NAME``, ``--timeout: '5x' is not a number``;
    click's (or pydantic's) own phrasing otherwise, without its trailing full stop."""
    ctx = getattr(exc, "ctx", None)
    path = ctx.command_path if ctx is not None else "regctl"
    command = path.split(" ", 1)[1] if " " in path else path
    param = getattr(exc, "param", None)
    if isinstance(exc, cx.MissingParameter) and param is not None:
        return f"{command} needs {_param_label(param)}"
    if isinstance(exc, cx.BadParameter) and param is not None:
        message = str(getattr(exc, "message", "") or "")
        label = _param_label(param)
        given = _given_value(args, param) if getattr(param, "param_type_name", "") != "argument" else None
        shown = f"{given!r}" if given is not None else "the value given"
        if re.search(r"valid (float|number)|unable to parse string as a number", message, re.I):
            return f"{label}: {shown} is not a number"
        if re.search(r"valid (integer|int)\b", message, re.I):
            return f"{label}: {shown} is not a whole number"
        return f"{label}: {message.rstrip('.')}"
    return exc.format_message().rstrip(".")


def main(argv: "list[str] | None" = None) -> int:
    """Run regctl; return the exit code (see docs/output.md, "Exit codes")."""
    def decided() -> None:
        # the answer is decided: a Ctrl-C while the interpreter exits (joining threads, flushing)
        # must not turn it into a death by SIGINT with a traceback
        if argv is None:
            signal.signal(signal.SIGINT, signal.SIG_IGN)

    code: int = ExitCode.INTERRUPTED
    try:
        try:
            code = _run(argv)
        finally:
            decided()
    except KeyboardInterrupt:  # landed between _run's own handlers and the line above: still an exit 130
        decided()
        code = ExitCode.INTERRUPTED
    return code


def _run(argv: "list[str] | None") -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args in (["--version"], ["-V"]):
        sys.stdout.write(f"regctl {__version__}\n")
        return ExitCode.OK
    if os.environ.get("_REGCTL_COMPLETE"):  # a TAB in the shell: answer fast, never a word on stderr
        sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
        return _complete()
    want_traceback = "--traceback" in args
    # httpx imports its own command line (click, rich.syntax, pygments) when those are installed;
    # regctl never uses it and it costs ~100 ms per run.
    sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
    try:
        import typer

        from regctl.cli.clickcompat import click_exceptions as cx
        from regctl.cli.help import close_matches
        from regctl.cli.render import Output
        from regctl.cli.runtime import CommandFailed, cli_hint_words
    except KeyboardInterrupt:
        return ExitCode.INTERRUPTED
    words = cli_hint_words()  # hints name the CLI's flags, not the library's parameters
    words.__enter__()
    try:
        rc = get_app()(args=args, prog_name="regctl", standalone_mode=False)
        # typer turns a KeyboardInterrupt inside a command into exit code 130
        return _interrupted_if_130(int(rc or 0), argv)
    except typer.Exit as exc:
        return _interrupted_if_130(int(exc.exit_code), argv)
    except (KeyboardInterrupt, typer.Abort):
        sys.stderr.write("\nregctl: interrupted\n")
        if argv is None:  # a real process, not a test calling main(): do not wait for abandoned threads
            _exit_now_if_threads_linger(ExitCode.INTERRUPTED)
        return ExitCode.INTERRUPTED
    except getattr(cx, "NoArgsIsHelpError", ()) as exc:  # click >= 8.2 only
        sys.stdout.write(exc.ctx.get_help() + "\n" if exc.ctx else str(exc))
        return ExitCode.OK
    except cx.ClickException as exc:
        if want_traceback:
            raise
        if isinstance(exc, cx.NoSuchOption) and exc.possibilities:
            exc.possibilities = close_matches(exc.option_name, exc.possibilities)
        ctx = getattr(exc, "ctx", None)
        hint = f"{ctx.command_path} --help" if ctx is not None else "regctl --help"
        # the options were not parsed: the output format as the command line (or REGCTL_OUTPUT) asks
        return _report(Output(output=_requested_output(args) or "table", color=False),
                       UsageError(_usage_text(exc, args, cx), hint=hint))
    except CommandFailed as failed:  # a command's failure, with the renderer its run resolved
        return _report(failed.out, failed.error, whole=not failed.rendered)
    except RegctlError as exc:
        if want_traceback:
            raise
        return _report(Output(color=False), exc)
    except BrokenPipeError:
        return _stdout_gone()
    except SystemExit:
        if type(sys.stdout).__name__ == "PacifyFlushWrapper":  # click turned EPIPE into exit 1
            return _stdout_gone()
        raise
    except Exception as exc:  # a bug: say so in one line, never a traceback
        if want_traceback:
            raise
        return _report(Output(color=False), f"internal error: {type(exc).__name__}: {exc}; try: run again "
                                            f"with --traceback and report it")
    finally:
        words.__exit__(None, None, None)


if __name__ == "__main__":
    raise SystemExit(main())
