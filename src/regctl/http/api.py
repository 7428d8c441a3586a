"""HTTP client for every call of the Config Service's registry API.

Each call is described once as a :class:`Call` (method, path, parameters and a
parser for the answer). :class:`RegistryApi` runs calls synchronously and
:class:`AsyncRegistryApi` asynchronously; both share the request building, the
error translation and the parsing, so the CLI and the service-side library
(:mod:`regctl.client`) are one implementation.

Every httpx failure is turned into a :mod:`regctl.errors` class here: transport
problems are :class:`Unreachable`, unusable answers :class:`BadResponse`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from functools import partial
from typing import Any, Callable, Iterable, Mapping, TypeVar

import httpx

from regctl.http.config import http_options, translate_http_error
from regctl.http.bounded import ACCEPT_ENCODING, BadEncoding, BodyTooLarge, BodyTooSlow, read_body, read_body_async
from regctl.deadline import Cut, Raised, Value, run_all, run_with_deadline
from regctl.errors import BadResponse, NotAuthorized, NotFound, RegctlError, Unreachable, UsageError
from regctl.models import Instance, ServiceRow
from regctl.names import url_segment, validate_instance_id, validate_service_name

log = logging.getLogger(__name__)

PREFIX = "/api/v1/registry"
#: Largest answer body read (decompressed); a bigger one is an unusable answer, not an out-of-memory.
MAX_BODY_BYTES = 32 * 1024 * 1024

T = TypeVar("T")


@dataclass(frozen=True)
class Answer:
    """What the parsers see of an HTTP answer."""

    status_code: int
    content_type: str
    body: bytes
    url: str

    def json(self) -> Any:
        if not self.body.strip():
            raise BadResponse(f"HTTP {self.status_code} with an empty body where JSON was expected",
                              where=self.url, status_code=self.status_code,
                              hint="check that the URL points at the Config Service, not a proxy")
        if "html" in self.content_type.lower() or self.body.lstrip()[:1] == b"<":
            raise BadResponse(f"HTTP {self.status_code} answered HTML, not JSON", where=self.url,
                              status_code=self.status_code, detail=_excerpt(self.body),
                              hint="a proxy or gateway answered; "
                                   "check {config_url} and any gateway headers ({headers})")
        try:
            return json.loads(self.body)
        except (ValueError, RecursionError) as exc:
            raise BadResponse(f"HTTP {self.status_code} answered invalid JSON ({exc.__class__.__name__})",
                              where=self.url, status_code=self.status_code, detail=_excerpt(self.body),
                              hint="check that the URL points at the Config Service") from None

    def detail(self) -> str | None:
        """FastAPI's ``{"detail": ...}`` text, if the body has one."""
        try:
            data = json.loads(self.body)
        except (ValueError, RecursionError):
            return None
        if isinstance(data, dict) and "detail" in data:
            d = data["detail"]
            if isinstance(d, str):
                return d
            if isinstance(d, list):
                msgs = []
                for item in d:
                    if isinstance(item, dict):
                        raw_loc = item.get("loc")
                        raw_loc = raw_loc if isinstance(raw_loc, list) else []
                        loc = ".".join(str(x) for x in raw_loc if x not in ("body", "query"))
                        msgs.append(f"{loc}: {item.get('msg')}" if loc else str(item.get("msg")))
                return "; ".join(msgs) or None
        return None


@dataclass(frozen=True)
class Call:
    """One API call: what to send and how to read the answer."""

    method: str
    path: str
    parse: Callable[[Answer], Any]
    what: str
    params: Mapping[str, str] | None = None
    json_body: Any = None
    prefixed: bool = True
    #: a read deadline of its own (seconds) for a call the server is slow to answer; None: the client's
    timeout: float | None = None
    #: with ``timeout``: what is still running when that deadline cuts the call, e.g. "the Config
    #: Service's health call" -- said instead of blaming the host and port
    still_running: str | None = None


# ---------------------------------------------------------------------------
# Parsers shared by both transports
# ---------------------------------------------------------------------------

