"""Registrations and deregistrations: build, validate, plan, run and verify (no printing).

Three ways to build a :class:`~regctl.guide.Registration`:

* from flags (:func:`from_flags`): ``--name``, ``--url`` or ``--host/--port/--public-url``,
  ``--health-url``/``--no-health-url``, ``--instance-id``, ``--meta k=v``, ``--status``;
* from the guide's environment variables (:func:`from_env`, optionally with an env file
  read by :func:`parse_env_file`);
* from a YAML/JSON document (:func:`load_registrations`): a mapping, a list, or
  ``{"registrations": [...]}``; keys as the API payload (``service_name``,
  ``service_url``, ``health_check_url``, ``service_metadata``) or the flag-style short
  keys (``name``, ``url``, ``health_url``, ``instance_id``, ``status``, ``meta``).

Deregistration is planned against what is live (:func:`plan_deregister`), run one
instance at a time (:func:`run_deregister`, which survives Ctrl-C and says how far it
got) and verified afterwards (:func:`verify_gone`).
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence
from urllib.parse import urlencode

from regctl.discovery import COMPONENT_EFFECTS
from regctl.errors import NotFound, RegctlError, Unreachable, UsageError
from regctl.guide import Registration, registration_from_env
from regctl.names import (
    parse_port,
    validate_instance_id,
    validate_service_name,
    validate_url,
)

log = logging.getLogger(__name__)

DEFAULT_STATUS = "healthy"
HEALTH_PATH = "/health"

#: file key -> payload field, for the flag-style short keys accepted in -f files
SHORT_KEYS = {"name": "service_name", "url": "service_url", "health_url": "health_check_url",
              "meta": "service_metadata"}
LONG_KEYS = ("service_name", "service_url", "health_check_url", "service_metadata")
META_KEYS = ("instance_id", "status")


# ---------------------------------------------------------------------------
# building registrations
# ---------------------------------------------------------------------------

def parse_meta(items: Iterable[str]) -> dict[str, Any]:
    """``["k=v", "n=3", 'tags=["a"]']`` -> ``{"k": "v", "n": 3, "tags": ["a"]}``.

    A value that parses as JSON is sent as JSON (``3``, ``true``, ``{"a": 1}``, ``"3"``
    for the string); anything else is sent as the text itself.
    """
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(f"--meta {item!r} is not key=value", hint="write e.g. --meta version=1.2.3")
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out


def default_health_url(service_url: str) -> str:
    """The guide's health URL: service URL + ``/health``."""
    return service_url.rstrip("/") + HEALTH_PATH


def from_flags(*, name: str | None, url: str | None = None, host: str | None = None,
               port: str | int | None = None, public_url: str | None = None, health_url: str | None = None,
               no_health_url: bool = False, instance_id: str | None = None,
               meta: Mapping[str, Any] | None = None, status: str | None = None) -> Registration:
    """A registration from ``register``'s flags (validated).

    The service URL is ``--url``; else, as the guide builds it, ``--public-url``
    (trailing ``/`` stripped) or ``http://{--host or --name}:{--port}``.
    ``--instance-id`` and ``--status`` win over the same keys in ``--meta``; the
    status defaults to ``healthy`` (the guide's examples), otherwise the instance
    is never returned by ``/url``.
    """
    if not name:
        raise UsageError("--name is required", hint="give --name, or use --from-env or -f FILE")
    validate_service_name(name)
    if url and (host or port is not None or public_url):
        raise UsageError("--url cannot be combined with --host/--port/--public-url",
                         hint="give either --url or the guide's --host/--port/--public-url")
    if health_url and no_health_url:
        raise UsageError("--health-url and --no-health-url contradict each other", hint="give one of them")
    if url:
        service_url = url.strip()
    elif public_url:
        service_url = public_url.strip().rstrip("/")
        if port is not None:
            parse_port(port, "--port")
    elif port is not None:
        service_url = f"http://{(host or name).strip()}:{parse_port(port, '--port')}"
    else:
        raise UsageError("no service URL given", hint="give --url URL, or --port PORT [--host HOST], or --public-url URL")
    validate_url(service_url, "service URL")
    health: str | None
    if no_health_url:
        health = None
    elif health_url:
        health = health_url.strip()
    else:
        health = default_health_url(service_url)
    metadata = dict(meta or {})
    if instance_id is not None:
        metadata["instance_id"] = instance_id
    if status is not None:
        metadata["status"] = status
    metadata.setdefault("status", DEFAULT_STATUS)
    return Registration(name, service_url, health, metadata).validate()


