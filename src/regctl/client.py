"""The integration guide's registry client, as a library a microservice can import.

Three pieces, all going through :mod:`regctl.http.api` (the same calls the CLI makes):

* :class:`ServiceRegistryHttpClient`: the guide's async client, same method names,
  signatures and semantics: ``register`` returns the instance id or None,
  ``deregister`` True or False, ``discover_url`` a URL or None. They never raise;
  a failure is a logged warning. ``require_url`` is ``discover_url`` with typed
  outcomes: a URL, or :class:`NoHealthyInstance` (the registry answered: nothing
  healthy) or :class:`RegistryUnavailable` (it could not be asked), both
  :class:`RegistryError`. One pooled ``httpx.AsyncClient`` serves all its
  calls (``async with`` or ``aclose()`` closes it); your own client or transport
  can be passed in.
* :class:`ServiceRegistryClient`: its synchronous twin (same methods, same outcomes,
  same log records).
* :func:`registered_service`: an async context manager that registers from the
  guide's environment variables on enter and deregisters on exit, never raising,
  so a FastAPI lifespan needs two lines::

      @asynccontextmanager
      async def lifespan(app: FastAPI):
          async with registered_service(metadata={"version": "1.4.0"}):
              yield

  (:func:`registered_service_sync` does the same for synchronous programs.)

The package is typed (``py.typed``). The Config Service URL is ``base_url=...`` when given, else ``CONFIG_SERVICE_URL``,
else ``http://config-service:8082`` (the guide's default). Error texts name this
module's parameters (``base_url=``, ``request_timeout_s=``, ``verify=``), never the
command line's flags.

One implementation, two doors: every decision (which call to make, what its
answer means, which typed outcome to raise, what to log in which words) is made
once, by the operations below, which do no I/O. An operation is a generator: it
yields an :class:`_Ask` (a :class:`~regctl.http.api.Call` and its deadline),
is sent the registry's :class:`~regctl.http.api.Answer` (or has the error that
sending raised thrown in at its ``yield``) and returns the method's value. The
sync and the async client only carry asks to the registry over their pooled
``httpx.Client`` / ``httpx.AsyncClient`` and answers back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from dataclasses import dataclass, replace
from typing import Any, AsyncIterator, Callable, Dict, Generator, Iterator, Mapping, NoReturn, Optional, TypeVar

import httpx

from regctl.http.api import (
    PREFIX,
    Answer,
    AsyncRegistryApi,
    Call,
    RegistryApi,
    deregister_call,
    register_call,
    url_call,
)
from regctl.http.config import ssl_verify
from regctl.errors import BadResponse, ExitCode, NotFound, RegctlError, UsageError
from regctl.guide import DEFAULT_CONFIG_SERVICE_URL, Registration, config_service_url_from_env, registration_from_env

__all__ = ["ServiceRegistryHttpClient", "ServiceRegistryClient", "RegisteredService", "registered_service",
           "registered_service_sync", "RegistryError", "NoHealthyInstance", "RegistryUnavailable",
           "InvalidRequest"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: the guide's deadlines: a write (register, deregister) and a lookup (discover_url, require_url)
WRITE_TIMEOUT_S = 5.0
LOOKUP_TIMEOUT_S = 3.0


# --------------------------------------------------------------------------- typed outcomes

class RegistryError(RegctlError):
    """Base of what the library's typed methods raise (:meth:`ServiceRegistryHttpClient.require_url`).

    ``str(err)`` is one line: ``<message> (<url>); try: <hint>``, the hint in this
    library's words (``base_url=``, ``request_timeout_s=``). ``err.message``,
    ``err.where`` (the URL asked) and ``err.hint`` are there separately.
    """


class NoHealthyInstance(RegistryError):
    """The registry answered: the service has no healthy instance (none registered, or none ``healthy``).

    An answer, not a failure: the registry is up. ``service_name`` is the service
    asked about, ``reason`` the registry's own words (``"No healthy instances found"``).
    """

    exit_code = ExitCode.NO

    def __init__(self, service_name: str, *, reason: Optional[str] = None, where: Optional[str] = None,
                 hint: Optional[str] = None) -> None:
        super().__init__(f"no healthy instance of {service_name!r}" + (f" ({reason})" if reason else ""),
                         where=where, hint=hint)
        self.service_name = service_name
        self.reason = reason


class RegistryUnavailable(RegistryError):
    """The registry could not be asked, so nothing is known about the service.

    Refused or unreachable, timed out, or an answer that is not the registry's
    (5xx, an HTML page from a proxy, a gateway's 401/403, a body of the wrong
    shape). ``status_code`` is the HTTP status when something answered (None when
    nothing did), ``timed_out`` whether ``request_timeout_s`` ran out, ``cause`` the
    underlying error (also ``__cause__``).
    """

    exit_code = ExitCode.UNAVAILABLE

    def __init__(self, message: str, *, where: Optional[str] = None, hint: Optional[str] = None,
                 detail: Optional[str] = None, status_code: Optional[int] = None, timed_out: bool = False,
                 cause: Optional[BaseException] = None) -> None:
        super().__init__(message, where=where, hint=hint, detail=detail)
        self.status_code = status_code
        self.timed_out = timed_out
        self.cause = cause


class InvalidRequest(RegistryError):
    """The question itself is wrong: a service name or instance id that cannot be one, or a request the
    registry rejected as invalid (HTTP 422). Asking again will not help; fix the arguments."""

    exit_code = ExitCode.USAGE


def _outcome(exc: BaseException, service_name: Optional[str] = None) -> RegistryError:
    """The typed outcome of a call that raised ``exc`` while being sent or read.

    A 404 naming no healthy instance is :class:`NoHealthyInstance`; a request the
    registry rejected (422) is :class:`InvalidRequest`; anything else, a base URL or
    CA bundle that cannot be used included, is :class:`RegistryUnavailable`.
    """
    if isinstance(exc, RegistryError):
        return exc
    if isinstance(exc, NotFound) and service_name is not None:
        return NoHealthyInstance(service_name, reason=getattr(exc, "reason", None), where=exc.where,
                                 hint=exc.hint_template)
    if isinstance(exc, UsageError) and getattr(exc, "status_code", None) == 422:
        return InvalidRequest(exc.message, where=exc.where, hint=exc.hint_template, detail=exc.detail)
    if isinstance(exc, RegctlError):
        return RegistryUnavailable(exc.message, where=exc.where, hint=exc.hint_template, detail=exc.detail,
                                   status_code=getattr(exc, "status_code", None) if isinstance(exc, BadResponse)
                                   else None,
                                   timed_out=bool(getattr(exc, "out_of_time", False)
                                                  or getattr(exc, "still_running_after", None)),
                                   cause=exc)
    # not one of regctl's errors (e.g. a closed client passed in as client=): still "could not ask"
    return RegistryUnavailable(f"{type(exc).__name__}: {str(exc).strip() or 'no detail'}", cause=exc)


def _invalid(exc: BaseException) -> RegistryError:
    """An argument that cannot be sent (a bad service name or instance id): checked before asking."""
    if isinstance(exc, RegctlError):
        return InvalidRequest(exc.message, where=exc.where, hint=exc.hint_template, detail=exc.detail)
    return InvalidRequest(f"{type(exc).__name__}: {str(exc).strip() or 'no detail'}")


def _call(make: Callable[..., Call], *args: Any) -> Call:
    """``make(*args)``, its refusal of an argument as :class:`InvalidRequest`."""
    try:
        return make(*args)
    except Exception as exc:
        raise _invalid(exc) from exc


def _raise(exc: BaseException, service_name: Optional[str] = None) -> NoReturn:
    err = _outcome(exc, service_name)
    if err is exc:
        raise err
    raise err from exc


# --------------------------------------------------------------------------- the operations (no I/O)

@dataclass(frozen=True)
class _Ask:
    """One request an operation wants sent: ``call`` (its answer comes back as it is) within ``timeout_s``."""

    call: Call
    timeout_s: float


#: an operation: yields what to send, is sent each answer (or has the sending's error thrown in), returns T
Op = Generator[_Ask, Answer, T]


def _as_is(answer: Answer) -> Answer:
    return answer


def _ask(call: Call, timeout_s: float) -> Op[Any]:
    """Send ``call`` (through whichever door drives this) and read its answer with the call's own parser."""
    answer = yield _Ask(replace(call, parse=_as_is), timeout_s)
    return call.parse(answer)


