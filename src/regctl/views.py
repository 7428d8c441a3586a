"""Pure joins of what the API says with what ZooKeeper holds.

No I/O here: the commands read the sources (whichever are available) and hand
the results to these functions, which compute counts and disagreement flags.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from regctl.models import Instance, Problem, ServiceRow, ZkService, ZkSnapshot

#: Flags :func:`summarize` may set on a service, with their meaning (README "regctl list").
FLAGS = {
    "no-live-instance": "the database has a row but no instance is live",
    "not-in-api": "instances are live in ZooKeeper but the API has no database row",
    "api-differs": "the API's cached instance list differs from ZooKeeper",
    "none-discoverable": "instances are live but none has status 'healthy', so /url finds nothing",
    "instances-unread": "the API's instance list of this service could not be read",
    "layout-problem": "nodes under this service do not fit the registry layout",
}


@dataclass(frozen=True)
class ServiceSummary:
    """One row of ``regctl list``."""

    name: str
    live: int | None
    healthy: int | None
    db_status: str | None
    registered_at: str | None
    service_url: str | None
    flags: tuple[str, ...] = ()
    api_live: int | None = None
    #: the discovery verdict (:class:`regctl.discovery.DiscoveryVerdict`), when computed
    discovery: Any = None
    #: live instances that answered their health URL (None: not probed)
    answering: int | None = None

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "live_instances": self.live,
            "healthy_status_instances": self.healthy,
            "answering_instances": self.answering,
            "db_status": self.db_status,
            "registered_at": self.registered_at,
            "service_url": self.service_url,
            "api_live_instances": self.api_live,
            "flags": list(self.flags),
            "discovery": None if self.discovery is None else self.discovery.to_dict(),
        }


def natural_key(value: Any) -> tuple:
    """Sort key reading digit runs as numbers: ``bulk-2`` before ``bulk-10``; None and ``-`` last."""
    if value is None or value == "-":
        return (1, ())
    if isinstance(value, bool):
        value = "yes" if value else "no"
    if isinstance(value, (int, float)):
        return (0, ((0, float(value), ""),))
    parts = re.split(r"([0-9]+)", str(value))  # ASCII digits only: "²".isdigit() is true, float("²") fails
    return (0, tuple((0, float(p), "") if "0" <= p[0] <= "9" else (1, 0.0, p.lower()) for p in parts if p))


def summarize(rows: list[ServiceRow] | None, snapshot: ZkSnapshot | None,
              api_instances: dict[str, list[Instance]] | None = None,
              verdicts: Mapping[str, Any] | None = None,
              answering: Mapping[str, int] | None = None,
              unread: Iterable[str] = ()) -> list[ServiceSummary]:
    """Join database rows, ZooKeeper services and (optionally) the API's instance lists.

    Any source may be None (not read). Live counts come from ZooKeeper when it
    was read, else from the API's instance lists. ``verdicts`` (name ->
    DiscoveryVerdict) and ``answering`` (name -> probed count) are attached as
    given; ``unread`` names services whose API instance list failed.
    """
    by_row = {r.service_name: r for r in rows or []}
    zk = {s.name: s for s in snapshot.services} if snapshot else {}
    unread = set(unread)
    names = sorted(set(by_row) | set(zk) | set(api_instances or {}) | unread, key=natural_key)
    out = []
    for name in names:
        row = by_row.get(name)
        svc = zk.get(name)
        api_list = (api_instances or {}).get(name)
        live_list: list[Instance] | None
        if snapshot is not None:
            live_list = list(svc.instances) if svc else []
        else:
            live_list = api_list
        flags = []
        live = None if live_list is None else len(live_list)
        healthy = None if live_list is None else sum(1 for i in live_list if i.discoverable)
        if rows is not None and row is not None and live == 0:
            flags.append("no-live-instance")
        if rows is not None and row is None and live:
            flags.append("not-in-api")
        if snapshot is not None and api_list is not None and svc is not None:
            if instances_differ(api_list, list(svc.instances)):
                flags.append("api-differs")
        if live and healthy == 0:
            flags.append("none-discoverable")
        if svc is not None and svc.problems:
            flags.append("layout-problem")
        if name in unread:
            flags.append("instances-unread")
        out.append(ServiceSummary(
            name=name, live=live, healthy=healthy,
            db_status=row.status if row else None,
            registered_at=row.registered_at if row else None,
            service_url=row.service_url if row else (live_list[0].service_url if live_list else None),
            flags=tuple(flags),
            api_live=None if api_list is None else len(api_list),
            discovery=(verdicts or {}).get(name),
            answering=(answering or {}).get(name),
        ))
    return out


def instances_differ(api: list[Instance], zk: list[Instance]) -> bool:
    """True when the API's (possibly cached) list is not what ZooKeeper holds."""
    return _index(api) != _index(zk)