def parse_env_file(text: str, source: str = "env file") -> dict[str, str]:
    """``KEY=VALUE`` lines: ``#`` comments, blank lines, ``export`` prefix, optional quotes.

    Double-quoted values understand ``\\n``, ``\\"`` and ``\\\\``; single-quoted values are
    taken literally; an unquoted value ends at `` #``.
    """
    out: dict[str, str] = {}
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export ") or line.startswith("export\t"):
            line = line[7:].lstrip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not key or not all(c.isalnum() or c == "_" for c in key) or key[0].isdigit():
            raise UsageError(f"line {lineno} is not KEY=VALUE: {raw.strip()[:60]!r}", where=source,
                             hint="write lines like SERVICE_PORT=8090")
        value = value.strip()
        if value[:1] in ("'", '"'):
            quote = value[0]
            end = value.find(quote, 1)
            while quote == '"' and end > 0 and value[end - 1] == "\\" and not value[:end].endswith("\\\\"):
                end = value.find(quote, end + 1)
            if end < 0:
                raise UsageError(f"line {lineno}: unclosed {quote} quote in {key}", where=source,
                                 hint="close the quote")
            rest = value[end + 1:].strip()
            if rest and not rest.startswith("#"):
                raise UsageError(f"line {lineno}: text after the closing quote of {key}", where=source,
                                 hint="put comments after a ' #'")
            value = value[1:end]
            if quote == '"':
                value = (value.replace("\\\\", "\0").replace("\\n", "\n").replace('\\"', '"')
                         .replace("\0", "\\"))
        else:
            hash_at = value.find(" #")
            if hash_at >= 0:
                value = value[:hash_at].rstrip()
        out[key] = value
    return out


def from_env(env: Mapping[str, str] | None = None, env_file_values: Mapping[str, str] | None = None,
             extra_metadata: Mapping[str, Any] | None = None, status: str | None = None,
             pid: int | None = None) -> Registration:
    """The guide's registration from the environment; ``env_file_values`` override it.

    A missing or bad variable is a :class:`UsageError` naming it.
    """
    merged = dict(os.environ if env is None else env)
    merged.update(env_file_values or {})
    reg = registration_from_env(merged, pid=pid, extra_metadata=extra_metadata)
    if status is not None:
        reg = Registration(reg.service_name, reg.service_url, reg.health_check_url,
                           {**reg.metadata, "status": status})
    return reg.validate()


def load_registrations(text: str, source: str = "file") -> list[Registration]:
    """Parse a YAML or JSON document into validated registrations.

    Accepts one mapping, a list of mappings, or ``{"registrations": [...]}``. A
    missing ``health_check_url`` defaults to service URL + ``/health`` (an explicit
    ``null`` sends null); a missing status defaults to ``healthy``.
    """
    import yaml

    from regctl.http.bounded import load_yaml

    try:
        doc = load_yaml(text, source)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise UsageError(f"not valid YAML or JSON{at}", where=source,
                         hint="check the file's syntax") from None
    if isinstance(doc, dict) and set(doc) == {"registrations"}:
        doc = doc["registrations"]
    if isinstance(doc, dict):
        items = [doc]
    elif isinstance(doc, list):
        items = doc
    else:
        raise UsageError(f"expected a mapping or a list of registrations, got {type(doc).__name__}",
                         where=source, hint='write {"service_name": ..., "service_url": ...} or a list of them')
    if not items:
        raise UsageError("no registrations in the file", where=source, hint="add at least one registration")
    out = []
    for index, item in enumerate(items, 1):
        where = f"{source} entry {index}"
        try:
            out.append(registration_from_mapping(item))
        except UsageError as exc:
            raise UsageError(exc.message, where=where, hint=exc.hint) from None
    return out


