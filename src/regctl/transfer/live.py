"""What is live right now, read for export and import: every instance node, whatever its name or size.

Unlike :meth:`regctl.zookeeper.reader.ZkReader.snapshot` (which sets odd names and huge nodes
aside as problems), these readers take every service directory ZooKeeper holds:
a name with surrounding spaces or 250 characters is still a registration, and a
node of 600 KiB is still an instance. Anything that cannot be exported comes
back as a :class:`Skipped` with the reason, so the caller can list it and fail.

Ownership (:func:`current_session`): every instance node is owned by the Config
Service's ZooKeeper session, so "which nodes survive" is "which nodes its *current*
session owns". The owner of its own node ``{base}/config-service/instances/{id}``
tells that only while the node's ``stat.version`` is 0: the Config Service registers
itself at start-up with exists-then-``set``, so after a crash-restart that node is
rewritten in place (version 1 or more) and keeps the **dead** session, and after that
session expires it has no node at all until its next start. What else tells:
ZooKeeper's ``cons`` word where the ensemble allows it (connected sessions), and a
write (a node the Config Service creates now is its current session's; see
:mod:`regctl.transfer.restore`). When nothing tells, :class:`Session` says so and never
guesses "live".
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Iterable

from regctl.errors import BadResponse, RegctlError
from regctl.http import api as api_mod
from regctl.models import Instance, NodeStat
from regctl.names import parse_zk_hosts, url_segment
from regctl.zookeeper.admin import send_word
from regctl.zookeeper.reader import node_stat

CONFIG_SERVICE = "config-service"
DEFAULT_CONFIG_INSTANCE = "config-service-1"


@dataclass(frozen=True)
class Skipped:
    """A live instance (or a named service) that could not be read or exported, and why."""

    path: str
    reason: str

    def to_dict(self) -> dict:
        return {"path": self.path, "reason": self.reason}


@dataclass(frozen=True)
class LiveNode:
    """One instance node as ZooKeeper holds it (``data`` None when it is not a JSON object)."""

    service: str
    instance_id: str
    path: str
    data: dict | None
    stat: NodeStat | None
    problem: str | None = None

    @property
    def owner(self) -> int:
        return self.stat.ephemeral_owner if self.stat is not None else 0

    def instance(self) -> Instance:
        d = self.data or {}
        url = d.get("service_url")
        health = d.get("health_check_url")
        status = d.get("status", "unknown")
        return Instance(self.service, self.instance_id, url if isinstance(url, str) else None,
                        health if isinstance(health, str) else None,
                        status if isinstance(status, str) else json.dumps(status), d, self.stat, self.path)


def join(base: str, *names: str) -> str:
    """A ZooKeeper path from names ZooKeeper itself listed (they cannot contain '/')."""
    return base.rstrip("/") + "".join("/" + n for n in names)


def decode(raw: bytes | None) -> tuple[dict | None, str | None]:
    """Node bytes -> (JSON object, None) or (None, why not). No size limit: ZooKeeper's own applies."""
    if not raw:
        return None, "node has no data"
    try:
        value = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        return None, f"node data is not UTF-8 (byte {exc.start})"
    except RecursionError:
        return None, "node data is JSON nested too deeply to read"
    except ValueError as exc:
        return None, f"node data is not JSON ({str(exc)[:80]})"
    if not isinstance(value, dict):
        return None, f"node data is a JSON {type(value).__name__}, not an object"
    return value, None


def base_state(reader: Any) -> tuple[bool, list[str]]:
    """(base path exists, service directory names)."""
    names = reader.get_children(reader.base_path)
    if names is None:
        return False, []
    return True, [n for n in names if not (reader.base_path == "/" and n == "zookeeper")]


def read_zk(reader: Any, names: Iterable[str] | None = None,
            present: list[str] | None = None) -> tuple[list[LiveNode], list[Skipped]]:
    """Every instance node under the base path (or of ``names``), with what could not be read.
    ``present``: the base path's service directories when the caller has just listed them."""
    base = reader.base_path
    if present is None:
        _exists, present = base_state(reader)
    wanted = present if names is None else list(names)
    skipped: list[Skipped] = []
    inst_dirs = {n: join(base, n, "instances") for n in wanted if n in present}
    for n in wanted:
        if n not in inst_dirs:
            skipped.append(Skipped(join(base, n), "no such service directory in ZooKeeper"))
    kids = reader.bulk_children(list(inst_dirs.values())) if inst_dirs else {}
    paths: dict[str, tuple[str, str]] = {}
    for name, path in inst_dirs.items():
        k = kids.get(path)
        if isinstance(k, Exception):
            skipped.append(Skipped(path, f"cannot list instances ({_exc(k)})"))
        elif k is None:
            if names is not None:
                skipped.append(Skipped(path, "service directory has no 'instances' child"))
        else:
            for iid in sorted(k):
                paths[join(path, iid)] = (name, iid)
    datas = reader.bulk_get(list(paths)) if paths else {}
    out: list[LiveNode] = []
    for path, (name, iid) in paths.items():
        res = datas.get(path)
        if res is None:
            continue  # vanished between the two reads
        if isinstance(res, Exception):
            skipped.append(Skipped(path, f"cannot read the node ({_exc(res)})"))
            continue
        raw, stat = res
        data, problem = decode(raw)
        if data is not None:
            problem = _layout_problem(data)
        out.append(LiveNode(name, iid, path, data, node_stat(stat) if stat is not None else None, problem))
    return out, skipped


