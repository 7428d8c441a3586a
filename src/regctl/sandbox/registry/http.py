"""The HTTP layer of the sandbox registry: FastAPI-compatible routing, validation and errors.

Stdlib ``http.server`` only. :class:`Handler` is subclassed per server with a
``registry`` attribute (a :class:`regctl.sandbox.registry.server.RegistryServer`) that does
the work; this module knows no ZooKeeper paths.

Answers are what the real service's FastAPI/Starlette stack sends: ``{"detail": ...}``
JSON for what its handlers raise (404, 405, 422, the 503 of ``/health``), and for
anything unhandled (Redis or PostgreSQL down, a bad stored status, a ZooKeeper
error) Starlette's **plain-text** ``500 Internal Server Error``; the cause goes to
the sandbox's log only, as it goes to uvicorn's log.
"""

from __future__ import annotations

import json
import logging
import random
import socket
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

log = logging.getLogger("regctl.sandbox.registry")

#: the registry's own random source: picking an instance never touches global random state
_RANDOM = random.Random()


class HTTPError(Exception):
    """An answer other than 2xx: status code and FastAPI-style ``detail``."""

    def __init__(self, status: int, detail: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers or {}


class ZkUnavailable(Exception):
    """ZooKeeper is not connected or did not answer in time."""


class InvalidStatus(ValueError):
    """An instance the real service's models reject (a status outside its ServiceStatus enum,
    a field of the wrong type): a ``ValueError`` there, so ``/health/detailed`` answers 400."""


class InvalidNode(Exception):
    """An instance node whose JSON is not an object (an ``AttributeError`` in the real service)."""


class BackendDown(Exception):
    """Redis, PostgreSQL or the service's own ZooKeeper client is unusable: the call answers 500."""

    def __init__(self, component: str, message: str) -> None:
        super().__init__(message)
        self.component = component


#: Starlette's answer to an unhandled exception (text/plain)
INTERNAL_ERROR = "Internal Server Error"


def iso_now() -> str:
    """``2026-11-29T03:46:59.109964+00:00``: ``datetime.isoformat()``, as the later generation writes it."""
    return datetime.now(timezone.utc).isoformat()


def _missing(loc: list, body: Any = None) -> dict:
    return {"type": "missing", "loc": loc, "msg": "Field required", "input": body}


def validate_registration(raw: bytes) -> dict:
    """Parse and validate a register body like FastAPI + pydantic v2 would, or raise 422."""
    if not raw.strip():
        raise HTTPError(422, [_missing(["body"])])
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        pos = getattr(exc, "pos", 0)
        msg = getattr(exc, "msg", str(exc))
        raise HTTPError(422, [{"type": "json_invalid", "loc": ["body", pos], "msg": "JSON decode error",
                               "input": {}, "ctx": {"error": msg}}]) from None
    if not isinstance(body, dict):
        raise HTTPError(422, [{"type": "model_attributes_type", "loc": ["body"],
                               "msg": "Input should be a valid dictionary or object to extract fields from",
                               "input": body}])
    errors = []
    for field in ("service_name", "service_url"):
        if field not in body:
            errors.append(_missing(["body", field], body))
        elif not isinstance(body[field], str):
            errors.append({"type": "string_type", "loc": ["body", field],
                           "msg": "Input should be a valid string", "input": body[field]})
    hc = body.get("health_check_url")
    if hc is not None and not isinstance(hc, str):
        errors.append({"type": "string_type", "loc": ["body", "health_check_url"],
                       "msg": "Input should be a valid string", "input": hc})
    meta = body.get("service_metadata")
    if meta is not None and not isinstance(meta, dict):
        errors.append({"type": "dict_type", "loc": ["body", "service_metadata"],
                       "msg": "Input should be a valid dictionary", "input": meta})
    if errors:
        raise HTTPError(422, errors)
    return {"service_name": body["service_name"], "service_url": body["service_url"],
            "health_check_url": hc, "service_metadata": meta}


def _drop_none(d: dict) -> dict:
    return {k: v for k, v in d.items() if v is not None}


class Handler(BaseHTTPRequestHandler):
    registry: Any  # RegistryServer; set on the subclass made by RegistryServer.start
    protocol_version = "HTTP/1.1"
    server_version = "regctl-sandbox-registry"
    timeout = 15

    def log_message(self, fmt: str, *args) -> None:
        if self.registry.verbose:
            log.debug("%s %s", self.address_string(), fmt % args)

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None, *,
              content_type: str = "application/json") -> None:
        if body is None:
            data = b""
        elif content_type == "application/json":
            data = json.dumps(body, separators=(",", ":")).encode("utf-8")
        else:
            data = str(body).encode("utf-8")
        self.send_response(status)
        if body is not None:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        keep_alive = getattr(self.registry, "keep_alive", False)  # as uvicorn does; off by default
        if not keep_alive:
            self.send_header("Connection", "close")
        elif not getattr(self, "_nodelay", False):  # headers and body go out as two writes: no Nagle wait
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._nodelay = True
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD" and data:
            self.wfile.write(data)
        if not keep_alive:
            self.close_connection = True

    def _internal_error(self, exc: BaseException) -> None:
        """Starlette's answer to an unhandled exception; the cause goes to the log only."""
        log.warning("%s %s: 500 (%s: %s)", self.command, self.path, type(exc).__name__, exc)
        self._send(500, INTERNAL_ERROR, content_type="text/plain; charset=utf-8")

    def _body(self) -> bytes:
        length = self.headers.get("Content-Length")
        if length:
            try:
                return self.rfile.read(max(0, int(length)))
            except ValueError:
                return b""
        return b""

    def _dispatch(self) -> None:
        reg = self.registry
        try:
            delay = float(reg.simulate.get("delay", 0) or 0)
            if delay > 0:
                time.sleep(min(delay, 60))
            seen = reg.seen_headers
            seen.append({k: v for k, v in self.headers.items()})
            del seen[:-100]
            for name, value in reg.required_headers.items():  # a gateway's security dependency
                if self.headers.get(name) != value:
                    raise HTTPError(401, "Not authenticated", {"WWW-Authenticate": "Bearer"})
            split = urlsplit(self.path)
            raw_segments = split.path.split("/")
            segments = [unquote(s) for s in raw_segments]
            query = parse_qs(split.query, keep_blank_values=True)
            body = self._body() if self.command in ("POST", "PUT", "PATCH") else b""
            status, answer = self._route(segments, query, body)
            self._send(status, answer)
        except HTTPError as exc:
            if exc.status == 307:  # Starlette's redirect_slashes: no body
                self._send(exc.status, None, exc.headers)
            else:
                self._send(exc.status, {"detail": exc.detail}, exc.headers)
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception as exc:  # Redis/PostgreSQL/ZooKeeper failures, bad instances: unhandled there too
            if not isinstance(exc, (BackendDown, ZkUnavailable, InvalidStatus, InvalidNode)):
                log.debug("%s %s failed", self.command, self.path, exc_info=True)
            try:
                self._internal_error(exc)
            except OSError:
                pass

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _dispatch

    # routes: (method, pattern) where "{}" matches one non-empty segment
    ROUTES = (
        ("GET", ("",), "root"),
        ("GET", ("health",), "health"),
        ("GET", ("ready",), "ready"),
        ("GET", ("live",), "live"),
        ("POST", ("api", "v1", "registry", "register"), "register"),
        ("POST", ("api", "v1", "registry", "deregister"), "deregister"),
        ("GET", ("api", "v1", "registry", "services"), "list_services"),
        ("GET", ("api", "v1", "registry", "services", "{}"), "get_service"),
        ("GET", ("api", "v1", "registry", "services", "{}", "url"), "get_url"),
        ("POST", ("api", "v1", "registry", "services", "{}", "health"), "health_check"),
        ("POST", ("api", "v1", "registry", "services", "{}", "health", "detailed"), "health_detailed"),
        ("GET", ("api", "v1", "registry", "discover", "{}"), "discover"),
        ("GET", ("internal", "health-status"), "health_status"),
    )

    def _match(self, parts: list[str]) -> tuple[list[tuple[str, str, list[str]]], bool]:
        found = []
        for method, pattern, name in self.ROUTES:
            if name == "health_detailed" and not self.registry.detailed_health:
                continue
            if name == "health_status" and self.registry.generation != "later":
                continue
            if len(pattern) != len(parts):
                continue
            params = []
            for pat, part in zip(pattern, parts):
                if pat == "{}":
                    if part == "":
                        break
                    params.append(part)
                elif pat != part:
                    break
            else:
                found.append((method, name, params))
        return found, bool(found)

    def _route(self, segments: list[str], query: dict, body: bytes) -> tuple[int, Any]:
        parts = segments[1:] if segments and segments[0] == "" else segments
        found, _ = self._match(parts)
        if not found and len(parts) > 1 and parts[-1] == "":
            again, _ = self._match(parts[:-1])
            if again:  # Starlette's redirect_slashes: an absolute URL without the slash
                split = urlsplit(self.path)
                host = self.headers.get("Host") or f"{self.registry.host}:{self.registry.port}"
                scheme = "https" if self.registry.ssl_context is not None else "http"
                location = f"{scheme}://{host}{split.path.rstrip('/') or '/'}"
                if split.query:
                    location += "?" + split.query
                raise HTTPError(307, "Temporary Redirect", {"Location": location})
        if not found:
            raise HTTPError(404, "Not Found")
        for method, name, params in found:
            if method == self.command:
                self._route_name = name
                return getattr(self, "_r_" + name)(params, query, body)
        allow = ", ".join(sorted({m for m, _, _ in found}))
        raise HTTPError(405, "Method Not Allowed", {"Allow": allow})

    # ------------------------------------------------------------------ handlers
    def _r_root(self, params, query, body):
        what = "Centralized configuration" + (" and feature flags" if self.registry.generation == "earlier" else "")
        return 200, {"service": "Configuration Management Service", "version": "1.0.0", "status": "running",
                     "description": what + " for microservices"}

    def _r_health(self, params, query, body):
        return 200, self.registry.health_report()

    def _r_ready(self, params, query, body):
        # the real one only checks that its Redis and database clients were created at start-up
        return 200, {"status": "ready"}

    def _r_live(self, params, query, body):
        return 200, {"status": "alive"}

    def _r_register(self, params, query, body):
        req = validate_registration(body)
        return 201, {"instance_id": self.registry.register(req)}

    def _r_deregister(self, params, query, body):
        errors = [{"type": "missing", "loc": ["query", k], "msg": "Field required", "input": None}
                  for k in ("service_name", "instance_id") if k not in query]
        if errors:
            raise HTTPError(422, errors)
        self.registry.deregister(query["service_name"][-1], query["instance_id"][-1])
        return 200, {"status": "ok"}

    def _r_list_services(self, params, query, body):
        return 200, self.registry.list_services()

    def _r_get_service(self, params, query, body):
        return 200, [_drop_none(i) for i in self.registry.instances(params[0])]

    def _r_get_url(self, params, query, body):
        healthy = [i for i in self.registry.instances(params[0]) if i["status"] == "healthy"]
        if not healthy:
            raise HTTPError(404, "No healthy instances found")
        return 200, {"url": _RANDOM.choice(healthy)["service_url"]}

    def _r_discover(self, params, query, body):
        out = []
        for inst in self.registry.instances(params[0]):
            out.append({"instance_id": inst["instance_id"], "service_name": inst["service_name"],
                        "service_url": inst["service_url"], "health_check_url": inst["health_check_url"],
                        "status": inst["status"], "service_metadata": inst["service_metadata"],
                        "registered_at": None, "last_health_check": None})
        return 200, out

    def _r_health_check(self, params, query, body):
        return 200, {"status": self.registry.health_check(params[0])}

    def _r_health_detailed(self, params, query, body):
        return 200, self.registry.health_detailed(params[0])

    def _r_health_status(self, params, query, body):
        if "service_id" not in query:
            raise HTTPError(422, [{"type": "missing", "loc": ["query", "service_id"], "msg": "Field required",
                                   "input": None}])
        service_id = query["service_id"][-1]
        if not service_id:
            raise HTTPError(422, [{"type": "string_too_short", "loc": ["query", "service_id"],
                                   "msg": "String should have at least 1 character", "input": "",
                                   "ctx": {"min_length": 1}}])
        return 200, self.registry.monitor_status(service_id)
