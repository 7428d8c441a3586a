"""The sandbox registry's PostgreSQL stand-in: one row per service name, optionally a JSON file."""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path

log = logging.getLogger("regctl.sandbox.registry")


class Database:
    """The PostgreSQL stand-in: one row per service name, optionally persisted to a JSON file."""

    def __init__(self, path: Path | None) -> None:
        self.path = Path(path) if path else None
        self._lock = threading.Lock()
        self._rows: dict[str, dict] = {}
        if self.path and self.path.exists():
            try:
                data = json.loads(self.path.read_text() or "{}")
                rows = data.get("services", data) if isinstance(data, dict) else {}
                if isinstance(rows, dict):
                    self._rows = {k: v for k, v in rows.items() if isinstance(v, dict)}
            except (OSError, ValueError) as exc:
                log.warning("database file %s unreadable, starting empty: %s", self.path, exc)

    def upsert(self, row: dict) -> None:
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
        """Add rows that are not there yet (a migration's seed data)."""
        with self._lock:
            for row in rows:
                self._rows.setdefault(row["service_name"], dict(row))
            self._save()

    def rows(self) -> list[dict]:
        with self._lock:
            return [dict(r) for r in self._rows.values()]

    def _save(self) -> None:
        if not self.path:
            return
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps({"services": self._rows}, indent=1))
        os.replace(tmp, self.path)
