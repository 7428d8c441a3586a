"""The one HTTP configuration for talking to the Config Service, and its errors in regctl's words.

Used by :mod:`regctl.http.api` (every command), doctor, and mirrored by shell
completion's standard-library lookup (:func:`regctl.cli.completion.lookup._from_api`):

* credentials (headers, tokens) go to the Config Service's host only: redirects
  are never followed (a 3xx is an answer, reported as such);
* proxies come from ``HTTP_PROXY``/``HTTPS_PROXY``/``ALL_PROXY``/``NO_PROXY``, as in curl;
* only ``gzip``/``deflate`` are asked for: :mod:`regctl.http.bounded` decompresses
  those itself, within its size limit.
"""

from __future__ import annotations

import socket
import ssl
from typing import Mapping

import httpx

from regctl.errors import BadResponse, RegctlError, Unreachable, UsageError
from regctl.http.bounded import ACCEPT_ENCODING


def ssl_verify(verify: "bool | str | ssl.SSLContext") -> "bool | ssl.SSLContext":
    """httpx's ``verify``: True/False as given, a CA bundle path as an SSL context trusting only it."""
    if isinstance(verify, str):
        try:
            return ssl.create_default_context(cafile=verify)
        except (OSError, ssl.SSLError) as exc:
            raise UsageError(f"cannot load the CA bundle ({type(exc).__name__}: {exc})", where=verify,
                             hint="give a PEM file of CA certificates: {ca_bundle}") from None
    return verify


def http_options(timeout: float, headers: Mapping[str, str], verify: "bool | str | ssl.SSLContext") -> dict:
    """The one HTTP configuration for talking to the Config Service (commands, doctor, completion's twin
    in :func:`regctl.cli.completion.lookup._from_api` follows the same rules): credentials only for this host,
    so redirects are never followed; proxies from HTTP(S)_PROXY/NO_PROXY; only encodings the bounded
    reader decompresses itself."""

    return {"timeout": timeout, "headers": {"Accept-Encoding": ACCEPT_ENCODING, **dict(headers)},
            "verify": ssl_verify(verify), "follow_redirects": False, "trust_env": True}


def translate_http_error(exc: Exception, url: str, timeout: float, what: str = "request") -> RegctlError:
    """Turn an httpx/OS exception into a one-line :class:`RegctlError`."""
    if isinstance(exc, httpx.InvalidURL):  # the URL is built from the configured base URL: the operator's value
        return UsageError(f"{what}: the URL is not valid ({_short(exc)})", where=url,
                          hint="check {config_url_sources}")
    try:
        host = httpx.URL(url).host if url else "?"
    except httpx.InvalidURL:
        host = "?"
    detail = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, httpx.TimeoutException):
        phase = {"ConnectTimeout": "connecting", "ReadTimeout": "waiting for the answer",
                 "WriteTimeout": "sending", "PoolTimeout": "waiting for a connection"}.get(type(exc).__name__, "")
        return Unreachable(f"{what}: no answer within {timeout:g}s" + (f" while {phase}" if phase else ""),
                           where=url, detail=detail, out_of_time=True,
                           hint="check that the host and port are right and reachable; raise {timeout} if it is slow")
    if isinstance(exc, httpx.ConnectError) or isinstance(exc, OSError):
        text = str(exc).lower()
        cause = exc.__cause__ or exc.__context__
        if _is_dns_error(exc) or any(s in text for s in ("name or service not known", "nodename nor servname",
                                                          "temporary failure in name resolution",
                                                          "no address associated", "name resolution")):
            hint = "check the host name"
            if host == "config-service":
                hint = ("'config-service' only resolves inside the Docker network; from the host use "
                        "{localhost_url}")
            return Unreachable(f"{what}: cannot resolve host {host!r}", where=url, detail=detail, hint=hint)
        if _in_chain(exc, ssl.SSLCertVerificationError) or "certificate verify failed" in text:
            reason = _cert_reason(exc)
            return Unreachable(f"{what}: TLS certificate verification failed ({reason})", where=url,
                               detail=detail,
                               hint="pass the CA that signed the server's certificate with {ca_bundle}; "
                                    "{insecure} skips the check")
        if isinstance(cause, ssl.SSLError) or "ssl" in text or "certificate" in text:
            return Unreachable(f"{what}: TLS handshake failed ({_short(exc)})", where=url, detail=detail,
                               hint="use http:// if the server has no TLS; for a private CA pass {ca_bundle}")
        if "refused" in text or _in_chain(exc, ConnectionRefusedError):
            return Unreachable(f"{what}: connection refused", where=url, detail=detail,
                               hint="is the Config Service running on that port? check {config_url} or CONFIG_SERVICE_URL")
        return Unreachable(f"{what}: cannot connect ({_short(exc)})", where=url, detail=detail,
                           hint="check the host, port and network")
    if isinstance(exc, (httpx.RemoteProtocolError, httpx.DecodingError)):
        return BadResponse(f"{what}: the server broke the HTTP protocol ({_short(exc)})", where=url, detail=detail,
                           hint="check that the URL points at an HTTP server (http vs https, right port)")
    if isinstance(exc, httpx.UnsupportedProtocol):
        return UsageError(f"{what}: unsupported URL {url!r}", hint="use an http:// or https:// URL")
    if isinstance(exc, httpx.HTTPError):
        return Unreachable(f"{what}: {_short(exc)}", where=url, detail=detail, hint="check the network")
    return Unreachable(f"{what}: {_short(exc)}", where=url, detail=detail, hint="check the network")


def _cert_reason(exc: BaseException) -> str:
    """``unable to get local issuer certificate`` style text from an SSL verification error."""
    seen = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, ssl.SSLCertVerificationError) and getattr(e, "verify_message", None):
            return str(e.verify_message)
        e = e.__cause__ or e.__context__
    text = str(exc)
    if "certificate verify failed:" in text:
        return text.split("certificate verify failed:", 1)[1].split("(")[0].strip() or "certificate verify failed"
    return "certificate verify failed"


def _in_chain(exc: BaseException | None, typ: type) -> bool:
    """Whether ``typ`` is anywhere in ``exc``'s cause/context chain (anyio hides "refused" there)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, typ):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _is_dns_error(exc: BaseException) -> bool:
    return _in_chain(exc, socket.gaierror)


def _short(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:160]
