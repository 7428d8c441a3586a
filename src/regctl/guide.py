"""The integration guide's conventions, as code: environment variables -> registration.

Rules (``SERVICE_REGISTRY_INTEGRATION.md``, "How URL Construction Works"):

* ``SERVICE_NAME`` is required.
* Service URL: ``SERVICE_PUBLIC_URL`` with trailing ``/`` stripped when set, else
  ``http://{SERVICE_HOST}:{SERVICE_PORT}``; ``SERVICE_HOST`` defaults to
  ``SERVICE_NAME``. ``SERVICE_PORT`` is therefore required only when
  ``SERVICE_PUBLIC_URL`` is unset (when set, it must still be a valid port).
* Health URL: service URL + ``/health``.
* Instance id: ``SERVICE_INSTANCE_ID``, else ``{SERVICE_NAME}-{pid}`` (the pid of
  the registering process, as the guide's code does).
* Metadata: ``{"instance_id": ..., "status": "healthy"}``.
* ``CONFIG_SERVICE_URL`` defaults to ``http://config-service:8082``.

A missing or bad variable is a :class:`UsageError` naming it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Mapping

from regctl.errors import UsageError
from regctl.names import parse_port, validate_instance_id, validate_service_name, validate_status, validate_url

GUIDE_VARIABLES = ("SERVICE_NAME", "SERVICE_PORT", "SERVICE_HOST", "SERVICE_PUBLIC_URL",
                   "SERVICE_INSTANCE_ID", "CONFIG_SERVICE_URL")
DEFAULT_CONFIG_SERVICE_URL = "http://config-service:8082"


@dataclass(frozen=True)
class Registration:
    """One registration, shaped exactly as the guide's client sends it."""

    service_name: str
    service_url: str
    health_check_url: str | None
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def instance_id(self) -> str | None:
        value = self.metadata.get("instance_id")
        return value if isinstance(value, str) else None

    def payload(self) -> dict:
        """The JSON body of ``POST /register``."""
        return {
            "service_name": self.service_name,
            "service_url": self.service_url,
            "health_check_url": self.health_check_url,
            "service_metadata": dict(self.metadata),
        }

    def validate(self) -> "Registration":
        """Check name, instance id, URLs and status before anything is sent."""
        validate_service_name(self.service_name)
        validate_url(self.service_url, "service URL")
        if self.health_check_url is not None:
            validate_url(self.health_check_url, "health check URL")
        if self.instance_id is not None:
            validate_instance_id(self.instance_id)
        elif "instance_id" in self.metadata:
            raise UsageError("metadata instance_id is not a string", hint="give {instance_id} as text")
        if "status" in self.metadata:
            status = self.metadata["status"]
            if not isinstance(status, str):
                raise UsageError(f"status {status!r} is not a string", hint="use e.g. {status_example}")
            validate_status(status)
        return self


def service_url_from_env(env: Mapping[str, str]) -> str:
    """The guide's service URL for ``env`` (see module docstring)."""
    name = _required(env, "SERVICE_NAME")
    public = env.get("SERVICE_PUBLIC_URL", "")
    port_text = env.get("SERVICE_PORT", "")
    if port_text.strip():
        port = _port(port_text)
    else:
        port = None
    if public.strip():
        url = public.strip().rstrip("/")
        _url(url, "SERVICE_PUBLIC_URL")
        return url
    if port is None:
        raise UsageError("SERVICE_PORT is not set", where="environment",
                         hint="set SERVICE_PORT (e.g. 8090) or SERVICE_PUBLIC_URL")
    host = env.get("SERVICE_HOST", "").strip() or name
    url = f"http://{host}:{port}"
    _url(url, "SERVICE_HOST")
    return url


def registration_from_env(env: Mapping[str, str] | None = None, pid: int | None = None,
                          extra_metadata: Mapping[str, Any] | None = None) -> Registration:
    """The registration a guide-following service would send, from its environment."""
    env = os.environ if env is None else env
    name = _required(env, "SERVICE_NAME")
    try:
        validate_service_name(name)
    except UsageError as exc:
        raise UsageError(f"SERVICE_NAME: {exc.message}", where="environment", hint=exc.hint) from None
    url = service_url_from_env(env)
    instance_id = env.get("SERVICE_INSTANCE_ID", "").strip() or f"{name}-{os.getpid() if pid is None else pid}"
    try:
        validate_instance_id(instance_id)
    except UsageError as exc:
        raise UsageError(f"SERVICE_INSTANCE_ID: {exc.message}", where="environment", hint=exc.hint) from None
    metadata = {"instance_id": instance_id, "status": "healthy", **dict(extra_metadata or {})}
    return Registration(name, url, url + "/health", metadata)


def config_service_url_from_env(env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    return (env.get("CONFIG_SERVICE_URL", "").strip() or DEFAULT_CONFIG_SERVICE_URL).rstrip("/")


def _required(env: Mapping[str, str], var: str) -> str:
    value = env.get(var, "").strip()
    if not value:
        raise UsageError(f"{var} is not set", where="environment", hint=f"set {var} (see the integration guide)")
    return value


def _port(text: str) -> int:
    try:
        return parse_port(text, "SERVICE_PORT")
    except UsageError as exc:
        raise UsageError(exc.message, where="environment", hint=exc.hint) from None


def _url(url: str, var: str) -> None:
    try:
        validate_url(url, var)
    except UsageError as exc:
        raise UsageError(exc.message, where="environment", hint=exc.hint) from None
