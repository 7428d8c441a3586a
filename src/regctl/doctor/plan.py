"""From what an operator asks of ``doctor`` to the checks that run: :func:`plan_doctor`.

A :class:`DoctorRequest` (check names, skips, the service, its env file, acknowledged
findings) and an :class:`~regctl.settings.Endpoint` become a :class:`DoctorPlan`: the
selected checks and the :class:`~regctl.doctor.base.DoctorConfig` they read. Its
:meth:`DoctorPlan.run` runs them concurrently and returns the
:class:`~regctl.doctor.registry.DoctorReport`. Split in two so a caller can say how
many checks will run before they do (the CLI's progress line).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

from regctl import contexts
from regctl.doctor.base import CheckResult, DoctorConfig, parse_ignore
from regctl.doctor.registry import DoctorReport, run_checks, select_checks
from regctl.errors import UsageError
from regctl.registration.request import read_env_file
from regctl.settings import Endpoint

#: environment variable forcing container detection on (1) or off (0)
CONTAINER_ENV = "REGCTL_DOCTOR_IN_CONTAINER"


@dataclass(frozen=True)
class DoctorRequest:
    """What ``doctor`` is asked."""

    #: run only these checks (names, areas or globs; empty: every check)
    checks: tuple = ()
    #: leave these out (names, areas or globs)
    skip: tuple = ()
    #: the service to check in depth (default: SERVICE_NAME in the environment)
    service: str | None = None
    #: the service's KEY=VALUE environment (its .env), over the process environment
    env_file: Path | None = None
    #: registry hygiene over every service
    all_services: bool = False
    #: acknowledged findings, ``CHECK[:TARGET]``; the context's ``ignore:`` list is added
    ignore: tuple = ()
    #: the Config Service's own health call's deadline (None: derived)
    server_timeout: float | None = None
    #: the selected context, whose ``ignore:`` list counts too (None: none)
    context: str | None = None
    #: how the Config Service URL was chosen, for hints (e.g. "from CONFIG_SERVICE_URL")
    config_url_source: str | None = None


@dataclass(frozen=True)
class DoctorPlan:
    """The checks that will run and the configuration they read."""

    config: DoctorConfig
    checks: tuple

    def run(self, on_result: Callable[[CheckResult], None] | None = None) -> DoctorReport:
        """Run the checks concurrently, each under its own deadline (``on_result``: each row as it is ready)."""
        return run_checks(self.config, self.checks, on_result=on_result)


def plan_doctor(endpoint: Endpoint, request: DoctorRequest, environ: Mapping[str, str] | None = None) -> DoctorPlan:
    """Select the checks and build their configuration; :class:`UsageError` when every check was skipped or
    the env file cannot be read. ``environ``: the process environment (default ``os.environ``)."""
    selected = select_checks(list(request.checks) or None, list(request.skip) or None)
    if not selected:
        raise UsageError("every check was skipped", hint="see: regctl doctor --list-checks")
    env = dict(os.environ if environ is None else environ)
    env_source = "environment"
    if request.env_file is not None:
        env.update(read_env_file(request.env_file))
        env_source = f"env file {request.env_file}"
    explicit = frozenset(c.name for c in select_checks(list(request.checks))) if request.checks else frozenset()
    ignore = [*context_ignore(request.context), *request.ignore]
    config = DoctorConfig(
        endpoint=endpoint, env=env, env_source=env_source, service=request.service,
        all_services=request.all_services, in_container=container_override(environ),
        config_url_source=request.config_url_source, explicit=explicit, server_timeout=request.server_timeout,
        ignore=parse_ignore(ignore))
    return DoctorPlan(config=config, checks=tuple(selected))


def context_ignore(context: str | None) -> list:
    """The context's ``ignore:`` list (empty without a context)."""
    if not context:
        return []
    values = contexts.load(contexts.config_path()).contexts.get(context) or {}
    return list(values.get("ignore") or [])


def container_override(environ: Mapping[str, str] | None = None) -> bool | None:
    """:data:`CONTAINER_ENV` forcing container detection on (True) or off (False); None: detect."""
    value = (os.environ if environ is None else environ).get(CONTAINER_ENV, "").strip().lower()
    if value in ("1", "true", "yes"):
        return True
    if value in ("0", "false", "no"):
        return False
    return None


__all__ = ["CONTAINER_ENV", "DoctorPlan", "DoctorRequest", "plan_doctor"]
