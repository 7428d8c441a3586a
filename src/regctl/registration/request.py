"""What ``register`` is told, read into one typed request: nothing is sent here.

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

:func:`read_request` checks that one way was used (a :class:`RegisterInput`), reads and validates
it into a :class:`RegisterRequest`.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import astuple, dataclass
from pathlib import Path
from typing import IO, Any, Iterable, Mapping

import yaml

from regctl.errors import UsageError
from regctl.guide import Registration, registration_from_env
from regctl.http.bounded import (
    CONFIG_FILE_MAX_BYTES,
    DATA_FILE_MAX_BYTES,
    load_yaml,
    read_file_text,
    read_stream_text,
)
from regctl.names import parse_port, validate_service_name, validate_url

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
        values = read_env_file(given.env_file) if given.env_file is not None else {}
        merged = {**(os.environ if environ is None else environ), **values}
        reg = from_env(merged, None, extra_metadata=meta, status=given.status)
        warnings = () if merged.get("SERVICE_INSTANCE_ID", "").strip() else (
            f"SERVICE_INSTANCE_ID is not set: the guide's default {reg.instance_id!r} uses regctl's own pid",)
        return RegisterRequest((reg,), warnings)
    return RegisterRequest((from_flags(given.flags, meta, given.status),))


def read_env_file(path: Path) -> dict[str, str]:
    """The env file's ``KEY=VALUE`` pairs; :class:`UsageError` naming the file when it cannot be read."""
    try:
        text = read_file_text(path, CONFIG_FILE_MAX_BYTES, "env file")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read the env file ({exc.__class__.__name__}: "
                         f"{getattr(exc, 'strerror', None) or exc})", where=str(path),
                         hint="check the path") from None
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
