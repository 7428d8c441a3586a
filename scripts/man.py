"""Print regctl(1), a man page generated from the CLI itself: every command, argument and option.

    python scripts/man.py > regctl.1 && man -l regctl.1
    python scripts/man.py | sudo tee /usr/local/share/man/man1/regctl.1 >/dev/null

The text is the commands' own help, so the page is as current as the installed regctl.
The reference with examples is docs/ (start at docs/README.md).
"""

from __future__ import annotations

import datetime
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))


def roff(text: str) -> str:
    """Escape text for roff: backslashes, leading dots and quotes, hyphens in option names."""
    text = text.replace("\\", "\\e")
    text = re.sub(r"(?<!\w)(-+)", lambda m: "\\-" * len(m.group(1)), text)
    return "\n".join(("\\&" + line) if line.startswith((".", "'")) else line for line in text.splitlines())


def opt(text: str) -> str:
    """An option column for roff: every hyphen is a minus sign (copy-pasteable)."""
    return roff(text.replace("-", "\x00")).replace("\x00", "\\-")


def _params(cmd, ctx) -> list:
    out = []
    for p in cmd.get_params(ctx):
        if getattr(p, "hidden", False):
            continue
        record = p.get_help_record(ctx)
        if record is None:
            continue
        out.append(record)
    return out


def page() -> str:
    import typer.main

    from regctl import __version__
    from regctl.cli.app import get_app

    root = typer.main.get_command(get_app())
    root_ctx = root.context_class(root, info_name="regctl", **(root.context_settings or {}))
    date = datetime.date.today().isoformat()
    lines = [f'.TH REGCTL 1 "{date}" "regctl {__version__}" "User Commands"',
             ".SH NAME", "regctl \\- operate the Config Service's service registry",
             ".SH SYNOPSIS", ".B regctl", "[\\fIOPTIONS\\fR] \\fICOMMAND\\fR [\\fIARGS\\fR]...",
             ".SH DESCRIPTION", roff(root.help or ""),
             ".SH SHARED OPTIONS",
             "Every command takes these, before or after the command name; the value after it wins."]
    for opts, help_text in _params(root, root_ctx):
        lines += [".TP", f"\\fB{opt(opts)}\\fR", roff(help_text)]

    def walk(cmd, ctx, path):
        shared = {tuple(p.opts) for p in root.params}
        for name in cmd.list_commands(ctx):
            sub = cmd.get_command(ctx, name)
            if sub is None or getattr(sub, "hidden", False):
                continue
            sub_ctx = sub.context_class(sub, info_name=name, parent=ctx, **(sub.context_settings or {}))
            full = path + [name]
            if hasattr(sub, "commands"):
                walk(sub, sub_ctx, full)
                continue
            usage = " ".join(sub.collect_usage_pieces(sub_ctx))
            lines.extend([".SS", f"\\fBregctl {' '.join(full)}\\fR {roff(usage)}", roff(sub.help or "")])
            own = [p for p in sub.get_params(sub_ctx) if tuple(p.opts) not in shared or p.param_type_name == "argument"]
            for p in own:
                if getattr(p, "hidden", False):
                    continue
                record = p.get_help_record(sub_ctx)
                if record is None and p.param_type_name == "argument":
                    record = (p.make_metavar(sub_ctx) if _takes_ctx(p) else p.human_readable_name,
                              getattr(p, "help", None) or "")
                if record is None:
                    continue
                lines.extend([".TP", f"\\fB{opt(record[0])}\\fR", roff(record[1] or "")])

    lines.append(".SH COMMANDS")
    walk(root, root_ctx, [])
    lines += [".SH EXIT STATUS", ".TP", "0", "success", ".TP", "1",
              "the answer is no: not found, nothing healthy, a check failed, a wait timed out", ".TP", "2",
              "usage or invalid input", ".TP", "3",
              "the Config Service or ZooKeeper cannot be reached or answered something unusable",
              ".TP", "70", "internal error (a bug in regctl)", ".TP", "130", "interrupted (Ctrl\\-C)",
              ".SH ENVIRONMENT", ".TP", "CONFIG_SERVICE_URL, ZOOKEEPER_HOSTS, ZOOKEEPER_BASE_PATH, "
              "REGCTL_CONTEXT, REGCTL_TIMEOUT, REGCTL_OUTPUT, REGCTL_CONFIG, NO_COLOR",
              "see the options above and docs/configuration.md",
              ".SH SEE ALSO", "docs/README.md in the regctl repository: commands, configuration, doctor checks, "
              "output shapes, security, completion."]
    return "\n".join(lines) + "\n"


def _takes_ctx(param) -> bool:
    import inspect

    try:
        return "ctx" in inspect.signature(param.make_metavar).parameters
    except (TypeError, ValueError):
        return False


if __name__ == "__main__":
    sys.stdout.write(page())
