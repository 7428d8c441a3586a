"""The sandbox registry's backends: the PostgreSQL stand-in (rows) and the Redis stand-in (cache).

Both are separate from the registry *process* in production, so both may be kept in
a JSON file: rows survive a registry restart as PostgreSQL rows do, and cache
entries (the instance lists, the later generation's health verdicts) survive it as
Redis keys do, until they expire.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from regctl.errors import SandboxError
from regctl.sandbox import statedir

#: the most of a database or cache file the sandbox registry reads back (its own files are far smaller)
STATE_FILE_MAX_BYTES = 64 * 1024 * 1024


def _read_state_file(path: Path) -> str:
    """The file's text, never through a symlink, at most :data:`STATE_FILE_MAX_BYTES` of it (a longer
    file is cut there, so its JSON does not parse: the caller starts empty)."""
    return statedir.read_text(path, STATE_FILE_MAX_BYTES)

log = logging.getLogger("regctl.sandbox.registry")

#: the seconds the real service's row write takes between its SELECT and its INSERT's commit
#: (a loopback round trip or two): the window in which a concurrent first registration collides
INSERT_WINDOW = 0.005


class UniqueViolation(Exception):
    """A second INSERT of the same ``service_name`` (the real table's unique constraint)."""


def _save_json(path: Path, data: Any) -> None:
    statedir.write_atomic(path, json.dumps(data, indent=1))  # never through a symlink planted at path


class Database:
    """The PostgreSQL stand-in: one row per service name, optionally persisted to a JSON file.

    A row: ``service_name``, ``service_url``, ``health_check_url``, ``status``,
    ``service_metadata``, ``registered_at`` (set by the first registration only),
    ``last_health_check`` (written by the later generation's monitor, never listed).
    """

    def __init__(self, path: Path | None) -> None:
        self.path = Path(path) if path else None
        self._lock = threading.Lock()
        self._rows: dict[str, dict] = {}
        if self.path and self.path.exists():
            try:
                data = json.loads(_read_state_file(self.path) or "{}")
                rows = data.get("services", data) if isinstance(data, dict) else {}
                if isinstance(rows, dict):
                    self._rows = {k: v for k, v in rows.items() if isinstance(v, dict)}
            except (OSError, ValueError, SandboxError) as exc:
                log.warning("database file %s unreadable, starting empty: %s", self.path, exc)

    def register(self, row: dict, window: float = INSERT_WINDOW) -> None:
        """The real repository's write: SELECT the row; update it in place, or INSERT a new one.

        The update keeps ``registered_at`` (and ``last_health_check``). The insert is
        committed ``window`` seconds after the SELECT: a concurrent first
        registration of the same name that committed in between makes this one
        raise :class:`UniqueViolation`, as the real unique constraint does.
        """
        name = row["service_name"]
        with self._lock:
            existing = self._rows.get(name)
            if existing is not None:
                for key in ("service_url", "health_check_url", "status", "service_metadata"):
                    existing[key] = row.get(key)
                self._save()
                return
        if window > 0:
            time.sleep(window)
        with self._lock:
            if name in self._rows:
                raise UniqueViolation(f'duplicate key value violates unique constraint '
                                      f'"service_registry_service_name_key": Key (service_name)=({name}) '
                                      "already exists.")
            self._rows[name] = {**row, "registered_at": row.get("registered_at") or utc_now_str()}
            self._save()

    def upsert(self, row: dict) -> None:
        """Replace (or add) a row as given (tests and seeds)."""
        with self._lock:
            self._rows[row["service_name"]] = dict(row)
            self._save()

    def set_status(self, name: str, status: str, last_health_check: str | None = None) -> bool:
        """Rewrite an existing row's status (and ``last_health_check``); False when there is no row."""
        with self._lock:
            if name not in self._rows:
                return False
            self._rows[name]["status"] = status
            if last_health_check is not None:
                self._rows[name]["last_health_check"] = last_health_check
            self._save()
            return True

    def seed(self, rows: list[dict]) -> None:
        """Add rows that are not there yet (a migration's seed data, ``ON CONFLICT DO NOTHING``)."""
        with self._lock:
            for row in rows:
                self._rows.setdefault(row["service_name"], dict(row))
            self._save()

    def rows(self) -> list[dict]:
        with self._lock:
            return [dict(r) for r in self._rows.values()]

    def _save(self) -> None:
        if self.path:
            _save_json(self.path, {"services": self._rows})


class Cache:
    """The Redis stand-in: values under keys, each with an expiry; optionally kept in a JSON file.

    Kept in a file, the entries outlive a restart of the registry process (Redis is
    another process), so a crash-restarted registry serves the instance lists it
    cached before, as the real one does. Expiry is wall-clock time, so it holds
    across processes.
    """

    def __init__(self, path: Path | None = None) -> None:
        self.path = Path(path) if path else None
        self._lock = threading.Lock()
        self._data: dict[str, tuple[float, Any]] = {}
        if self.path and self.path.exists():
            try:
                raw = json.loads(_read_state_file(self.path) or "{}")
                now = time.time()
                self._data = {k: (float(v[0]), v[1]) for k, v in raw.items()
                              if isinstance(v, list) and len(v) == 2 and float(v[0]) > now}
            except (OSError, ValueError, TypeError, SandboxError) as exc:
                log.warning("cache file %s unreadable, starting empty: %s", self.path, exc)

    def get(self, key: str) -> Any:
        """The value, or None when absent or expired."""
        with self._lock:
            hit = self._data.get(key)
            if hit is None:
                return None
            if hit[0] <= time.time():
                del self._data[key]
                return None
            return json.loads(json.dumps(hit[1]))  # a copy, as a Redis read is

    def set(self, key: str, value: Any, ex: float) -> None:
        with self._lock:
            self._data[key] = (time.time() + ex, json.loads(json.dumps(value)))
            self._save()

    def delete(self, key: str) -> None:
        with self._lock:
            if self._data.pop(key, None) is not None:
                self._save()

    def clear(self) -> None:
        """Everything gone: Redis restarted without persistence."""
        with self._lock:
            self._data.clear()
            self._save()

    def _save(self) -> None:
        if self.path:
            now = time.time()
            _save_json(self.path, {k: [exp, v] for k, (exp, v) in self._data.items() if exp > now})


def utc_now_str() -> str:
    """``2026-11-29 03:46:59.109964+00:00``: how the real service prints registered_at."""
    return str(datetime.now(timezone.utc))
