"""The only place that prints: tables (table/wide), JSON, YAML, messages and errors.

Commands return a :class:`Result`; :class:`Output` renders it.

* stdout carries the answer only (a table, a JSON/YAML document, a bare URL);
  notes, warnings and errors go to stderr.
* Colour and box drawing only when the stream is a terminal and neither
  ``--no-color`` nor ``NO_COLOR`` is set. Off a terminal, tables are plain
  space-aligned columns that ``awk`` and ``cut`` can read.
* Tables fit the terminal (``COLUMNS``, else the terminal's width; no limit in a pipe): two-space
  gaps, no rule; when too wide, timestamps become ages, headers their short form, the widest text
  cells are cut, and ``-o wide`` folds its extra columns under each row (:meth:`Output._narrow`).
  ``--no-headers``, ``--sort-by``, ``--filter``, ``--field`` and ``-o name`` shape tables for scripts.
* A table cell shows at most :data:`MAX_CELL_WIDTH` characters, the rest cut with an
  ellipsis (``...`` off a terminal): one 100,000-character name cannot pad every row.
  ``-o json|yaml`` carry every value whole.
* Names that differ only by invisible or lookalike characters (:func:`regctl.safety.lookalike_groups`)
  are flagged wherever a table lists them, in every output mode: the cells show them
  escaped (``asr-service\\u200b``) and a warning names the group.
* With ``-o json|yaml`` a failure still prints an error document on stdout
  (``{"error": {...}}``) besides the line on stderr; :func:`regctl.cli.app.main`, the error funnel, is the
  one caller of :meth:`Output.error`.

rich is imported where it draws: ``regctl --help`` (the start-up path) loads this module and draws nothing.
"""

import os
import shutil
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, TextIO

from regctl import safety
from regctl.cli.tables import (_TIMESTAMP, _age_of, _cell_text, _column_key, _cut, _data_list, _lookup, _row_matches,
                               _total, _widths, parse_filter)
from regctl.errors import RegctlError, UsageError
from regctl.redaction import redact_text
from regctl.views import natural_key

#: cell value -> rich style name, or None
Styler = Callable[[Any], "str | None"]

STATUS_STYLES = {
    "healthy": "green", "pass": "green", "ok": "green", "yes": "green",
    "unhealthy": "red", "fail": "red", "error": "red", "no": "red",
    "warn": "yellow", "unknown": "yellow", "starting": "cyan", "stopping": "yellow", "skip": "dim",
}


def status_style(value: Any) -> "str | None":
    return STATUS_STYLES.get(str(value).lower()) if value is not None else None


def flag_style(value: Any) -> "str | None":
    return "yellow" if value and value != "-" else None


#: status -> (glyph on a terminal, plain ASCII mark): ok, warning, failure, skipped
MARKS = {
    "pass": ("\u2714", "[ok]"),
    "warn": ("!", "[!!]"),
    "fail": ("\u2718", "[XX]"),
    "skip": ("\u2013", "[--]"),
}


def _encodes(stream: Any, text: str) -> bool:
    """True when ``stream``'s encoding can write ``text`` (no encoding known: assume UTF-8)."""
    try:
        text.encode(getattr(stream, "encoding", None) or "utf-8")
    except (UnicodeEncodeError, LookupError):
        return False
    return True


def status_mark(status: Any, fancy: bool) -> str:
    """The mark for a pass/warn/fail/skip status: a glyph on a terminal, ASCII otherwise."""
    glyph, ascii_mark = MARKS.get(str(status).lower(), ("?", "[??]"))
    return glyph if fancy else ascii_mark


@dataclass
class Column:
    key: str
    header: str
    wide: bool = False
    style: "Styler | None" = None
    justify: str = "left"
    #: the cell holds a status (pass/warn/fail/skip) shown as a mark (see :func:`status_mark`)
    mark: bool = False
    #: a shorter header used when the table does not fit the terminal
    short: "str | None" = None
    #: cut this column only after the other text columns
    keep: bool = False


