"""The sandbox registry against the real Config Service: one table of scenarios, run on both, compared.

Each scenario (``SCENARIOS``) has a setup and client calls, written once against a :class:`Side`
(the sandbox registry, in-process, or the real service, a subprocess), and the differences it
ALLOWS, each with its reason. Both sides run it at the same time, on the same srvr-only
ZooKeeper, with the same 8 s session timeout and the same health endpoints; what a client sees
is recorded on each side and compared:

* every HTTP answer: status code, body kind (JSON, plain text, empty) and body, with volatile
  values (timestamps, response times, UUIDs, the side's own URL, error texts past their first
  words) replaced by their type, and lists compared without their order (ZooKeeper's children
  and PostgreSQL's rows come in no promised order);
* ZooKeeper effects: node payloads, ``stat.version``, owners named relative to the service's
  own sessions (``S0`` at start, then the sessions that created later nodes), what exists after
  kill -9 and the old session's expiry, or after a graceful stop.

A difference fails the test unless the scenario lists it (a key pattern) with its reason; a listed
difference that did not happen fails too (unless marked ``may_match``), so the table stays true.
Both generations run where the generation matters; services are shared across scenarios where
state allows (one stack per generation and side), fresh ones where it does not.
"""

from __future__ import annotations

import fnmatch
import json
import re
import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

import httpx
import pytest
from kazoo.client import KazooClient

pytestmark = pytest.mark.slow

SELF_URL = "http://config-service:8082"  # what the real one registers itself under; the sandbox is told the same
SESSION_TIMEOUT = 8.0
PREFIX = "/api/v1/registry"
VOLATILE = {"timestamp", "registered_at", "last_check", "response_time_ms", "last_health_check"}
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


# =========================================================================== what is compared

@dataclass(frozen=True)
class Allowed:
    """A difference the sandbox may show, and why. ``key`` is an fnmatch pattern over observation keys."""

    key: str
    reason: str
    #: timing decides: the two sides may also agree
    may_match: bool = False


@dataclass(frozen=True)
class Scenario:
    name: str
    #: the client calls (and the faults), on one side; ``setup`` runs first
    calls: Callable[["Side"], None]
    setup: Callable[["Side"], None] | None = None
    generations: tuple[str, ...] = ("earlier", "later")
    #: "shared": the generation's long-lived pair; "own": a fresh pair (``options``); "own-pg": a fresh
    #: pair whose real side has a PostgreSQL cluster of its own (the scenario stops it)
    stack: str = "shared"
    options: dict = field(default_factory=dict)
    allowed: tuple[Allowed, ...] = ()


def _type_token(value: Any) -> str:
    if value is None:
        return "<null>"
    if isinstance(value, bool):
        return "<bool>"
    if isinstance(value, (int, float)):
        return "<number>"
    return f"<{type(value).__name__}>"


def normalize(value: Any, self_url: str, key: str | None = None) -> Any:
    """A value as compared: volatile values by type, the side's own URL named, lists without order."""
    if key in VOLATILE:
        return _type_token(value)
    if key == "error_message" and isinstance(value, str):
        return value.split(":", 1)[0]  # "Client error", "HTTP 500", "Timeout": the rest is the library's wording
    if isinstance(value, dict):
        return {k: normalize(v, self_url, k) for k, v in value.items()}
    if isinstance(value, list):
        items = [normalize(v, self_url) for v in value]
        return sorted(items, key=lambda v: json.dumps(v, sort_keys=True))
    if isinstance(value, str):
        if UUID.match(value):
            return "<uuid>"
        return value.replace(self_url, "<self>")
    return value


def observe(resp: httpx.Response) -> dict:
    """What a client sees of one answer (normalized when noted)."""
    ctype = resp.headers.get("content-type", "")
    out: dict[str, Any] = {"status": resp.status_code}
    if not resp.content:
        out["kind"] = "empty"
    elif ctype.startswith("application/json"):
        out["kind"], out["body"] = "json", resp.json()
    else:
        out["kind"], out["body"] = ctype.split(";")[0] or "unknown", resp.text
    if "location" in resp.headers:
        out["location"] = resp.headers["location"]
    return out


# =========================================================================== the two sides

