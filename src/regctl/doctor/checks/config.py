"""Config Service checks (area ``config``): reachable (DNS, TCP, HTTP) and healthy, per component."""

from __future__ import annotations

import socket
import ssl
import time
from typing import Callable

import httpx

from regctl.doctor.base import FAIL, PASS, WARN, Check, CheckResult, CheckRun
from regctl.doctor.facts import (
    GUIDE_CONFIG_PORT,
    HttpAnswer,
    config_answers,
    config_connect,
    config_dns,
    config_health_answer,
    config_where,
    err_text,
    generation,
    is_docker_name,
    is_ip,
    is_loopback,
    url_parts,
)
from regctl.errors import RegctlError

#: Component -> (status when it is not healthy, what breaks, what to do)
COMPONENTS = {
    "zookeeper": (FAIL, "registrations and lookups fail: instances live in ZooKeeper",
                  "if ZooKeeper answers regctl, the Config Service's own client gave up: restart the Config Service "
                  "(see cause.zk-client); else check ZooKeeper (regctl doctor zookeeper; docker compose logs "
                  "zookeeper) and the Config Service's ZOOKEEPER_HOSTS"),
    "postgres": (FAIL, "GET /services fails, and every register/deregister answers 500 after its ZooKeeper write",
                 "check PostgreSQL: docker compose ps postgres; docker compose logs postgres (see cause.postgres)"),
    "redis": (FAIL, "every per-service read (/services/NAME, /url, /discover) answers 500: the cache is read first, "
                    "so no service can be discovered",
              "restart or fix Redis: docker compose ps redis; docker compose logs redis (see cause.redis)"),
    "kafka": (WARN, "registry events are not published; the registry works without Kafka",
              "the registry still works; fix Kafka when convenient: docker compose logs kafka"),
}


# ---------------------------------------------------------------------------
# 1. Config Service reachable
# ---------------------------------------------------------------------------

def check_config_dns(run: CheckRun) -> CheckResult:
    _scheme, host, port = url_parts(run.config.endpoint.config_url)
    if is_ip(host):
        return run.passed(f"{host} is an IP address (no name to resolve)", host=host)
    t0 = time.monotonic()
    try:
        addrs = config_dns(run)
    except socket.gaierror as exc:
        if is_docker_name(host) and not run.ctx.in_container:
            hint = (f"{host!r} only resolves inside the Docker network; from the host use the published port: "
                    f"--config-url http://localhost:{port} (or export CONFIG_SERVICE_URL=http://localhost:{port})")
        elif is_docker_name(host):
            hint = (f"this container cannot resolve {host!r}: put it on the Config Service's Docker network "
                    f"(the guide's microservices-network) or use the right service name")
        else:
            hint = f"check the host name in {config_where(run)}"
        return run.fail(f"{host!r} does not resolve ({exc.strerror or exc})", hint, host=host,
                        in_container=run.ctx.in_container)
    ms = round((time.monotonic() - t0) * 1000, 1)
    return run.passed(f"{host} resolves to {', '.join(addrs[:3])}" + (" ..." if len(addrs) > 3 else ""),
                      host=host, addresses=addrs, elapsed_ms=ms)


def check_config_connect(run: CheckRun) -> CheckResult:
    scheme, host, port = url_parts(run.config.endpoint.config_url)
    try:
        config_dns(run)
    except (socket.gaierror, RegctlError) as exc:
        return run.skip(f"not tried: {host!r} does not resolve", "fix config.dns first",
                        error=err_text(exc))
    try:
        conn = config_connect(run)
    except (socket.timeout, TimeoutError) as exc:
        return run.fail(f"no TCP answer from {host}:{port} within {run.config.endpoint.timeout:g}s",
                        "a firewall drops the packets or the host is down; check the address and port, "
                        "or raise --timeout if the network is slow", address=f"{host}:{port}", error=err_text(exc))
    except ConnectionRefusedError:
        if is_loopback(host) and run.ctx.in_container:
            hint = (f"nothing listens on {host}:{port} in this container: inside a container 'localhost' is the "
                    "container itself; if the Config Service runs in another container use its Docker name, "
                    f"e.g. CONFIG_SERVICE_URL=http://config-service:{GUIDE_CONFIG_PORT}")
        elif port != GUIDE_CONFIG_PORT:
            hint = (f"nothing listens on port {port}: is the port right (the guide's is {GUIDE_CONFIG_PORT})? "
                    f"Is the Config Service running (docker compose ps config-service)?")
        else:
            hint = ("nothing listens there: start the Config Service (docker compose up -d config-service) "
                    "and check it with docker compose ps config-service")
        return run.fail(f"connection refused by {host}:{port}", hint, address=f"{host}:{port}",
                        in_container=run.ctx.in_container)
    except OSError as exc:
        return run.fail(f"cannot connect to {host}:{port} ({exc.strerror or exc})",
                        "check the network route to the host (VPN, firewall, Docker network)",
                        address=f"{host}:{port}")
    finding = f"TCP connect to {conn.address}:{port} in {conn.elapsed_ms:g} ms"
    return run.passed(finding, address=conn.address, port=port, elapsed_ms=conn.elapsed_ms)


