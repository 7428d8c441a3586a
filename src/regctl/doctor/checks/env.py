"""Environment checks (area ``env``): the guide's SERVICE_* variables of one service.

They run when ``SERVICE_NAME`` is set in the process environment or ``--env-file``
gives one, and are skipped, saying how to give one, otherwise.
"""

from __future__ import annotations

import socket
import time

import httpx

from regctl.doctor.base import FAIL, PASS, WARN, Check, CheckResult, CheckRun
from regctl.doctor.checks.config import classify_health_answer, classify_http_error
from regctl.doctor.facts import (
    GUIDE_CONFIG_PORT,
    HttpAnswer,
    docker_hint,
    is_docker_name,
    is_ip,
    is_loopback,
    live_instances,
    resolve_host,
    url_parts,
)
from regctl.errors import RegctlError, UsageError
from regctl.guide import DEFAULT_CONFIG_SERVICE_URL, registration_from_env
from regctl.http.bounded import BadEncoding, BodyTooSlow, read_body
from regctl.http.config import http_options
from regctl.names import validate_service_name, validate_url


def env_applies(run: CheckRun) -> CheckResult | None:
    """None when there is an environment to check; else a skip row saying how to give one."""
    c = run.config
    if (c.env.get("SERVICE_NAME") or "").strip():
        return None
    if c.service:
        return run.no_input(f"SERVICE_NAME is not set in the {c.env_source}: no service environment to check",
                            "pass the service's environment with --env-file FILE (its .env or env.template)")
    return run.no_input("no service environment (SERVICE_NAME is not set)",
                        "set SERVICE_NAME or pass --env-file FILE to check a service's variables")


def _env(run: CheckRun, var: str) -> str:
    return (run.config.env.get(var) or "").strip()


def env_registration(run: CheckRun, what: str):
    """``(registration, None)`` from the checked environment, or ``(None, row)``: the skip of
    :func:`env_applies`, or a skip naming ``what`` could not be done without a service URL."""
    skip = env_applies(run)
    if skip:
        return None, skip

    try:
        return registration_from_env(run.config.env, pid=0), None
    except UsageError:
        return None, run.skip(f"no service URL to {what} (see env.service-url)", "fix env.service-url first")


def check_env_required(run: CheckRun) -> CheckResult:
    skip = env_applies(run)
    if skip:
        return skip

    name = _env(run, "SERVICE_NAME")
    src = run.config.env_source
    try:
        validate_service_name(name)
    except UsageError as exc:
        return run.fail(f"SERVICE_NAME {name!r}: {exc.message}", exc.hint or "fix SERVICE_NAME", source=src)
    if not _env(run, "SERVICE_PORT") and not _env(run, "SERVICE_PUBLIC_URL"):
        return run.fail("SERVICE_PORT is not set",
                        "set SERVICE_PORT to the port the service listens on (e.g. SERVICE_PORT=8090); the guide's "
                        "code silently falls back to 8090 when it is missing", source=src)
    if run.config.service and run.config.service != name:
        return run.warn(f"SERVICE_NAME is {name!r} but --service is {run.config.service!r}",
                        "check the right service: drop --service, or pass that service's --env-file", source=src)
    present = [v for v in ("SERVICE_NAME", "SERVICE_PORT", "SERVICE_HOST", "SERVICE_PUBLIC_URL",
                           "SERVICE_INSTANCE_ID", "CONFIG_SERVICE_URL") if _env(run, v)]
    return run.passed(f"set in the {src}: {', '.join(present)}", source=src)


def check_env_port(run: CheckRun) -> CheckResult:
    skip = env_applies(run)
    if skip:
        return skip
    text = _env(run, "SERVICE_PORT")
    if not text:
        return run.skip("SERVICE_PORT is not set" + (" (SERVICE_PUBLIC_URL gives the URL)"
                                                       if _env(run, "SERVICE_PUBLIC_URL") else ""),
                        "see env.required")
    try:
        port = int(text)
    except ValueError:
        return run.fail(f"SERVICE_PORT={text!r} is not a number",
                        "set SERVICE_PORT to the integer port the service listens on, e.g. 8090 (the guide's "
                        "int(os.getenv('SERVICE_PORT')) crashes on this)")
    if not 1 <= port <= 65535:
        return run.fail(f"SERVICE_PORT={port} is out of range", "use a port from 1 to 65535, e.g. 8090")
    return run.passed(f"SERVICE_PORT={port}")


def check_env_public_url(run: CheckRun) -> CheckResult:
    skip = env_applies(run)
    if skip:
        return skip

    url = _env(run, "SERVICE_PUBLIC_URL")
    if not url:
        return run.passed("SERVICE_PUBLIC_URL is not set (optional): the URL is built from SERVICE_HOST and "
                          "SERVICE_PORT")
    try:
        validate_url(url.rstrip("/"), "SERVICE_PUBLIC_URL")
    except UsageError as exc:
        return run.fail(exc.message, (exc.hint or "fix it") + ", e.g. SERVICE_PUBLIC_URL=https://api.example.com/my-service")
    note = " (the trailing / is stripped)" if url.endswith("/") else ""
    return run.passed(f"SERVICE_PUBLIC_URL={url} is a valid URL{note}; it wins over SERVICE_HOST/SERVICE_PORT")


