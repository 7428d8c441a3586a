"""The export file: writing every live registration, reading it back, and checking it.

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
the instance's node data minus ``service_url`` (and minus ``health_check_url`` when
that is text or null: it is top-level then); registering it again reproduces the
node exactly. The text written is plain ASCII: every other character (lone
surrogates, controls, bidi marks, non-Latin names) is a JSON or YAML escape, so
any string survives the round trip and no terminal or display filter can alter it.

JSON has no NaN or Infinity, but the Config Service stores them (Python's ``json``
writes them). The JSON export stays strict JSON and loses nothing: each non-finite
number is written as the string ``"NaN"``, ``"Infinity"`` or ``"-Infinity"`` and its
place is listed (an RFC 6901 JSON pointer) under ``non_finite_numbers``; reading turns
exactly those places back into numbers. YAML writes them as ``.nan`` / ``.inf``.

Reading: a ``.json`` file (or text starting with ``{``) is parsed as JSON, anything
else as YAML. Each instance is checked against what the Config Service itself
accepts (:func:`check_entry`); regctl's stricter register rules (URL shape, known
statuses, name length) only give warnings, so whatever ``export`` wrote ``import``
accepts. Planning and applying an import live in :mod:`regctl.transfer.restore`.
"""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

import yaml

from regctl.errors import UsageError
from regctl.guide import Registration
from regctl.http.bounded import load_yaml
from regctl.models import Instance
from regctl.names import VALID_STATUSES, validate_instance_id, validate_service_name, validate_url

EXPORT_VERSION = 1
KIND = "regctl-export"
#: ZooKeeper's default jute.maxbuffer: a node's data cannot be larger
ZK_MAX_NODE_BYTES = 0xFFFFF
INSTANCE_KEYS = ("instance_id", "service_url", "health_check_url", "service_metadata")

#: characters ZooKeeper refuses in a path (PathUtils.validatePath works on UTF-16: astral characters are surrogates)
_ZK_BAD_CHAR = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\uf8ff\ufff0-\uffff\U00010000-\U0010ffff]")


# ---------------------------------------------------------------------------
# export
# ---------------------------------------------------------------------------

def instance_record(inst: Instance) -> dict:
    """One exported instance: what to register so the registry writes the same node again."""
    node = dict(inst.metadata or {})
    url = node.pop("service_url", inst.service_url)
    health = node.get("health_check_url", inst.health_check_url)
    if health is None or isinstance(health, str):
        node.pop("health_check_url", None)  # top-level; a non-text value stays in the metadata, where it wins
    else:
        health = None
    node["instance_id"] = inst.instance_id
    return {"instance_id": inst.instance_id, "service_url": url, "health_check_url": health,
            "service_metadata": node}


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


NON_FINITE_KEY = "non_finite_numbers"
_NON_FINITE_TEXT = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}


def _pointer_token(key: Any) -> str:
    return str(key).replace("~", "~0").replace("/", "~1")


def encode_non_finite(doc: Mapping[str, Any]) -> dict:
    """A copy of ``doc`` with every NaN/Infinity a string, and their JSON pointers under ``non_finite_numbers``.

    Iterative, so any depth the JSON parser accepted is walked.
    """
    pointers: list[str] = []
    root: dict = {}
    stack: list[tuple[Any, Any, str]] = [(doc, root, "")]
    while stack:
        src, dst, where = stack.pop()
        items = src.items() if isinstance(src, Mapping) else enumerate(src)
        for k, v in items:
            at = f"{where}/{_pointer_token(k)}"
            if isinstance(v, float) and not math.isfinite(v):
                v = "NaN" if math.isnan(v) else ("Infinity" if v > 0 else "-Infinity")
                pointers.append(at)
            elif isinstance(v, Mapping):
                child: Any = {}
                stack.append((v, child, at))
                v = child
            elif isinstance(v, (list, tuple)):
                child = [None] * len(v)
                stack.append((v, child, at))
                v = child
            dst[k] = v
    if pointers:
        root[NON_FINITE_KEY] = sorted(pointers)
    return root