def _title(body: bytes) -> str | None:
    text = body[:4096].decode("utf-8", "replace")
    lower = text.lower()
    i = lower.find("<title>")
    j = lower.find("</title>", i + 7)
    if i >= 0 and j > i:
        return " ".join(text[i + 7:j].split())[:80] or None
    return None


def classify_health_answer(ans: HttpAnswer, scheme: str) -> tuple[str, str, str | None]:
    """(status, finding, hint) for ``GET /health``'s answer, as far as "is this the Config Service?" goes."""
    code, ctype = ans.status_code, ans.content_type.lower()
    head = ans.body.lstrip()[:1]
    said = f"HTTP {code} in {ans.elapsed_ms:g} ms"
    if "html" in ctype or head == b"<":
        title = _title(ans.body)
        text = ans.body[:2000].decode("utf-8", "replace").lower()
        if "plain http request was sent to https port" in text:
            return (FAIL, f"{said}: the port speaks HTTPS", "use https:// in the Config Service URL")
        return (FAIL, f"{said} answered HTML" + (f" ({title!r})" if title else "") + ", not the Config Service",
                "a proxy or another web server answered: check the URL's host and port (the Config Service's is "
                f"{GUIDE_CONFIG_PORT}); if an HTTP proxy is set (HTTP_PROXY/HTTPS_PROXY), add the host to NO_PROXY")
    if code in (301, 302, 303, 307, 308):
        loc = ans.location or "?"
        if loc.startswith("https://") and scheme == "http":
            return (FAIL, f"{said}: redirects to {loc}", "use https:// in the Config Service URL")
        return (FAIL, f"{said}: redirects to {loc}",
                "give the Config Service's own base URL (no path, no redirecting proxy)")
    if code in (401, 403):
        return (FAIL, f"{said}: refused; a gateway wants credentials",
                "send the gateway's headers with regctl (e.g. an Authorization header in the context config)")
    if code == 404:
        return (FAIL, f"{said}: there is no /health here",
                f"the URL must be the Config Service's base URL without a path, e.g. http://localhost:{GUIDE_CONFIG_PORT}")
    if code == 400 and b"https" in ans.body.lower():
        return (FAIL, f"{said}: {ans.excerpt(80)}", "the port speaks HTTPS: use https:// in the Config Service URL")
    if code in (502, 504):
        return (FAIL, f"{said} from a gateway: the service behind it does not answer",
                "the Config Service behind the proxy is down or restarting: docker compose ps config-service; "
                "docker compose logs config-service")
    data = ans.json()
    if code == 503:
        if isinstance(data, dict) and "detail" in data:
            return (PASS, f"{said} from the Config Service: {data.get('detail')!r} (see config.health)", None)
        return (FAIL, f"{said} without the Config Service's answer: {ans.excerpt(60)!r}",
                "a proxy or load balancer says the backend is unavailable: check the Config Service is running")
    if data is None:
        return (FAIL, f"{said} answered something that is not JSON: {ans.excerpt(60)!r}",
                "this is not the Config Service's /health: check the host and port in the URL")
    if code == 200 and isinstance(data, dict) and "status" in data:
        return (PASS, f"{said} from the Config Service (overall {data.get('status')!r})", None)
    return (FAIL, f"{said} with JSON that is not the Config Service's /health: {ans.excerpt(60)!r}",
            "check that the URL points at the Config Service")