def check_env_service_url(run: CheckRun) -> CheckResult:
    skip = env_applies(run)
    if skip:
        return skip

    try:
        reg = registration_from_env(run.config.env, pid=0)
    except UsageError as exc:
        return run.fail(f"the guide's rules give no URL: {exc.message}", exc.hint or "fix the variables")
    rule = ("SERVICE_PUBLIC_URL" if _env(run, "SERVICE_PUBLIC_URL") else
            "http://{SERVICE_HOST}:{SERVICE_PORT}" if _env(run, "SERVICE_HOST") else
            "http://{SERVICE_NAME}:{SERVICE_PORT} (SERVICE_HOST unset)")
    iid = _env(run, "SERVICE_INSTANCE_ID")
    id_text = f"instance id {iid}" if iid else \
        f"instance id {reg.service_name}-<pid> (SERVICE_INSTANCE_ID unset: a new id on every restart)"
    return run.passed(f"registers {reg.service_url} (health {reg.health_check_url}), {id_text}",
                      service_url=reg.service_url, health_check_url=reg.health_check_url, rule=rule,
                      instance_id=iid or None)


def check_env_config_url(run: CheckRun) -> CheckResult:
    skip = env_applies(run)
    if skip:
        return skip

    raw = _env(run, "CONFIG_SERVICE_URL")
    url = (raw or DEFAULT_CONFIG_SERVICE_URL).rstrip("/")
    try:
        validate_url(url, "CONFIG_SERVICE_URL")
    except UsageError as exc:
        return run.fail(exc.message, (exc.hint or "fix it") + f", e.g. CONFIG_SERVICE_URL={DEFAULT_CONFIG_SERVICE_URL}")
    shown = url if raw else f"{url} (default)"
    if url == run.config.endpoint.config_url.rstrip("/"):
        return run.passed(f"the service uses {shown}, the one doctor checked", service_config_url=url)
    status, said, hint = probe_config_service(run, url)
    return run.result(status, f"the service uses {shown}, not {run.config.endpoint.config_url} (checked above): {said}",
                      hint, service_config_url=url, doctor_config_url=run.config.endpoint.config_url)


#: the most of a /health answer read (decompressed), as for --config-url's own
HEALTH_BODY_MAX = 1024 * 1024


def same_origin(url: str, other: str) -> bool:
    """Whether ``url`` and ``other`` name the same scheme, host and port (where credentials may go)."""
    try:
        a, b = url_parts(url), url_parts(other)
    except Exception:
        return False
    return (a[0].lower(), a[1].lower(), a[2]) == (b[0].lower(), b[1].lower(), b[2])


def probe_config_service(run: CheckRun, url: str) -> tuple[str, str, str | None]:
    """(status, finding, hint) of ``GET {url}/health``: does the service's own Config Service URL answer?"""


    scheme, host, port = url_parts(url)
    if not is_ip(host):
        try:
            resolve_host(host, port, run.step_timeout())
        except socket.gaierror:
            if is_docker_name(host) and not run.ctx.in_container:
                return WARN, f"not checked: {host!r} does not resolve here", docker_hint(host, url)
            return FAIL, f"{host!r} does not resolve", ("the service cannot reach its Config Service: fix "
                                                         "CONFIG_SERVICE_URL's host name")
        except RegctlError as exc:
            return WARN, f"not checked: {exc.message}", exc.hint or "raise --timeout"



    t = run.step_timeout()
    # the operator's token and gateway headers go to the Config Service's own host only: a URL taken from
    # the env file (anyone may have written it) is probed without them unless it is that same host
    headers = dict(run.config.endpoint.headers) if same_origin(url, run.config.endpoint.config_url) else {}
    t0 = time.monotonic()
    try:
        with httpx.Client(**http_options(t, headers, run.config.endpoint.verify)) as client:
            with client.stream("GET", url + "/health") as resp:
                try:
                    body = read_body(resp, HEALTH_BODY_MAX, t0 + t, truncate=True).data
                except BodyTooSlow:
                    raise httpx.ReadTimeout(f"answer still arriving after {t:g}s") from None
                except BadEncoding as exc:
                    raise httpx.DecodingError(str(exc)) from None
                ans = HttpAnswer(url + "/health", resp.status_code, resp.headers.get("content-type", ""), body,
                                 round((time.monotonic() - t0) * 1000, 1), resp.headers.get("server"),
                                 resp.headers.get("location"))
    except Exception as exc:
        said, hint = classify_http_error(exc, scheme, t)
        if "refused" in said:
            hint = (f"nothing listens on {host}:{port}: the service cannot reach its Config Service there; fix "
                    "CONFIG_SERVICE_URL (the guide's is http://config-service:8082 inside Docker)")
        return FAIL, f"GET {url}/health: {said}", hint
    status, said, hint = classify_health_answer(ans, scheme)
    if status == PASS:
        return PASS, f"it answers /health ({said.split(': ', 1)[-1] if ': ' in said else said})", None
    return FAIL, f"GET {url}/health: {said}", hint