class Side:
    """One registry as a client and an operator see it: HTTP calls, ZooKeeper, the faults."""

    kind = "?"

    def __init__(self, generation: str, zk: KazooClient, endpoints: dict) -> None:
        self.generation = generation
        self.zk = zk
        self.ep = endpoints
        self.obs: dict[str, Any] = {}
        self.scenario = ""
        #: label -> ZooKeeper session id of the service (S0: the one it started with)
        self.sessions: dict[str, int] = {}

    # -- set by subclasses
    url = ""
    base_path = ""

    @property
    def later(self) -> bool:
        return self.generation == "later"

    # -- recording
    def note(self, key: str, value: Any) -> None:
        full = f"{self.scenario}: {key}"
        assert full not in self.obs, f"observation key used twice: {full}"
        self.obs[full] = normalize(value, self.url)

    def call(self, key: str, method: str, path: str, **kw) -> httpx.Response:
        resp = httpx.request(method, self.url + path, timeout=60, follow_redirects=False, **kw)
        self.note(key, observe(resp))
        return resp

    def get(self, key: str, path: str, **kw) -> httpx.Response:
        return self.call(key, "GET", PREFIX + path, **kw)

    def rows(self, key: str, names: tuple[str, ...]) -> None:
        """``GET /services``, only these services' rows: other rows change under a later-generation monitor
        that a restart sets going, at moments that depend on its probes (and the race's winner is random)."""
        resp = httpx.get(self.url + PREFIX + "/services", timeout=60)
        seen = observe(resp)
        if isinstance(seen.get("body"), list):
            seen["body"] = [r for r in seen["body"] if r.get("service_name") in names]
        self.note(key, seen)

    def register(self, key: str, service: str, iid: str | None, url: str, *, status: str | None = "healthy",
                 health: str | None = None, **meta) -> httpx.Response:
        metadata: dict[str, Any] = {} if iid is None else {"instance_id": iid}
        if status is not None:
            metadata["status"] = status
        metadata.update(meta)
        body = {"service_name": service, "service_url": url, "health_check_url": health,
                "service_metadata": metadata}
        return self.call(key, "POST", PREFIX + "/register", json=body)

    def deregister(self, key: str, service: str, iid: str) -> httpx.Response:
        return self.call(key, "POST", PREFIX + "/deregister", params={"service_name": service, "instance_id": iid})

    # -- ZooKeeper
    def path(self, service: str, iid: str | None = None) -> str:
        p = f"{self.base_path}/{service}/instances"
        return p if iid is None else f"{p}/{iid}"

    @property
    def own_path(self) -> str:
        return self.path("config-service", "config-service-1")

    def owner_label(self, owner: int) -> str:
        for label, sid in self.sessions.items():
            if sid == owner:
                return label
        return "another session"

    def node(self, key: str, service: str, iid: str, data: bool = True) -> Any:
        """Note a node: absent, or its version, owner (as a label) and (``data``) payload."""
        p = self.own_path if service == "config-service" and iid == "config-service-1" else self.path(service, iid)
        try:
            raw, stat = self.zk.get(p)
        except Exception:  # NoNodeError
            self.note(key, "absent")
            return None
        seen: dict[str, Any] = {"version": stat.version, "owner": self.owner_label(stat.ephemeralOwner)}
        if data:
            seen["payload"] = json.loads(raw)
        self.note(key, seen)
        return stat

    def children(self, key: str, service: str) -> list[str]:
        try:
            kids = sorted(self.zk.get_children(self.path(service)))
        except Exception:
            kids = ["<no instances directory>"]
        self.note(key, kids)
        return kids

    def stat(self, service: str, iid: str):
        p = self.own_path if service == "config-service" else self.path(service, iid)
        return self.zk.exists(p)

    def remember_session(self, label: str, service: str, iid: str) -> None:
        stat = self.stat(service, iid)
        assert stat is not None, f"{self.kind}: {service}/{iid} is not there to tell the session"
        self.sessions[label] = stat.ephemeralOwner

    def wait_gone(self, key: str, paths: list[tuple[str, str]], timeout: float = 45.0) -> None:
        """Poll until every node is gone (a session's expiry); note whether they went (never how fast)."""
        deadline = time.monotonic() + timeout
        while any(self.stat(s, i) is not None for s, i in paths) and time.monotonic() < deadline:
            time.sleep(0.2)
        self.note(key, {f"{s}/{i}": self.stat(s, i) is None for s, i in paths})

    def wait_answer(self, path: str, pred: Callable[[httpx.Response], bool], timeout: float = 40.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pred(httpx.get(self.url + path, timeout=30)):
                return
            time.sleep(0.2)

    # -- faults (subclasses)
    def redis_down(self) -> None: ...
    def redis_up(self) -> None: ...
    def pg_down(self) -> None: ...
    def crash_restart(self) -> None: ...
    def graceful_stop(self) -> None: ...
    def start_again(self) -> None: ...


class SandboxSide(Side):
    kind = "sandbox"

    def __init__(self, generation, zk, endpoints, make_registry, zk_hosts, dir, **options) -> None:
        super().__init__(generation, zk, endpoints)
        dir.mkdir(parents=True, exist_ok=True)
        self._make = make_registry
        self._kw = {"generation": generation, "zk_hosts": zk_hosts, "zk_timeout": SESSION_TIMEOUT,
                    "self_url": SELF_URL, "simulate": {"kafka": "unhealthy"},  # the real one runs without Kafka
                    "db_path": dir / "db.json", "cache_path": dir / "cache.json",
                    "monitor_interval": options.get("monitor_interval", 3600),
                    "seed_rows": options.get("seed", False) and generation == "later",
                    "base_path": f"/parity-{secrets.token_hex(4)}/services"}
        self._start()
        self.remember_session("S0", "config-service", "config-service-1")

    def _start(self, **extra) -> None:
        reg = self._make(**self._kw, **extra)
        self.server, self.url, self.base_path = reg.server, reg.url, reg.base_path

    def redis_down(self) -> None:
        self.server.faults.add("redis")

    def redis_up(self) -> None:
        self.server.faults.discard("redis")

    def pg_down(self) -> None:
        self.server.faults.add("postgres")

    def crash_restart(self) -> None:
        self.server.restart(linger=True)

    def graceful_stop(self) -> None:
        self.server.stop()

    def start_again(self) -> None:
        self._start(port=self.server.port)


class RealSide(Side):
    kind = "real"

    def __init__(self, generation, zk, endpoints, make_real_service, pg=None, **options) -> None:
        super().__init__(generation, zk, endpoints)
        self.cs = make_real_service(generation, pg=pg, session_timeout=SESSION_TIMEOUT,
                                    monitor_interval=int(options.get("monitor_interval", 3600)),
                                    seed=bool(options.get("seed", False)))
        self.url, self.base_path = self.cs.url, self.cs.base_path
        self.remember_session("S0", "config-service", "config-service-1")

    def redis_down(self) -> None:
        self.cs.redis.stop()

    def redis_up(self) -> None:
        self.cs.redis.start()

    def pg_down(self) -> None:
        self.cs.pg.stop()

    def crash_restart(self) -> None:
        self.cs.kill9()
        self.cs.start()
        # its start-up rewrote the node that was still there (start() only waits for the node to exist)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            stat = self.stat("config-service", "")
            if stat is not None and stat.version >= 1:
                break
            time.sleep(0.05)

    def graceful_stop(self) -> None:
        self.cs.stop()

    def start_again(self) -> None:
        self.cs.start()


# =========================================================================== the scenarios

def healthy_calls(s: Side) -> None:
    ok, bad = s.ep["ok"], s.ep["bad"]
    for what, path in (("health", "/health"), ("ready", "/ready"), ("live", "/live"), ("root", "/")):
        s.call(f"GET {what}", "GET", path)
    s.register("register a-1", "svc-a", "a-1", ok, health=ok + "/health", version="2.1")
    s.register("register a-2 (starting)", "svc-a", "a-2", bad, status="starting", health=bad + "/health")
    s.register("register without status", "nostatus", "n-1", ok, status=None)
    s.register("register without instance_id", "anon", None, ok)
    s.call("register without service_metadata", "POST", PREFIX + "/register",
           json={"service_name": "nometa", "service_url": ok})
    s.node("node a-1", "svc-a", "a-1")
    s.node("node n-1", "nostatus", "n-1")
    s.node("own node at start", "config-service", "config-service-1")
    s.get("services", "/services")
    s.get("instances svc-a", "/services/svc-a")
    s.get("url svc-a", "/services/svc-a/url")
    s.get("discover svc-a", "/discover/svc-a")
    s.get("url nostatus (no status: never handed out)", "/services/nostatus/url")
    s.get("instances anon", "/services/anon")
    for call in ("services/nobody", "services/nobody/url", "discover/nobody"):
        s.get(f"unknown service: {call}", f"/{call}")
    s.call("health call svc-a", "POST", PREFIX + "/services/svc-a/health")
    s.call("health call nobody", "POST", PREFIX + "/services/nobody/health")
    s.register("register zombie", "zombie", "z-1", bad, health=bad + "/health")
    s.call("health call zombie", "POST", PREFIX + "/services/zombie/health")
    s.get("services after the health calls", "/services")
    s.call("deregister without parameters", "POST", PREFIX + "/deregister")
    s.call("deregister without instance_id", "POST", PREFIX + "/deregister", params={"service_name": "svc-a"})
    s.deregister("deregister an unknown id", "svc-a", "never-there")
    s.deregister("deregister a-2", "svc-a", "a-2")
    s.children("svc-a nodes after deregister", "svc-a")
    s.get("instances svc-a after deregister", "/services/svc-a")
    s.get("services after deregister", "/services")
    for what, content in (("empty body", b""), ("not json", b"{not"), ("a list", b"[1]"),
                          ("wrong types", b'{"service_name": 5, "service_url": "x", "health_check_url": 7, '
                                          b'"service_metadata": [1]}'),
                          ("missing fields", b'{"health_check_url": null}')):
        s.call(f"register with {what}", "POST", PREFIX + "/register", content=content,
               headers={"content-type": "application/json"})
    s.get("unknown path", "/nothing")
    s.call("wrong method", "GET", PREFIX + "/register")
    s.call("POST /health", "POST", "/health")
    s.get("trailing slash", "/services/")
    if not s.later:
        s.call("earlier: no health/detailed", "POST", PREFIX + "/services/svc-a/health/detailed")
        s.call("earlier: no internal/health-status", "GET", "/internal/health-status", params={"service_id": "x"})


def bad_status_calls(s: Side) -> None:
    ok = s.ep["ok"]
    s.register("register UP", "upsvc", "u-1", ok, status="UP")
    s.call("register a null status", "POST", PREFIX + "/register",
           json={"service_name": "nullsvc", "service_url": ok, "service_metadata": {"instance_id": "n-1",
                                                                                  "status": None}})
    s.register("register a fine neighbour", "finesvc", "f-1", ok)
    for name in ("upsvc", "nullsvc"):
        s.get(f"instances {name}", f"/services/{name}")
        s.get(f"url {name}", f"/services/{name}/url")
        s.get(f"discover {name}", f"/discover/{name}")
        s.call(f"health call {name}", "POST", PREFIX + f"/services/{name}/health")
        s.call(f"detailed {name}", "POST", PREFIX + f"/services/{name}/health/detailed")
    s.get("the neighbour is fine", "/services/finesvc")
    s.get("services", "/services")
    s.node("node u-1", "upsvc", "u-1")


def stale_cache_calls(s: Side) -> None:
    ok, bad = s.ep["ok"], s.ep["bad"]
    s.register("register s-1", "stale", "s-1", ok)
    s.register("register s-2 (starting)", "stale", "s-2", bad, status="starting")
    s.get("instances (fills the cache)", "/services/stale")
    s.zk.delete(s.path("stale", "s-1"))  # behind the API's back
    s.children("nodes after the delete", "stale")
    s.get("instances after the delete", "/services/stale")
    s.get("url after the delete (the gone one)", "/services/stale/url")
    s.get("discover after the delete", "/discover/stale")
    s.register("register s-3 (evicts)", "stale", "s-3", ok)
    s.get("instances after a write", "/services/stale")


def redis_calls(s: Side) -> None:
    ok = s.ep["ok"]
    s.register("register r-1", "rd", "r-1", ok, health=ok + "/health")
    s.get("instances (cached)", "/services/rd")
    s.redis_down()
    try:
        s.call("GET health", "GET", "/health")
        s.get("services (the database)", "/services")
        s.get("instances", "/services/rd")
        s.get("url", "/services/rd/url")
        s.get("discover", "/discover/rd")
        s.get("another service", "/services/svc-a")
        s.call("health call", "POST", PREFIX + "/services/rd/health")
        s.register("register r-2", "rd", "r-2", ok)
        s.node("node r-2 (written before the 500)", "rd", "r-2")
        s.deregister("deregister r-1", "rd", "r-1")
        s.node("node r-1 (deleted before the 500)", "rd", "r-1")
        s.get("services after the writes", "/services")
        if s.later:
            s.call("detailed", "POST", PREFIX + "/services/rd/health/detailed")
            s.call("internal health-status", "GET", "/internal/health-status", params={"service_id": "rd"})
        s.call("GET ready", "GET", "/ready")
    finally:
        s.redis_up()
    s.get("instances once Redis is back (empty cache)", "/services/rd")
    s.call("GET health once Redis is back", "GET", "/health")


def pg_calls(s: Side) -> None:
    ok = s.ep["ok"]
    s.get("services before (seeded rows on the later generation)", "/services")
    s.register("register p-1", "pg", "p-1", ok, health=ok + "/health")
    s.pg_down()
    s.call("GET health", "GET", "/health")
    s.get("services (the database)", "/services")
    s.get("instances", "/services/pg")
    s.get("url", "/services/pg/url")
    s.get("discover", "/discover/pg")
    s.call("health call (probes, then fails writing the row)", "POST", PREFIX + "/services/pg/health")
    s.call("health call of an unknown service", "POST", PREFIX + "/services/nobody/health")
    s.register("register p-2", "pg", "p-2", ok)
    s.node("node p-2 (live before the 500)", "pg", "p-2")
    s.deregister("deregister p-1", "pg", "p-1")
    s.node("node p-1 (gone before the 500)", "pg", "p-1")
    s.get("instances after the writes", "/services/pg")
    if s.later:
        s.call("detailed", "POST", PREFIX + "/services/pg/health/detailed")
    s.call("GET ready", "GET", "/ready")


def race_calls(s: Side) -> None:
    ok = s.ep["ok"]
    barrier = threading.Barrier(4)

    def one(i: int) -> int:
        body = {"service_name": "racer", "service_url": ok, "health_check_url": None,
                "service_metadata": {"instance_id": f"r-{i}", "status": "healthy"}}
        barrier.wait(10)
        resp = httpx.post(s.url + PREFIX + "/register", json=body, timeout=30)
        return resp.status_code if resp.status_code != 500 or resp.text == "Internal Server Error" else -500

    with ThreadPoolExecutor(4) as pool:
        codes = sorted(pool.map(one, range(4)))
    s.note("4 concurrent first registrations: status codes", codes)
    s.note("every answer is 201 or the plain-text 500", set(codes) <= {201, 500})
    s.children("every node was written", "racer")
    s.get("instances", "/services/racer")


def crash_calls(s: Side) -> None:
    ok = s.ep["ok"]
    s.register("register c-1", "cr", "c-1", ok)
    s.register("register c-2", "cr", "c-2", ok)
    s.get("instances (cached)", "/services/cr")
    before = s.stat("config-service", "")
    s.node("own node before", "config-service", "config-service-1", data=False)
    s.crash_restart()
    after = s.stat("config-service", "")
    s.node("own node after kill -9 and start", "config-service", "config-service-1")
    s.note("own node's mtime moved", bool(before and after and after.mtime > before.mtime))
    s.node("c-1 after the restart", "cr", "c-1", data=False)
    s.get("instances after the restart (cache)", "/services/cr")
    s.call("GET health after the restart", "GET", "/health")
    s.register("register c-1 again (updated in place)", "cr", "c-1", ok, version="again")
    s.node("c-1 registered again", "cr", "c-1", data=False)
    s.register("register c-3 (a new node)", "cr", "c-3", ok)
    s.remember_session("S1", "cr", "c-3")
    s.deregister("deregister c-2", "cr", "c-2")
    s.register("register c-2 again after deregistering it", "cr", "c-2", ok)
    s.node("c-2 after deregister-then-register", "cr", "c-2", data=False)
    s.wait_gone("gone when the old session expired", [("config-service", "config-service-1"), ("cr", "c-1")])
    s.children("cr nodes after the expiry", "cr")
    s.node("own node after the expiry", "config-service", "config-service-1")
    # a write evicts the list first: a later-generation monitor, set going by the start, may have cached it
    # with c-1 still in it, at a moment that depends on its probes
    s.register("register c-4", "cr", "c-4", ok)
    s.get("instances after the expiry", "/services/cr")
    s.get("config-service instances after the expiry", "/services/config-service")
    s.call("GET health after the expiry", "GET", "/health")
    s.rows("the cr row after the expiry", ("cr",))


def graceful_calls(s: Side) -> None:
    ok = s.ep["ok"]
    s.register("register g-1", "gr", "g-1", ok)
    s.get("instances (cached)", "/services/gr")
    s.node("own node before", "config-service", "config-service-1", data=False)
    s.graceful_stop()
    s.node("own node after a graceful stop", "config-service", "config-service-1")
    s.children("gr nodes after a graceful stop", "gr")
    s.start_again()
    s.node("own node after the start", "config-service", "config-service-1")
    s.remember_session("S2", "config-service", "config-service-1")
    s.get("instances after the start (cache)", "/services/gr")
    s.register("register g-2", "gr", "g-2", ok)
    s.node("g-2", "gr", "g-2", data=False)
    s.get("instances after a write", "/services/gr")


def later_shapes_calls(s: Side) -> None:
    ok, bad = s.ep["ok"], s.ep["bad"]
    s.call("health-status without service_id", "GET", "/internal/health-status")
    s.call("health-status with an empty service_id", "GET", "/internal/health-status", params={"service_id": ""})
    s.call("health-status of a service never seen", "GET", "/internal/health-status", params={"service_id": "never"})
    s.register("register m-1", "mon", "m-1", ok, health=ok + "/health")
    s.wait_answer("/internal/health-status?service_id=mon", lambda r: r.status_code == 200)
    s.call("health-status after a monitor cycle", "GET", "/internal/health-status", params={"service_id": "mon"})
    s.call("detailed mon", "POST", PREFIX + "/services/mon/health/detailed")
    s.call("detailed nobody", "POST", PREFIX + "/services/nobody/health/detailed")
    s.register("register m-2 (no health URL, a dead one)", "mon2", "m-2", bad)
    s.call("detailed mon2", "POST", PREFIX + "/services/mon2/health/detailed")
    s.get("services", "/services")


SCENARIOS: list[Scenario] = [
    Scenario("healthy registry", healthy_calls),
    Scenario("bad stored status", bad_status_calls),
    Scenario("stale cache", stale_cache_calls),
    Scenario("Redis down", redis_calls),
    Scenario("concurrent first registrations", race_calls, allowed=(
        Allowed("*status codes", "how many of four concurrent first registrations lose the row race is timing: "
                "the sandbox's window is a fixed 5 ms, the real one's a loopback round trip (often all win)",
                may_match=True),)),
    Scenario("later generation: health/detailed and internal/health-status", later_shapes_calls,
             generations=("later",), stack="own", options={"monitor_interval": 1}),
    Scenario("PostgreSQL down", pg_calls, stack="own-pg", options={"seed": True}),
    Scenario("crash-restart (kill -9, start, old session expires)", crash_calls),
    Scenario("graceful restart", graceful_calls),
]


# =========================================================================== running the table

class OkBad:
    """Two health endpoints both sides probe: ``ok`` answers 200, ``bad`` 500, on every path."""

    def __init__(self) -> None:
        self.servers = []
        self.urls = {"ok": self._serve(200), "bad": self._serve(500)}

    def _serve(self, status: int) -> str:
        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

        httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        httpd.daemon_threads = True
        threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self.servers.append(httpd)
        return f"http://127.0.0.1:{httpd.server_address[1]}"

    def close(self) -> None:
        for s in self.servers:
            s.shutdown()
            s.server_close()


@pytest.fixture(scope="module")
def endpoints():
    ep = OkBad()
    yield ep.urls
    ep.close()


def _run_side(side: Side, scenario: Scenario) -> None:
    side.scenario = scenario.name
    try:
        if scenario.setup:
            scenario.setup(side)
        scenario.calls(side)
    except Exception as exc:  # a side that breaks is a difference, not a crash of the comparison
        side.note("raised", f"{type(exc).__name__}: {exc}")


def compare(scenario: Scenario, sandbox: Side, real: Side) -> list[str]:
    """The unlisted differences of one scenario, and the listed ones that did not happen."""
    prefix = scenario.name + ": "
    keys = [k for k in real.obs if k.startswith(prefix)]
    keys += [k for k in sandbox.obs if k.startswith(prefix) and k not in real.obs]
    problems, used = [], set()
    for key in keys:
        mine, theirs = sandbox.obs.get(key, "<not observed>"), real.obs.get(key, "<not observed>")
        if mine == theirs:
            continue
        rule = next((a for a in scenario.allowed if fnmatch.fnmatchcase(key[len(prefix):], a.key)), None)
        if rule is not None:
            used.add(rule)
            continue
        problems.append(f"[{sandbox.generation}] {key}\n    sandbox: {json.dumps(mine, sort_keys=True)}\n"
                        f"    real:    {json.dumps(theirs, sort_keys=True)}")
    for rule in scenario.allowed:
        if rule not in used and not rule.may_match:
            problems.append(f"[{sandbox.generation}] {prefix}allowed difference {rule.key!r} did not happen "
                            f"({rule.reason}): take it out of the table")
    return problems


@pytest.mark.parametrize("generation", ["earlier", "later"])
def test_the_sandbox_fails_like_the_real_config_service(generation, make_registry, make_real_service, zk_srvr_only,
                                                         endpoints, tmp_path, record_property):
    from tests import realservice as rs

    started = time.monotonic()
    zk = KazooClient(hosts=zk_srvr_only.hosts, timeout=10)
    zk.start(timeout=15)
    own_pg = None
    try:
        def pair(stack: str, options: dict, name: str) -> tuple[Side, Side]:
            nonlocal own_pg
            pg = None
            if stack == "own-pg":
                own_pg = rs.PgCluster()
                own_pg.start()
                pg = own_pg
            with ThreadPoolExecutor(2) as pool:
                sb = pool.submit(SandboxSide, generation, zk, endpoints, make_registry, zk_srvr_only.hosts,
                                 tmp_path / f"sandbox-{name}", **options)
                real = pool.submit(RealSide, generation, zk, endpoints, make_real_service, pg=pg, **options)
                return sb.result(), real.result()

        shared = pair("shared", {}, "shared")
        problems: list[str] = []
        ran = []
        for scenario in SCENARIOS:
            if generation not in scenario.generations:
                continue
            sides = shared if scenario.stack == "shared" else pair(scenario.stack, scenario.options,
                                                                   f"{len(ran)}")
            with ThreadPoolExecutor(2) as pool:  # both sides at once: the session expiries overlap
                list(pool.map(lambda side: _run_side(side, scenario), sides))
            problems += compare(scenario, *sides)
            ran.append(scenario.name)
        seconds = round(time.monotonic() - started, 1)
        record_property("parity_seconds", seconds)
        print(f"\nparity [{generation}]: {len(ran)} scenarios in {seconds}s")
        assert len(ran) >= 8
        assert not problems, "the sandbox differs from the real Config Service:\n" + "\n".join(problems)
    finally:
        zk.stop()
        zk.close()
        if own_pg is not None:
            own_pg.destroy()


def test_the_comparison_names_a_difference_and_an_allowance_that_did_not_happen():
    """The comparison itself (no service needed): what it flags, and what it treats as volatile."""
    scenario = Scenario("x", lambda s: None, allowed=(Allowed("quiet", "a reason"),))
    sandbox, real = Side("earlier", None, {}), Side("earlier", None, {})
    for side, code in ((sandbox, 200), (real, 500)):
        side.scenario = "x"
        side.note("loud", {"status": code, "body": {"timestamp": 1.5, "registered_at": "2026-01-01"}})
        side.note("quiet", "same")
    problems = compare(scenario, sandbox, real)
    assert len(problems) == 2, problems
    assert problems[0].startswith("[earlier] x: loud") and "did not happen" in problems[1]
    # volatile values are compared by type only: a float timestamp is not a string one
    assert normalize({"timestamp": 1.5}, "u") == normalize({"timestamp": 2}, "u")
    assert normalize({"timestamp": 1.5}, "u") != normalize({"timestamp": "1.5"}, "u")
    # lists without order, UUIDs and the side's own URL by name
    assert normalize(["b", "a", "6f1c0a52-1d5e-4b8e-9a0c-2f4c3b1a0e9d", "http://h:1/x"], "http://h:1") == [
        "<self>/x", "<uuid>", "a", "b"]