def check_status(ans: Answer, what: str, ok: Iterable[int] = (200,)) -> None:
    """Raise the right error for a status outside ``ok``."""
    if ans.status_code in ok:
        return
    detail = ans.detail()
    said = f": {detail}" if detail else ""
    if detail is None and ("html" in ans.content_type.lower() or ans.body.lstrip()[:1] == b"<"):
        said = " (an HTML page: a proxy or gateway answered)"
    if ans.status_code in (401, 403):
        raise NotAuthorized(f"{what} was refused with HTTP {ans.status_code}{said}", where=ans.url,
                            status_code=ans.status_code,
                            hint="the gateway wants credentials: {credentials}")
    if ans.status_code == 422:
        raise UsageError(f"the Config Service rejected the request{said}", where=ans.url, status_code=422,
                         hint="check the values sent{see_dry_run}")
    if ans.status_code == 404 and detail in (None, "Not Found"):
        raise BadResponse(f"{what}: HTTP 404, the endpoint does not exist", where=ans.url,
                          status_code=404, detail=_excerpt(ans.body),
                          hint="check that {config_url} is the Config Service's base URL, without a path")
    if ans.status_code in (502, 503, 504):
        raise BadResponse(f"{what}: HTTP {ans.status_code} from the Config Service or a gateway{said}",
                          where=ans.url, status_code=ans.status_code, detail=_excerpt(ans.body),
                          hint="the Config Service is down or restarting; try again or check its logs")
    raise BadResponse(f"{what}: HTTP {ans.status_code}{said}", where=ans.url,
                      status_code=ans.status_code, detail=_excerpt(ans.body),
                      hint="check the Config Service's logs")


def _expect(data: Any, typ: type, what: str, ans: Answer) -> Any:
    if not isinstance(data, typ):
        raise BadResponse(f"{what}: expected a JSON {typ.__name__}, got {type(data).__name__}",
                          where=ans.url, detail=_excerpt(ans.body),
                          hint="check that the URL points at the Config Service")
    return data


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def instance_from_api(item: Mapping[str, Any], service: str) -> Instance:
    """An :class:`Instance` from one element of ``/services/{name}`` or ``/discover/{name}``."""
    meta = item.get("service_metadata")
    return Instance(
        service_name=_str_or_none(item.get("service_name")) or service,
        instance_id=str(item.get("instance_id", "")),
        service_url=_str_or_none(item.get("service_url")),
        health_check_url=_str_or_none(item.get("health_check_url")),
        status=_str_or_none(item.get("status")) or "unknown",
        metadata=meta if isinstance(meta, dict) else {},
    )


def row_from_api(item: Mapping[str, Any]) -> ServiceRow:
    meta = item.get("service_metadata")
    return ServiceRow(
        service_name=str(item.get("service_name")),
        service_url=_str_or_none(item.get("service_url")),
        health_check_url=_str_or_none(item.get("health_check_url")),
        status=_str_or_none(item.get("status")),
        metadata=meta if isinstance(meta, dict) else {},
        registered_at=None if item.get("registered_at") is None else str(item.get("registered_at")),
    )


def _parse_register(ans: Answer) -> str:
    check_status(ans, "register", ok=(200, 201))
    data = _expect(ans.json(), dict, "register", ans)
    iid = data.get("instance_id")
    if not isinstance(iid, str) or not iid:
        raise BadResponse("register: the answer has no instance_id", where=ans.url, detail=_excerpt(ans.body),
                          hint="the registration may have failed; check the Config Service's logs")
    return iid


def _parse_ok(what: str) -> Callable[[Answer], bool]:
    def parse(ans: Answer) -> bool:
        check_status(ans, what)
        return True
    return parse


def _shape_error(what: str, kind: str, data: list, bad: list, ans: Answer) -> BadResponse:
    """An answer whose elements are not what the contract says: could not check, never "empty"."""
    first = bad[0]
    shown = json.dumps(first, ensure_ascii=True, default=str)[:60] if not isinstance(first, dict) else \
        "an object without " + ("a text service_name" if kind == "services" else "an instance_id")
    return BadResponse(f"{what}: the answer is not a list of {kind}: {len(bad)} of {len(data)} element(s) "
                       f"are not (first: {shown})", where=ans.url, status_code=ans.status_code,
                       detail=_excerpt(ans.body), hint="check that the URL points at the Config Service, "
                                                       "not a proxy or another service")


def _parse_rows(ans: Answer) -> list[ServiceRow]:
    check_status(ans, "list services")
    data = _expect(ans.json(), list, "list services", ans)
    bad = [x for x in data if not (isinstance(x, dict) and isinstance(x.get("service_name"), str))]
    if bad:
        raise _shape_error("list services", "services", data, bad, ans)
    return [row_from_api(x) for x in data]


