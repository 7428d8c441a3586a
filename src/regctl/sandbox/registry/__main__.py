"""The sandbox registry's command line: ``python -m regctl.sandbox.registry [options]``."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading

from regctl.errors import SandboxError
from regctl.sandbox.registry.server import (
    FAULTS,
    GENERATIONS,
    Behaviour,
    Identity,
    Listener,
    RegistryServer,
    Storage,
    Switches,
)

log = logging.getLogger("regctl.sandbox.registry")


def _parse_simulate(items: list[str]) -> dict:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise argparse.ArgumentTypeError(f"--simulate wants COMPONENT=STATE, got {item!r}")
        out[key.strip()] = value.strip()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m regctl.sandbox.registry",
                                     description="A Config Service look-alike registry (sandbox/tests).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8082)
    parser.add_argument("--zk", default=os.environ.get("ZOOKEEPER_HOSTS", "127.0.0.1:2181"))
    parser.add_argument("--base", default=os.environ.get("ZOOKEEPER_BASE_PATH", "/services"))
    parser.add_argument("--db", default=None, help="JSON file for the service rows (survives restarts)")
    parser.add_argument("--cache", default=None,
                        help="JSON file for the cache, Redis's stand-in (survives restarts, entries expire)")
    parser.add_argument("--session-file", default=None,
                        help="file that gets the current ZooKeeper session id (hex) at every start")
    parser.add_argument("--instance-id", default=os.environ.get("SERVICE_INSTANCE_ID", "config-service-1"))
    parser.add_argument("--self-url", default=None, help="URL it registers itself under (default: its own)")
    parser.add_argument("--cache-ttl", type=float, default=60.0)
    parser.add_argument("--zk-timeout", type=float, default=5.0)
    parser.add_argument("--no-detailed-health", action="store_true",
                        help="no /health/detailed whatever the generation")
    parser.add_argument("--generation", choices=GENERATIONS, default="earlier",
                        help="which Config Service generation to behave like")
    parser.add_argument("--seed-rows", action="store_true",
                        help="(later generation) seed a dozen rows that never had an instance")
    parser.add_argument("--monitor-interval", type=float, default=30.0,
                        help="(later generation) seconds between health monitor cycles")
    parser.add_argument("--fault", action="append", default=[], choices=FAULTS,
                        help="start with this backend unreachable (repeatable)")
    parser.add_argument("--simulate", action="append", default=[], metavar="COMPONENT=STATE")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every request")
    args = parser.parse_args(argv)
    try:
        simulate = _parse_simulate(args.simulate)
    except argparse.ArgumentTypeError as exc:
        parser.error(str(exc))
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not args.verbose:
        logging.getLogger("kazoo").setLevel(logging.WARNING)
        logging.getLogger("regctl.sandbox.registry.kazoo").setLevel(logging.WARNING)
        logging.getLogger("httpx").setLevel(logging.WARNING)
    behaviour = Behaviour(args.generation, detailed_health=False if args.no_detailed_health else None,
                          monitor_interval=args.monitor_interval, seed_rows=args.seed_rows)
    server = RegistryServer(zk_hosts=args.zk, base_path=args.base, zk_timeout=args.zk_timeout,
                            identity=Identity(args.instance_id, args.self_url),
                            listener=Listener(args.host, args.port),
                            storage=Storage(args.db, args.cache, args.session_file, args.cache_ttl),
                            behaviour=behaviour, switches=Switches(simulate, args.fault, args.verbose))
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda *_: done.set())
    try:
        server.start()
    except (SandboxError, OSError) as exc:
        log.error("cannot start: %s", exc)
        return 3
    try:
        while not done.wait(0.5):
            pass
    finally:
        log.info("stopping")
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