def check_env_registered_url(run: CheckRun) -> CheckResult:
    reg, row = env_registration(run, "compare")
    if reg is None:
        return row

    name, want = reg.service_name, reg.service_url.rstrip("/")
    iid = _env(run, "SERVICE_INSTANCE_ID")
    try:
        live = live_instances(run, name)
    except RegctlError as exc:
        return run.skip(f"could not read the instances of {name} ({exc.message})", "see service.registered")
    src = run.config.env_source
    details = {"expected_url": want, "instance_id": iid or None, "source": live.source}
    if iid:
        inst = next((i for i in live.instances if i.instance_id == iid), None)
        if inst is None:
            return run.skip(f"{name}/{iid} is not registered: nothing to compare", "see service.registered",
                            **details)
        got = (inst.service_url or "").rstrip("/")
        if got != want:
            return run.fail(f"the {src} gives {want}, but {name}/{iid} is registered with {got or 'no URL'}",
                            "the running instance registered other settings than this file: check SERVICE_HOST/"
                            "SERVICE_PORT/SERVICE_PUBLIC_URL in the file and in the service's real environment "
                            "(a wrong port here would pass unnoticed otherwise), then restart the service",
                            registered_url=got, **details)
        return run.passed(f"{name}/{iid} is registered with {got}, as the {src} says", registered_url=got,
                          **details)
    if not live.instances:
        return run.skip(f"no live instance of {name}: nothing to compare", "see service.registered", **details)
    urls = sorted({(i.service_url or "").rstrip("/") for i in live.instances})
    if want not in urls:
        return run.fail(f"the {src} gives {want}, but the instance(s) registered under {name} use "
                        f"{', '.join(u or 'no URL' for u in urls[:5])}",
                        "the file's SERVICE_HOST/SERVICE_PORT/SERVICE_PUBLIC_URL differ from what the service "
                        "registered: fix the file or the service's environment; set SERVICE_INSTANCE_ID to "
                        "compare one instance", registered_urls=urls, **details)
    return run.passed(f"an instance registered under {name} uses {want}, as the {src} says", **details)


def check_env_network(run: CheckRun) -> CheckResult:
    reg, row = env_registration(run, "judge")
    if reg is None:
        return row
    svc_host = url_parts(reg.service_url)[1]
    cfg = (_env(run, "CONFIG_SERVICE_URL") or DEFAULT_CONFIG_SERVICE_URL).rstrip("/")
    cfg_host = url_parts(cfg)[1]
    name = reg.service_name
    if is_loopback(svc_host) and is_docker_name(cfg_host):
        return run.warn(f"the service registers {reg.service_url} but reaches the Config Service at {cfg}: "
                        "a Docker setup, where other containers calling localhost reach themselves",
                        f"set SERVICE_HOST={name} (its Docker Compose service name), or SERVICE_PUBLIC_URL to a "
                        "URL the callers can reach", service_url=reg.service_url, config_url=cfg)
    if is_docker_name(svc_host) and is_loopback(cfg_host):
        return run.warn(f"the service registers {reg.service_url} (a Docker name) but reaches the Config Service "
                        f"at {cfg}: it runs outside Docker, where {svc_host!r} does not resolve",
                        "for local runs set SERVICE_HOST=localhost (the guide's Testing section); inside Docker set "
                        f"CONFIG_SERVICE_URL=http://config-service:{GUIDE_CONFIG_PORT}",
                        service_url=reg.service_url, config_url=cfg)
    kind = ("both on Docker names" if is_docker_name(svc_host) and is_docker_name(cfg_host) else
            "both local" if is_loopback(svc_host) and is_loopback(cfg_host) else "no known bad mix")
    return run.passed(f"{reg.service_url} with Config Service {cfg}: {kind}", service_url=reg.service_url,
                      config_url=cfg)


CHECKS: tuple[Check, ...] = (
    Check("env.required", "env", "SERVICE_NAME or SERVICE_PORT missing or invalid", check_env_required),
    Check("env.port", "env", "SERVICE_PORT not an integer from 1 to 65535", check_env_port),
    Check("env.public-url", "env", "SERVICE_PUBLIC_URL not a valid http(s) URL", check_env_public_url),
    Check("env.service-url", "env", "shows the URL, health URL and instance id the guide's rules produce",
          check_env_service_url),
    Check("env.config-url", "env", "CONFIG_SERVICE_URL invalid, or (when it differs from the one checked) not "
          "answering as the Config Service",
          check_env_config_url),
    Check("env.network", "env", "SERVICE_HOST=localhost with a Docker-name CONFIG_SERVICE_URL, and the "
          "reverse", check_env_network),
    Check("env.registered-url", "env", "the URL the environment gives differs from the one registered under "
          "its SERVICE_INSTANCE_ID (or its service name)", check_env_registered_url),
)