def decode_non_finite(doc: dict, name: str) -> None:
    """Turn the places ``non_finite_numbers`` lists back into NaN/Infinity (in place); bad entries are bad input."""
    pointers = doc.pop(NON_FINITE_KEY, None)
    if pointers is None:
        return
    if not isinstance(pointers, list):
        raise UsageError(f"'{NON_FINITE_KEY}' is not a list", where=name, hint="give a file written by: regctl export")
    for ptr in pointers:
        parent: Any = None
        key: Any = None
        node: Any = doc
        ok = isinstance(ptr, str) and ptr.startswith("/")
        for token in (ptr.split("/")[1:] if ok else []):
            token = token.replace("~1", "/").replace("~0", "~")
            parent = node
            if isinstance(node, dict) and token in node:
                key, node = token, node[token]
            elif isinstance(node, list) and token.isdecimal() and int(token) < len(node):
                key, node = int(token), node[int(token)]
            else:
                ok = False
                break
        if not ok or parent is None or not isinstance(node, str) or node not in _NON_FINITE_TEXT:
            raise UsageError(f"'{NON_FINITE_KEY}' names {str(ptr)[:80]!r}, which is not a NaN/Infinity string there",
                             where=name, hint="give a file written by: regctl export")
        parent[key] = _NON_FINITE_TEXT[node]


def dump_document(doc: Mapping[str, Any], fmt: str) -> str:
    """The document as ASCII-only JSON or YAML text (see the module docstring)."""
    if fmt == "json":
        return json.dumps(encode_non_finite(doc), indent=2, ensure_ascii=True, allow_nan=False) + "\n"
    return yaml.dump(dict(doc), Dumper=yaml.SafeDumper, sort_keys=False, allow_unicode=False,
                     default_flow_style=False, width=1 << 30)


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
    """One instance from an export file, accepted, with where it was and regctl's warnings."""

    registration: Registration
    where: str
    warnings: tuple = ()

    @property
    def key(self) -> tuple[str, str]:
        return (self.registration.service_name, self.registration.instance_id or "")

    @property
    def service(self) -> str:
        return self.registration.service_name

    @property
    def instance_id(self) -> str:
        return self.registration.instance_id or ""


@dataclass(frozen=True)
class Invalid:
    """An instance entry the Config Service would not accept (or not reproduce), and why."""

    where: str
    service: Any
    instance_id: Any
    reason: str

    def to_dict(self) -> dict:
        return {"where": self.where, "service": _plain(self.service), "instance_id": _plain(self.instance_id),
                "reason": self.reason}


@dataclass
class ExportFile:
    """A parsed export: accepted entries and rejected ones, in file order."""

    doc: dict
    entries: list[Entry] = field(default_factory=list)
    invalid: list[Invalid] = field(default_factory=list)


def load_text(text: str, name: str = "<input>") -> Any:
    """JSON for ``*.json`` (or text starting with ``{``), else YAML; a :class:`UsageError` names the line."""
    stripped = text.lstrip("\ufeff \t\r\n")
    if name.lower().endswith(".json") or stripped.startswith("{"):
        try:
            return json.loads(stripped)
        except RecursionError:
            raise UsageError("JSON nested too deeply", where=name, hint="give a file written by: regctl export") \
                from None
        except ValueError as exc:
            if name.lower().endswith(".json"):
                line = getattr(exc, "lineno", None)
                raise UsageError(f"not valid JSON: {getattr(exc, 'msg', exc)}",
                                 where=f"{name} line {line}" if line else name,
                                 hint="give a file written by: regctl export") from None
    try:
        return load_yaml(text, name)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{name} line {mark.line + 1}" if mark is not None else name
        raise UsageError(f"not valid YAML or JSON: {getattr(exc, 'problem', None) or exc}", where=where,
                         hint="give a file written by: regctl export") from None
    except RecursionError:
        raise UsageError("YAML nested too deeply", where=name, hint="give a file written by: regctl export") \
            from None