def registration_from_mapping(item: Any) -> Registration:
    """One file entry (long API keys or flag-style short keys) -> validated registration."""
    if not isinstance(item, dict):
        raise UsageError(f"entry is a {type(item).__name__}, not a mapping", hint="each entry is a mapping")
    fields: dict[str, Any] = {}
    extra_meta: dict[str, Any] = {}
    for key, value in item.items():
        if not isinstance(key, str):
            raise UsageError(f"key {key!r} is not text", hint="keys are names like service_name")
        if key in LONG_KEYS or key in SHORT_KEYS:
            target = SHORT_KEYS.get(key, key)
            if target in fields:
                raise UsageError(f"{target} is given twice ({key!r} and its other spelling)", hint="keep one")
            fields[target] = value
        elif key in META_KEYS:
            extra_meta[key] = value
        else:
            raise UsageError(f"unknown key {key!r}",
                             hint="use " + ", ".join(LONG_KEYS) + " or " + ", ".join((*SHORT_KEYS, *META_KEYS)))
    name = fields.get("service_name")
    url = fields.get("service_url")
    if not isinstance(name, str) or not name:
        raise UsageError("service_name (or name) is missing or not text", hint="add service_name: my-service")
    if not isinstance(url, str) or not url:
        raise UsageError(f"service_url (or url) of {name!r} is missing or not text",
                         hint="add service_url: http://host:port")
    meta = fields.get("service_metadata")
    if meta is None:
        meta = {}
    if not isinstance(meta, dict):
        raise UsageError(f"service_metadata of {name!r} is a {type(meta).__name__}, not a mapping",
                         hint="write service_metadata as key: value pairs")
    meta = {**meta, **extra_meta}
    meta.setdefault("status", DEFAULT_STATUS)
    if "health_check_url" in fields:
        health = fields["health_check_url"]
        if health is not None and not isinstance(health, str):
            raise UsageError(f"health_check_url of {name!r} is not text", hint="give a URL or null")
    else:
        health = default_health_url(url)
    return Registration(name, url, health, meta).validate()


# ---------------------------------------------------------------------------
# requests as they would be sent (for --dry-run)
# ---------------------------------------------------------------------------

def describe_request(base_url: str, call: Any) -> dict:
    """``{"method", "url", "json"}`` of an :class:`regctl.http.api.Call` against ``base_url``."""
    from regctl.http.api import PREFIX

    url = base_url.rstrip("/") + (PREFIX if call.prefixed else "") + call.path
    if call.params:
        url += "?" + urlencode(dict(call.params))
    return {"method": call.method, "url": url, "json": call.json_body}


# ---------------------------------------------------------------------------
# deregistration
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class DeregisterPlan:
    """What ``deregister`` will remove, decided before anything is sent."""

    service: str
    instance_ids: tuple[str, ...]
    #: ids that were live at plan time (None when liveness was not read)
    live: frozenset[str] | None
    #: where liveness was read: "zookeeper" or "api"
    source: str
    #: ids asked for that were not live (only with --force)
    not_live: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {"service": self.service, "instance_ids": list(self.instance_ids),
                "live_at_plan_time": None if self.live is None else sorted(self.live),
                "liveness_source": self.source, "not_live": list(self.not_live)}


def plan_deregister(service: str, instance_ids: Sequence[str], all_live: bool, live: Iterable[str],
                    source: str, force: bool = False) -> DeregisterPlan:
    """Decide exactly which instances to remove.

    With ``all_live``: exactly the ids live now. Otherwise the ids named (duplicates
    dropped); an id that is not live is refused (:class:`NotFound`, exit 1) unless
    ``force``, because the API answers ok for any id and nothing would tell the
    operator that the id was wrong.
    """
    validate_service_name(service)
    live_set = frozenset(live)
    where = "ZooKeeper" if source == "zookeeper" else "the API's instance list"
    if all_live:
        if instance_ids:
            raise UsageError("--all cannot be combined with instance ids", hint="give ids or --all, not both")
        if not live_set:
            raise NotFound(f"service {service!r} has no live instances to deregister (read from {where})",
                           hint="see what is registered with: regctl list")
        return DeregisterPlan(service, tuple(sorted(live_set)), live_set, source)
    if not instance_ids:
        raise UsageError("no instance ids given", hint="give INSTANCE_ID..., or --all for every live instance")
    ids: list[str] = []
    for iid in instance_ids:
        validate_instance_id(iid)
        if iid not in ids:
            ids.append(iid)
    missing = tuple(i for i in ids if i not in live_set)
    if missing and not force:
        shown = ", ".join(missing)
        raise NotFound(f"{'instance' if len(missing) == 1 else 'instances'} {shown} of {service!r} "
                       f"{'is' if len(missing) == 1 else 'are'} not live in {where}; nothing was sent "
                       f"(the API would answer ok regardless)",
                       hint=f"check the ids with: regctl inspect {service}; pass --force to send anyway")
    return DeregisterPlan(service, tuple(ids), live_set, source, missing)


#: per-instance outcomes
REMOVED, STILL_PRESENT, FAILED, NOT_ATTEMPTED, INTERRUPTED, UNVERIFIED = (
    "removed", "still-present", "failed", "not-attempted", "interrupted", "unverified")


