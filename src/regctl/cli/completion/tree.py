"""A TAB without typer: regctl's command tree cached as JSON, and a small resolver over it.

Building typer's command tree and parsing with it costs most of a TAB (typer,
pydantic, every command module: about 0.5 s of CPU). The tree (commands, options,
arguments and how each one completes) is written once to
``$XDG_CACHE_HOME/regctl/completion-tree.json`` by the full path
(:func:`regctl.cli.completion.script.answer`) and reused until regctl, its CLI modules,
typer or Python change. The resolver follows click's own completion rules
(``click.shell_completion._resolve_incomplete``); anything it does not know
(an unknown option, a completer it cannot run from the tree) goes back to the
full path, so both always agree (a test compares them line by line).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shlex
import sys
from pathlib import Path
from typing import Any, Callable

import regctl
from regctl.cli.completion import lookup as lk

TREE_FORMAT = 1


class NotHere(Exception):
    """The tree cannot answer this request: use the full path."""


# ---------------------------------------------------------------------------
# the protocol's output (shared with the full path)
# ---------------------------------------------------------------------------

def split_line(line: str) -> "tuple[list, str]":
    """The words before the one being typed (program name dropped) and that word, unquoted.

    An unclosed quote or a trailing backslash is taken as typed so far (as click's
    ``split_arg_string`` does).
    """
    lex = shlex.shlex(line + "\x00", posix=True)  # the marker shows whether the last word is finished
    lex.whitespace_split = True
    lex.commenters = ""
    words: list = []
    try:
        for token in lex:
            words.append(token)
    except ValueError:  # an unclosed quote or escape: the partial word as typed
        words.append(lex.token)
    last = words.pop() if words else "\x00"
    incomplete = last[:-1] if last.endswith("\x00") else ""
    if "\x00" in incomplete:  # the marker inside an unclosed quote
        incomplete = incomplete.replace("\x00", "")
    return words[1:], incomplete


def render(items: list, shell: str, incomplete: str, cur: "str | None") -> str:
    """The answer the scripts read: a mode line ("plain", "file" or "dir"), then "value<TAB>help" lines.

    ``items`` are (value, help, type) triples.
    """
    kinds = {kind for _, _, kind in items}
    for mode in ("dir", "file"):
        if mode in kinds:
            return mode + "\n"
    prefix = ""
    if incomplete.startswith("--") and "=" in incomplete:  # --source=a: the shell's word is the whole thing
        prefix = incomplete.split("=", 1)[0] + "="
    out = ["plain"]
    for value, help_text, _ in items:
        value = str(value)
        if prefix and not value.startswith(prefix):
            value = prefix + value
        if any(ch in value for ch in "\n\r\t\x00"):
            continue  # cannot be carried by the protocol
        if shell == "bash":
            value = bash_word(value, incomplete, cur)
        help_text = " ".join(str(help_text or "").split())
        out.append(value + ("\t" + help_text if help_text and shell != "bash" else ""))
    return "\n".join(out) + "\n"


def bash_word(value: str, incomplete: str, cur: "str | None") -> str:
    """The part of ``value`` bash replaces: bash's current word starts after the last ':' or '='
    (COMP_WORDBREAKS); when the cursor is right after one, the word bash shows is that character
    and the text it replaces is empty."""
    if cur is None or cur == incomplete:
        return value
    if cur in (":", "="):
        head = incomplete
    elif incomplete.endswith(cur):
        head = incomplete[:len(incomplete) - len(cur)]
    else:  # quoted on the command line: bash did not split it
        return value
    return value[len(head):] if value.startswith(head) else value


# ---------------------------------------------------------------------------
# the cached tree
# ---------------------------------------------------------------------------

def tree_path() -> Path:
    return lk.cache_path().with_name("completion-tree.json")


def fingerprint() -> str:
    """What the tree depends on: regctl's version, CLI modules and statuses, typer, Python."""
    pkg = Path(regctl.__file__).resolve().parent
    parts: list = [TREE_FORMAT, getattr(regctl, "__version__", ""), sys.version, str(pkg)]
    for path in sorted([pkg / "__init__.py", pkg / "names.py", *(pkg / "cli").rglob("*.py")]):
        st = path.stat()
        parts.append((str(path.relative_to(pkg)), st.st_mtime_ns, st.st_size))
    spec = importlib.util.find_spec("typer")
    if spec is not None and spec.origin:
        st = os.stat(spec.origin)
        parts.append((spec.origin, st.st_mtime_ns, st.st_size))
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:32]


