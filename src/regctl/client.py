"""The integration guide's registry client, as a library a microservice can import.

Three pieces, all going through :mod:`regctl.api` (the same calls the CLI makes):

* :class:`ServiceRegistryHttpClient`: the guide's async client, same method names,
  signatures and semantics: ``register`` returns the instance id or None,
  ``deregister`` True or False, ``discover_url`` a URL or None. It never raises;
  a failure is a logged warning.
* :class:`ServiceRegistryClient`: its synchronous twin (same method names).
* :func:`registered_service`: an async context manager that registers from the
  guide's environment variables on enter and deregisters on exit, never raising,
  so a FastAPI lifespan needs two lines::

      @asynccontextmanager
      async def lifespan(app: FastAPI):
          async with registered_service(metadata={"version": "1.4.0"}):
              yield

  (:func:`registered_service_sync` does the same for synchronous programs.)

The Config Service URL is ``base_url=...`` when given, else ``CONFIG_SERVICE_URL``,
else ``http://config-service:8082`` (the guide's default).
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass
from typing import Any, AsyncIterator, Dict, Iterator, Mapping, Optional

from regctl.api import (
    AsyncRegistryApi,
    RegistryApi,
    deregister_call,
    register_call,
    url_call,
)
from regctl.errors import NotFound, RegctlError
from regctl.guide import DEFAULT_CONFIG_SERVICE_URL, Registration, config_service_url_from_env, registration_from_env

__all__ = ["ServiceRegistryHttpClient", "ServiceRegistryClient", "RegisteredService", "registered_service",
           "registered_service_sync"]

logger = logging.getLogger(__name__)


def _payload(service_name: str, service_url: str, health_check_url: Optional[str],
             service_metadata: Optional[Dict[str, Any]]) -> dict:
    # exactly the guide's body: metadata is {} when not given
    return {
        "service_name": service_name,
        "service_url": service_url,
        "health_check_url": health_check_url,
        "service_metadata": service_metadata or {},
    }


class _Common:
    def __init__(self, base_url: Optional[str] = None, *, headers: Optional[Mapping[str, str]] = None,
                 verify: "bool | str" = True, env: Optional[Mapping[str, str]] = None) -> None:
        if base_url:
            self.base_url = base_url.rstrip("/")
        else:
            self.base_url = config_service_url_from_env(os.environ if env is None else env)
        self.headers = dict(headers or {})
        self.verify = verify

    @property
    def _registry_base(self) -> str:
        """The guide client's attribute: ``{base}/api/v1/registry``."""
        from regctl.api import PREFIX

        return self.base_url + PREFIX

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r})"


class ServiceRegistryHttpClient(_Common):
    """The guide's ``ServiceRegistryHttpClient``: async, never raises.

    ``ServiceRegistryHttpClient()`` reads ``CONFIG_SERVICE_URL`` (default
    ``http://config-service:8082``); ``ServiceRegistryHttpClient(base_url=...)``
    overrides it. ``headers`` are sent with every request (for a gateway).
    """

    def _api(self, timeout: float) -> AsyncRegistryApi:
        return AsyncRegistryApi(self.base_url, timeout=timeout, headers=self.headers, verify=self.verify)

    async def register(self, service_name: str, service_url: str, health_check_url: Optional[str],
                       service_metadata: Optional[Dict[str, Any]] = None,
                       request_timeout_s: float = 5.0) -> Optional[str]:
        """Register an instance; the instance id, or None (and a logged warning) on failure."""
        try:
            async with self._api(request_timeout_s) as api:
                return await api.execute(register_call(_payload(service_name, service_url, health_check_url,
                                                                service_metadata)))
        except Exception as e:  # never raise: the guide's contract
            logger.warning("Service registry registration failed: %s", e)
            return None

    async def deregister(self, service_name: str, instance_id: str, request_timeout_s: float = 5.0) -> bool:
        """Deregister an instance; True when the registry said ok, else False and a logged warning."""
        try:
            async with self._api(request_timeout_s) as api:
                return bool(await api.execute(deregister_call(service_name, instance_id)))
        except Exception as e:
            logger.warning("Service registry deregistration failed: %s", e)
            return False

    async def discover_url(self, service_name: str, request_timeout_s: float = 3.0) -> Optional[str]:
        """A random healthy instance's URL, or None (no healthy instance, or a failure: logged)."""
        try:
            async with self._api(request_timeout_s) as api:
                return await api.execute(url_call(service_name))
        except NotFound:
            return None  # 404: nothing healthy, as in the guide (no warning)
        except Exception as e:
            logger.warning("Service discovery failed for %s: %s", service_name, e)
            return None