def _layout_problem(data: dict) -> str | None:
    if not isinstance(data.get("service_url"), str):
        return "node data has no service_url text: the Config Service cannot have written it"
    return None


def read_node(reader: Any, service: str, instance_id: str) -> LiveNode | None:
    """One instance node now (None when absent)."""
    path = join(reader.base_path, service, "instances", instance_id)
    res = reader.get(path)
    if res is None:
        return None
    raw, stat = res
    data, problem = decode(raw)
    return LiveNode(service, instance_id, path, data, node_stat(stat), problem)


@dataclass(frozen=True)
class Session:
    """Which ZooKeeper session the Config Service holds now, which are gone, and how that was found.

    ``owner``: its current session, when something tells (else None). ``dead``:
    sessions known gone or doomed (their nodes vanish when they expire).
    ``connected``: the sessions ZooKeeper's ``cons`` listed on every member, or None
    when the ensemble does not allow the word (the deployment's allows only ``srvr``).
    """

    owner: int | None
    node: str | None
    how: str
    dead: frozenset = frozenset()
    connected: frozenset | None = None

    @property
    def known(self) -> bool:
        return self.owner is not None

    def judge(self, owner: int | None) -> str:
        """``current``, ``dead`` or ``unknown`` for a node owned by ``owner``."""
        if not owner:
            return "unknown"
        if self.owner is not None and owner == self.owner:
            return "current"
        if owner in self.dead:
            return "dead"
        if self.connected is not None:
            return "current" if owner in self.connected else "dead"
        if self.owner is not None:
            # one Config Service, one session: a node of any other session predates the current one
            return "dead"
        return "unknown"

    def learned(self, owner: int, how: str) -> "Session":
        """This session with ``owner`` known to be current (found by a write)."""
        return Session(owner, self.node, how, self.dead - {owner}, self.connected)

    def to_dict(self) -> dict:
        return {"session": hex(self.owner) if self.owner else None, "node": self.node, "how": self.how,
                "dead": sorted(hex(o) for o in self.dead),
                "connected": None if self.connected is None else len(self.connected)}


def current_session(reader: Any, instance_id: str | None = None, *,
                    connected: "frozenset | None" = None, answering: "tuple[bool, str] | None" = None) -> Session:
    """What tells the Config Service's current session (see the module docstring), without guessing.

    The own node is ``{base}/config-service/instances/{instance_id}``; without an id,
    ``config-service-1`` when present, else the only node there is. ``connected``
    (optional) is what :func:`connected_sessions` found; ``answering`` (optional) is what
    :func:`config_service_answers` found: a never-rewritten own node tells the current
    session only while a Config Service answers (a crashed one leaves that node, and its
    session, lingering until the expiry).
    """
    inst_dir = join(reader.base_path, CONFIG_SERVICE, "instances")
    if instance_id is not None:
        candidates = [instance_id]
    else:
        kids = reader.get_children(inst_dir) or []
        if DEFAULT_CONFIG_INSTANCE in kids:
            candidates = [DEFAULT_CONFIG_INSTANCE]
        elif len(kids) == 1:
            candidates = kids
        elif not kids:
            return Session(None, None, f"no Config Service node under {inst_dir} (after a restart it has none "
                                       "once its old session expired)", connected=connected)
        else:
            return Session(None, None, f"{len(kids)} Config Service nodes under {inst_dir} and none is "
                                       f"{DEFAULT_CONFIG_INSTANCE}", connected=connected)
    path = join(inst_dir, candidates[0])
    res = reader.get(path)
    if res is None:
        return Session(None, path, f"the Config Service's own node {path} does not exist", connected=connected)
    stat = res[1]
    owner = int(stat.ephemeralOwner or 0)
    if not owner:
        return Session(None, path, f"the Config Service's own node {path} is persistent (no session)",
                       connected=connected)
    version = int(getattr(stat, "version", 0) or 0)
    if version > 0:
        return Session(None, path, f"its own node {path} was rewritten in place (version {version}): it restarted "
                                   f"while its previous session {hex(owner)} lived, which keeps that node and "
                                   "vanishes with it", frozenset({owner}), connected)
    if connected is not None and owner not in connected:
        return Session(None, path, f"the owner {hex(owner)} of its own node {path} is not connected to ZooKeeper",
                       frozenset({owner}), connected)
    if connected is None and answering is not None and not answering[0]:
        return Session(None, path, f"its own node {path} (version 0) is owned by session {hex(owner)}, but no "
                                   f"Config Service answers ({answering[1]}): that session may be a crashed "
                                   "one's, lingering until it expires", frozenset(), connected)
    return Session(owner, path, f"owner of {path} (created at its start: version 0)", frozenset(), connected)


