"""Plain data returned by the core: frozen dataclasses with a ``to_dict`` for JSON/YAML."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class NodeStat:
    """The parts of a ZooKeeper ``ZnodeStat`` an operator cares about (times in epoch seconds)."""

    created: float
    modified: float
    ephemeral_owner: int
    version: int
    data_length: int

    @property
    def ephemeral(self) -> bool:
        return self.ephemeral_owner != 0

    @property
    def owner_hex(self) -> str | None:
        """The owning session id as ZooKeeper tools print it (``0x1000a2b3c4d0000``)."""
        return hex(self.ephemeral_owner) if self.ephemeral_owner else None

    def age_seconds(self, now: float | None = None) -> float:
        return max(0.0, (time.time() if now is None else now) - self.created)

    def to_dict(self, now: float | None = None) -> dict:
        return {
            "created": _iso(self.created),
            "modified": _iso(self.modified),
            "age_seconds": round(self.age_seconds(now), 1),
            "ephemeral_owner": self.owner_hex,
            "version": self.version,
            "data_length": self.data_length,
        }


@dataclass(frozen=True)
class Problem:
    """Something under the base path that does not fit the registry's layout.

    ``kind`` is a stable identifier (``no-instances-node``, ``not-utf8``, ``not-json``,
    ``not-an-object``, ``too-large``, ``bad-field``, ``persistent-instance``,
    ``unreadable``, ``base-missing``); ``detail`` is one readable sentence.
    """

    path: str
    kind: str
    detail: str

    def to_dict(self) -> dict:
        return {"path": self.path, "kind": self.kind, "detail": self.detail}


@dataclass(frozen=True)
class Instance:
    """One live instance: from a ZooKeeper node (``stat`` set) or from the API (``stat`` None)."""

    service_name: str
    instance_id: str
    service_url: str | None
    health_check_url: str | None
    status: str
    metadata: dict[str, Any] = field(default_factory=dict)
    stat: NodeStat | None = None
    path: str | None = None

    @property
    def discoverable(self) -> bool:
        """Whether the registry's ``/url`` may ever return it (status exactly ``healthy``)."""
        return self.status == "healthy"

    def probe_url(self) -> str | None:
        """Where to probe health: ``health_check_url``, else ``service_url + /health``."""
        if self.health_check_url:
            return self.health_check_url
        if self.service_url:
            return self.service_url.rstrip("/") + "/health"
        return None

    def to_dict(self, now: float | None = None) -> dict:
        return {
            "service_name": self.service_name,
            "instance_id": self.instance_id,
            "service_url": self.service_url,
            "health_check_url": self.health_check_url,
            "status": self.status,
            "discoverable": self.discoverable,
            "metadata": self.metadata,
            "node": None if self.stat is None else {"path": self.path, **self.stat.to_dict(now)},
        }


@dataclass(frozen=True)
class ServiceRow:
    """One database row from ``GET /services`` (the last registration of a service name)."""

    service_name: str
    service_url: str | None = None
    health_check_url: str | None = None
    status: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    registered_at: str | None = None

    def to_dict(self) -> dict:
        return {
            "service_name": self.service_name,
            "service_url": self.service_url,
            "health_check_url": self.health_check_url,
            "status": self.status,
            "metadata": self.metadata,
            "registered_at": self.registered_at,
        }


@dataclass(frozen=True)
class ZkService:
    """A service directory in ZooKeeper: its live instances and any layout problems."""

    name: str
    instances: tuple[Instance, ...] = ()
    problems: tuple[Problem, ...] = ()
    exists: bool = True


@dataclass(frozen=True)
class ZkSnapshot:
    """Everything read under the base path in one pass."""

    base_path: str
    services: tuple[ZkService, ...] = ()
    problems: tuple[Problem, ...] = ()

    def service(self, name: str) -> ZkService | None:
        for svc in self.services:
            if svc.name == name:
                return svc
        return None

    def all_problems(self) -> list[Problem]:
        out = list(self.problems)
        for svc in self.services:
            out.extend(svc.problems)
        return out


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))