def _register(registration: Registration, timeout_s: float) -> "Op[tuple[Optional[str], Optional[RegistryError]]]":
    """(instance id, None), or (None, why it failed) and a logged warning: never raises (the guide's contract)."""
    try:
        iid: str = yield from _ask(_call(register_call, registration.payload()), timeout_s)
        return iid, None
    except Exception as exc:
        err = _outcome(exc)
        logger.warning("Service registry registration failed: %s", err)
        return None, err


def _deregister(service_name: str, instance_id: str, timeout_s: float) -> Op[bool]:
    """True when the registry said ok, else False and a logged warning."""
    try:
        return bool((yield from _ask(_call(deregister_call, service_name, instance_id), timeout_s)))
    except Exception as exc:
        logger.warning("Service registry deregistration failed: %s", _outcome(exc))
        return False


def _require_url(service_name: str, timeout_s: float) -> Op[str]:
    """A healthy instance's URL, or the typed outcome raised; nothing logged (the outcome is the caller's)."""
    call = _call(url_call, service_name)
    try:
        url: str = yield from _ask(call, timeout_s)
    except Exception as exc:
        _raise(exc, service_name)
    return url


def _discover_url(service_name: str, timeout_s: float) -> Op[Optional[str]]:
    """:func:`_require_url`'s URL, or None: a debug record when none is healthy, else a warning."""
    try:
        return (yield from _require_url(service_name, timeout_s))
    except NoHealthyInstance as err:
        # the guide logs nothing when nothing is healthy (an answer, not a failure); a debug record says so
        logger.debug("No healthy instance of %s: %s", err.service_name, err)
    except RegistryError as err:
        logger.warning("Service discovery failed for %s: %s", service_name, err)
    return None