@dataclass
class Table:
    columns: list
    rows: list
    title: "str | None" = None
    empty: str = "(none)"
    #: row key holding extra lines shown under the row (indented; a list of str or (style, text))
    details_key: "str | None" = None
    #: column whose cell the detail lines are appended to on a terminal (default: the last)
    details_column: "str | None" = None
    #: leave out columns whose cells are all empty
    hide_empty: bool = False
    #: the key of the list in the result's data whose items are these rows, one for one:
    #: ``--filter`` and ``--sort-by`` shape it too (``-o json`` shows the same rows as the table)
    data_key: "str | None" = None


@dataclass
class Result:
    """What a command hands to the renderer."""

    #: the JSON/YAML document (plain dicts, lists, strings, numbers)
    data: Any = None
    tables: list = field(default_factory=list)
    #: plain stdout lines used in table/wide mode instead of tables (e.g. a bare URL)
    lines: "list | None" = None
    #: informational lines for stderr (table/wide mode only)
    notes: list = field(default_factory=list)
    #: warnings for stderr (every mode)
    warnings: list = field(default_factory=list)
    exit_code: int = 0
    #: an error to report after the data (exit code taken from it)
    error: "RegctlError | None" = None
    #: plain stdout lines printed after the tables in table/wide mode (e.g. a summary line)
    footer: list = field(default_factory=list)
    #: print secrets as they are (``config view --raw``); control characters are still escaped
    raw: bool = False
    #: a document its producer wrote out whole (an export on stdout): printed first, as it is, in every mode
    text: "str | None" = None


def verdict(result: Result) -> int:
    """The exit code a result stands for: its error's, else its own."""
    return int(result.error.exit_code) if result.error is not None else int(result.exit_code)


def human_text(text: Any, lines: bool = False, raw: bool = False) -> str:
    """``text`` as it may reach a terminal: known secrets and URL passwords masked (unless ``raw``),
    controls and bidi characters shown escaped (see :mod:`regctl.safety`); ``lines`` keeps line breaks.

    The one rule every human-facing string passes through.
    """
    text = text if isinstance(text, str) else str(text)
    if not raw:
        text = redact_text(text)
    return safety.safe_lines(text) if lines else safety.safe_text(text)


def safe_text(text: Any) -> str:
    """One line of human-facing text (see :func:`human_text`)."""
    return human_text(text)


#: JSON/YAML documents show nesting down to this depth; anything deeper is replaced by :data:`DEPTH_MARKER`
#: (every nesting the JSON parser accepts still renders, in every format: YAML's emitter recurses per level)
MAX_DEPTH = 100
DEPTH_MARKER = f"<nested deeper than {MAX_DEPTH} levels: not shown>"
#: non-finite floats (Python's json reads NaN/Infinity from registry data) as strict JSON spells them: strings
_NON_FINITE = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}


def _json_key(key: Any) -> str:
    """A mapping key as ``json.dumps`` would write it."""
    if isinstance(key, str):
        return key
    if key is True or key is False or key is None:
        return {True: "true", False: "false", None: "null"}[key]
    if isinstance(key, float):
        return _NON_FINITE.get(repr(key), repr(key))
    if isinstance(key, int):
        return str(int(key))
    return str(key)