@dataclass
class DeregisterRun:
    """What happened, instance by instance (filled in as the run goes)."""

    service: str
    #: instance id -> "sent" | FAILED | INTERRUPTED | NOT_ATTEMPTED, then after verification the final word
    outcome: dict[str, str] = field(default_factory=dict)
    errors: dict[str, RegctlError] = field(default_factory=dict)
    interrupted: bool = False
    #: a failure that stopped the batch (the backend went away)
    stopped_by: RegctlError | None = None
    #: instances the API reported failing (5xx, timeout) that ZooKeeper shows removed all the same
    removed_despite: dict[str, RegctlError] = field(default_factory=dict)

    def rows(self) -> list[dict]:
        def error(iid: str) -> str | None:
            if iid in self.errors:
                return str(self.errors[iid])
            if iid in self.removed_despite:
                return f"removed, although the Config Service answered: {self.removed_despite[iid].message}"
            return None

        return [{"instance_id": iid, "result": res, "error": error(iid)} for iid, res in self.outcome.items()]


def run_deregister(deregister: Callable[[str, str], Any], plan: DeregisterPlan) -> DeregisterRun:
    """Send one ``POST /deregister`` per planned instance, in order.

    Ctrl-C stops the batch: the instance in flight is marked ``interrupted`` (its
    fate is settled by :func:`verify_gone`), the rest ``not-attempted``; the
    :class:`KeyboardInterrupt` is not re-raised, ``run.interrupted`` says so.
    An unreachable registry stops the batch the same way (``run.stopped_by``).
    """
    run = DeregisterRun(plan.service, {iid: NOT_ATTEMPTED for iid in plan.instance_ids})
    for iid in plan.instance_ids:
        try:
            deregister(plan.service, iid)
            run.outcome[iid] = "sent"
        except KeyboardInterrupt:
            run.outcome[iid] = INTERRUPTED
            run.interrupted = True
            log.info("interrupted while deregistering %s/%s", plan.service, iid)
            break
        except Unreachable as exc:
            run.outcome[iid] = FAILED
            run.errors[iid] = exc
            run.stopped_by = exc
            break
        except RegctlError as exc:
            run.outcome[iid] = FAILED
            run.errors[iid] = exc
    return run


def verify_gone(run: DeregisterRun, live_ids: Callable[[], Iterable[str]] | None,
                settle_s: float = 2.0, poll_s: float = 0.2) -> RegctlError | None:
    """Settle each sent/interrupted instance as ``removed`` or ``still-present``.

    ``live_ids()`` reads what is live now (ZooKeeper's children, or the API's list).
    Instances still present are re-read for up to ``settle_s`` seconds. Returns the
    error when the check itself failed (those instances become ``unverified``).
    """
    failed = {i for i, r in run.outcome.items() if r == FAILED and write_unverified(run.errors.get(i))}
    pending = [i for i, r in run.outcome.items() if r in ("sent", INTERRUPTED) or i in failed]
    if not pending:
        return None
    try:
        return _settle(run, pending, live_ids, settle_s, poll_s)
    finally:
        for iid in failed:  # a 5xx or timeout: ZooKeeper decides what happened
            if run.outcome[iid] == REMOVED:
                run.removed_despite[iid] = run.errors.pop(iid)
            elif run.outcome[iid] == STILL_PRESENT:
                run.outcome[iid] = FAILED


def _settle(run: DeregisterRun, pending: list, live_ids: Callable[[], Iterable[str]] | None,
            settle_s: float, poll_s: float) -> RegctlError | None:
    if live_ids is None:
        for iid in pending:
            run.outcome[iid] = UNVERIFIED
        return None
    deadline = time.monotonic() + settle_s
    while True:
        try:
            live = set(live_ids())
        except RegctlError as exc:
            for iid in pending:
                run.outcome[iid] = UNVERIFIED
            return exc
        still = [i for i in pending if i in live]
        for iid in pending:
            if iid not in live:
                run.outcome[iid] = REMOVED
        if not still or time.monotonic() >= deadline:
            for iid in still:
                # an interrupted call that never reached the server leaves the node: not removed
                run.outcome[iid] = STILL_PRESENT
            return None
        pending = still
        time.sleep(poll_s)


# ---------------------------------------------------------------------------
# verified writes: after a 5xx, a timeout or a lost connection only ZooKeeper says what happened
# ---------------------------------------------------------------------------

