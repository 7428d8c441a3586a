"""What a sandbox restart left behind: registrations that did not come back under the registry's session."""

from __future__ import annotations

import json
from pathlib import Path

from kazoo.client import KazooClient

from regctl.errors import SandboxError
from regctl.sandbox.statedir import read_text
from regctl.zookeeper.reader import harden

#: the file in the sandbox directory where the registry writes its current ZooKeeper session id (hex) at
#: every start: the sandbox's own bookkeeping (the real Config Service tells nobody)
SESSION_FILE = "registry-session"


def current_session(dir: Path) -> int | None:
    """The registry's current ZooKeeper session id, as it wrote it at start (None when unknown)."""
    try:
        return int(read_text(dir / SESSION_FILE, 64).strip(), 16)
    except (OSError, ValueError, SandboxError):
        return None


def check_registrations(dir: Path, state: dict) -> list[str]:
    """After the registry came back: is every instance node owned by its current session?

    The current session is the one the registry wrote to its session file at start
    (its own node does not tell: after a crash the registry rewrites that node in
    place, and it keeps the dead session). Demo instances that did not come back, and
    other instances (its own node included) that belong to a session nobody holds
    any more (they vanish when it times out), each give one warning.
    """
    base = state.get("base_path", "/services").rstrip("/")
    planted: list[dict] = []
    try:
        planted = json.loads(read_text(dir / "demo.json")).get("instances", [])
    except (OSError, ValueError, AttributeError, SandboxError):
        pass
    expected = {(p["service_name"], p["registered_id"]) for p in planted
                if isinstance(p, dict) and not p.get("deregister") and "registered_id" in p}
    owner = current_session(dir)
    if owner is None:
        return ["could not check the registrations: the registry's current session is not known "
                f"(no {dir / SESSION_FILE})"]
    zk = harden(KazooClient(hosts=state["zk_hosts"], timeout=5.0), 5.0)  # the main reader's frame bounds
    try:
        zk.start(timeout=10)
    except Exception as exc:
        return [f"could not check the registrations in ZooKeeper: {exc}"]
    own_path = f"{base}/config-service/instances/config-service-1"
    own_stale = False
    try:
        found, foreign = set(), []
        for service in zk.get_children(base or "/"):
            try:
                children = zk.get_children(f"{base}/{service}/instances")
            except Exception:
                continue
            for child in children:
                path = f"{base}/{service}/instances/{child}"
                stat = zk.exists(path)
                if stat is None:
                    continue
                if stat.ephemeralOwner == owner:
                    found.add((service, child))
                elif path == own_path:
                    own_stale = True
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
    if own_stale:
        out.append("the registry's own node was rewritten in place under its previous session (as the real "
                   "Config Service does after a crash) and vanishes when that session times out; the registry "
                   "has no node of its own until it is restarted")
    if foreign:
        out.append(f"{len(foreign)} instance(s) belong to the registry's previous session and vanish when it "
                   f"times out ({', '.join(sorted(foreign)[:5])}{', ...' if len(foreign) > 5 else ''}); "
                   "re-register them, or restore a backup with: regctl import FILE")
    return out