def parse_document(text: str, name: str = "<input>") -> ExportFile:
    """Parse an export. A file that is not an export is a :class:`UsageError`; bad entries are collected."""
    doc = load_text(text, name)
    if not isinstance(doc, dict) or "services" not in doc:
        raise UsageError("not a regctl export (no 'services')", where=name,
                         hint="give a file written by: regctl export")
    decode_non_finite(doc, name)
    version = doc.get("version")
    if version != EXPORT_VERSION or isinstance(version, bool):
        raise UsageError(f"export version {_plain(version)!r} is not supported", where=name,
                         hint=f"this regctl reads version {EXPORT_VERSION}")
    services = doc.get("services")
    if services is None:
        services = []
    if not isinstance(services, list):
        raise UsageError("'services' is not a list", where=name, hint="give a file written by: regctl export")
    out = ExportFile(doc)
    seen: dict[tuple[str, str], str] = {}
    for si, svc in enumerate(services):
        at = f"{name}: services[{si}]"
        if not isinstance(svc, dict) or not isinstance(svc.get("name"), str):
            out.invalid.append(Invalid(at, None, None, "service entry has no name (text)"))
            continue
        insts = svc.get("instances") or []
        if not isinstance(insts, list):
            out.invalid.append(Invalid(at, svc["name"], None, "'instances' is not a list"))
            continue
        for ii, raw in enumerate(insts):
            where = f"{at}.instances[{ii}]"
            entry, reason = check_entry(svc["name"], raw, where)
            if entry is None:
                iid = raw.get("instance_id") if isinstance(raw, dict) else None
                out.invalid.append(Invalid(where, svc["name"], iid, reason or "invalid"))
                continue
            if entry.key in seen:
                out.invalid.append(Invalid(where, entry.service, entry.instance_id,
                                           f"instance {entry.service}/{entry.instance_id} appears twice "
                                           f"(also at {seen[entry.key]})"))
                continue
            seen[entry.key] = where
            out.entries.append(entry)
    return out


def zk_name_problem(value: Any, what: str) -> str | None:
    """Why ``value`` cannot be one ZooKeeper node name (what the Config Service can create), or None."""
    if not isinstance(value, str):
        return f"{what} is {_type(value)}, not text"
    if value == "":
        return f"{what} is empty"
    if value in (".", ".."):
        return f"{what} {value!r} is not a valid ZooKeeper node name"
    if "/" in value:
        return f"{what} {_plain(value)!r} contains '/'"
    bad = _ZK_BAD_CHAR.search(value)
    if bad:
        return f"{what} contains U+{ord(bad.group()):04X}, which ZooKeeper refuses in a node name"
    return None


def check_entry(service: Any, raw: Any, where: str) -> tuple[Entry | None, str | None]:
    """(entry, None) when the Config Service accepts and reproduces ``raw``, else (None, why)."""
    problem = zk_name_problem(service, "service name")
    if problem:
        return None, problem
    if not isinstance(raw, dict):
        return None, f"instance entry is {_type(raw)}, not a mapping"
    unknown = sorted(str(k) for k in raw if k not in INSTANCE_KEYS)
    if unknown:
        return None, f"unknown key(s) {', '.join(unknown)} (an instance has {', '.join(INSTANCE_KEYS)})"
    iid = raw.get("instance_id")
    problem = zk_name_problem(iid, "instance_id") if iid is not None else "instance has no instance_id"
    if problem:
        return None, problem
    meta = raw.get("service_metadata")
    if meta is None:
        meta = {}
    if not isinstance(meta, dict):
        return None, f"service_metadata is {_type(meta)}, not a mapping"
    if "instance_id" in meta and meta["instance_id"] != iid:
        return None, f"service_metadata.instance_id {_plain(meta['instance_id'])!r} differs from {_plain(iid)!r}"
    url = raw.get("service_url")
    if not isinstance(url, str):
        return None, "service_url is missing" if url is None else f"service_url is {_type(url)}, not text"
    health = raw.get("health_check_url")
    if health is not None and not isinstance(health, str):
        return None, f"health_check_url is {_type(health)}, not text"
    problem = json_problem(meta, "service_metadata")
    if problem:
        return None, problem
    reg = Registration(service, url, health, {**meta, "instance_id": iid})
    return Entry(reg, where, tuple(regctl_warnings(reg))), None


