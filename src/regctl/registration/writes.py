"""What register and deregister share: a request as it would be sent, what is live now, and the
look in ZooKeeper after a write the API reported as failed.

After a 5xx, a timeout or a lost connection only ZooKeeper says what happened: :func:`write_unverified`
tells such a failure, :class:`WriteCheck` holds what ZooKeeper showed, and
:func:`write_failure_consequence` says what the failure broke (from ``/health`` and the API's reads).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping
from urllib.parse import urlencode

from regctl.connections import Clients
from regctl.discovery import COMPONENT_EFFECTS, api_failure_cause, fetch_health
from regctl.errors import RegctlError, Unreachable
from regctl.http.api import PREFIX
from regctl.names import zk_join
from regctl.settings import Endpoint
from regctl.transfer import live as tl

# ---------------------------------------------------------------------------
# requests as they would be sent (for --dry-run)
# ---------------------------------------------------------------------------

def describe_request(base_url: str, call: Any) -> dict:
    """``{"method", "url", "json"}`` of an :class:`regctl.http.api.Call` against ``base_url``."""
    url = base_url.rstrip("/") + (PREFIX if call.prefixed else "") + call.path
    if call.params:
        url += "?" + urlencode(dict(call.params))
    return {"method": call.method, "url": url, "json": call.json_body}


# ---------------------------------------------------------------------------
# verified writes: after a 5xx, a timeout or a lost connection only ZooKeeper says what happened
# ---------------------------------------------------------------------------

#: what a failed write leaves behind, per component the Config Service's /health calls unhealthy
WRITE_CONSEQUENCES = {
    "redis": "Redis is down: the cache was not cleared and lookups of every service fail until it is back",
    "postgres": "PostgreSQL is down: the database row was not updated (GET /services shows the old one) and "
                "the cache was not cleared (lookups may serve the old list for up to 60 s)",
    "zookeeper": COMPONENT_EFFECTS["zookeeper"],
}


def write_unverified(exc: BaseException) -> bool:
    """Whether a failed register/deregister may still have happened (5xx, timeout, lost connection)."""
    if isinstance(exc, Unreachable):
        return True
    code = getattr(exc, "status_code", None)
    return isinstance(code, int) and code >= 500


def health_consequence(health: Mapping[str, Any] | None) -> str | None:
    """The consequence of a failed write, from ``GET /health``'s components; None when none is down."""
    if not isinstance(health, Mapping):
        return None
    down = [c for c in WRITE_CONSEQUENCES if str(health.get(c, "")).lower() == "unhealthy"]
    return "; ".join(WRITE_CONSEQUENCES[c] for c in down) or None


def write_failure_consequence(api: Any, service: str) -> str | None:
    """After a write answered 5xx: what broke and what it means, from ``/health`` and the API's own reads.

    The real ``/health`` answers a bare 503 for Redis *or* PostgreSQL; then the
    services list (the database) and the service's instance list (through Redis)
    are asked, and whichever fails names the component. None when nothing says.
    """
    health = fetch_health(api)
    named = health_consequence(health)
    if named:
        return named
    if not (isinstance(health, Mapping) and health.get("http_status") == 503):
        return None
    try:
        api.list_services()
        rows_ok = True
    except RegctlError:
        rows_ok = False
    try:
        read: Any = api.execute(tl.instances_call(service))
    except RegctlError as exc:
        read = exc
    cause = api_failure_cause(rows_ok, {service: read}, health) or ""
    if cause.startswith("Redis"):
        return WRITE_CONSEQUENCES["redis"]
    if cause.startswith("PostgreSQL"):
        return WRITE_CONSEQUENCES["postgres"]
    return None


@dataclass(frozen=True)
class WriteCheck:
    """What ZooKeeper shows after a write the API reported as failed."""

    action: str  # "register" | "deregister"
    service: str
    instance_id: str | None
    #: True: the write happened (node present / gone); False: it did not; None: could not look
    happened: bool | None
    api_error: RegctlError
    consequence: str | None = None
    check_error: RegctlError | None = None

    def sentence(self) -> str:
        """One line: what happened, what the API said, what it means."""
        target = f"{self.service}/{self.instance_id}" if self.instance_id else self.service
        said = f"the Config Service answered: {self.api_error.message}"
        tail = f" -- {self.consequence}" if self.consequence else ""
        if self.happened is None:
            why = f" ({self.check_error.message})" if self.check_error else ""
            return f"{self.action} of {target} may or may not have happened: {said}; ZooKeeper could not be read{why}"
        if self.action == "register":
            if self.happened:
                return f"registered in ZooKeeper ({target} is live), but {said}{tail}"
            return f"not registered ({target} is not in ZooKeeper): {said}{tail}"
        if self.happened:
            return f"deregistered ({target} is gone from ZooKeeper), but {said}{tail}"
        return f"not deregistered ({target} is still in ZooKeeper): {said}{tail}"

    def to_dict(self) -> dict:
        return {"action": self.action, "service": self.service, "instance_id": self.instance_id,
                "happened": self.happened, "api_error": self.api_error.message, "consequence": self.consequence,
                "check_error": self.check_error.message if self.check_error else None}


# ---------------------------------------------------------------------------
# what a write's clients read
# ---------------------------------------------------------------------------

def live_reader(endpoint: Endpoint, clients: Clients, service: str) -> tuple[Callable[[], list], str]:
    """(what is live of ``service`` now, read from "zookeeper" when configured, else "api")."""
    if endpoint.zk_configured:
        path = zk_join(endpoint.zk_base, service, "instances")
        return (lambda: clients.zk().get_children(path) or []), "zookeeper"
    return (lambda: [i.instance_id for i in clients.api().instances(service)]), "api"


def failed_write_consequence(clients: Clients, exc: RegctlError, service: str) -> str | None:
    """What a failed write broke, from /health and the API's own reads (None when they do not say)."""
    if isinstance(exc, Unreachable):
        return None
    try:
        return write_failure_consequence(clients.api(), service)
    except RegctlError:
        return None