def machine_data(data: Any, raw: bool = False) -> Any:
    """``data`` as plain, strict JSON values with every string (keys too) redacted unless ``raw``.

    Walked iteratively (no recursion): nesting deeper than :data:`MAX_DEPTH` becomes
    :data:`DEPTH_MARKER`; NaN and +/-Infinity become the strings ``"NaN"``, ``"Infinity"``,
    ``"-Infinity"``; tuples are lists; any other object is its ``str()``.
    """
    redacted: dict = {}  # the same strings recur (keys, verdicts, names): redact each once

    def text(v: str) -> str:
        if raw:
            return v
        out = redacted.get(v)
        if out is None:
            out = redacted[v] = redact_text(v)
        return out

    root: list = [None]
    stack: list = [(root, 0, data, 0)]
    while stack:
        parent, key, v, depth = stack.pop()
        if isinstance(v, dict):
            if depth >= MAX_DEPTH:
                parent[key] = DEPTH_MARKER
                continue
            out: Any = {}
            parent[key] = out
            for k, x in v.items():
                name = text(_json_key(k))
                out[name] = None  # the slot keeps the order; filled when popped
                stack.append((out, name, x, depth + 1))
        elif isinstance(v, (list, tuple)):
            if depth >= MAX_DEPTH:
                parent[key] = DEPTH_MARKER
                continue
            out = [None] * len(v)
            parent[key] = out
            for i, x in enumerate(v):
                stack.append((out, i, x, depth + 1))
        elif isinstance(v, str):
            parent[key] = text(v)
        elif v is None or isinstance(v, bool):
            parent[key] = v
        elif isinstance(v, int):
            parent[key] = int(v)
        elif isinstance(v, float):
            parent[key] = v if v == v and v not in (float("inf"), float("-inf")) else _NON_FINITE[repr(v)]
        else:
            parent[key] = text(str(v))
    return root[0]


#: the widest a table cell is printed (characters after escaping); longer values end in an ellipsis
MAX_CELL_WIDTH = 96
#: table columns that hold names: lookalikes among their values are flagged
NAME_KEYS = ("name", "service", "service_name", "instance_id")


def cell_text(value: Any, raw: bool = False, fancy: bool = False) -> str:
    return cap_cell(human_text(_cell_text(value), raw=raw), fancy)


def cap_cell(text: str, fancy: bool = False) -> str:
    """``text`` cut to :data:`MAX_CELL_WIDTH` characters, the cut marked by an ellipsis."""
    if len(text) <= MAX_CELL_WIDTH:
        return text
    mark = "\u2026" if fancy else "..."
    return text[:MAX_CELL_WIDTH - len(mark)] + mark


def lookalikes(tables: list) -> "tuple[set, list]":
    """(names to show escaped, warning lines) for names in ``tables`` that differ only by invisible or
    lookalike characters (per table and column)."""
    flagged: set = set()
    warnings: list = []
    for table in tables:
        for key in NAME_KEYS:
            values = [row.get(key) for row in table.rows if isinstance(row.get(key), str)]
            if len(values) < 2 or all(v.isascii() and v.isprintable() for v in values):
                continue
            for group in safety.lookalike_groups(values):
                flagged.update(group)
                shown = ", ".join(cap_cell(safety.escape_non_ascii(n)) for n in group)
                warnings.append(f"{len(group)} names look alike (they differ only by invisible or lookalike "
                                f"characters): {shown}; check which one is meant")
    return flagged, warnings


def _name_cell(value: Any, flagged: set, raw: bool, fancy: bool) -> str:
    if isinstance(value, str) and value in flagged:
        return cap_cell(safety.escape_non_ascii(value), fancy)
    return cell_text(value, raw, fancy)


def to_json(data: Any, raw: bool = False, indent: "int | None" = 2) -> str:
    """Redacted, terminal-safe JSON: C1 controls, bidi characters and surrogates ``\\u``-escaped."""
    return safety.json_dumps(machine_data(data, raw), indent=indent)


def to_yaml(data: Any, raw: bool = False) -> str:
    """Redacted, terminal-safe YAML: a string holding a control or bidi character is double-quoted, escaped."""
    return safety.yaml_dump(machine_data(data, raw))