def load_tree() -> "dict | None":
    try:
        data = json.loads(tree_path().read_text(encoding="utf-8"))
    except Exception:
        return None
    if not isinstance(data, dict) or data.get("fingerprint") != fingerprint():
        return None
    return data.get("root")


def save_tree(root: dict) -> None:
    try:
        path = tree_path()
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump({"fingerprint": fingerprint(), "root": root}, f)
        os.replace(tmp, path)
    except Exception:
        pass


def build_tree(cli: Any, kind_of: Callable[[Any, Any, Any], dict]) -> dict:
    """The tree of a click command: ``kind_of(command, param, ctx)`` says how a parameter completes."""

    def node(cmd: Any, name: str, parent: Any) -> dict:
        settings = {k: v for k, v in (getattr(cmd, "context_settings", None) or {}).items()
                    if k in ("help_option_names", "ignore_unknown_options", "allow_interspersed_args")}
        ctx = cmd.context_class(cmd, info_name=name, parent=parent, resilient_parsing=True, **settings)
        params = []
        for p in cmd.get_params(ctx):
            is_option = p.param_type_name == "option"
            params.append({
                "name": p.name, "option": is_option, "opts": list(p.opts),
                "secondary": list(getattr(p, "secondary_opts", []) or []),
                "value": is_option and not (getattr(p, "is_flag", False) or getattr(p, "count", False)),
                "nargs": p.nargs, "multiple": bool(getattr(p, "multiple", False)),
                "hidden": bool(getattr(p, "hidden", False)) and not getattr(p, "regctl_completes", False),
                "help": getattr(p, "help", None) or "",
                "complete": kind_of(cmd, p, ctx),
            })
        out: dict = {"params": params}
        if hasattr(cmd, "commands"):
            subs = {}
            for sub_name in cmd.list_commands(ctx):
                sub = cmd.get_command(ctx, sub_name)
                if sub is None:
                    continue
                subs[sub_name] = {**node(sub, sub_name, ctx), "hidden": bool(getattr(sub, "hidden", False)),
                                  "short_help": sub.get_short_help_str()}
            out["commands"] = subs
        return out

    return node(cli, "regctl", None)


# ---------------------------------------------------------------------------
# resolving a command line against the tree (click's rules)
# ---------------------------------------------------------------------------

class _Ctx:
    """What the completers read of a click context: ``params`` and ``parent``."""

    def __init__(self, params: dict, parent: "_Ctx | None") -> None:
        self.params, self.parent = params, parent


def _find_option(node: dict, word: str) -> "dict | None":
    for p in node["params"]:
        if p["option"] and (word in p["opts"] or word in p["secondary"]):
            return p
    return None


def _parse(node: dict, words: list, interspersed: bool) -> "tuple[dict, set, list, list]":
    """Parse one level like click's parser: (values by name, names given, positionals, rest)."""
    values: dict = {}
    given: set = set()
    positionals: list = []
    i = 0
    while i < len(words):
        w = words[i]
        if w == "--":
            positionals.extend(words[i + 1:])
            break
        if w.startswith("--") and len(w) > 2:
            name, eq, val = w.partition("=")
            p = _find_option(node, name)
            if p is None:
                raise NotHere(f"unknown option {name}")
            if p["value"]:
                if not eq:
                    i += 1
                    if i >= len(words):  # its value is the word being typed
                        given.add(p["name"])
                        break
                    val = words[i]
                _store(values, p, val)
            else:
                values[p["name"]] = values.get(p["name"], 0) + 1 if p["name"] == "verbose" else True
            given.add(p["name"])
        elif w.startswith("-") and len(w) > 1:
            j = 1
            while j < len(w):
                p = _find_option(node, "-" + w[j])
                if p is None:
                    raise NotHere(f"unknown option -{w[j]}")
                given.add(p["name"])
                if p["value"]:
                    rest = w[j + 1:]
                    if not rest:
                        i += 1
                        if i >= len(words):  # its value is the word being typed
                            break
                        rest = words[i]
                    _store(values, p, rest)
                    break
                values[p["name"]] = values.get(p["name"], 0) + 1 if p["name"] == "verbose" else True
                j += 1
        else:
            if not interspersed:
                return values, given, positionals, words[i:]
            positionals.append(w)
        i += 1
    return values, given, positionals, []


def _store(values: dict, p: dict, value: str) -> None:
    if p["multiple"]:
        values.setdefault(p["name"], []).append(value)
    else:
        values[p["name"]] = value