#: deepest metadata nesting export writes and import reads (PyYAML recurses per level)
MAX_DEPTH = 300


def depth(value: Any) -> int:
    """How many lists/mappings deep ``value`` is (iterative: any depth is measured safely)."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, dict):
            stack.extend((x, d + 1) for x in v.values())
        elif isinstance(v, list):
            stack.extend((x, d + 1) for x in v)
        else:
            continue
        deepest = max(deepest, d + 1)
    return deepest


def json_problem(value: Any, at: str) -> str | None:
    """Why ``value`` is not plain JSON data (a YAML date, a non-text key, too deep ...), or None."""
    stack = [(value, at, 0)]
    while stack:
        v, where, d = stack.pop()
        if v is None or isinstance(v, (bool, int, float, str)):
            continue
        if d >= MAX_DEPTH:
            return f"{at} is nested more than {MAX_DEPTH} levels deep"
        if isinstance(v, list):
            stack.extend((x, f"{where}[{i}]", d + 1) for i, x in enumerate(v))
        elif isinstance(v, dict):
            for k, x in v.items():
                if not isinstance(k, str):
                    return f"{where} has a key {_plain(k)!r} that is {_type(k)}, not text"
                stack.append((x, f"{where}.{k}", d + 1))
        else:
            return f"{where} is {_type(v)}, not JSON data (quote it in YAML)"
    return None


def regctl_warnings(reg: Registration) -> list[str]:
    """regctl's own register rules the entry breaks; the Config Service accepts it anyway."""
    out = []
    checks = [(validate_service_name, reg.service_name), (validate_instance_id, reg.instance_id or ""),
              (lambda v: validate_url(v, "service URL"), reg.service_url)]
    if reg.health_check_url is not None:
        checks.append((lambda v: validate_url(v, "health check URL"), reg.health_check_url))
    for check, value in checks:
        try:
            check(value)
        except UsageError as exc:
            out.append(exc.message)
    status = reg.metadata.get("status", "unknown")
    if status not in VALID_STATUSES or not isinstance(status, str):
        out.append(f"status {_plain(status)!r} is not one the Config Service can parse: every read of "
                   f"{reg.service_name} answers 500 while it is registered")
    if len(encode_node(expected_node(reg))) > ZK_MAX_NODE_BYTES:
        out.append(f"node data over {ZK_MAX_NODE_BYTES} bytes: ZooKeeper refuses it unless its "
                   "jute.maxbuffer was raised")
    return out


# ---------------------------------------------------------------------------
# node data, as the registry writes it
# ---------------------------------------------------------------------------

def expected_node(reg: Registration) -> dict:
    """The node data the registry writes for ``reg`` (``instance_id``/``service_url`` win over
    metadata; a ``health_check_url`` key inside the metadata wins over the top-level one)."""
    node = {**reg.metadata}
    node.setdefault("health_check_url", reg.health_check_url)
    node["instance_id"] = reg.instance_id
    node["service_url"] = reg.service_url
    return node


def encode_node(node: Any) -> bytes:
    """JSON bytes as the Config Service writes them (ASCII escapes, NaN allowed)."""
    return json.dumps(node).encode("ascii")


def canonical(node: Any) -> str:
    """A comparable form of node data: ``1 != True``, ``NaN == NaN``, key order ignored."""
    return json.dumps(node, sort_keys=True)


def differences(expected: Mapping[str, Any], live: Mapping[str, Any]) -> dict:
    """``{key: [in the file, live]}`` for every key of the node data that differs."""
    a = dict(expected)
    b = dict(live)
    b.setdefault("health_check_url", None)
    return {k: [_plain(a.get(k)), _plain(b.get(k))] for k in sorted(set(a) | set(b))
            if canonical(a.get(k)) != canonical(b.get(k))}


def _type(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "a number", float: "a number", str: "text", list: "a list",
            dict: "a mapping"}.get(type(value), f"a {type(value).__name__}")


def _plain(value: Any) -> Any:
    """``value`` made JSON-safe for a report (NaN and dates as text)."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, dict)):
        try:
            json.dumps(value, allow_nan=False)
            return value
        except (TypeError, ValueError):
            return str(value)
    return str(value)