def classify_http_error(exc: BaseException, scheme: str, timeout: float) -> tuple[str, str]:
    """(finding, hint) for a failed ``GET /health``."""
    chain: list[BaseException] = []
    e: BaseException | None = exc
    while e is not None and e not in chain:
        chain.append(e)
        e = e.__cause__ or e.__context__
    text = " ".join(str(x) for x in chain).lower()
    if isinstance(exc, httpx.ReadTimeout):
        return (f"connected, but no answer to GET /health within {timeout:g}s",
                "the server accepts connections but hangs: check the Config Service's logs "
                "(docker compose logs config-service); a proxy may be swallowing the request")
    if isinstance(exc, httpx.TimeoutException):
        return (f"no answer within {timeout:g}s", "check the host and port; raise --timeout if the network is slow")
    if any(isinstance(x, ssl.SSLError) for x in chain) or "ssl" in text or "certificate" in text \
            or "tls" in text:
        if "certificate" in text:
            return ("TLS certificate not accepted", "pass the right CA bundle, or use http:// if the "
                                                    "Config Service has no TLS")
        if scheme == "https":
            return ("TLS handshake failed: the server does not speak HTTPS here",
                    "use http:// (the Config Service speaks plain HTTP unless a gateway adds TLS)")
        return ("TLS error", "check http:// versus https:// in the URL")
    if isinstance(exc, (httpx.RemoteProtocolError, httpx.DecodingError)) or "protocol" in text \
            or "disconnected without sending" in text:
        if scheme == "http":
            return ("the server broke the HTTP protocol (it may expect HTTPS, or not speak HTTP at all)",
                    "try https://, or check that the port is the Config Service's HTTP port "
                    f"(default {GUIDE_CONFIG_PORT})")
        return ("the server broke the HTTP protocol", "check that the port is the Config Service's HTTP port")
    if "refused" in text:
        return ("connection refused", "see config.connect")
    return (err_text(exc), "check the host, port and network")


def check_config_http(run: CheckRun) -> CheckResult:
    scheme, host, port = url_parts(run.config.endpoint.config_url)
    url = run.config.endpoint.config_url.rstrip("/") + "/health"
    try:
        config_connect(run)
    except BaseException as exc:  # the connect row says why
        return run.skip(f"not tried: no TCP connection to {host}:{port}", "fix config.dns / config.connect first",
                        error=err_text(exc))
    try:
        ans = config_health_answer(run)
    except RegctlError as exc:
        return run.fail(exc.message, exc.hint or "raise --timeout", url=url)
    except Exception as exc:
        finding, hint = classify_http_error(exc, scheme, run.config.endpoint.timeout)
        return run.fail(f"GET {url}: {finding}", hint, url=url, error=err_text(exc))
    status, finding, hint = classify_health_answer(ans, scheme)
    details = {"url": url, "status_code": ans.status_code, "content_type": ans.content_type,
               "elapsed_ms": ans.elapsed_ms, "server": ans.server}
    return run.result(status, f"GET /health: {finding}", hint, **details)


# ---------------------------------------------------------------------------
# 2. Config Service healthy
# ---------------------------------------------------------------------------

def health_document(run: CheckRun) -> tuple[dict | None, CheckResult | None]:
    """The /health JSON document, or a skip/fail row saying why there is none."""
    try:
        ans = config_health_answer(run)
    except BaseException as exc:
        return None, run.skip("no /health answer (see config.http)", "fix config.http first", error=err_text(exc))
    status, _finding, _hint = classify_health_answer(ans, url_parts(run.config.endpoint.config_url)[0])
    if status != PASS:
        return None, run.skip("no usable /health answer (see config.http)", "fix config.http first",
                              status_code=ans.status_code)
    data = ans.json()
    return (data if isinstance(data, dict) else None), None


