"""Pure parsers and validators: service names, instance ids, ZooKeeper hosts and paths, URLs.

Nothing here touches the network. Every check raises :class:`UsageError` with a
one-line reason, so a bad value never reaches a ZooKeeper path or a URL.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from regctl.errors import UsageError

#: Longest service name or instance id accepted (ZooKeeper allows far more; URLs and
#: terminals do not like it, and no real service needs it).
MAX_NAME_LENGTH = 200

#: Statuses the Config Service can parse (its ServiceStatus enum).
VALID_STATUSES = ("healthy", "unhealthy", "unknown", "starting", "stopping")

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ufeff]")


def validate_segment(value: str, what: str = "service name") -> str:
    """Return ``value`` if it can be one ZooKeeper path segment and one URL path segment.

    Refused: empty, ``.``/``..``, ``/``, control characters, ZooKeeper's reserved
    ``zookeeper`` (as a service name), surrounding whitespace, more than
    :data:`MAX_NAME_LENGTH` characters.
    """
    if not isinstance(value, str) or value == "":
        raise UsageError(f"{what} is empty", hint=f"give a non-empty {what}")
    if len(value) > MAX_NAME_LENGTH:
        raise UsageError(f"{what} is {len(value)} characters long, the limit is {MAX_NAME_LENGTH}",
                         hint=f"use a shorter {what}")
    if value in (".", ".."):
        raise UsageError(f"{what} {value!r} is not allowed", hint="'.' and '..' would escape the base path")
    if "/" in value:
        raise UsageError(f"{what} {value!r} contains '/'",
                         hint=f"a {what} is a single ZooKeeper path segment")
    if _CONTROL.search(value):
        raise UsageError(f"{what} {value!r} contains a control character", hint=f"retype the {what}")
    if value != value.strip():
        raise UsageError(f"{what} {value!r} has leading or trailing whitespace", hint="remove it")
    return value


def validate_service_name(name: str) -> str:
    """Validate a service name (see :func:`validate_segment`)."""
    validate_segment(name, "service name")
    if name == "zookeeper":
        raise UsageError("service name 'zookeeper' is reserved by ZooKeeper", hint="choose another name")
    return name


def validate_instance_id(instance_id: str) -> str:
    """Validate an instance id (see :func:`validate_segment`)."""
    return validate_segment(instance_id, "instance id")


def validate_status(status: str) -> str:
    """Only statuses the Config Service can parse; anything else breaks its API for the service."""
    if status not in VALID_STATUSES:
        raise UsageError(f"status {status!r} is not one the Config Service can parse",
                         hint="use one of " + ", ".join(VALID_STATUSES))
    return status


def url_segment(value: str) -> str:
    """Percent-encode one URL path segment (``/`` included; ``.`` and ``..`` too, so they stay a name).

    Any name read from the registry can be asked about this way: only names the
    operator types are validated (:func:`validate_service_name`).
    """
    if not isinstance(value, str) or value == "":
        raise UsageError("a service name or instance id is empty", hint="give a non-empty name")
    if value in (".", ".."):
        return value.replace(".", "%2E")
    return quote(value, safe="")


def zk_child(base: str, *segments: str) -> str:
    """Join names read from ZooKeeper itself (children of a node) onto ``base``.

    ZooKeeper child names can be anything ZooKeeper accepts (250 characters, a
    leading space, bidi marks); they are one segment by construction, so only what
    could never be a child name is refused (a :class:`ValueError`: a bug, not input).
    """
    path = base.rstrip("/") or ""
    for seg in segments:
        if not seg or "/" in seg or seg in (".", ".."):
            raise ValueError(f"not a ZooKeeper child name: {seg!r}")
        path += "/" + seg
    return path or "/"


def zk_join(base: str, *segments: str) -> str:
    """Join ``base`` and validated ``segments`` into a ZooKeeper path.

    Each segment must pass :func:`validate_segment`, so the result never leaves ``base``.
    """
    path = normalize_base_path(base)
    for seg in segments:
        validate_segment(seg, "path segment")
        path = path.rstrip("/") + "/" + seg
    return path


def normalize_base_path(base: str) -> str:
    """``services`` -> ``/services``; refuses ``..``, empty segments and control characters."""
    if not base:
        raise UsageError("ZooKeeper base path is empty", hint="use e.g. --zk-base /services")
    if not base.startswith("/"):
        base = "/" + base
    if base != "/":
        base = base.rstrip("/")
    if _CONTROL.search(base):
        raise UsageError(f"ZooKeeper base path {base!r} contains a control character", hint="retype it")
    parts = base.split("/")[1:]
    if base != "/" and any(p in ("", ".", "..") for p in parts):
        raise UsageError(f"ZooKeeper base path {base!r} has an empty, '.' or '..' segment",
                         hint="use an absolute path like /services")
    return base


@dataclass(frozen=True)
class ZkHosts:
    """A parsed ZooKeeper connection string."""

    members: tuple[tuple[str, int], ...]
    chroot: str | None = None

    def connection_string(self) -> str:
        """The string kazoo takes: ``h1:2181,h2:2181/chroot``."""
        hosts = ",".join(f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in self.members)
        return hosts + (self.chroot or "")

    def __str__(self) -> str:
        return self.connection_string()


def parse_zk_hosts(value: str, default_port: int = 2181) -> ZkHosts:
    """Parse ``h1:2181,h2,[::1]:2182/chroot`` into members and chroot.

    A member without a port gets ``default_port``. A chroot must pass
    :func:`normalize_base_path`.
    """
    text = (value or "").strip()
    if not text:
        raise UsageError("ZooKeeper hosts are empty", hint="use e.g. --zk localhost:2181")
    chroot = None
    slash = text.find("/")
    if slash >= 0:
        chroot = text[slash:]
        text = text[:slash]
        chroot = normalize_base_path(chroot)
        if chroot == "/":
            chroot = None
    members = []
    for raw in text.split(","):
        item = raw.strip()
        if not item:
            raise UsageError(f"ZooKeeper hosts {value!r} have an empty member", hint="remove the extra comma")
        if item.startswith("["):
            end = item.find("]")
            if end < 0:
                raise UsageError(f"ZooKeeper host {item!r} has an unclosed '['", hint="write [::1]:2181")
            host, rest = item[1:end], item[end + 1:]
            port_text = rest[1:] if rest.startswith(":") else (rest or None)
            if rest and not rest.startswith(":"):
                raise UsageError(f"ZooKeeper host {item!r} is malformed", hint="write [::1]:2181")
        elif item.count(":") == 1:
            host, port_text = item.split(":")
        elif ":" in item:
            raise UsageError(f"ZooKeeper host {item!r} looks like a bare IPv6 address",
                             hint="put IPv6 addresses in brackets: [::1]:2181")
        else:
            host, port_text = item, None
        if not host:
            raise UsageError(f"ZooKeeper host {item!r} has no host name", hint="write host:port")
        port = default_port
        if port_text not in (None, ""):
            port = parse_port(port_text, f"ZooKeeper port in {item!r}")
        members.append((host, port))
    return ZkHosts(tuple(members), chroot)


def parse_port(text: str | int, what: str = "port") -> int:
    """An integer 1..65535, or :class:`UsageError`."""
    try:
        port = int(str(text).strip())
    except ValueError:
        raise UsageError(f"{what} {text!r} is not a number", hint="use an integer from 1 to 65535") from None
    if not 1 <= port <= 65535:
        raise UsageError(f"{what} {port} is out of range", hint="use an integer from 1 to 65535")
    return port


def validate_url(url: str, what: str = "URL") -> str:
    """An http(s) URL with a host and, if given, a port in range. Returns it unchanged."""
    if not isinstance(url, str) or not url.strip():
        raise UsageError(f"{what} is empty", hint="give a URL like http://host:8090")
    if _CONTROL.search(url) or " " in url:
        raise UsageError(f"{what} {url!r} contains whitespace or a control character", hint="retype it")
    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError when out of range or not numeric
    except ValueError as exc:
        raise UsageError(f"{what} {url!r} has a bad port ({exc})", hint="use a port from 1 to 65535") from None
    if parts.scheme not in ("http", "https"):
        raise UsageError(f"{what} {url!r} is not http or https", hint="start it with http:// or https://")
    if not parts.hostname:
        raise UsageError(f"{what} {url!r} has no host", hint="write http://host:port")
    if port == 0:
        raise UsageError(f"{what} {url!r} has port 0", hint="use a port from 1 to 65535")
    return url