class Output:
    """Renders results and messages for one run."""

    def __init__(self, output: str = "table", color: "bool | None" = None, verbose: int = 0,
                 stdout: "TextIO | None" = None, stderr: "TextIO | None" = None, no_headers: bool = False,
                 sort_by: "str | None" = None, filters: "list | None" = None,
                 fields: "list | None" = None) -> None:
        self.output = output
        #: --no-headers: tables without their header line (and title)
        self.no_headers = no_headers
        #: --sort-by COLUMN: rows in natural order of that column
        self.sort_by = sort_by
        #: --filter KEY=VALUE, parsed (see :func:`parse_filter`)
        self.filters = [parse_filter(f) if isinstance(f, str) else f for f in filters or []]
        #: --field KEY: tab-separated values instead of the table
        self.fields = list(fields or [])
        self.verbose = verbose
        self.stdout = stdout or sys.stdout
        self.stderr = stderr or sys.stderr
        self._color_setting = color
        #: names flagged as lookalikes in the result being rendered (shown escaped)
        self._flagged: set = set()

    # -- terminal capabilities -------------------------------------------
    def is_tty(self, stream: TextIO) -> bool:
        try:
            return bool(stream.isatty())
        except (AttributeError, ValueError):
            return False

    def color(self, stream: TextIO) -> bool:
        if self._color_setting is False:
            return False
        if os.environ.get("TERM") == "dumb":  # rich would also cut every table at 80 columns there
            return False
        return self.is_tty(stream)

    def fancy(self) -> bool:
        """Box drawing and glyphs on stdout: only on a terminal, only with colour allowed, only when its
        encoding can write them (an ASCII terminal gets the ASCII marks)."""
        return self.color(self.stdout) and _encodes(self.stdout, "\u2714\u2718\u2013\u2192\u2026")

    def _console(self, stream: TextIO, width: "int | None" = None, soft_wrap: bool = False):
        from rich.console import Console

        return Console(file=stream, color_system="auto" if self.color(stream) else None,
                       force_terminal=self.color(stream), highlight=False, soft_wrap=soft_wrap, width=width)

    # -- messages ----------------------------------------------------------
    def _message(self, prefix: str, text: Any, style: str, lines: bool = True) -> None:
        text = human_text(text, lines=lines)
        if self.color(self.stderr):
            from rich.text import Text

            self._console(self.stderr, soft_wrap=True).print(Text.assemble((f"regctl: {prefix}", style), text))
        else:
            self.stderr.write(f"regctl: {prefix}{text}\n")
            self.stderr.flush()

    def note(self, text: str) -> None:
        self._message("", text, "dim")

    def warn(self, text: str) -> None:
        self._message("warning: ", text, "yellow")

    def debug(self, text: str) -> None:
        if self.verbose:
            self._message("", text, "dim")

    def error(self, err: "RegctlError | str", code: "int | None" = None, whole: bool = True) -> None:
        """Print a failure: one line on stderr; with ``whole``, also the -v detail and, with -o json|yaml,
        the error document on stdout (not ``whole``: a result's own document is already there).

        Called by :func:`regctl.cli.app.main` only: the one place that turns an error into output.
        """
        self._message("error: ", str(err), "bold red", lines=False)
        if not whole:
            return
        if isinstance(err, RegctlError) and self.verbose and err.detail:
            self._message("", f"  detail: {err.detail}", "dim", lines=False)
        if self.output in ("json", "yaml"):
            doc = err.to_dict() if isinstance(err, RegctlError) else {
                "error": {"code": code, "type": "Error", "message": str(err), "where": None, "hint": None}}
            self.write_document(doc)

    # -- results -----------------------------------------------------------
    def write_document(self, data: Any, raw: bool = False) -> None:
        text = to_json(data, raw) if self.output == "json" else to_yaml(data, raw)
        self.stdout.write(text if text.endswith("\n") else text + "\n")
        self.stdout.flush()

    def render(self, result: Result) -> int:
        """Print ``result`` in the chosen format (its ``error`` is left to the error funnel,
        :func:`regctl.cli.app.main`); return the exit code."""
        raw = result.raw
        self.shape(result)
        self._flagged, alike = lookalikes(result.tables)
        if result.text is not None:
            self.stdout.write(result.text)
            self.stdout.flush()
        if self.output in ("json", "yaml"):
            if result.data is not None:
                self.write_document(result.data, raw)
        else:
            if result.lines is not None and not (self.fields and not result.tables):
                for line in result.lines:
                    self.stdout.write(human_text(line, raw=raw) + "\n")
            for table in result.tables:
                self.table(table, raw)
            script = self.output == "name" or bool(self.fields)
            if script and not result.tables and self.fields and result.data is not None:
                values = [_lookup(result.data, f) if isinstance(result.data, dict) else None for f in self.fields]
                self.stdout.write("\t".join(human_text(_cell_text(v), raw=raw) for v in values) + "\n")
            for line in [] if script else result.footer:
                self.stdout.write(human_text(line, lines=True, raw=raw) + "\n")
            for line in result.notes:
                self.note(line)
            self.stdout.flush()
        for w in [*alike, *result.warnings]:
            self.warn(w)
        return verdict(result)

    def table(self, table: Table, raw: bool = False) -> None:
        wide = self.output == "wide"
        cols = [c for c in table.columns if wide or not c.wide]
        if table.hide_empty and table.rows:
            cols = [c for c in cols if c.mark or any(row.get(c.key) not in (None, "") for row in table.rows)]
        if self.output == "name" or self.fields:
            self._script_lines(table, raw)
        elif self.fancy():
            self._rich_table(table, cols, raw)
        else:
            self._plain_table(table, cols, raw)

    # -- shaping: filter, sort, fields (every mode; see docs/output.md) ----------
    def shape(self, result: Result) -> None:
        """Apply ``--filter`` and ``--sort-by`` to each table's rows (and the parallel list in the data)."""
        if not (self.filters or self.sort_by):
            return
        for table in result.tables:
            keep = list(range(len(table.rows)))
            if self.filters:
                keep = [i for i in keep if all(_row_matches(table, table.rows[i], f) for f in self.filters)]
            if self.sort_by:
                key = _column_key(table, self.sort_by)
                if key is None:
                    raise UsageError(f"--sort-by {self.sort_by!r}: no such column",
                                     hint="use one of " + ", ".join(c.header.replace(" ", "-") for c in table.columns))
                keep.sort(key=lambda i: natural_key(_lookup(table.rows[i], key)))
            docs = _data_list(result.data, table)
            table.rows = [table.rows[i] for i in keep]
            if docs is not None:
                docs[:] = [docs[i] for i in keep]

    def _script_lines(self, table: Table, raw: bool) -> None:
        """``-o name`` (the name column, one per line) or ``--field`` (tab-separated values): never cut."""
        if self.fields:
            keys = []
            for f in self.fields:
                key = _column_key(table, f) or f
                keys.append(key)
        else:
            names = [c.key for c in table.columns if c.key in NAME_KEYS]
            keys = names[:1] or [table.columns[0].key]
        for row in table.rows:
            values = [_lookup(row, k) for k in keys]
            self.stdout.write("\t".join(human_text(_cell_text(v), raw=raw) for v in values) + "\n")

    def width(self) -> "int | None":
        """The width tables fit: ``COLUMNS`` when set, else the terminal's when stdout is one; None (no
        limit) in a pipe without ``COLUMNS``, so ``awk`` and ``cut`` always get whole values."""
        if os.environ.get("COLUMNS", "").strip().isdecimal():
            return max(20, int(os.environ["COLUMNS"]))
        if not self.is_tty(self.stdout):
            return None
        try:
            return max(20, os.get_terminal_size(self.stdout.fileno()).columns)
        except (AttributeError, ValueError, OSError):
            return max(20, shutil.get_terminal_size((80, 24)).columns)

    def _grid(self, table: Table, cols: list, raw: bool, fancy: bool) -> list:
        flagged = getattr(self, "_flagged", set())
        return [[status_mark(row.get(c.key), fancy) if c.mark else
                 _name_cell(row.get(c.key), flagged, raw, fancy) if c.key in NAME_KEYS else
                 cell_text(row.get(c.key), raw, fancy) for c in cols]
                for row in table.rows]

    def _narrow(self, cols: list, grid: list) -> "tuple[list, bool]":
        """(headers, folded?) for a table that does not fit :meth:`width` as it is: timestamps become ages
        and long headers their short form (``grid`` is changed in place); folded is True for ``-o wide``
        when even then its columns would have to be cut below a readable width (see :meth:`_fold`)."""
        limit = self.width()
        headers = [human_text(c.header.upper()) for c in cols]
        if limit is None or not grid or _total(_widths(headers, grid, self.no_headers)) <= limit:
            return headers, False
        for i, c in enumerate(cols):
            if all(_TIMESTAMP.match(r[i]) or r[i] == "-" for r in grid) and any(r[i] != "-" for r in grid):
                for r in grid:
                    r[i] = _age_of(r[i])
                headers[i] = "AGE" if c.short is None else headers[i]
            if c.short:
                headers[i] = human_text(c.short.upper())
        ws = _widths(headers, grid, self.no_headers)
        readable = [w if (c.mark or c.justify == "right") else min(w, max(len(h), 12))
                    for c, h, w in zip(cols, headers, ws)]
        return headers, self.output == "wide" and any(c.wide for c in cols) and _total(readable) > limit

    def _fit(self, cols: list, grid: list, headers: list, fancy: bool) -> list:
        """Cell widths that fit :meth:`width` (after :meth:`_narrow`): the widest text columns are cut,
        first down to their header, then further, the names last; numbers and marks stay whole."""
        limit = self.width()
        ws = _widths(headers, grid, self.no_headers)
        if limit is None:
            return ws
        for rank, least in ((0, None), (1, None), (0, 8), (1, 8), (2, 12)):
            floor = [max(least or len(h), 1) for h in headers]
            while _total(ws) > limit:
                cand = [i for i, c in enumerate(cols) if ws[i] > floor[i] and not c.mark and c.justify != "right"
                        and (2 if c.key in NAME_KEYS else 1 if c.keep else 0) == rank]
                if not cand:
                    break
                i = max(cand, key=lambda j: ws[j])
                others = sorted((ws[j] for j in cand if j != i), reverse=True)
                target = max(floor[i], ws[i] - (_total(ws) - limit), (others[0] if others else 0))
                ws[i] = target if target < ws[i] else ws[i] - 1
        mark = "\u2026" if fancy else "..."
        for r in grid:
            for i, w in enumerate(ws):
                r[i] = _cut(r[i], w, mark)
        return ws

    def _fold(self, cols: list, grid: list, headers: list) -> "tuple[list, list, list, list]":
        """``-o wide`` in a narrow terminal: the wide-only columns as ``header: value`` lines under each row."""
        keep = [i for i, c in enumerate(cols) if not c.wide]
        moved = [i for i, c in enumerate(cols) if c.wide]
        limit = self.width() or 80
        extra = [[_cut(f"{human_text(cols[i].header)}: {r[i]}", limit - 2, "...") for i in moved if r[i] != "-"]
                 for r in grid]
        return [cols[i] for i in keep], [[r[i] for i in keep] for r in grid], [headers[i] for i in keep], extra

    def _plain_table(self, table: Table, cols: list, raw: bool = False, fancy: bool = False) -> None:
        out = self.stdout
        if table.title and not self.no_headers:
            out.write(human_text(table.title, raw=raw) + "\n")
        if not table.rows:
            if not self.no_headers:
                out.write(human_text(table.empty, raw=raw) + "\n")
            return
        body = self._grid(table, cols, raw, fancy)
        headers, folded = self._narrow(cols, body)
        extra: list = [[] for _ in body]
        if folded:
            cols, body, headers, extra = self._fold(cols, body, headers)
        widths = self._fit(cols, body, headers, fancy)
        head = [] if self.no_headers else [[h[:w] for h, w in zip(headers, widths)]]
        indent = 0
        if table.details_key:
            keys = [c.key for c in cols]
            at = keys.index(table.details_column) if table.details_column in keys else len(cols) - 1
            indent = sum(w + 2 for w in widths[:at])
        for r in head:
            out.write("  ".join(v.rjust(w) if c.justify == "right" else v.ljust(w)
                                for v, w, c in zip(r, widths, cols)).rstrip() + "\n")
        for n, r in enumerate(body):
            cells = [(v.rjust(w) if c.justify == "right" else v.ljust(w)) for v, w, c in zip(r, widths, cols)]
            out.write("  ".join(cells).rstrip() + "\n")
            for line in extra[n]:
                out.write("  " + line + "\n")
            if table.details_key:
                for item in table.rows[n].get(table.details_key) or []:
                    text = item[1] if isinstance(item, tuple) else item
                    out.write(" " * indent + human_text(text, raw=raw) + "\n")

    def _rich_table(self, table: Table, cols: list, raw: bool = False) -> None:
        # Cells are rich Text objects, never markup strings: "[red]" in registry data stays text.
        from rich.table import Table as RichTable
        from rich.text import Text

        # Cells are cut by _fit to the terminal's width; detail lines may run past it and wrap in the terminal.
        console = self._console(self.stdout, width=10000)
        title = Text(human_text(table.title, raw=raw), style="bold") if table.title and not self.no_headers else None
        if not table.rows:
            if title is not None:
                console.print(title)
            if not self.no_headers:
                console.print(Text(human_text(table.empty, raw=raw), style="dim"))
            return
        texts = self._grid(table, cols, raw, True)
        headers, folded = self._narrow(cols, texts)
        if folded:  # lines under the rows: the plain layout (box drawing cannot hold them)
            return self._plain_table(table, cols, raw, fancy=True)
        widths = self._fit(cols, texts, headers, True)
        # no box: two spaces between columns, the header set off by bold underlined text, not a full-width rule
        rt = RichTable(box=None, title=title, title_justify="left", title_style="bold", pad_edge=False,
                       show_edge=False, show_header=not self.no_headers, header_style="bold",
                       padding=(0, 1))
        for c, w, h in zip(cols, widths, headers):
            rt.add_column(Text(h[:w], style="underline"), justify=c.justify, no_wrap=True)
        keys = [c.key for c in cols]
        at = keys.index(table.details_column) if table.details_column in keys else len(cols) - 1
        for row, line in zip(table.rows, texts):
            cells = []
            for c, text in zip(cols, line):
                value = row.get(c.key)
                style = (c.style(value) if c.style else None) or (status_style(value) if c.mark else None)
                cells.append(Text(text, style=style or ""))
            for item in (row.get(table.details_key) or []) if table.details_key else []:
                style, text = item if isinstance(item, tuple) else ("dim", item)
                cells[at].append("\n")
                cells[at].append(human_text(text, raw=raw), style=style or None)
            rt.add_row(*cells)
        console.print(rt)


def stdin_is_tty() -> bool:
    """Whether stdin is a terminal (commands that change the registry need --yes otherwise)."""
    try:
        return bool(sys.stdin.isatty())
    except (AttributeError, ValueError):
        return False


def confirm(question: str) -> bool:
    """Ask on stderr, read the answer from stdin; anything but y/yes (or EOF) is no.

    Not typer.confirm: with err=True click still writes the prompt's last
    character to stdout, which would corrupt -o json output.
    """
    sys.stderr.write(f"{human_text(question)} [y/N]: ")
    sys.stderr.flush()
    try:
        answer = sys.stdin.readline()
    except (OSError, UnicodeDecodeError):
        answer = ""
    if not _real_terminal(sys.stdin) or not answer.endswith("\n"):
        sys.stderr.write(human_text(answer.rstrip("\n")) + "\n")  # a terminal echoes the answer itself
        sys.stderr.flush()
    return answer.strip().lower() in ("y", "yes")


def _real_terminal(stream: Any) -> bool:
    try:
        return os.isatty(stream.fileno())
    except (AttributeError, ValueError, OSError):
        return False
