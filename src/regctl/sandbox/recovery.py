"""What a sandbox restart left behind: registrations that did not come back under the registry's session."""

from __future__ import annotations

import json
from pathlib import Path


def check_registrations(dir: Path, state: dict) -> list[str]:
    """After the registry came back: is every instance node owned by its current session?

    The registry's own node tells which session that is. Demo instances that did
    not come back, and other instances that belong to a session nobody holds any
    more (they vanish when it times out), each give one warning.
    """
    from kazoo.client import KazooClient

    base = state.get("base_path", "/services").rstrip("/")
    planted: list[dict] = []
    try:
        planted = json.loads((dir / "demo.json").read_text()).get("instances", [])
    except (OSError, ValueError, AttributeError):
        pass
    expected = {(p["service_name"], p["registered_id"]) for p in planted
                if isinstance(p, dict) and not p.get("deregister") and "registered_id" in p}
    zk = KazooClient(hosts=state["zk_hosts"], timeout=5.0)
    try:
        zk.start(timeout=10)
    except Exception as exc:
        return [f"could not check the registrations in ZooKeeper: {exc}"]
    try:
        own = zk.exists(f"{base}/config-service/instances/config-service-1")
        if own is None:
            return ["the registry's own node is missing from ZooKeeper"]
        owner = own.ephemeralOwner
        found, foreign = set(), []
        for service in zk.get_children(base or "/"):
            try:
                children = zk.get_children(f"{base}/{service}/instances")
            except Exception:
                continue
            for child in children:
                stat = zk.exists(f"{base}/{service}/instances/{child}")
                if stat is None:
                    continue
                if stat.ephemeralOwner == owner:
                    found.add((service, child))
                else:
                    foreign.append(f"{service}/{child}")
    except Exception as exc:
        return [f"could not check the registrations in ZooKeeper: {exc}"]
    finally:
        zk.stop()
        zk.close()
    out = []
    missing = sorted(f"{s}/{i}" for s, i in expected - found)
    if missing:
        out.append(f"demo instances did not register again: {', '.join(missing)}")
    if foreign:
        out.append(f"{len(foreign)} instance(s) belong to the registry's previous session and vanish when it "
                   f"times out ({', '.join(sorted(foreign)[:5])}{', ...' if len(foreign) > 5 else ''}); "
                   "re-register them, or restore a backup with: regctl import FILE")
    return out
