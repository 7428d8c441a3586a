"""Registrations and deregistrations: build, validate, plan, run and verify (no printing).

The two operations, shared by ``regctl register``/``deregister`` and the library, each return a
report (what was asked, done, verified, failed):

* :func:`register` sends a :class:`RegisterRequest` (made by :func:`read_request` from one of the
  three ways below) and confirms each new node in ZooKeeper; a write the API reported as failed
  (5xx, timeout) is looked up there: :class:`RegisterReport`;
* :func:`deregister` runs a :class:`DeregisterPlan` (made by :func:`deregister_plan` from a
  :class:`DeregisterAsk` and what is live) and checks each instance is gone: :class:`DeregisterReport`.

Three ways to build a :class:`~regctl.guide.Registration`:

* from flags (:func:`from_flags`, the values in :class:`RegisterFlags`): ``--name``, ``--url`` or
  ``--host/--port/--public-url``, ``--health-url``/``--no-health-url``, ``--instance-id``, plus
  ``--meta k=v`` and ``--status``;
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
import sys
import time
from dataclasses import astuple, dataclass, field
from pathlib import Path
from typing import IO, Any, Callable, Iterable, Mapping, Sequence
from urllib.parse import urlencode

import yaml

from regctl.discovery import COMPONENT_EFFECTS, api_failure_cause, fetch_health
from regctl.errors import NotFound, RegctlError, Unreachable, UsageError
from regctl.guide import Registration, registration_from_env
from regctl.http.api import PREFIX, deregister_call, register_call
from regctl.http.bounded import (
    CONFIG_FILE_MAX_BYTES,
    DATA_FILE_MAX_BYTES,
    load_yaml,
    read_file_text,
    read_stream_text,
)
from regctl.names import (
    parse_port,
    validate_instance_id,
    validate_service_name,
    validate_url,
    zk_join,
)
from regctl.settings import Endpoint
from regctl.transfer import live as tl

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


@dataclass(frozen=True)
class RegisterFlags:
    """``register``'s flags that build one registration: ``--name``, ``--url`` or
    ``--host/--port/--public-url``, ``--health-url``/``--no-health-url``, ``--instance-id``."""

    name: str | None = None
    url: str | None = None
    host: str | None = None
    port: str | int | None = None
    public_url: str | None = None
    health_url: str | None = None
    no_health_url: bool = False
    instance_id: str | None = None

    def given(self) -> bool:
        """Whether any of them was given (then they are the way to register)."""
        return any(v not in (None, False) for v in astuple(self))


def from_flags(flags: RegisterFlags, meta: Mapping[str, Any] | None = None,
               status: str | None = None) -> Registration:
    """A registration from ``register``'s flags (validated).

    The service URL is ``--url``; else, as the guide builds it, ``--public-url``
    (trailing ``/`` stripped) or ``http://{--host or --name}:{--port}``.
    ``--instance-id`` and ``--status`` win over the same keys in ``--meta``; the
    status defaults to ``healthy`` (the guide's examples), otherwise the instance
    is never returned by ``/url``.
    """
    name, url, host, port, public_url = flags.name, flags.url, flags.host, flags.port, flags.public_url
    if not name:
        raise UsageError("--name is required", hint="give --name, or use --from-env or -f FILE")
    validate_service_name(name)
    if url and (host or port is not None or public_url):
        raise UsageError("--url cannot be combined with --host/--port/--public-url",
                         hint="give either --url or the guide's --host/--port/--public-url")
    if flags.health_url and flags.no_health_url:
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
    if flags.no_health_url:
        health = None
    elif flags.health_url:
        health = flags.health_url.strip()
    else:
        health = default_health_url(service_url)
    metadata = dict(meta or {})
    if flags.instance_id is not None:
        metadata["instance_id"] = flags.instance_id
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
# what register was told -> one request
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class RegisterInput:
    """What ``register`` was told, as given: one of three ways (flags, ``--from-env``, ``-f FILE``)."""

    flags: RegisterFlags = RegisterFlags()
    #: ``--meta KEY=VALUE`` as typed (:func:`parse_meta`); with flags or ``--from-env``
    meta: tuple[str, ...] = ()
    #: ``--status``; with flags or ``--from-env``
    status: str | None = None
    from_env: bool = False
    #: with ``from_env``: a ``KEY=VALUE`` file whose values override the environment
    env_file: Path | None = None
    #: a YAML/JSON document of registrations; ``-`` is stdin
    file: str | None = None


@dataclass(frozen=True)
class RegisterRequest:
    """The registrations to send (validated, in order) and what the operator should know first."""

    registrations: tuple[Registration, ...]
    warnings: tuple[str, ...] = ()


def read_request(given: RegisterInput, environ: Mapping[str, str] | None = None,
                 stdin: IO[str] | None = None) -> RegisterRequest:
    """Check that one way was used, read and validate it: nothing is sent yet.

    ``environ`` (default :data:`os.environ`) is what ``from_env`` reads; ``stdin`` (default
    :data:`sys.stdin`) is read for ``file='-'``. Any problem is a :class:`UsageError`.
    """
    if sum([bool(given.from_env), given.file is not None, given.flags.given()]) > 1:
        raise UsageError("--from-env, -f FILE and --name/--url flags are separate ways to register",
                         hint="use one of them")
    if given.env_file is not None and not given.from_env:
        raise UsageError("--env-file needs --from-env", hint="add --from-env")
    meta = parse_meta(given.meta)
    if given.file is not None:
        if meta or given.status:
            raise UsageError("--meta and --status do not apply to -f FILE", hint="put them in the file")
        text, where = _read_document(given.file, sys.stdin if stdin is None else stdin)
        return RegisterRequest(tuple(load_registrations(text, where)))
    if given.from_env:
        values = _read_env_file(given.env_file) if given.env_file is not None else {}
        merged = {**(os.environ if environ is None else environ), **values}
        reg = from_env(merged, None, extra_metadata=meta, status=given.status)
        warnings = () if merged.get("SERVICE_INSTANCE_ID", "").strip() else (
            f"SERVICE_INSTANCE_ID is not set: the guide's default {reg.instance_id!r} uses regctl's own pid",)
        return RegisterRequest((reg,), warnings)
    return RegisterRequest((from_flags(given.flags, meta, given.status),))


def _read_env_file(path: Path) -> dict[str, str]:
    try:
        text = read_file_text(path, CONFIG_FILE_MAX_BYTES, "env file")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read env file ({exc.__class__.__name__}: {exc})",
                         where=str(path), hint="check the path") from None
    return parse_env_file(text, str(path))


def _read_document(file: str, stdin: IO[str]) -> tuple[str, str]:
    """(text, where) of ``-f FILE``; ``-`` reads ``stdin``."""
    if file == "-":
        try:
            return read_stream_text(stdin, DATA_FILE_MAX_BYTES, "registrations"), "stdin"
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"cannot read stdin ({exc})", hint="pipe a YAML or JSON document") from None
    try:
        return read_file_text(Path(file), DATA_FILE_MAX_BYTES, "registrations file"), file
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read the file ({exc.__class__.__name__}: {getattr(exc, 'strerror', None) or exc})",
                         where=file, hint="check the path") from None


# ---------------------------------------------------------------------------
# requests as they would be sent (for --dry-run)
# ---------------------------------------------------------------------------

def describe_request(base_url: str, call: Any) -> dict:
    """``{"method", "url", "json"}`` of an :class:`regctl.http.api.Call` against ``base_url``."""
    url = base_url.rstrip("/") + (PREFIX if call.prefixed else "") + call.path
    if call.params:
        url += "?" + urlencode(dict(call.params))
    return {"method": call.method, "url": url, "json": call.json_body}


def register_requests(endpoint: Endpoint, request: RegisterRequest) -> list[dict]:
    """The ``POST /register`` requests :func:`register` sends for ``request``, in order."""
    return [describe_request(endpoint.config_url, register_call(r.payload())) for r in request.registrations]


def deregister_requests(endpoint: Endpoint, plan: DeregisterPlan) -> list[dict]:
    """The ``POST /deregister`` requests :func:`deregister` sends for ``plan``, in order."""
    return [describe_request(endpoint.config_url, deregister_call(plan.service, i)) for i in plan.instance_ids]


# ---------------------------------------------------------------------------
# deregistration
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class DeregisterAsk:
    """What ``deregister`` was asked: named instances of a service, or every live one (validated here)."""

    service: str
    instance_ids: tuple[str, ...] = ()
    #: every instance of ``service`` live at plan time, and only those
    all_live: bool = False
    #: send even for ids that are not live
    force: bool = False

    def __post_init__(self) -> None:
        validate_service_name(self.service)
        for iid in self.instance_ids:
            validate_instance_id(iid)
        if self.all_live and self.instance_ids:
            raise UsageError("--all cannot be combined with instance ids", hint="give ids or --all, not both")
        if not self.all_live and not self.instance_ids:
            raise UsageError("no instance ids given", hint="give INSTANCE_ID..., or --all for every live instance")


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
    failed = {i for i, r in run.outcome.items()
              if r == FAILED and i in run.errors and write_unverified(run.errors[i])}
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


# ---------------------------------------------------------------------------
# the clients an operation uses
# ---------------------------------------------------------------------------

class _Clients:
    """An endpoint's API client and connected ZooKeeper reader, each made on first use.

    ``api``/``zk``, when given, return the caller's own (the caller closes them); otherwise the
    clients are opened from the endpoint and closed when the ``with`` block ends.
    """

    def __init__(self, endpoint: Endpoint, api: Callable[[], Any] | None, zk: Callable[[], Any] | None) -> None:
        self.endpoint = endpoint
        self._given_api, self._given_zk = api, zk
        self._api: Any = None
        self._zk: Any = None

    def api(self) -> Any:
        if self._given_api is not None:
            return self._given_api()
        if self._api is None:
            self._api = self.endpoint.api()
        return self._api

    def zk(self) -> Any:
        if self._given_zk is not None:
            return self._given_zk()
        if self._zk is None:
            reader = self.endpoint.zk_reader()
            reader.connect()
            self._zk = reader
        return self._zk

    def live_reader(self, service: str) -> tuple[Callable[[], list], str]:
        """(what is live of ``service`` now, read from "zookeeper" when configured, else "api")."""
        if self.endpoint.zk_configured:
            path = zk_join(self.endpoint.zk_base, service, "instances")
            return (lambda: self.zk().get_children(path) or []), "zookeeper"
        return (lambda: [i.instance_id for i in self.api().instances(service)]), "api"

    def consequence(self, exc: RegctlError, service: str) -> str | None:
        """What a failed write broke, from /health and the API's own reads (None when they do not say)."""
        if isinstance(exc, Unreachable):
            return None
        try:
            return write_failure_consequence(self.api(), service)
        except RegctlError:
            return None

    def __enter__(self) -> _Clients:
        return self

    def __exit__(self, *exc: object) -> None:
        for client in (self._api, self._zk):
            if client is not None:
                client.close()
        self._api = self._zk = None


# ---------------------------------------------------------------------------
# register
# ---------------------------------------------------------------------------

#: where a new node was found when confirming: per registration in :attr:`Registered.zookeeper`
PRESENT, MISSING, UNREADABLE = "present", "missing", "unreadable"


@dataclass(frozen=True)
class Registered:
    """One registration the registry took (the API's answer, or ZooKeeper's after an error)."""

    registration: Registration
    #: the request as sent (:func:`describe_request`)
    request: dict
    instance_id: str
    #: the node in ZooKeeper afterwards: PRESENT, MISSING, UNREADABLE; None when not looked at
    zookeeper: str | None = None

    def to_dict(self) -> dict:
        return {"request": self.request, "instance_id": self.instance_id, "zookeeper": self.zookeeper}


@dataclass(frozen=True)
class ZkConfirmation:
    """The new nodes looked for in ZooKeeper after registering."""

    #: False: ZooKeeper is not configured, nothing was looked at
    configured: bool
    base: str
    #: node path -> PRESENT | MISSING | UNREADABLE, in the order registered
    found: Mapping[str, str] = field(default_factory=dict)
    #: node path -> why it could not be read (the UNREADABLE ones)
    unreadable: Mapping[str, BaseException] = field(default_factory=dict)
    #: ZooKeeper could not be asked at all
    error: RegctlError | None = None


@dataclass(frozen=True)
class RegisterReport:
    """What :func:`register` was asked, did, verified and where it failed."""

    asked: RegisterRequest
    #: every request of ``asked``, in order (as sent, or as it would have been)
    requests: tuple[dict, ...]
    #: what the registry took, in order; after a failure the ones before it
    done: tuple[Registered, ...]
    #: writes the API reported as failed (5xx, timeout) and what ZooKeeper showed
    verified_after_error: tuple[WriteCheck, ...] = ()
    #: None when nothing was registered
    confirmation: ZkConfirmation | None = None
    #: what stopped the batch (None: every registration went through)
    error: RegctlError | None = None

    @property
    def instance_ids(self) -> list[str]:
        return [r.instance_id for r in self.done]

    @property
    def confirmed(self) -> bool:
        """Every registration's node was seen in ZooKeeper."""
        return bool(self.done) and all(r.zookeeper == PRESENT for r in self.done)

    @property
    def nothing_happened(self) -> bool:
        """Failed before anything was registered or looked up: the error is the whole story."""
        return self.error is not None and not self.done and not self.verified_after_error

    def to_dict(self) -> dict:
        return {"dry_run": False, "registrations": [r.to_dict() for r in self.done],
                "instance_ids": self.instance_ids,
                "verified_after_error": [c.to_dict() for c in self.verified_after_error]}


def register(endpoint: Endpoint, request: RegisterRequest, *, api: Callable[[], Any] | None = None,
             zk: Callable[[], Any] | None = None) -> RegisterReport:
    """Send each registration of ``request`` in order, then confirm the new nodes in ZooKeeper.

    A registration the API reports as failed with a 5xx or a timeout may still have
    happened: when ZooKeeper is configured it is looked up there (``verified_after_error``);
    found, the batch goes on; not found or not readable, it stops with an :class:`Unreachable`.
    Any other failure stops the batch with the API's error. Errors are in the report, not
    raised. ``api``/``zk`` return the clients to use (default: opened from ``endpoint``).
    """
    requests = register_requests(endpoint, request)
    done: list[tuple[Registration, dict, str]] = []
    checks: list[WriteCheck] = []
    error: RegctlError | None = None
    with _Clients(endpoint, api, zk) as clients:
        for reg, req in zip(request.registrations, requests):
            try:
                iid = clients.api().register(reg.payload())
            except RegctlError as exc:
                check = _verify_register(clients, reg, exc)
                if check is None:
                    error = exc
                    break
                checks.append(check)
                if not check.happened:
                    error = _write_error(check)
                    break
                iid = check.instance_id
            done.append((reg, req, iid))
        confirmation = _confirm_in_zk(clients, [(reg, iid) for reg, _, iid in done]) if done else None
    return RegisterReport(request, tuple(requests), _registered(endpoint, done, confirmation), tuple(checks),
                          confirmation, error)


def _verify_register(clients: _Clients, reg: Registration, exc: RegctlError) -> WriteCheck | None:
    """After a 5xx/timeout: whether ZooKeeper holds the registration; None when the failure cannot
    have written anything or ZooKeeper is not configured."""
    if not write_unverified(exc) or not clients.endpoint.zk_configured:
        return None
    consequence = clients.consequence(exc, reg.service_name)
    try:
        svc = clients.zk().service(reg.service_name)
    except RegctlError as zk_exc:
        return WriteCheck("register", reg.service_name, reg.instance_id, None, exc, consequence, zk_exc)
    found = registered_as_asked(svc.instances, reg)
    return WriteCheck("register", reg.service_name, found.instance_id if found else reg.instance_id,
                      found is not None, exc, consequence)


def _write_error(check: WriteCheck) -> RegctlError:
    """The error for a write that did not happen (exit 3) or whose outcome is unknown (exit 3)."""
    err = check.api_error
    hint = err.hint_template if check.happened is False else "look with: regctl inspect " + check.service
    return Unreachable(check.sentence(), where=err.where, hint=hint)


def _node_path(endpoint: Endpoint, reg: Registration, instance_id: str) -> str:
    return zk_join(endpoint.zk_base, reg.service_name, "instances", instance_id)


def _confirm_in_zk(clients: _Clients, made: list[tuple[Registration, str]]) -> ZkConfirmation:
    """Look for each new node in ZooKeeper (a missing one is reported, not raised)."""
    endpoint = clients.endpoint
    if not endpoint.zk_configured:
        return ZkConfirmation(False, endpoint.zk_base)
    try:
        paths = list(dict.fromkeys(_node_path(endpoint, reg, iid) for reg, iid in made))
        answers = clients.zk().bulk_get(paths)
    except RegctlError as exc:
        return ZkConfirmation(True, endpoint.zk_base, error=exc)
    found: dict[str, str] = {}
    unreadable: dict[str, BaseException] = {}
    for path in paths:
        res = answers.get(path)
        if isinstance(res, Exception):
            found[path] = UNREADABLE
            unreadable[path] = res
        else:
            found[path] = MISSING if res is None else PRESENT
    return ZkConfirmation(True, endpoint.zk_base, found, unreadable)


def _registered(endpoint: Endpoint, done: list, confirmation: ZkConfirmation | None) -> tuple[Registered, ...]:
    """Each registration taken, with its node's state (a node registered twice: the last one says it)."""
    paths = [_node_path(endpoint, reg, iid) for reg, _, iid in done]
    last = {path: i for i, path in enumerate(paths)}
    found = confirmation.found if confirmation is not None else {}
    return tuple(Registered(reg, req, iid, found.get(path) if last[path] == i else None)
                 for i, ((reg, req, iid), path) in enumerate(zip(done, paths)))


# ---------------------------------------------------------------------------
# deregister
# ---------------------------------------------------------------------------

def deregister_plan(endpoint: Endpoint, ask: DeregisterAsk, *, api: Callable[[], Any] | None = None,
                    zk: Callable[[], Any] | None = None) -> DeregisterPlan:
    """Read what is live (ZooKeeper when configured, else the API's list) and plan ``ask`` against it
    (see :func:`plan_deregister`: an id that is not live is refused unless ``ask.force``)."""
    with _Clients(endpoint, api, zk) as clients:
        live, source = clients.live_reader(ask.service)
        return plan_deregister(ask.service, ask.instance_ids, ask.all_live, live(), source, force=ask.force)


@dataclass(frozen=True)
class DeregisterOutcome:
    """One planned instance after the run and the check."""

    instance_id: str
    #: REMOVED, STILL_PRESENT, FAILED, NOT_ATTEMPTED, INTERRUPTED or UNVERIFIED
    result: str
    error: str | None = None

    def to_dict(self) -> dict:
        return {"instance_id": self.instance_id, "result": self.result, "error": self.error}


@dataclass(frozen=True)
class DeregisterReport:
    """What :func:`deregister` was asked (the plan), did and verified, and what failed."""

    plan: DeregisterPlan
    #: per planned instance, in order
    outcomes: tuple[DeregisterOutcome, ...]
    #: where each instance was checked: "zookeeper" or "api"
    verified_in: str
    #: Ctrl-C stopped the batch (then ``error`` is None: the outcomes say how far it got)
    interrupted: bool = False
    #: instances the API failed on (5xx, timeout) and what ZooKeeper shows
    verified_after_error: tuple[WriteCheck, ...] = ()
    error: RegctlError | None = None

    @property
    def removed(self) -> list[str]:
        return [o.instance_id for o in self.outcomes if o.result == REMOVED]

    @property
    def not_removed(self) -> list[str]:
        return [o.instance_id for o in self.outcomes if o.result != REMOVED]

    def counts(self) -> dict[str, int]:
        """result -> how many, in the order first met."""
        out: dict[str, int] = {}
        for o in self.outcomes:
            out[o.result] = out.get(o.result, 0) + 1
        return out

    def to_dict(self) -> dict:
        return {"dry_run": False, "plan": self.plan.to_dict(), "results": [o.to_dict() for o in self.outcomes],
                "verified_in": self.verified_in, "interrupted": self.interrupted, "confirmed": True,
                "verified_after_error": [c.to_dict() for c in self.verified_after_error]}


def deregister(endpoint: Endpoint, plan: DeregisterPlan, *, api: Callable[[], Any] | None = None,
               zk: Callable[[], Any] | None = None) -> DeregisterReport:
    """Run ``plan`` (:func:`run_deregister`), then check each instance is gone (:func:`verify_gone`).

    An instance the API failed on with a 5xx or a timeout is looked up in ZooKeeper
    (``verified_after_error``). Ctrl-C stops the batch and is reported, not raised; other
    failures are in ``error``. ``api``/``zk`` return the clients to use (default: opened from
    ``endpoint``).
    """
    with _Clients(endpoint, api, zk) as clients:
        live, source = clients.live_reader(plan.service)
        run = run_deregister(clients.api().deregister, plan)
        check_error = verify_gone(run, live, settle_s=min(2.0, endpoint.timeout))
        outcomes = tuple(DeregisterOutcome(r["instance_id"], r["result"], r["error"]) for r in run.rows())
        checks = _deregister_checks(clients, run, source)
    error = None if run.interrupted else _deregister_error(run, outcomes, check_error)
    return DeregisterReport(plan, outcomes, source, run.interrupted, checks, error)


def _deregister_checks(clients: _Clients, run: DeregisterRun, source: str) -> tuple[WriteCheck, ...]:
    """Per instance the API failed on (5xx, timeout): what ZooKeeper shows."""
    suspects = {**run.removed_despite, **{i: e for i, e in run.errors.items() if write_unverified(e)}}
    if not suspects or source != "zookeeper":
        return ()
    consequence = clients.consequence(next(iter(suspects.values())), run.service)
    checks = []
    for iid, err in suspects.items():
        outcome = run.outcome.get(iid)
        happened = True if outcome == REMOVED else (None if outcome == UNVERIFIED else False)
        checks.append(WriteCheck("deregister", run.service, iid, happened, err, consequence))
    return tuple(checks)


def _deregister_error(run: DeregisterRun, outcomes: tuple[DeregisterOutcome, ...],
                      check_error: RegctlError | None) -> RegctlError | None:
    """What failed, as the one error to report (None: every instance was removed)."""
    not_removed = [o for o in outcomes if o.result != REMOVED]
    if run.stopped_by is not None and (not_removed or not run.removed_despite):
        return run.stopped_by
    if check_error is not None:
        return Unreachable(f"deregistration sent but not verified: {check_error.message}",
                           where=check_error.where, hint=check_error.hint_template)
    if run.errors:
        first = next(iter(run.errors.values()))
        return first if len(run.errors) == 1 else first.__class__(
            f"{len(run.errors)} deregistrations failed; first: {first.message}", where=first.where,
            hint=first.hint_template)
    if not_removed:
        return NotFound("not every instance was removed: " + ", ".join(f"{o.instance_id} {o.result}"
                                                                       for o in not_removed),
                        hint=f"look with: regctl inspect {run.service}")
    return None