def _resume(op: Op[T], outcome: "Answer | Exception | None") -> "tuple[Optional[_Ask], Any]":
    """Hand ``op`` the outcome of its last ask (None starts it; an error is raised at its ``yield``):
    (its next ask, None), or (None, its value) once it has returned. What it raises goes to the caller."""
    try:
        if isinstance(outcome, Exception):
            return op.throw(outcome), None
        return op.send(outcome), None  # type: ignore[arg-type]  # None: the first step
    except StopIteration as done:
        return None, done.value


# --------------------------------------------------------------------------- the two doors

class _Common:
    """What both doors hold: where the registry is, how to reach it, and the pool they make."""

    def __init__(self, base_url: Optional[str], headers: Optional[Mapping[str, str]], verify: "bool | str",
                 env: Optional[Mapping[str, str]], max_connections: int, transport: Any) -> None:
        if base_url:
            self.base_url = base_url.rstrip("/")
        else:
            self.base_url = config_service_url_from_env(os.environ if env is None else env)
        self.headers = dict(headers or {})
        self.verify = verify
        self.max_connections = max_connections
        self._transport = transport

    def _pool_options(self) -> Dict[str, Any]:
        """The pool each door makes for itself (not used with ``client=``)."""
        return {"headers": self.headers, "verify": ssl_verify(self.verify), "transport": self._transport,
                "limits": httpx.Limits(max_connections=self.max_connections,
                                       max_keepalive_connections=self.max_connections),
                "follow_redirects": False}

    @property
    def _registry_base(self) -> str:
        """The guide client's attribute: ``{base}/api/v1/registry``."""
        return self.base_url + PREFIX

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r})"