def _parse_instances(service: str) -> Callable[[Answer], list[Instance]]:
    def parse(ans: Answer) -> list[Instance]:
        check_status(ans, f"instances of {service}")
        data = _expect(ans.json(), list, f"instances of {service}", ans)
        bad = [x for x in data if not (isinstance(x, dict) and x.get("instance_id") not in (None, ""))]
        if bad:
            raise _shape_error(f"instances of {service}", "instances", data, bad, ans)
        return [instance_from_api(x, service) for x in data]
    return parse


def _parse_url(service: str) -> Callable[[Answer], str]:
    def parse(ans: Answer) -> str:
        if ans.status_code == 404 and ans.detail() not in (None, "Not Found"):
            raise NotFound(f"no healthy instance of {service!r} ({ans.detail()})", where=ans.url,
                           reason=ans.detail(), hint="see why with: {inspect}" + service)
        check_status(ans, f"URL of {service}")
        data = _expect(ans.json(), dict, f"URL of {service}", ans)
        url = data.get("url")
        if not isinstance(url, str) or not url:
            raise BadResponse(f"URL of {service}: the answer has no url", where=ans.url,
                              detail=_excerpt(ans.body), hint="check the Config Service's logs")
        return url
    return parse


def _parse_discover(service: str) -> Callable[[Answer], list[dict]]:
    def parse(ans: Answer) -> list[dict]:
        check_status(ans, f"discover {service}")
        data = _expect(ans.json(), list, f"discover {service}", ans)
        bad = [x for x in data if not isinstance(x, dict)]
        if bad:
            raise _shape_error(f"discover {service}", "instances", data, bad, ans)
        return data
    return parse


def _parse_server_health(service: str) -> Callable[[Answer], str]:
    def parse(ans: Answer) -> str:
        check_status(ans, f"server-side health of {service}")
        data = _expect(ans.json(), dict, f"server-side health of {service}", ans)
        return str(data.get("status", "unknown"))
    return parse


def _parse_detailed(service: str) -> Callable[[Answer], dict | None]:
    def parse(ans: Answer) -> dict | None:
        if ans.status_code in (404, 405):
            return None  # older Config Service versions do not have it
        check_status(ans, f"detailed health of {service}")
        return _expect(ans.json(), dict, f"detailed health of {service}", ans)
    return parse


def _parse_raw(ans: Answer) -> Answer:
    """The answer as it came: for calls whose every status means something (see :mod:`regctl.monitor`)."""
    return ans


def _parse_config_health(ans: Answer) -> dict:
    """``GET /health``: 200 with components, or 503 when the check itself broke."""
    if ans.status_code == 503:
        detail = ans.detail() or "Service unhealthy"
        return {"status": "unhealthy", "detail": detail, "http_status": 503}
    check_status(ans, "Config Service health")
    data = _expect(ans.json(), dict, "Config Service health", ans)
    return {**data, "http_status": ans.status_code}


# ---------------------------------------------------------------------------
# Call builders: the whole contract, one function per endpoint. Reads take any
# name (a name read from the registry is asked about whatever it is; url_segment
# encodes it as one path segment); only the operator's names are validated, by
# the commands, and writes validate here.
# ---------------------------------------------------------------------------

def register_call(payload: Mapping[str, Any]) -> Call:
    return Call("POST", "/register", _parse_register, "register", json_body=dict(payload))


def deregister_call(service: str, instance_id: str) -> Call:
    validate_service_name(service)
    validate_instance_id(instance_id)
    return Call("POST", "/deregister", _parse_ok("deregister"), f"deregister {service}/{instance_id}",
                params={"service_name": service, "instance_id": instance_id})


def services_call() -> Call:
    return Call("GET", "/services", _parse_rows, "list services")


def instances_call(service: str) -> Call:
    return Call("GET", f"/services/{url_segment(service)}", _parse_instances(service), f"instances of {service}")


def url_call(service: str) -> Call:
    return Call("GET", f"/services/{url_segment(service)}/url", _parse_url(service), f"URL of {service}")


def discover_call(service: str) -> Call:
    return Call("GET", f"/discover/{url_segment(service)}", _parse_discover(service), f"discover {service}")


def server_health_call(service: str, timeout: float | None = None) -> Call:
    """``POST /services/{name}/health``; ``timeout``: the server's probing gets that long to answer."""
    return Call("POST", f"/services/{url_segment(service)}/health", _parse_server_health(service),
                f"server-side health of {service}", timeout=timeout,
                still_running="the Config Service's health call" if timeout else None)


