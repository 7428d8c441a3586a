"""Table layout and shaping for :mod:`regctl.cli.render`: widths that fit the terminal, ages for
timestamps, and the ``--filter`` / ``--sort-by`` / ``--field`` lookups (pure functions, no printing)."""

import re
from datetime import datetime, timezone
from typing import Any

from regctl.errors import UsageError

#: a table cell spells nested lists and mappings out to this depth, then "..."
CELL_DEPTH = 8


def _cell_text(value: Any, depth: int = 0) -> str:
    """A value as one table cell's text, before escaping: ``-`` for nothing, ``yes``/``no``, lists joined."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple, dict)) and depth >= CELL_DEPTH:
        return "..."
    if isinstance(value, (list, tuple)):
        return ",".join(_cell_text(v, depth + 1) for v in value) if value else "-"
    if isinstance(value, dict):
        return ",".join(f"{k}={_cell_text(v, depth + 1)}" for k, v in value.items()) if value else "-"
    return str(value)


def _widths(headers: list, grid: list, no_headers: bool = False) -> list:
    return [max([0 if no_headers else len(h)] + [len(r[i]) for r in grid]) for i, h in enumerate(headers)]


def _total(widths: list) -> int:
    """A row's width: the cells and two spaces between each."""
    return sum(widths) + 2 * (len(widths) - 1)


def _cut(text: str, width: int, mark: str) -> str:
    return text if len(text) <= width else text[:max(0, width - len(mark))] + mark


_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2})?")


def _age_of(text: str) -> str:
    """``2026-11-29 03:46:59`` (UTC unless it says otherwise) -> ``3d04h``; other text unchanged."""
    if not _TIMESTAMP.match(text):
        return text
    try:
        when = datetime.fromisoformat(text.replace(" ", "T", 1).replace("Z", "+00:00"))
    except ValueError:
        return text
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    seconds = (datetime.now(timezone.utc) - when).total_seconds()
    return age_text(seconds) if seconds >= 0 else text


def age_text(seconds: float) -> str:
    """``59s``, ``4m05s``, ``3h07m``, ``2d04h``."""
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    return f"{s // 86400}d{(s % 86400) // 3600:02d}h"


def _column_key(table: Any, name: str) -> "str | None":
    """A column named by its key (``live_instances``) or its header (``live``, ``db-status``, ``DB STATUS``)."""
    want = name.strip().lower().replace("-", " ").replace("_", " ")
    for c in table.columns:
        if want in (c.key.lower().replace("_", " "), c.header.lower().replace("-", " ")):
            return c.key
    if table.rows and "." in name:
        return name  # a dotted path into the row (discovery.reason)
    if table.rows and name in table.rows[0]:
        return name
    return None


def _lookup(row: dict, key: str) -> Any:
    """``row[key]``, or a dotted path into nested mappings (``discovery.reason``, ``metadata.version``)."""
    if key in row:
        return row[key]
    value: Any = row
    for part in key.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdecimal() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value


def parse_filter(text: str) -> tuple:
    """``KEY=VALUE`` / ``KEY!=VALUE`` -> (key, op, value); UsageError otherwise."""
    for op in ("!=", "="):
        if op in text:
            key, value = text.split(op, 1)
            if key.strip():
                return key.strip(), op, value.strip()
    raise UsageError(f"--filter {text!r} is not KEY=VALUE or KEY!=VALUE",
                     hint="e.g. --filter discovery=no-instances --filter flags=seeded")


def _row_matches(table: Any, row: dict, spec: tuple) -> bool:
    """A row matches ``KEY=VALUE`` when the cell is VALUE (case-insensitive) or, for a list, contains it.

    A comma in VALUE means any of them; ``discovery=no`` matches every not-OK discovery verdict,
    ``discovery=ok`` every OK one (see docs/output.md).
    """
    name, op, value = spec
    key = _column_key(table, name)
    if key is None:
        raise UsageError(f"--filter {name!r}: no such column",
                         hint="use one of " + ", ".join(c.header.replace(" ", "-") for c in table.columns))
    cell = _lookup(row, key)
    items = [str(v).lower() for v in cell] if isinstance(cell, (list, tuple)) else [_cell_text(cell).lower()]
    wanted = [v.lower() for v in value.split(",")]
    hit = False
    for w in wanted:
        if key == "discovery_label" and w in ("yes", "no", "ok"):
            ok = any(i.startswith("ok") for i in items)
            hit = hit or (ok if w in ("yes", "ok") else not ok)
        else:
            hit = hit or w in items
    return hit if op == "=" else not hit


def _data_list(data: Any, table: Any) -> "list | None":
    """The list in ``data`` whose items are the table's rows, one for one (filtered and sorted with it)."""
    if not isinstance(data, dict) or not table.data_key:
        return None
    docs = data.get(table.data_key)
    return docs if isinstance(docs, list) and len(docs) == len(table.rows) else None