class ServiceRegistryHttpClient(_Common):
    """The guide's ``ServiceRegistryHttpClient``: async, never raises.

    ``ServiceRegistryHttpClient()`` reads ``CONFIG_SERVICE_URL`` (default
    ``http://config-service:8082``); ``ServiceRegistryHttpClient(base_url=...)``
    overrides it. ``headers`` are sent with every request (for a gateway).

    Every call goes through one pooled ``httpx.AsyncClient`` (connections are
    reused), made on first use; close it with ``await client.aclose()`` or use
    ``async with ServiceRegistryHttpClient() as client:``. Pass ``client=`` to use
    your own ``httpx.AsyncClient`` (never closed here; ``verify`` then is its
    business) or ``transport=`` for the one regctl makes.
    """

    def __init__(self, base_url: Optional[str] = None, *, headers: Optional[Mapping[str, str]] = None,
                 verify: "bool | str" = True, env: Optional[Mapping[str, str]] = None,
                 client: Optional[httpx.AsyncClient] = None,
                 transport: Optional[httpx.AsyncBaseTransport] = None, max_connections: int = 32) -> None:
        super().__init__(base_url, headers, verify, env, max_connections, transport)
        self._http: Optional[httpx.AsyncClient] = client
        self._owns_http = client is None
        self._loop: Any = None

    def _pool(self) -> httpx.AsyncClient:
        if not self._owns_http:
            assert self._http is not None
            return self._http
        loop = asyncio.get_running_loop()
        # a pool's connections belong to the event loop that opened them: a new asyncio.run() gets a new pool
        if self._http is None or self._http.is_closed or self._loop is not loop:
            self._http = httpx.AsyncClient(**self._pool_options())
            self._loop = loop
        return self._http

    async def _run(self, op: Op[T]) -> T:
        """Drive ``op`` to its value: each ask sent over the pool, each answer (or error) handed back."""
        ask, value = _resume(op, None)
        while ask is not None:
            ask, value = _resume(op, await self._carry(ask))
        return value  # type: ignore[no-any-return]

    async def _carry(self, ask: _Ask) -> "Answer | Exception":
        try:
            api = AsyncRegistryApi(self.base_url, timeout=ask.timeout_s, headers=self.headers, verify=self.verify,
                                   client=self._pool())
            answer: Answer = await api.execute(ask.call)
            return answer
        except Exception as exc:  # what it means is the operation's decision
            return exc

    async def aclose(self) -> None:
        """Close the pooled connections (not a client passed in as ``client=``)."""
        if not self._owns_http:
            return
        http, self._http = self._http, None
        if http is not None and not http.is_closed:
            await http.aclose()

    async def __aenter__(self) -> "ServiceRegistryHttpClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def register(self, service_name: str, service_url: str, health_check_url: Optional[str],
                       service_metadata: Optional[Dict[str, Any]] = None,
                       request_timeout_s: float = WRITE_TIMEOUT_S) -> Optional[str]:
        """Register an instance; the instance id, or None (and a logged warning) on failure."""
        registration = Registration(service_name, service_url, health_check_url, service_metadata or {})
        iid, _ = await self._run(_register(registration, request_timeout_s))
        return iid

    async def deregister(self, service_name: str, instance_id: str,
                         request_timeout_s: float = WRITE_TIMEOUT_S) -> bool:
        """Deregister an instance; True when the registry said ok, else False and a logged warning."""
        return await self._run(_deregister(service_name, instance_id, request_timeout_s))

    async def discover_url(self, service_name: str, request_timeout_s: float = LOOKUP_TIMEOUT_S) -> Optional[str]:
        """A random healthy instance's URL, or None: the guide's method, which never raises.

        None means either outcome of :meth:`require_url`: no healthy instance (no
        warning, as in the guide) or the registry could not be asked (a logged
        warning). Use :meth:`require_url` to tell them apart.
        """
        return await self._run(_discover_url(service_name, request_timeout_s))

    async def require_url(self, service_name: str, request_timeout_s: float = LOOKUP_TIMEOUT_S) -> str:
        """A random healthy instance's URL (``GET .../services/{name}/url``), or a typed outcome raised.

        Raises :class:`NoHealthyInstance` when the registry answered that the service
        has no healthy instance, :class:`RegistryUnavailable` when it could not be
        asked (refused, timed out after ``request_timeout_s``, 5xx, a proxy's HTML),
        :class:`InvalidRequest` when the question itself is wrong. All are
        :class:`RegistryError`. Nothing is logged: the outcome is yours.
        """
        return await self._run(_require_url(service_name, request_timeout_s))