def config_service_answers(api: Any) -> tuple[bool, str]:
    """(True, ...) when a Config Service process answers the API now, else (False, why not).

    Asks ``GET /services/config-service``, a registry route any gateway in front passes on:
    any answer but 502/503/504 comes from a running Config Service (it answers 500 when
    Redis is down, never 502-504 on this route); a refused or timed-out connection, or
    a gateway's 502-504, means none is running.
    """
    call = api_mod.Call("GET", f"/services/{url_segment(CONFIG_SERVICE)}", lambda ans: ans.status_code,
                        "is the Config Service answering")
    try:
        status = api.execute(call)
    except RegctlError as exc:  # refused, timed out, a TLS or proxy failure: nothing answered
        return False, exc.message
    if status in (502, 503, 504):
        return False, f"HTTP {status} from a gateway in front of it"
    return True, f"HTTP {status}"


def connected_sessions(hosts: str, timeout: float) -> tuple["frozenset | None", str]:
    """Session ids connected to the ensemble, from ``cons`` on every member; (None, why) when it cannot tell.

    A member that does not answer, or does not allow ``cons`` (a deployment's
    ZooKeeper allows only ``srvr``), makes the whole answer unknown: a session
    connected there would otherwise look gone.
    """
    try:
        members = parse_zk_hosts(hosts).members
    except Exception as exc:  # the settings layer validated them; be safe anyway
        return None, f"cannot parse ZooKeeper hosts ({exc})"
    found: set[int] = set()
    for host, port in members:
        ans = send_word(host, port, "cons", timeout)
        if ans.whitelisted is False:
            return None, f"'cons' is not allowed by {host}:{port}'s four-letter-word whitelist"
        if not ans.ok:
            return None, f"'cons' got no answer from {host}:{port} ({ans.error or 'empty'})"
        found.update(int(m, 16) for m in re.findall(r"sid=0x([0-9a-fA-F]+)", ans.text))
    return frozenset(found), f"'cons' on {len(members)} member(s)"


def _exc(exc: Exception) -> str:
    if isinstance(exc, RegctlError):
        return exc.message
    return f"{type(exc).__name__}: {exc}".strip().rstrip(":")


# ---------------------------------------------------------------------------
# the API (no ZooKeeper configured)
# ---------------------------------------------------------------------------

def instances_call(service: str) -> Any:
    """``GET /services/{name}`` for any name the registry holds (no regctl name rules)."""
    def parse(ans: Any) -> list:
        api_mod.check_status(ans, f"instances of {service}")
        data = ans.json()
        if not isinstance(data, list):
            raise BadResponse(f"instances of {service}: expected a JSON list", where=ans.url,
                              hint="check that the URL points at the Config Service")
        return [api_mod.instance_from_api(x, service) for x in data if isinstance(x, dict)]

    return api_mod.Call("GET", f"/services/{url_segment(service)}", parse, f"instances of {service}")


def deregister_call(service: str, instance_id: str) -> Any:
    """``POST /deregister`` for any name the registry holds."""

    def parse(ans: Any) -> bool:
        api_mod.check_status(ans, f"deregister {service}/{instance_id}")
        return True

    return api_mod.Call("POST", "/deregister", parse, f"deregister {service}/{instance_id}",
                        params={"service_name": service, "instance_id": instance_id})


def read_api(api: Any, names: Iterable[str] | None = None) -> tuple[list[Instance], list[Skipped], list[str]]:
    """(instances, what could not be read, the service names asked) through the API."""
    wanted = list(names) if names is not None else sorted({r.service_name for r in api.list_services()})
    answers = api.map([instances_call(n) for n in wanted], return_exceptions=True)
    instances: list[Instance] = []
    skipped: list[Skipped] = []
    for name, ans in zip(wanted, answers):
        if isinstance(ans, RegctlError):
            skipped.append(Skipped(f"GET /services/{name}", str(ans)))
        else:
            instances.extend(ans)
    return instances, skipped, wanted
