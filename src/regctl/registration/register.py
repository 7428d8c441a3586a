"""The register operation: :func:`register` sends a :class:`~regctl.registration.request.RegisterRequest`
in order and confirms each new node in ZooKeeper; a write the API reported as failed (5xx, timeout)
is looked up there. It returns a :class:`RegisterReport` (what was asked, done, verified, failed).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from regctl.connections import Clients, connections
from regctl.errors import RegctlError, Unreachable
from regctl.guide import Registration
from regctl.http.api import register_call
from regctl.names import zk_join
from regctl.registration.request import RegisterRequest
from regctl.registration.writes import WriteCheck, describe_request, failed_write_consequence, write_unverified
from regctl.settings import Endpoint

#: where a new node was found when confirming: per registration in :attr:`Registered.zookeeper`
PRESENT, MISSING, UNREADABLE = "present", "missing", "unreadable"


@dataclass(frozen=True)
class Registered:
    """One registration the registry took (the API's answer, or ZooKeeper's after an error)."""

    registration: Registration
    #: the request as sent (:func:`describe_request`)
    request: dict
    instance_id: str
    #: the node in ZooKeeper afterwards: PRESENT, MISSING, UNREADABLE; None when not looked at
    zookeeper: str | None = None

    def to_dict(self) -> dict:
        return {"request": self.request, "instance_id": self.instance_id, "zookeeper": self.zookeeper}


@dataclass(frozen=True)
class ZkConfirmation:
    """The new nodes looked for in ZooKeeper after registering."""

    #: False: ZooKeeper is not configured, nothing was looked at
    configured: bool
    base: str
    #: node path -> PRESENT | MISSING | UNREADABLE, in the order registered
    found: Mapping[str, str] = field(default_factory=dict)
    #: node path -> why it could not be read (the UNREADABLE ones)
    unreadable: Mapping[str, BaseException] = field(default_factory=dict)
    #: ZooKeeper could not be asked at all
    error: RegctlError | None = None


@dataclass(frozen=True)
class RegisterReport:
    """What :func:`register` was asked, did, verified and where it failed."""

    asked: RegisterRequest
    #: every request of ``asked``, in order (as sent, or as it would have been)
    requests: tuple[dict, ...]
    #: what the registry took, in order; after a failure the ones before it
    done: tuple[Registered, ...]
    #: writes the API reported as failed (5xx, timeout) and what ZooKeeper showed
    verified_after_error: tuple[WriteCheck, ...] = ()
    #: None when nothing was registered
    confirmation: ZkConfirmation | None = None
    #: what stopped the batch (None: every registration went through)
    error: RegctlError | None = None

    @property
    def instance_ids(self) -> list[str]:
        return [r.instance_id for r in self.done]

    @property
    def confirmed(self) -> bool:
        """Every registration's node was seen in ZooKeeper."""
        return bool(self.done) and all(r.zookeeper == PRESENT for r in self.done)

    @property
    def nothing_happened(self) -> bool:
        """Failed before anything was registered or looked up: the error is the whole story."""
        return self.error is not None and not self.done and not self.verified_after_error

    def to_dict(self) -> dict:
        return {"dry_run": False, "registrations": [r.to_dict() for r in self.done],
                "instance_ids": self.instance_ids,
                "verified_after_error": [c.to_dict() for c in self.verified_after_error]}


def register(endpoint: Endpoint, request: RegisterRequest, clients: Clients | None = None) -> RegisterReport:
    """Send each registration of ``request`` in order, then confirm the new nodes in ZooKeeper.

    A registration the API reports as failed with a 5xx or a timeout may still have
    happened: when ZooKeeper is configured it is looked up there (``verified_after_error``);
    found, the batch goes on; not found or not readable, it stops with an :class:`Unreachable`.
    Any other failure stops the batch with the API's error. Errors are in the report, not
    raised. ``clients``: the caller's (default: opened from ``endpoint`` and closed here).
    """
    requests = register_requests(endpoint, request)
    done: list[tuple[Registration, dict, str]] = []
    checks: list[WriteCheck] = []
    error: RegctlError | None = None
    consequences: dict = {}  # per service and kind of failure, asked once a run (with Redis down every write fails)
    with connections(endpoint, clients) as clients:
        for reg, req in zip(request.registrations, requests):
            try:
                iid = clients.api().register(reg.payload())
            except RegctlError as exc:
                check = _verify_register(endpoint, clients, reg, exc, consequences)
                if check is None:
                    error = exc
                    break
                checks.append(check)
                if not check.happened:
                    error = _write_error(check)
                    break
                iid = check.instance_id
            done.append((reg, req, iid))
        confirmation = _confirm_in_zk(endpoint, clients, [(reg, iid) for reg, _, iid in done]) if done else None
    return RegisterReport(request, tuple(requests), _registered(endpoint, done, confirmation), tuple(checks),
                          confirmation, error)