class ServiceRegistryClient(_Common):
    """Synchronous twin of :class:`ServiceRegistryHttpClient` (same methods, same semantics).

    One pooled ``httpx.Client`` (thread-safe) serves every call; ``close()`` or
    ``with ServiceRegistryClient() as client:`` releases it. ``client=`` /
    ``transport=`` as for the async client.
    """

    def __init__(self, base_url: Optional[str] = None, *, headers: Optional[Mapping[str, str]] = None,
                 verify: "bool | str" = True, env: Optional[Mapping[str, str]] = None,
                 client: Optional[httpx.Client] = None, transport: Optional[httpx.BaseTransport] = None,
                 max_connections: int = 32) -> None:
        super().__init__(base_url, headers, verify, env, max_connections, transport)
        self._http: Optional[httpx.Client] = client
        self._owns_http = client is None

    def _pool(self) -> httpx.Client:
        if self._http is None or (self._owns_http and self._http.is_closed):
            self._http = httpx.Client(**self._pool_options())
        return self._http

    def _run(self, op: Op[T]) -> T:
        """Drive ``op`` to its value: each ask sent over the pool, each answer (or error) handed back."""
        ask, value = _resume(op, None)
        while ask is not None:
            ask, value = _resume(op, self._carry(ask))
        return value  # type: ignore[no-any-return]

    def _carry(self, ask: _Ask) -> "Answer | Exception":
        try:
            api = RegistryApi(self.base_url, timeout=ask.timeout_s, headers=self.headers, verify=self.verify,
                              client=self._pool())
            answer: Answer = api.execute(ask.call)
            return answer
        except Exception as exc:  # what it means is the operation's decision
            return exc

    def close(self) -> None:
        """Close the pooled connections (not a client passed in as ``client=``)."""
        if not self._owns_http:
            return
        http, self._http = self._http, None
        if http is not None:
            http.close()

    def __enter__(self) -> "ServiceRegistryClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def register(self, service_name: str, service_url: str, health_check_url: Optional[str],
                 service_metadata: Optional[Dict[str, Any]] = None,
                 request_timeout_s: float = WRITE_TIMEOUT_S) -> Optional[str]:
        """Register an instance; the instance id, or None (and a logged warning) on failure."""
        registration = Registration(service_name, service_url, health_check_url, service_metadata or {})
        iid, _ = self._run(_register(registration, request_timeout_s))
        return iid

    def deregister(self, service_name: str, instance_id: str, request_timeout_s: float = WRITE_TIMEOUT_S) -> bool:
        """Deregister an instance; True when the registry said ok, else False and a logged warning."""
        return self._run(_deregister(service_name, instance_id, request_timeout_s))

    def discover_url(self, service_name: str, request_timeout_s: float = LOOKUP_TIMEOUT_S) -> Optional[str]:
        """A random healthy instance's URL, or None (see :meth:`ServiceRegistryHttpClient.discover_url`)."""
        return self._run(_discover_url(service_name, request_timeout_s))

    def require_url(self, service_name: str, request_timeout_s: float = LOOKUP_TIMEOUT_S) -> str:
        """A random healthy instance's URL, or :class:`NoHealthyInstance` / :class:`RegistryUnavailable` /
        :class:`InvalidRequest` raised (see :meth:`ServiceRegistryHttpClient.require_url`)."""
        return self._run(_require_url(service_name, request_timeout_s))


# --------------------------------------------------------------------------- registered for a service's lifetime

@dataclass
class RegisteredService:
    """What :func:`registered_service` yields. ``bool(reg)`` is True when registered."""

    service_name: Optional[str]
    instance_id: Optional[str]
    registration: Optional[Registration]
    base_url: str = DEFAULT_CONFIG_SERVICE_URL
    #: why registration did not happen, as one line (None when it did)
    error: Optional[str] = None
    deregistered: bool = False
    #: the same, typed: :class:`RegistryUnavailable` (the registry could not be asked) or
    #: :class:`InvalidRequest` (a guide variable is missing or bad, or the registry rejected the values)
    failure: Optional[RegistryError] = None

    def __bool__(self) -> bool:
        return self.instance_id is not None


