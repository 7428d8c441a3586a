"""The doctor's checks, one module per area (``config``, ``zookeeper``, ``env``, ``service``, ``hygiene``).

A check is ``fn(run: CheckRun) -> CheckResult | list[CheckResult]`` listed in its
area module's ``CHECKS`` tuple (order there is display order); shared evidence
comes from :mod:`regctl.doctor.facts`. A new area is a new module here, added to
:data:`regctl.doctor.registry.AREA_MODULES` and :data:`regctl.doctor.base.AREAS`.
Check modules import only :mod:`regctl.doctor.base`, :mod:`regctl.doctor.facts`
and each other, never :mod:`regctl.doctor` itself or the registry.
"""
