"""How ``--help`` reads: clean usage lines, the shared options once, help panels, an example each.

Every command is a :class:`RegctlCommand`; the root is a :class:`RegctlGroup`. The
shared options (``--context``, ``-o``, ...) are hidden on each command's help (still
accepted there) and listed once, grouped in their panels, on ``regctl --help`` and
by ``regctl options``.
"""

from __future__ import annotations

import difflib
from typing import Any, List

import typer
import typer.core

from regctl.cli.clickcompat import CompletionItem
from regctl.cli.clickcompat import click_exceptions as cx
from regctl.cli.options import COMMON_OPTIONS
from regctl.errors import UsageError

#: shown under a command's own options instead of repeating the shared ones
SHARED_NOTE = ("-o/--output, --timeout, --context, --config-url, --zk, -v and the other shared "
               "options (connection, auth and TLS, output) work here too, or before the command; "
               "'regctl options' lists them.")

#: examples for commands whose docstring has none (shown as the help's last paragraph)
EXAMPLES = {
    "url": "URL=$(regctl url asr-service --verify)",
    "discover": "regctl discover asr-service -o json",
    "sandbox up": 'eval "$(regctl sandbox up --demo)"',
    "sandbox status": "regctl sandbox status -o json",
    "sandbox down": "regctl sandbox down",
    "config view": "regctl config view -o yaml",
    "config get-contexts": "regctl config get-contexts",
    "config current-context": "regctl config current-context",
    "config use-context": "regctl config use-context prod",
    "config delete-context": "regctl config delete-context old-lab",
    "options": "regctl options",
}


def _argument_record(param: Any) -> "tuple[str, str]":
    name = _argument_name(param)
    help_text = getattr(param, "help", None) or ""
    if param.required:
        help_text = f"{help_text}  [required]" if help_text else "[required]"
    return name, help_text


def _argument_name(param: Any) -> str:
    name = str(param.metavar or param.name or "ARG").strip("{}[]").rstrip(".").upper()
    return name + ("..." if param.nargs == -1 else "")


def usage_pieces(cmd: Any, ctx: Any) -> List[str]:
    """``[OPTIONS] NAME [INSTANCE_ID...]``: one bracket per optional argument, no ``{NAME}`` or ``...]...``."""
    pieces = [cmd.options_metavar] if cmd.options_metavar else []
    for param in cmd.get_params(ctx):
        if param.param_type_name == "argument":
            name = _argument_name(param)
            pieces.append(name if param.required else f"[{name}]")
    return pieces


def format_sections(cmd: Any, ctx: Any, formatter: Any, shared_note: bool) -> None:
    """Arguments, then the command's options, then one section per help panel."""
    args, opts = [], []
    panels: dict = {}
    for param in cmd.get_params(ctx):
        if param.param_type_name == "argument":
            args.append(_argument_record(param))
            continue
        record = param.get_help_record(ctx)
        if record is None:
            continue
        panel = getattr(param, "rich_help_panel", None)
        (panels.setdefault(panel, []) if panel else opts).append(record)
    if args:
        with formatter.section("Arguments"):
            formatter.write_dl(args)
    if opts:
        with formatter.section("Options"):
            formatter.write_dl(opts)
    for title, records in panels.items():
        with formatter.section(title):
            formatter.write_dl(records)
    if shared_note:
        with formatter.section("Shared options"):
            formatter.write_text(SHARED_NOTE)


def _with_example(cmd: Any, ctx: Any) -> None:
    text = (cmd.help or "") + (cmd.epilog or "")
    path = ctx.command_path.split(" ", 1)[1] if " " in ctx.command_path else ""
    if "Example" not in text and path in EXAMPLES:
        cmd.epilog = ((cmd.epilog + "\n\n") if cmd.epilog else "") + f"Example: {EXAMPLES[path]}"