def _arguments(node: dict, positionals: list, values: dict) -> "tuple[dict, set]":
    """Fill the arguments from the positionals (click: left to right, nargs -1 takes the rest)."""
    args = [p for p in node["params"] if not p["option"]]
    filled: set = set()
    rest = list(positionals)
    for n, p in enumerate(args):
        if not rest:
            break
        if p["nargs"] == -1:
            later = sum(max(q["nargs"], 0) for q in args[n + 1:])
            take = rest[:len(rest) - later] if later else rest
            values[p["name"]] = take
            rest = rest[len(take):]
        else:
            values[p["name"]] = rest[0] if p["nargs"] == 1 else rest[:p["nargs"]]
            rest = rest[max(p["nargs"], 1):]
        filled.add(p["name"])
    return values, filled


def resolve(root: dict, args: list, incomplete: str) -> list:
    """The candidates for ``incomplete`` after ``args``: (value, help, type) triples."""
    node, ctx, words = root, None, list(args)
    given: set = set()
    filled: set = set()
    while True:
        is_group = "commands" in node
        values, given, positionals, rest = _parse(node, words, interspersed=not is_group)
        if not is_group:
            values, filled = _arguments(node, positionals, values)
            ctx = _Ctx(values, ctx)
            break
        ctx = _Ctx(values, ctx)
        if not rest:
            break
        sub = node["commands"].get(rest[0])
        if sub is None:  # click stays with the group: its commands are offered
            break
        node, words = sub, rest[1:]

    if incomplete == "=":
        incomplete = ""
    elif "=" in incomplete and incomplete.startswith("-"):
        name, _, incomplete = incomplete.partition("=")
        args = [*args, name]
    if "--" not in args and incomplete.startswith("-"):
        out = []
        for p in node["params"]:
            if not p["option"] or p["hidden"] or (not p["multiple"] and p["name"] in given):
                continue
            out += [(n, p["help"], "plain") for n in [*p["opts"], *p["secondary"]] if n.startswith(incomplete)]
        return out
    for p in node["params"]:  # an option waiting for its value
        if p["option"] and p["value"] and args and args[-1] in p["opts"] and args[-1].startswith("-"):
            return _complete(p, ctx, args, incomplete)
    for p in node["params"]:  # the first argument without a value
        if not p["option"] and (p["nargs"] == -1 or p["name"] not in filled):
            return _complete(p, ctx, args, incomplete)
    if "commands" in node:
        return [(n, c.get("short_help", ""), "plain") for n, c in node["commands"].items()
                if n.startswith(incomplete) and not c.get("hidden")]
    return []


def _complete(p: dict, ctx: _Ctx, args: list, incomplete: str) -> list:
    how = p.get("complete") or {}
    kind = how.get("type")
    if kind in ("file", "dir"):
        return [(incomplete, "", kind)]
    if kind == "words":
        return [(w, h, "plain") for w, h in how.get("words", []) if w.startswith(incomplete)]
    if kind == "services":
        return [(n, "", "plain") for n in lk.complete_service_names(ctx, incomplete)]
    if kind == "instances":
        return [(n, "", "plain") for n in lk.complete_instance_ids(ctx, args, incomplete)]
    if kind == "contexts":
        return [(n, "", "plain") for n in lk.complete_context_names(incomplete)]
    if kind == "checks":
        return [(n, "", "plain") for n in lk._check_names() if n.startswith(incomplete)]
    if kind == "none":
        return []
    raise NotHere(f"{p['name']} completes in a way the tree does not know")


def answer_from_tree(shell: str, line: str, cur: "str | None") -> str:
    """The answer from the cached tree; :class:`NotHere` when the full path must answer."""
    root = load_tree()
    if root is None:
        raise NotHere("no current tree")
    args, incomplete = split_line(line)
    return render(resolve(root, args, incomplete), shell, incomplete, cur)


def serve_quick() -> bool:
    """Answer one ``_REGCTL_COMPLETE=<shell>`` request from the tree, silently; False when the full path
    (:func:`regctl.cli.completion.script.serve`) must answer it."""
    shell = os.environ.get("_REGCTL_COMPLETE", "")
    if shell.startswith("complete_"):  # a script from an older regctl: typer's protocol
        return False
    devnull = open(os.devnull, "w")
    real_stderr, sys.stderr = sys.stderr, devnull
    try:
        text = answer_from_tree(shell, os.environ.get("_REGCTL_LINE", ""), os.environ.get("_REGCTL_CUR"))
    except BaseException:  # not known here (or a bug): the full path answers, silently too
        return False
    finally:
        sys.stderr = real_stderr
        devnull.close()
    sys.stdout.write(text)
    sys.stdout.flush()
    return True