def server_health_detailed_call(service: str, timeout: float | None = None) -> Call:
    return Call("POST", f"/services/{url_segment(service)}/health/detailed", _parse_detailed(service),
                f"detailed health of {service}", timeout=timeout,
                still_running="the Config Service's detailed health call" if timeout else None)


#: where the later generation's monitor verdicts are read (GET, ``service_id`` query parameter)
MONITOR_PATH = "/internal/health-status"


def monitor_status_call(service: str | None, prefixed: bool = False) -> Call:
    """``GET /internal/health-status?service_id=NAME`` (no parameter: a cheap generation probe).

    The answer comes back raw (an :class:`Answer`): 200, 404, 422 and 503 all mean
    something; :mod:`regctl.monitor` reads them.
    """
    return Call("GET", MONITOR_PATH, _parse_raw,
                f"monitor verdict of {service}" if service is not None else "monitor endpoint probe",
                params={"service_id": service} if service is not None else None, prefixed=prefixed)


def config_health_call() -> Call:
    return Call("GET", "/health", _parse_config_health, "Config Service health", prefixed=False)


# ---------------------------------------------------------------------------
# Transports
# ---------------------------------------------------------------------------

class _Base:
    def __init__(self, base_url: str, *, timeout: float = 5.0, headers: Mapping[str, str] | None = None,
                 verify: bool | str = True) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.headers = dict(headers or {})
        self.verify = verify
        #: False when the caller handed in its own httpx client: sent headers and timeouts per request
        #: then, and the client is the caller's to close
        self._owns_client = True

    def url_for(self, call: Call) -> str:
        return self.base_url + (PREFIX if call.prefixed else "") + call.path

    def limit_for(self, call: Call) -> float:
        """The whole call's deadline, connecting and reading the body included: one ``timeout``,
        or the call's own read deadline plus one timeout."""
        if call.timeout is not None:
            return call.timeout + self.timeout
        return self.timeout

    def _request_kwargs(self, call: Call) -> dict:
        kw: dict[str, Any] = {}
        if call.timeout is not None:  # connecting still gets the usual timeout: a wrong port fails fast
            kw["timeout"] = httpx.Timeout(self.timeout, read=call.timeout)
        elif not self._owns_client:
            kw["timeout"] = self.timeout
        if not self._owns_client:  # the caller's client: this client's HTTP rules per request
            kw["headers"] = {"Accept-Encoding": ACCEPT_ENCODING, **self.headers}
            kw["follow_redirects"] = False
        if call.params:
            kw["params"] = dict(call.params)
        if call.json_body is not None:
            # ASCII escapes, NaN allowed, as the registry itself writes JSON: a lone surrogate or a NaN in
            # metadata is data to send (httpx's own encoder raises on both)
            kw["content"] = json.dumps(call.json_body, separators=(",", ":")).encode("ascii")
            kw["headers"] = {**kw.get("headers", {}), "Content-Type": "application/json"}
        return kw

    def _body_error(self, exc: Exception, call: Call, url: str) -> RegctlError:
        """The bounded reader's refusal (:mod:`regctl.http.bounded`) as a one-line error."""
        if isinstance(exc, BodyTooLarge):
            return BadResponse(f"{call.what}: answer larger than {MAX_BODY_BYTES // 2**20} MiB (decompressed)",
                               where=url, hint="check that the URL points at the Config Service")
        if isinstance(exc, BodyTooSlow):
            return Unreachable(f"{call.what}: answer still arriving after {self.limit_for(call):g}s", where=url,
                               hint="the server or a proxy is stalling; raise {timeout}", out_of_time=True)
        return BadResponse(f"{call.what}: {exc}", where=url, hint="check the Config Service or the proxy before it")

    def _translate(self, exc: Exception, call: Call, url: str) -> RegctlError:
        if call.still_running and isinstance(exc, httpx.ReadTimeout):
            return still_running_error(call, url)
        return translate_http_error(exc, url, self.timeout, call.what)


def still_running_error(call: Call, url: str) -> Unreachable:
    """A slow server-side call cut at its own deadline: the server is working, not unreachable."""
    return Unreachable(f"{call.what}: {call.still_running} is still running after {call.timeout:g}s",
                       where=url, out_of_time=True, still_running_after=call.timeout,
                       hint="the Config Service retries each failing endpoint and still finishes (and writes "
                            "the row's status); raise {server_timeout} to wait for its verdict")


