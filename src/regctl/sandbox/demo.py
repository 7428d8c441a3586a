"""Plant demo services in a registry, through its HTTP API, and keep them serving.

Every instance is a tiny stdlib HTTP server on a free ``127.0.0.1`` port with a real
``/health``, registered exactly as the integration guide's client does it
(``service_name``, ``service_url``, ``health_check_url`` = url + ``/health``,
``service_metadata`` with ``instance_id``, ``status: healthy``, ``version``, ``region``).

=================  ==============================  ==========================================
service            instances                       what it shows
=================  ==============================  ==========================================
``asr-service``    ``asr-service-1``, ``-2``       healthy, /health 200
``nmt-service``    ``nmt-service-1``               healthy, /health 200
``tts-service``    ``tts-service-1``               a zombie: says healthy, /health answers 500
``audit-service``  ``audit-service-1``             no ``status`` in metadata: never from /url
``legacy-billing`` (none)                          registered, then deregistered: a db row only
=================  ==============================  ==========================================

``python -m regctl.sandbox.demo --registry URL --state-dir DIR`` writes
``DIR/demo.json`` once everything is planted (the "ready" signal) and serves until
SIGTERM. Like real services it does not re-register when the registry restarts
(``regctl sandbox up`` restarts it then, so that it registers again), and it
deregisters its instances when it is stopped. It deregisters each id before
registering it, so that a node left by the registry's previous session cannot take
the new registration with it when that session expires.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

log = logging.getLogger("regctl.sandbox.demo")

STATE_FILE = "demo.json"
VERSION = "1.0.0"
REGION = "local"


@dataclass(frozen=True)
class DemoInstance:
    service_name: str
    instance_id: str
    #: HTTP status its /health answers
    health_status: int = 200
    #: the ``status`` put into service_metadata (None: left out)
    status: str | None = "healthy"
    #: deregistered right after registering, and not served
    deregister: bool = False


#: What the demo plants; names are fixed (tests and docs use them).
PLAN: tuple[DemoInstance, ...] = (
    DemoInstance("asr-service", "asr-service-1"),
    DemoInstance("asr-service", "asr-service-2"),
    DemoInstance("nmt-service", "nmt-service-1"),
    DemoInstance("tts-service", "tts-service-1", health_status=500),
    DemoInstance("audit-service", "audit-service-1", status=None),
    DemoInstance("legacy-billing", "legacy-billing-1", deregister=True),
)


def _handler_for(inst: DemoInstance):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = f"regctl-demo-{inst.service_name}"

        def log_message(self, fmt, *args):  # quiet
            pass

        def _send(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
            self.close_connection = True

        def do_GET(self):
            path = self.path.split("?", 1)[0]
            if path == "/health":
                if inst.health_status == 200:
                    self._send(200, {"status": "healthy", "service": inst.service_name,
                                     "instance_id": inst.instance_id})
                else:
                    self._send(inst.health_status, {"status": "unhealthy",
                                                    "detail": "model server not responding"})
            elif path == "/":
                self._send(200, {"service": inst.service_name, "instance_id": inst.instance_id,
                                 "version": VERSION})
            else:
                self._send(404, {"detail": "Not Found"})

        do_HEAD = do_GET

    return Handler


def registration_payload(inst: DemoInstance, url: str) -> dict:
    """The body the guide's ServiceRegistryHttpClient.register sends."""
    meta: dict = {"instance_id": inst.instance_id}
    if inst.status is not None:
        meta["status"] = inst.status
    meta["version"] = VERSION
    meta["region"] = REGION
    return {"service_name": inst.service_name, "service_url": url,
            "health_check_url": url + "/health", "service_metadata": meta}


class Demo:
    """Start the demo instances' servers and register them with ``registry_url``."""

    def __init__(self, registry_url: str, host: str = "127.0.0.1", plan=PLAN, timeout: float = 5.0) -> None:
        self.registry = registry_url.rstrip("/") + "/api/v1/registry"
        self.host = host
        self.plan = plan
        self.timeout = timeout
        self.servers: list[ThreadingHTTPServer] = []
        self.planted: list[dict] = []

    def start(self) -> list[dict]:
        with httpx.Client(timeout=self.timeout, trust_env=False) as client:
            for inst in self.plan:
                if inst.deregister:
                    url = f"http://{self.host}:9/{inst.service_name}"  # nothing listens: it is gone
                else:
                    server = ThreadingHTTPServer((self.host, 0), _handler_for(inst))
                    server.daemon_threads = True
                    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
                                     daemon=True).start()
                    self.servers.append(server)
                    url = f"http://{self.host}:{server.server_address[1]}"
                # after a registry restart a node of its previous session may linger; registering the
                # same id would only update it in place and it would vanish with that session
                client.post(f"{self.registry}/deregister",
                            params={"service_name": inst.service_name, "instance_id": inst.instance_id})
                resp = client.post(f"{self.registry}/register", json=registration_payload(inst, url))
                resp.raise_for_status()
                instance_id = resp.json()["instance_id"]
                if inst.deregister:
                    client.post(f"{self.registry}/deregister",
                                params={"service_name": inst.service_name, "instance_id": instance_id}
                                ).raise_for_status()
                self.planted.append({**asdict(inst), "service_url": url, "registered_id": instance_id})
        return self.planted

    def stop(self, deregister: bool = True) -> None:
        if deregister:
            try:
                with httpx.Client(timeout=1.0, trust_env=False) as client:
                    for p in self.planted:
                        if not p["deregister"]:
                            client.post(f"{self.registry}/deregister",
                                        params={"service_name": p["service_name"],
                                                "instance_id": p["registered_id"]})
            except httpx.HTTPError as exc:
                log.info("deregistering on shutdown failed: %s", exc)
        for server in self.servers:
            server.shutdown()
            server.server_close()


def wait_for_registry(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | str = "no answer"
    while time.monotonic() < deadline:
        try:
            resp = httpx.get(url.rstrip("/") + "/health", timeout=1.0, trust_env=False)
            if resp.status_code == 200:
                return
            last = f"HTTP {resp.status_code}"
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.2)
    raise RuntimeError(f"registry {url} not healthy after {timeout:.0f}s: {last}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m regctl.sandbox.demo",
                                     description="Plant demo services in a registry and keep them serving.")
    parser.add_argument("--registry", required=True, help="registry base URL, e.g. http://127.0.0.1:8082")
    parser.add_argument("--state-dir", required=True, type=Path)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--timeout", type=float, default=30.0, help="how long to wait for the registry")
    parser.add_argument("--no-deregister", action="store_true", help="leave zombies behind when stopped")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)

    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda *_: done.set())

    demo = Demo(args.registry, args.host)
    try:
        wait_for_registry(args.registry, args.timeout)
        planted = demo.start()
    except Exception as exc:
        log.error("demo failed: %s", exc)
        demo.stop(deregister=False)
        return 3
    from regctl.sandbox.statedir import make_dir, write_atomic

    make_dir(args.state_dir)
    state = {"pid": os.getpid(), "registry": args.registry, "instances": planted,
             "services": sorted({p["service_name"] for p in planted})}
    write_atomic(args.state_dir / STATE_FILE, json.dumps(state, indent=1))
    log.info("planted %d instances: %s", len(planted), ", ".join(p["instance_id"] for p in planted))
    try:
        while not done.wait(0.5):
            pass
    finally:
        log.info("stopping")
        demo.stop(deregister=not args.no_deregister)
    return 0


if __name__ == "__main__":
    sys.exit(main())