def _prepare(env: Optional[Mapping[str, str]], metadata: Optional[Mapping[str, Any]],
             base_url: Optional[str]) -> RegisteredService:
    """The registration the guide's variables describe, not yet sent (a warning when they cannot)."""
    environ = os.environ if env is None else env
    url = base_url.rstrip("/") if base_url else config_service_url_from_env(environ)
    try:
        reg = registration_from_env(environ, extra_metadata=metadata).validate()
    except RegctlError as exc:
        err = _invalid(exc)
        logger.warning("Service registry registration skipped: %s", err)
        return RegisteredService(environ.get("SERVICE_NAME") or None, None, None, url, error=str(err), failure=err)
    return RegisteredService(reg.service_name, None, reg, url)


def _start(state: RegisteredService, timeout_s: float) -> Op[None]:
    """Register ``state.registration`` (if the variables gave one) and record the outcome on ``state``."""
    reg = state.registration
    if reg is None:
        return
    state.instance_id, why = yield from _register(reg, timeout_s)
    if state.instance_id:
        logger.info("Registered %s with service registry as instance %s", reg.service_name, state.instance_id)
    else:
        state.error = f"registration failed: {why}"
        state.failure = why


def _stop(state: RegisteredService, timeout_s: float) -> Op[None]:
    """Deregister what :func:`_start` registered, if it did."""
    if not (state.instance_id and state.service_name):
        return
    state.deregistered = yield from _deregister(state.service_name, state.instance_id, timeout_s)
    if state.deregistered:
        logger.info("Deregistered %s from service registry", state.service_name)


@contextlib.asynccontextmanager
async def registered_service(env: Optional[Mapping[str, str]] = None,
                             metadata: Optional[Mapping[str, Any]] = None, *,
                             base_url: Optional[str] = None, headers: Optional[Mapping[str, str]] = None,
                             request_timeout_s: float = WRITE_TIMEOUT_S,
                             client: Optional[ServiceRegistryHttpClient] = None,
                             transport: Optional[httpx.AsyncBaseTransport] = None,
                             ) -> AsyncIterator[RegisteredService]:
    """Register from the guide's variables on enter, deregister on exit; never raises.

    ``env`` defaults to ``os.environ`` (``SERVICE_NAME``, ``SERVICE_PORT``,
    ``SERVICE_HOST``, ``SERVICE_PUBLIC_URL``, ``SERVICE_INSTANCE_ID``,
    ``CONFIG_SERVICE_URL``); ``metadata`` is added to the guide's
    ``{"instance_id", "status": "healthy"}``. Yields a :class:`RegisteredService`
    whose ``instance_id`` is None when registration failed (``error`` says why, a
    warning is logged and the service runs on, as the guide recommends). Exceptions
    raised inside the ``async with`` body propagate unchanged, after deregistration.
    ``client`` is a :class:`ServiceRegistryHttpClient` to use (and leave open);
    otherwise one is made (with ``transport``, if given) and closed on exit.
    """
    state = _prepare(env, metadata, base_url)
    api = client or ServiceRegistryHttpClient(base_url=state.base_url, headers=headers, transport=transport)
    state.base_url = api.base_url
    try:
        await api._run(_start(state, request_timeout_s))
        try:
            yield state
        finally:
            await api._run(_stop(state, request_timeout_s))
    finally:
        if client is None:
            await api.aclose()


@contextlib.contextmanager
def registered_service_sync(env: Optional[Mapping[str, str]] = None,
                            metadata: Optional[Mapping[str, Any]] = None, *,
                            base_url: Optional[str] = None, headers: Optional[Mapping[str, str]] = None,
                            request_timeout_s: float = WRITE_TIMEOUT_S, client: Optional[ServiceRegistryClient] = None,
                            transport: Optional[httpx.BaseTransport] = None) -> Iterator[RegisteredService]:
    """Synchronous twin of :func:`registered_service`."""
    state = _prepare(env, metadata, base_url)
    api = client or ServiceRegistryClient(base_url=state.base_url, headers=headers, transport=transport)
    state.base_url = api.base_url
    try:
        api._run(_start(state, request_timeout_s))
        try:
            yield state
        finally:
            api._run(_stop(state, request_timeout_s))
    finally:
        if client is None:
            api.close()