def _excerpt(body: bytes, limit: int = 200) -> str:
    text = body[:limit].decode("utf-8", "replace")
    return " ".join(text.split()) + ("..." if len(body) > limit else "")


class RegistryApi(_Base):
    """Synchronous client. Use as a context manager, or call :meth:`close`.

    Every request has ``timeout`` seconds in all, connecting and the whole body
    included (a body that trickles forever is cut off); once one has run out of
    time, later calls fail at once instead of waiting on the stalled server again.
    """

    def __init__(self, base_url: str, *, timeout: float = 5.0, headers: Mapping[str, str] | None = None,
                 verify: bool | str = True, transport: httpx.BaseTransport | None = None,
                 max_connections: int = 32, client: httpx.Client | None = None) -> None:
        super().__init__(base_url, timeout=timeout, headers=headers, verify=verify)
        self.max_connections = max_connections
        #: set once a call ran out of time: later calls to this (stalled) server fail at once
        self._stalled: "Unreachable | None" = None
        if client is not None:  # the caller's (pooled) client: used as is, never closed here
            self._client = client
            self._owns_client = False
            return
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        self._client = httpx.Client(**http_options(timeout, self.headers, verify), transport=transport,
                                    limits=limits)

    def __enter__(self) -> "RegistryApi":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._owns_client:
            self._client.close()

    def execute(self, call: Call) -> Any:
        """Send ``call`` and parse the answer, all within one ``timeout`` (see the class).

        httpx's timeouts are per phase and per read, so a server trickling header
        or body bytes would never trip them; the request therefore runs in a
        daemon thread and the caller stops waiting at the overall deadline.
        """
        url = self.url_for(call)
        if self._stalled is not None:
            raise Unreachable(f"{call.what}: not asked, {self._stalled.message}", where=self._stalled.where,
                              hint=self._stalled.hint)
        started = time.monotonic()
        limit = self.limit_for(call)
        got = run_with_deadline(lambda: self._fetch(call, url, started + limit), limit + 0.25, name="regctl-http")
        if isinstance(got, Cut):
            if call.still_running:
                raise still_running_error(call, url)
            self._stalled = Unreachable(f"{call.what}: no complete answer within {limit:g}s", where=url,
                                        hint="the server or a proxy is stalling; raise {timeout}", out_of_time=True)
            raise self._stalled
        if isinstance(got, Raised):
            err = got.error
            if isinstance(err, Unreachable) and err.out_of_time and not call.still_running:
                self._stalled = err
            raise err
        ans = got.value
        log.debug("%s %s -> %s in %.0f ms", call.method, url, ans.status_code, (time.monotonic() - started) * 1000)
        return call.parse(ans)

    def _fetch(self, call: Call, url: str, deadline: float, tries: int = 3) -> Answer:
        try:
            with self._client.stream(call.method, url, **self._request_kwargs(call)) as resp:
                body = read_body(resp, MAX_BODY_BYTES, deadline)
                return Answer(resp.status_code, resp.headers.get("content-type", ""), body.data, url)
        except (httpx.ReadError, httpx.RemoteProtocolError) as exc:
            # a kept-alive connection the server had closed (uvicorn closes it after an unhandled 500, so the
            # real Config Service does whenever Redis or PostgreSQL is down): a read is sent again
            if call.method == "GET" and tries > 1 and time.monotonic() < deadline - 0.05:
                log.debug("%s %s: %s on a kept-alive connection; sending it again", call.method, url, exc)
                return self._fetch(call, url, deadline, tries - 1)
            raise self._translate(exc, call, url) from exc
        except (BodyTooLarge, BodyTooSlow, BadEncoding) as exc:
            raise self._body_error(exc, call, url) from None
        except RegctlError:
            raise
        except (httpx.HTTPError, httpx.InvalidURL, OSError) as exc:  # a timeout comes back out_of_time
            raise self._translate(exc, call, url) from exc

    def map(self, calls: list[Call], concurrency: int = 16, return_exceptions: bool = False) -> list[Any]:
        """Run ``calls`` concurrently over this client's pool; results in order.

        The first :class:`RegctlError` is raised, unless ``return_exceptions``,
        which puts errors in the result list instead.
        """
        def one(c: Call) -> Any:
            try:
                return self.execute(c)
            except RegctlError as exc:
                if return_exceptions:
                    return exc
                raise

        if len(calls) <= 1 or concurrency <= 1:
            return [one(c) for c in calls]
        failed: list[Call] = []

        def unless_failed(c: Call) -> Any:
            if failed:  # an error ends the map: calls not sent yet are not sent
                return None
            try:
                return one(c)
            except BaseException:
                failed.append(c)
                raise

        outcomes = run_all([partial(unless_failed, c) for c in calls], max_workers=concurrency, name="regctl-http")
        for got in outcomes:
            if isinstance(got, Raised):
                raise got.error
        return [got.value for got in outcomes if isinstance(got, Value)]  # all of them: none raised

    # convenience wrappers, one per endpoint
    def register(self, payload: Mapping[str, Any]) -> str:
        return self.execute(register_call(payload))

    def deregister(self, service: str, instance_id: str) -> bool:
        return self.execute(deregister_call(service, instance_id))

    def list_services(self) -> list[ServiceRow]:
        return self.execute(services_call())

    def instances(self, service: str) -> list[Instance]:
        return self.execute(instances_call(service))

    def url(self, service: str) -> str:
        return self.execute(url_call(service))

    def discover(self, service: str) -> list[dict]:
        return self.execute(discover_call(service))

    def instances_of(self, services: Iterable[str], concurrency: int = 16) -> "list[list[Instance] | RegctlError]":
        """Each service's instances, or the error reading it, read concurrently; in order."""
        return self.map([instances_call(s) for s in services], concurrency=concurrency, return_exceptions=True)

    def config_health(self) -> dict:
        return self.execute(config_health_call())