class ServiceRegistryClient(_Common):
    """Synchronous twin of :class:`ServiceRegistryHttpClient` (same methods, same semantics)."""

    def _api(self, timeout: float) -> RegistryApi:
        return RegistryApi(self.base_url, timeout=timeout, headers=self.headers, verify=self.verify)

    def register(self, service_name: str, service_url: str, health_check_url: Optional[str],
                 service_metadata: Optional[Dict[str, Any]] = None,
                 request_timeout_s: float = 5.0) -> Optional[str]:
        try:
            with self._api(request_timeout_s) as api:
                return api.execute(register_call(_payload(service_name, service_url, health_check_url,
                                                          service_metadata)))
        except Exception as e:
            logger.warning("Service registry registration failed: %s", e)
            return None

    def deregister(self, service_name: str, instance_id: str, request_timeout_s: float = 5.0) -> bool:
        try:
            with self._api(request_timeout_s) as api:
                return bool(api.execute(deregister_call(service_name, instance_id)))
        except Exception as e:
            logger.warning("Service registry deregistration failed: %s", e)
            return False

    def discover_url(self, service_name: str, request_timeout_s: float = 3.0) -> Optional[str]:
        try:
            with self._api(request_timeout_s) as api:
                return api.execute(url_call(service_name))
        except NotFound:
            return None
        except Exception as e:
            logger.warning("Service discovery failed for %s: %s", service_name, e)
            return None


@dataclass
class RegisteredService:
    """What :func:`registered_service` yields. ``bool(reg)`` is True when registered."""

    service_name: Optional[str]
    instance_id: Optional[str]
    registration: Optional[Registration]
    base_url: str = DEFAULT_CONFIG_SERVICE_URL
    #: why registration did not happen (None when it did)
    error: Optional[str] = None
    deregistered: bool = False

    def __bool__(self) -> bool:
        return self.instance_id is not None


def _prepare(env: Optional[Mapping[str, str]], metadata: Optional[Mapping[str, Any]],
             base_url: Optional[str]) -> "tuple[RegisteredService, Optional[Registration]]":
    environ = os.environ if env is None else env
    url = base_url.rstrip("/") if base_url else config_service_url_from_env(environ)
    try:
        reg = registration_from_env(environ, extra_metadata=metadata).validate()
    except RegctlError as exc:
        logger.warning("Service registry registration skipped: %s", exc)
        return RegisteredService(environ.get("SERVICE_NAME") or None, None, None, url, error=str(exc)), None
    return RegisteredService(reg.service_name, None, reg, url), reg


@contextlib.asynccontextmanager
async def registered_service(env: Optional[Mapping[str, str]] = None,
                             metadata: Optional[Mapping[str, Any]] = None, *,
                             base_url: Optional[str] = None, headers: Optional[Mapping[str, str]] = None,
                             request_timeout_s: float = 5.0) -> AsyncIterator[RegisteredService]:
    """Register from the guide's variables on enter, deregister on exit; never raises.

    ``env`` defaults to ``os.environ`` (``SERVICE_NAME``, ``SERVICE_PORT``,
    ``SERVICE_HOST``, ``SERVICE_PUBLIC_URL``, ``SERVICE_INSTANCE_ID``,
    ``CONFIG_SERVICE_URL``); ``metadata`` is added to the guide's
    ``{"instance_id", "status": "healthy"}``. Yields a :class:`RegisteredService`
    whose ``instance_id`` is None when registration failed (a warning is logged
    and the service runs on, as the guide recommends). Exceptions raised inside
    the ``async with`` body propagate unchanged, after deregistration.
    """
    state, reg = _prepare(env, metadata, base_url)
    client = ServiceRegistryHttpClient(base_url=state.base_url, headers=headers)
    if reg is not None:
        state.instance_id = await client.register(reg.service_name, reg.service_url, reg.health_check_url,
                                                  reg.metadata, request_timeout_s=request_timeout_s)
        if state.instance_id:
            logger.info("Registered %s with service registry as instance %s", reg.service_name, state.instance_id)
        else:
            state.error = "registration failed (see the warning logged above)"
            logger.warning("Service registry registration skipped/failed for %s", reg.service_name)
    try:
        yield state
    finally:
        if state.instance_id and state.service_name:
            state.deregistered = await client.deregister(state.service_name, state.instance_id,
                                                         request_timeout_s=request_timeout_s)
            if state.deregistered:
                logger.info("Deregistered %s from service registry", state.service_name)


@contextlib.contextmanager
def registered_service_sync(env: Optional[Mapping[str, str]] = None,
                            metadata: Optional[Mapping[str, Any]] = None, *,
                            base_url: Optional[str] = None, headers: Optional[Mapping[str, str]] = None,
                            request_timeout_s: float = 5.0) -> Iterator[RegisteredService]:
    """Synchronous twin of :func:`registered_service`."""
    state, reg = _prepare(env, metadata, base_url)
    client = ServiceRegistryClient(base_url=state.base_url, headers=headers)
    if reg is not None:
        state.instance_id = client.register(reg.service_name, reg.service_url, reg.health_check_url,
                                            reg.metadata, request_timeout_s=request_timeout_s)
        if state.instance_id:
            logger.info("Registered %s with service registry as instance %s", reg.service_name, state.instance_id)
        else:
            state.error = "registration failed (see the warning logged above)"
    try:
        yield state
    finally:
        if state.instance_id and state.service_name:
            state.deregistered = client.deregister(state.service_name, state.instance_id,
                                                   request_timeout_s=request_timeout_s)