def _index(instances: Iterable[Instance]) -> dict[str, tuple]:
    return {i.instance_id: (i.service_url, i.health_check_url, i.status) for i in instances}


@dataclass(frozen=True)
class InstanceView:
    """One instance as ``regctl inspect`` shows it: merged from both sources."""

    instance: Instance
    in_zookeeper: bool | None
    in_api: bool | None

    def to_dict(self, now: float | None = None) -> dict:
        d = self.instance.to_dict(now)
        d["in_zookeeper"] = self.in_zookeeper
        d["in_api"] = self.in_api
        return d


@dataclass(frozen=True)
class ServiceDetail:
    """Everything ``regctl inspect NAME`` shows."""

    name: str
    row: ServiceRow | None
    instances: tuple[InstanceView, ...]
    warnings: tuple[str, ...] = ()
    problems: tuple[Problem, ...] = ()
    #: True: a row or a live instance was seen; False: both sources read, neither has it; None: not known
    registered: bool | None = True
    notes: tuple[str, ...] = field(default=())
    #: whether any source's instance list was read (False: the instances are unknown, not absent)
    instances_known: bool = True


def detail(name: str, row: ServiceRow | None, zk_service: ZkService | None,
           api_list: list[Instance] | None, rows_read: bool) -> ServiceDetail:
    """Merge one service's views and compute the operator warnings.

    ``zk_service``/``api_list`` None mean "not read"; nothing is called absent
    unless a source that was read shows it absent.
    """
    warnings: list[str] = []
    zk_list = list(zk_service.instances) if zk_service is not None else None
    primary = zk_list if zk_list is not None else api_list
    zk_ids = {i.instance_id for i in zk_list} if zk_list is not None else None
    api_ids = {i.instance_id for i in api_list} if api_list is not None else None
    views = []
    for inst in primary or []:
        views.append(InstanceView(inst, None if zk_ids is None else inst.instance_id in zk_ids,
                                  None if api_ids is None else inst.instance_id in api_ids))
    if zk_list is not None and api_list is not None:
        assert zk_ids is not None and api_ids is not None
        for inst in api_list:
            if inst.instance_id not in zk_ids:
                views.append(InstanceView(inst, False, True))
        only_api = sorted(api_ids - zk_ids)
        only_zk = sorted(zk_ids - api_ids)
        if only_api:
            warnings.append(f"the API still lists {', '.join(only_api)} which ZooKeeper no longer holds "
                            f"(its cache lasts up to 60 s)")
        if only_zk:
            warnings.append(f"ZooKeeper holds {', '.join(only_zk)} which the API does not list yet (cached view)")
        if not only_api and not only_zk and instances_differ(api_list, zk_list):
            warnings.append("the API's cached data for some instances differs from ZooKeeper")
    never = [v.instance for v in views if not v.instance.discoverable and v.in_zookeeper is not False]
    for inst in never:
        warnings.append(f"instance {inst.instance_id} has status {inst.status!r}, not 'healthy': "
                        f"/url will never return it")
    if row is not None and primary is not None and not primary:
        warnings.append("the database row remains but no instance is live")
    registered: bool | None
    if views or row is not None:
        registered = True
    elif primary is not None and rows_read:
        registered = False
    else:
        registered = None
    return ServiceDetail(name=name, row=row, instances=tuple(views), warnings=tuple(warnings),
                         problems=tuple(zk_service.problems) if zk_service else (), registered=registered,
                         instances_known=primary is not None)