class AsyncRegistryApi(_Base):
    """Asynchronous twin of :class:`RegistryApi` (same calls, same errors)."""

    def __init__(self, base_url: str, *, timeout: float = 5.0, headers: Mapping[str, str] | None = None,
                 verify: bool | str = True, transport: httpx.AsyncBaseTransport | None = None,
                 client: httpx.AsyncClient | None = None) -> None:
        super().__init__(base_url, timeout=timeout, headers=headers, verify=verify)
        if client is not None:  # the caller's (pooled) client: used as is, never closed here
            self._client = client
            self._owns_client = False
            return
        self._client = httpx.AsyncClient(**http_options(timeout, self.headers, verify), transport=transport)

    async def __aenter__(self) -> "AsyncRegistryApi":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    async def execute(self, call: Call) -> Any:
        url = self.url_for(call)

        async def fetch(tries: int = 3) -> Answer:
            while True:
                try:
                    async with self._client.stream(call.method, url, **self._request_kwargs(call)) as resp:
                        body = await read_body_async(resp, MAX_BODY_BYTES)
                        return Answer(resp.status_code, resp.headers.get("content-type", ""), body.data, url)
                except (httpx.ReadError, httpx.RemoteProtocolError) as exc:
                    # as the synchronous twin: a read on a kept-alive connection the server had closed is
                    # sent again (within the same overall deadline)
                    tries -= 1
                    if call.method != "GET" or tries < 1:
                        raise
                    log.debug("%s %s: %s on a kept-alive connection; sending it again", call.method, url, exc)

        started = time.monotonic()
        try:
            # the same slack as the synchronous twin: httpx's own timeout, when it is the one, speaks first
            ans = await asyncio.wait_for(fetch(), self.limit_for(call) + 0.25)
        except (BodyTooLarge, BodyTooSlow, BadEncoding) as exc:
            raise self._body_error(exc, call, url) from None
        except asyncio.TimeoutError as exc:
            if call.still_running:
                raise still_running_error(call, url) from exc
            raise Unreachable(f"{call.what}: no complete answer within {self.limit_for(call):g}s", where=url,
                              hint="the server or a proxy is stalling; raise {timeout}", out_of_time=True) from exc
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise self._translate(exc, call, url) from exc
        except OSError as exc:
            raise self._translate(exc, call, url) from exc
        log.debug("%s %s -> %s in %.0f ms", call.method, url, ans.status_code, (time.monotonic() - started) * 1000)
        return call.parse(ans)

    async def register(self, payload: Mapping[str, Any]) -> str:
        return await self.execute(register_call(payload))

    async def deregister(self, service: str, instance_id: str) -> bool:
        return await self.execute(deregister_call(service, instance_id))

    async def url(self, service: str) -> str:
        return await self.execute(url_call(service))

    async def instances(self, service: str) -> list[Instance]:
        return await self.execute(instances_call(service))

