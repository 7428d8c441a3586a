"""Export every live registration to a file, and import it back: the recovery path
after a Config Service restart (its ZooKeeper session closes and every instance
it registered vanishes; services do not re-register by themselves).

Export format, version 1 (YAML or JSON, same structure)::

    version: 1
    kind: regctl-export
    exported_at: "2026-11-29T03:46:59Z"
    source: {type: zookeeper, hosts: "zk:2181", base_path: /services}   # or {type: api, url: ...}
    services:
      - name: asr-service
        instances:
          - instance_id: asr-1
            service_url: http://asr:8090
            health_check_url: http://asr:8090/health      # may be null
            service_metadata: {instance_id: asr-1, status: healthy, version: "1.2"}

Only services with at least one live instance are listed. ``service_metadata`` is
what the registry stores for the instance minus ``service_url`` and
``health_check_url`` (they are top-level); re-registering it reproduces the node.

Import is planned first (:func:`plan_import`), as data: each entry is ``add``
(not live: will be registered), ``live`` (live and identical) or ``differs``
(live with other data: reported, **never touched**). :func:`apply_plan` then
registers the ``add`` entries through the API's ``POST /register``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

import yaml

from regctl.errors import RegctlError, UsageError
from regctl.guide import Registration
from regctl.models import Instance

EXPORT_VERSION = 1
KIND = "regctl-export"
TOP_LEVEL_FIELDS = ("service_url", "health_check_url")


# ---------------------------------------------------------------------------
# export
# ---------------------------------------------------------------------------

def instance_record(inst: Instance) -> dict:
    """One exported instance, as it was registered."""
    meta = {k: v for k, v in (inst.metadata or {}).items() if k not in TOP_LEVEL_FIELDS}
    meta["instance_id"] = inst.instance_id
    return {"instance_id": inst.instance_id, "service_url": inst.service_url,
            "health_check_url": inst.health_check_url, "service_metadata": meta}


def export_document(instances: Iterable[Instance], source: Mapping[str, Any], now: float | None = None) -> dict:
    """The version-1 document for ``instances`` (sorted by service, then instance id)."""
    by_service: dict[str, list[Instance]] = {}
    for inst in instances:
        by_service.setdefault(inst.service_name, []).append(inst)
    ts = time.time() if now is None else now
    return {
        "version": EXPORT_VERSION,
        "kind": KIND,
        "exported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts)),
        "source": dict(source),
        "services": [
            {"name": name, "instances": [instance_record(i) for i in sorted(insts, key=lambda i: i.instance_id)]}
            for name, insts in sorted(by_service.items())
        ],
    }


def dump_document(doc: Mapping[str, Any], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    return yaml.safe_dump(json.loads(json.dumps(doc)), sort_keys=False, allow_unicode=True,
                          default_flow_style=False)


def format_for(path: str | None, output: str | None) -> str:
    """``json`` or ``yaml``: -o json/yaml wins, else the file's extension, else yaml."""
    if output in ("json", "yaml"):
        return output
    if path and path.lower().endswith(".json"):
        return "json"
    return "yaml"


# ---------------------------------------------------------------------------
# reading a file
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Entry:
    """One instance from an export file, validated, with where it was."""

    registration: Registration
    where: str

    @property
    def key(self) -> tuple[str, str]:
        return (self.registration.service_name, self.registration.instance_id or "")


def parse_document(text: str, name: str = "<input>") -> tuple[dict, list[Entry]]:
    """Parse and validate an export; a :class:`UsageError` names the file and the entry."""
    from regctl.bounded import load_yaml

    try:
        doc = load_yaml(text, name)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{name} line {mark.line + 1}" if mark is not None else name
        raise UsageError(f"not valid YAML or JSON: {getattr(exc, 'problem', None) or exc}", where=where,
                         hint="give a file written by: regctl export") from None
    if not isinstance(doc, dict) or "services" not in doc:
        raise UsageError("not a regctl export (no 'services')", where=name,
                         hint="give a file written by: regctl export")
    version = doc.get("version")
    if version != EXPORT_VERSION:
        raise UsageError(f"export version {version!r} is not supported", where=name,
                         hint=f"this regctl reads version {EXPORT_VERSION}")
    services = doc.get("services")
    if not isinstance(services, list):
        raise UsageError("'services' is not a list", where=name, hint="give a file written by: regctl export")
    entries: list[Entry] = []
    seen: dict[tuple[str, str], str] = {}
    for si, svc in enumerate(services):
        at = f"{name}: services[{si}]"
        if not isinstance(svc, dict) or not isinstance(svc.get("name"), str):
            raise UsageError("service entry has no name", where=at, hint="each service needs 'name' and 'instances'")
        insts = svc.get("instances") or []
        if not isinstance(insts, list):
            raise UsageError(f"instances of {svc['name']!r} is not a list", where=at, hint="fix the file")
        for ii, raw in enumerate(insts):
            where = f"{at}.instances[{ii}]"
            entry = _entry(svc["name"], raw, where)
            if entry.key in seen:
                raise UsageError(f"instance {entry.key[0]}/{entry.key[1]} appears twice", where=where,
                                 hint=f"remove one (the other is at {seen[entry.key]})")
            seen[entry.key] = where
            entries.append(Entry(entry.registration, where))
    return doc, entries