#: what a failed write leaves behind, per component the Config Service's /health calls unhealthy
WRITE_CONSEQUENCES = {
    "redis": "Redis is down: the cache was not cleared and lookups of every service fail until it is back",
    "postgres": "PostgreSQL is down: the database row was not updated (GET /services shows the old one) and "
                "the cache was not cleared (lookups may serve the old list for up to 60 s)",
    "zookeeper": COMPONENT_EFFECTS["zookeeper"],
}


def write_unverified(exc: BaseException) -> bool:
    """Whether a failed register/deregister may still have happened (5xx, timeout, lost connection)."""
    if isinstance(exc, Unreachable):
        return True
    code = getattr(exc, "status_code", None)
    return isinstance(code, int) and code >= 500


def health_consequence(health: Mapping[str, Any] | None) -> str | None:
    """The consequence of a failed write, from ``GET /health``'s components; None when none is down."""
    if not isinstance(health, Mapping):
        return None
    down = [c for c in WRITE_CONSEQUENCES if str(health.get(c, "")).lower() == "unhealthy"]
    return "; ".join(WRITE_CONSEQUENCES[c] for c in down) or None


def write_failure_consequence(api: Any, service: str) -> str | None:
    """After a write answered 5xx: what broke and what it means, from ``/health`` and the API's own reads.

    The real ``/health`` answers a bare 503 for Redis *or* PostgreSQL; then the
    services list (the database) and the service's instance list (through Redis)
    are asked, and whichever fails names the component. None when nothing says.
    """
    from regctl.transfer import live as tl
    from regctl.discovery import api_failure_cause, fetch_health

    health = fetch_health(api)
    named = health_consequence(health)
    if named:
        return named
    if not (isinstance(health, Mapping) and health.get("http_status") == 503):
        return None
    try:
        api.list_services()
        rows_ok = True
    except RegctlError:
        rows_ok = False
    try:
        read: Any = api.execute(tl.instances_call(service))
    except RegctlError as exc:
        read = exc
    cause = api_failure_cause(rows_ok, {service: read}, health) or ""
    if cause.startswith("Redis"):
        return WRITE_CONSEQUENCES["redis"]
    if cause.startswith("PostgreSQL"):
        return WRITE_CONSEQUENCES["postgres"]
    return None


def registered_as_asked(instances: Iterable[Any], reg: Registration) -> Any:
    """The live instance (ZooKeeper's) that holds exactly what ``reg`` sent, or None.

    With an instance id the node of that id must carry the URL, health URL and
    metadata sent; without one (the server makes the id) any node of the service
    with that data counts.
    """
    for inst in instances:
        if reg.instance_id is not None and inst.instance_id != reg.instance_id:
            continue
        if inst.service_url != reg.service_url:
            continue
        if reg.health_check_url is not None and inst.health_check_url != reg.health_check_url:
            continue
        meta = inst.metadata or {}
        if all(meta.get(k) == v for k, v in reg.metadata.items() if k != "health_check_url"):
            return inst
    return None


@dataclass(frozen=True)
class WriteCheck:
    """What ZooKeeper shows after a write the API reported as failed."""

    action: str  # "register" | "deregister"
    service: str
    instance_id: str | None
    #: True: the write happened (node present / gone); False: it did not; None: could not look
    happened: bool | None
    api_error: RegctlError
    consequence: str | None = None
    check_error: RegctlError | None = None

    def sentence(self) -> str:
        """One line: what happened, what the API said, what it means."""
        target = f"{self.service}/{self.instance_id}" if self.instance_id else self.service
        said = f"the Config Service answered: {self.api_error.message}"
        tail = f" -- {self.consequence}" if self.consequence else ""
        if self.happened is None:
            why = f" ({self.check_error.message})" if self.check_error else ""
            return f"{self.action} of {target} may or may not have happened: {said}; ZooKeeper could not be read{why}"
        if self.action == "register":
            if self.happened:
                return f"registered in ZooKeeper ({target} is live), but {said}{tail}"
            return f"not registered ({target} is not in ZooKeeper): {said}{tail}"
        if self.happened:
            return f"deregistered ({target} is gone from ZooKeeper), but {said}{tail}"
        return f"not deregistered ({target} is still in ZooKeeper): {said}{tail}"

    def to_dict(self) -> dict:
        return {"action": self.action, "service": self.service, "instance_id": self.instance_id,
                "happened": self.happened, "api_error": self.api_error.message, "consequence": self.consequence,
                "check_error": self.check_error.message if self.check_error else None}