class RegctlCommand(typer.core.TyperCommand):
    """A command whose help lists its own options, panels, a note on the shared ones and an example."""

    def collect_usage_pieces(self, ctx: Any) -> List[str]:
        return usage_pieces(self, ctx)

    def format_options(self, ctx: Any, formatter: Any) -> None:
        format_sections(self, ctx, formatter, shared_note=getattr(self, "regctl_shared_note", True))

    def format_help(self, ctx: Any, formatter: Any) -> None:
        _with_example(self, ctx)
        super().format_help(ctx, formatter)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:  # hidden from --help only: TAB still offers them (see completion.tree)
            if param.name in COMMON_OPTIONS and param.name != "traceback" and getattr(param, "hidden", False):
                param.regctl_completes = True  # type: ignore[attr-defined]

    def shell_complete(self, ctx: Any, incomplete: str) -> list:
        """Option names in parameter order, the shared ones included (they are hidden from --help only)."""
        if not incomplete or incomplete[0].isalnum():
            return list(super().shell_complete(ctx, incomplete))
        results = []
        for param in self.get_params(ctx):
            if param.param_type_name != "option":
                continue
            if getattr(param, "hidden", False) and not getattr(param, "regctl_completes", False):
                continue
            source = ctx.get_parameter_source(param.name)
            if not getattr(param, "multiple", False) and getattr(source, "name", "") == "COMMANDLINE":
                continue
            results.extend(CompletionItem(flag, help=param.help)
                           for flag in [*param.opts, *param.secondary_opts] if flag.startswith(incomplete))
        return results


def close_matches(word: str, candidates: Any) -> List[str]:
    """Did-you-mean candidates that are plausibly the same word mistyped, never a different one.

    Stricter than difflib's default: the same first letter (after the dashes), a similarity of
    at least 0.75, and never across a ``--no-`` prefix (``--no-headers`` is not ``--header``;
    ``help`` is not ``health``).
    """
    def core(text: str) -> str:
        return text.lstrip("-").lower()

    w = core(word)
    if not w:
        return []
    out = []
    for cand in sorted(set(candidates)):
        c = core(cand)
        if not c or c == w or c[0] != w[0] or c.startswith("no-") != w.startswith("no-"):
            continue
        if difflib.SequenceMatcher(None, w, c).ratio() >= 0.75:
            out.append(cand)
    return out[:3]


class RegctlGroup(typer.core.TyperGroup):
    """A group whose help shows the panels of its options before its commands."""

    def resolve_command(self, ctx: Any, args: List[str]) -> Any:
        """An unknown command: a did-you-mean only for a close spelling of a real one (:func:`close_matches`)."""
        try:
            # skip TyperGroup's own did-you-mean (it proposes unrelated commands): newer typer keeps
            # click's plain lookup as _click_resolve_command, older typer inherits it from click.Group
            plain = getattr(self, "_click_resolve_command", None)
            if plain is not None:
                return plain(ctx, args)
            return super(typer.core.TyperGroup, self).resolve_command(ctx, args)
        except cx.UsageError as exc:
            if args and "No such command" in exc.message:
                matches = close_matches(args[0], self.commands.keys())
                if matches:
                    exc.message = exc.message.rstrip(".") + ". Did you mean " + ", ".join(
                        repr(m) for m in matches) + "?"
            raise

    def format_options(self, ctx: Any, formatter: Any) -> None:
        format_sections(self, ctx, formatter, shared_note=False)
        self.format_commands(ctx, formatter)


def print_shared_options(ctx: Any) -> None:
    """The shared options' reference (``regctl options``): the root's panels, as ``regctl --help`` shows them."""
    root = ctx.find_root()
    formatter = root.make_formatter()
    formatter.write_text("These options work before the command (regctl -o json list) or after it "
                         "(regctl list -o json); after it wins. Each falls back to its environment "
                         "variable, then the context (a context named with --context beats the "
                         "environment for the keys it sets), then its default.")
    cmd = root.command
    panels: dict = {}
    for param in cmd.get_params(root):
        panel = getattr(param, "rich_help_panel", None)
        record = param.get_help_record(root) if panel else None
        if record is not None:
            panels.setdefault(panel, []).append(record)
    for title, records in panels.items():
        with formatter.section(title):
            formatter.write_dl(records)
    typer.echo(formatter.getvalue().rstrip("\n"))


def print_command_help(ctx: Any, words: List[str]) -> None:
    """``regctl help [GROUP] [COMMAND]``: that command's help; a usage error naming a close command."""
    root = ctx.find_root()
    current, cmd = root, root.command
    for n, word in enumerate(words):
        sub = cmd.get_command(current, word) if hasattr(cmd, "get_command") else None
        if sub is None:
            where = " ".join(["regctl", *words[:n]])
            known = cmd.list_commands(current) if hasattr(cmd, "list_commands") else []
            matches = close_matches(word, known)
            raise UsageError(f"{where} has no command {word!r}",
                             hint=f"did you mean: {', '.join(matches)}?" if matches else f"{where} --help")
        current = sub.make_context(word, [], parent=current, resilient_parsing=True)
        cmd = sub
    typer.echo(current.get_help())