def _entry(service: str, raw: Any, where: str) -> Entry:
    if not isinstance(raw, dict):
        raise UsageError("instance entry is not a mapping", where=where, hint="fix the file")
    unknown = set(raw) - {"instance_id", "service_url", "health_check_url", "service_metadata"}
    if unknown:
        raise UsageError(f"unknown key(s) {', '.join(sorted(map(str, unknown)))}", where=where,
                         hint="an instance has instance_id, service_url, health_check_url, service_metadata")
    iid = raw.get("instance_id")
    if not isinstance(iid, str) or not iid:
        raise UsageError("instance has no instance_id", where=where,
                         hint="every instance needs its id, so importing twice cannot duplicate it")
    meta = raw.get("service_metadata") or {}
    if not isinstance(meta, dict):
        raise UsageError("service_metadata is not a mapping", where=where, hint="fix the file")
    if meta.get("instance_id", iid) != iid:
        raise UsageError(f"service_metadata.instance_id {meta.get('instance_id')!r} differs from {iid!r}",
                         where=where, hint="make them equal")
    url = raw.get("service_url")
    health = raw.get("health_check_url")
    if not isinstance(url, str):
        raise UsageError("service_url is missing", where=where, hint="every instance needs a service_url")
    if health is not None and not isinstance(health, str):
        raise UsageError("health_check_url is not text", where=where, hint="fix the file")
    reg = Registration(service, url, health, {**meta, "instance_id": iid})
    try:
        reg.validate()
    except UsageError as exc:
        raise UsageError(exc.message, where=where, hint=exc.hint) from None
    return Entry(reg, where)


# ---------------------------------------------------------------------------
# plan and apply
# ---------------------------------------------------------------------------

def expected_node(reg: Registration) -> dict:
    """The node data the registry writes for ``reg`` (``instance_id``/``service_url`` win over
    metadata; a ``health_check_url`` key inside the metadata wins over the top-level one)."""
    node = {**reg.metadata}
    node.setdefault("health_check_url", reg.health_check_url)
    node["instance_id"] = reg.instance_id
    node["service_url"] = reg.service_url
    return node


def live_node(inst: Instance) -> dict:
    node = dict(inst.metadata or {})
    node.setdefault("service_url", inst.service_url)
    node.setdefault("health_check_url", inst.health_check_url)
    node.setdefault("instance_id", inst.instance_id)
    return node


def differences(reg: Registration, inst: Instance) -> dict:
    """``{key: [in the file, live]}`` for every key of the node data that differs."""
    a, b = expected_node(reg), live_node(inst)
    return {k: [a.get(k), b.get(k)] for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)}


@dataclass
class PlanItem:
    action: str  # "add" | "live" | "differs"
    entry: Entry
    differences: dict = field(default_factory=dict)

    @property
    def service(self) -> str:
        return self.entry.registration.service_name

    @property
    def instance_id(self) -> str:
        return self.entry.registration.instance_id or ""

    def to_dict(self) -> dict:
        reg = self.entry.registration
        d = {"action": self.action, "service": reg.service_name, "instance_id": reg.instance_id,
             "service_url": reg.service_url, "health_check_url": reg.health_check_url}
        if self.differences:
            d["differences"] = self.differences
        return d


@dataclass
class ImportPlan:
    items: list[PlanItem]
    live_source: str

    def with_action(self, action: str) -> list[PlanItem]:
        return [i for i in self.items if i.action == action]

    @property
    def to_add(self) -> list[PlanItem]:
        return self.with_action("add")

    def counts(self) -> dict:
        return {a: len(self.with_action(a)) for a in ("add", "live", "differs")}

    def to_dict(self) -> dict:
        return {"live_source": self.live_source, "counts": self.counts(),
                "items": [i.to_dict() for i in self.items]}


def plan_import(entries: Iterable[Entry], live: Mapping[tuple[str, str], Instance], live_source: str) -> ImportPlan:
    """Decide per entry: ``add`` (not live), ``live`` (identical) or ``differs`` (live, other data)."""
    items = []
    for e in entries:
        inst = live.get(e.key)
        if inst is None:
            items.append(PlanItem("add", e))
        else:
            diff = differences(e.registration, inst)
            items.append(PlanItem("differs" if diff else "live", e, diff))
    return ImportPlan(items, live_source)


@dataclass
class ApplyResult:
    item: PlanItem
    ok: bool
    error: RegctlError | None = None

    def to_dict(self) -> dict:
        return {"service": self.item.service, "instance_id": self.item.instance_id,
                "result": "registered" if self.ok else "failed",
                "error": str(self.error) if self.error else None}


def apply_plan(plan: ImportPlan, api: Any, concurrency: int = 8) -> list[ApplyResult]:
    """Register every ``add`` item through ``api`` (a :class:`regctl.api.RegistryApi`); never
    touches ``live`` or ``differs`` items. Failures are collected, not raised."""
    from regctl.api import register_call

    todo = plan.to_add
    answers = api.map([register_call(i.entry.registration.payload()) for i in todo],
                      concurrency=concurrency, return_exceptions=True)
    out = []
    for item, ans in zip(todo, answers):
        if isinstance(ans, RegctlError):
            out.append(ApplyResult(item, False, ans))
        else:
            out.append(ApplyResult(item, True))
    return out