def _verify_register(endpoint: Endpoint, clients: Clients, reg: Registration, exc: RegctlError,
                     consequences: dict) -> WriteCheck | None:
    """After a 5xx/timeout: whether ZooKeeper holds the registration; None when the failure cannot
    have written anything or ZooKeeper is not configured."""
    if not write_unverified(exc) or not endpoint.zk_configured:
        return None
    key = (reg.service_name, type(exc))
    if key not in consequences:
        consequences[key] = failed_write_consequence(clients, exc, reg.service_name)
    consequence = consequences[key]
    try:
        svc = clients.zk().service(reg.service_name)
    except RegctlError as zk_exc:
        return WriteCheck("register", reg.service_name, reg.instance_id, None, exc, consequence, zk_exc)
    found = registered_as_asked(svc.instances, reg)
    return WriteCheck("register", reg.service_name, found.instance_id if found else reg.instance_id,
                      found is not None, exc, consequence)


def _write_error(check: WriteCheck) -> RegctlError:
    """The error for a write that did not happen (exit 3) or whose outcome is unknown (exit 3)."""
    err = check.api_error
    hint = err.hint_template if check.happened is False else "look with: regctl inspect " + check.service
    return Unreachable(check.sentence(), where=err.where, hint=hint)


def registered_as_asked(instances: Iterable[Any], reg: Registration) -> Any:
    """The live instance (ZooKeeper's) that holds exactly what ``reg`` sent, or None.

    With an instance id the node of that id must carry the URL, health URL and
    metadata sent; without one (the server makes the id) any node of the service
    with that data counts.
    """
    for inst in instances:
        if reg.instance_id is not None and inst.instance_id != reg.instance_id:
            continue
        if inst.service_url != reg.service_url:
            continue
        if reg.health_check_url is not None and inst.health_check_url != reg.health_check_url:
            continue
        meta = inst.metadata or {}
        if all(meta.get(k) == v for k, v in reg.metadata.items() if k != "health_check_url"):
            return inst
    return None


def _node_path(endpoint: Endpoint, reg: Registration, instance_id: str) -> str:
    return zk_join(endpoint.zk_base, reg.service_name, "instances", instance_id)


def _confirm_in_zk(endpoint: Endpoint, clients: Clients, made: list[tuple[Registration, str]]) -> ZkConfirmation:
    """Look for each new node in ZooKeeper (a missing one is reported, not raised)."""
    if not endpoint.zk_configured:
        return ZkConfirmation(False, endpoint.zk_base)
    try:
        paths = list(dict.fromkeys(_node_path(endpoint, reg, iid) for reg, iid in made))
        answers = clients.zk().bulk_get(paths)
    except RegctlError as exc:
        return ZkConfirmation(True, endpoint.zk_base, error=exc)
    found: dict[str, str] = {}
    unreadable: dict[str, BaseException] = {}
    for path in paths:
        res = answers.get(path)
        if isinstance(res, Exception):
            found[path] = UNREADABLE
            unreadable[path] = res
        else:
            found[path] = MISSING if res is None else PRESENT
    return ZkConfirmation(True, endpoint.zk_base, found, unreadable)


def _registered(endpoint: Endpoint, done: list, confirmation: ZkConfirmation | None) -> tuple[Registered, ...]:
    """Each registration taken, with its node's state (a node registered twice: the last one says it)."""
    paths = [_node_path(endpoint, reg, iid) for reg, _, iid in done]
    last = {path: i for i, path in enumerate(paths)}
    found = confirmation.found if confirmation is not None else {}
    return tuple(Registered(reg, req, iid, found.get(path) if last[path] == i else None)
                 for i, ((reg, req, iid), path) in enumerate(zip(done, paths)))


def register_requests(endpoint: Endpoint, request: RegisterRequest) -> list[dict]:
    """The ``POST /register`` requests :func:`register` sends for ``request``, in order."""
    return [describe_request(endpoint.config_url, register_call(r.payload())) for r in request.registrations]