def check_config_health(run: CheckRun) -> CheckResult:
    doc, row = health_document(run)
    if row is not None:
        return row
    assert doc is not None
    if "detail" in doc and "status" not in doc:
        # its handler pings Redis, then runs SELECT 1: either failing gives this bare 503 (ZooKeeper and Kafka
        # are reported in a 200); cause.redis / cause.postgres tell which from the API's answers and claim this row
        return run.fail(f"/health answered 503 {doc.get('detail')!r} with no component report: Redis or PostgreSQL "
                        "is unreachable from the Config Service (it cannot say which)",
                        "see cause.redis / cause.postgres for which one; the Config Service's logs say it too "
                        "(docker compose logs config-service)", detail=doc.get("detail"), bare_503=True)
    overall = doc.get("status")
    bad = {c: doc.get(c) for c in COMPONENTS if c in doc and doc.get(c) != "healthy"}
    if overall == "healthy" and not bad:
        return run.passed("overall 'healthy': " + ", ".join(f"{c} {doc[c]}" for c in COMPONENTS if c in doc),
                          document=doc)
    failing = [c for c in bad if COMPONENTS[c][0] == FAIL]
    if failing:
        return run.fail(f"overall {overall!r}: {', '.join(failing)} down, the registry cannot work",
                        "see the config." + " / config.".join(failing) + " rows for what to do", document=doc)
    if bad:
        return run.passed(f"overall {overall!r}, but only because of {', '.join(bad)}: the registry works "
                          f"without it (see config.{' / config.'.join(bad)})", document=doc)
    return run.warn(f"overall {overall!r} with no unhealthy component listed",
                    "read the Config Service's logs (docker compose logs config-service)", document=doc)


def _component_check(component: str) -> Callable[[CheckRun], CheckResult]:
    severity, breaks, hint = COMPONENTS[component]

    def check(run: CheckRun) -> CheckResult:
        doc, row = health_document(run)
        if row is not None:
            return row
        assert doc is not None
        if "status" not in doc:
            return run.skip(f"/health has no component report ({doc.get('detail')!r})", "see config.health")
        value = doc.get(component)
        if value is None:
            return run.warn(f"{component} is not in the /health report",
                            "an older or different Config Service version; check its logs")
        if value == "healthy":
            return run.passed(f"{component} healthy")
        return run.result(severity, f"{component} {value}: {breaks}", hint, value=value)

    check.__name__ = f"check_config_{component}"
    return check



def check_config_generation(run: CheckRun) -> CheckResult:
    if not config_answers(run):
        return run.skip("not tried: no answer from the Config Service (see config.http)", "fix config.http first")
    info = generation(run)
    details = info.to_dict()
    if info.generation == "later":
        return run.passed("later generation: it runs a health monitor that rewrites the rows' status "
                          f"({info.evidence})", **details)
    if info.generation == "earlier":
        return run.passed(f"earlier generation: no health monitor ({info.evidence})", **details)
    return run.warn(f"cannot tell which generation answers: {info.evidence}",
                    "a proxy in front may hide /internal/health-status; the monitor checks are skipped", **details)


CHECKS: tuple[Check, ...] = (
    Check("config.dns", "config", "the Config Service's host does not resolve ('config-service' outside "
          "Docker: use localhost:8082)", check_config_dns),
    Check("config.connect", "config", "nothing listens (wrong port, not running), packets dropped, "
          "'localhost' inside a container", check_config_connect),
    Check("config.http", "config", "GET /health answered by something else: TLS vs plain HTTP, a proxy's "
          "HTML, a path in the URL, a gateway wanting credentials", check_config_http),
    Check("config.health", "config", "the Config Service reports itself unhealthy, or /health answers 503 "
          "'Service unhealthy'", check_config_health),
    Check("config.zookeeper", "config", "the Config Service lost ZooKeeper (fail)", _component_check("zookeeper")),
    Check("config.postgres", "config", "the Config Service lost PostgreSQL (fail)", _component_check("postgres")),
    Check("config.redis", "config", "the Config Service's cache (Redis) is down (fail: every per-service read "
          "answers 500)",
          _component_check("redis")),
    Check("config.kafka", "config", "Kafka is down (warn: the registry works without it)",
          _component_check("kafka")),
    Check("config.generation", "config", "which generation answers: the later one runs a health monitor "
          "(one cheap GET of /internal/health-status)", check_config_generation),
)
