"""``regctl doctor``'s core: named checks, run concurrently, each under its own deadline.

Layout:

- :mod:`regctl.doctor.base`: the plain data (:class:`CheckResult`, :class:`Check`,
  :class:`DoctorConfig`) and :class:`CheckRun`, what a check function gets;
- :mod:`regctl.doctor.facts`: evidence gathered once per run and shared by checks
  (DNS, TCP, ``/health``, the ZooKeeper session, instance lists, probes, the whole registry);
- :mod:`regctl.doctor.checks`: one module per area holding its checks;
- :mod:`regctl.doctor.registry`: the ordered list of checks, selection, the runner;
- :mod:`regctl.doctor.plan`: what an operator asks (:class:`DoctorRequest`) -> the checks and their
  configuration (:func:`plan_doctor`) -> :meth:`DoctorPlan.run` -> the :class:`DoctorReport`.

No printing here, no typer or rich: the CLI renders :meth:`DoctorReport.to_dict`.
"""

from regctl.doctor.base import (
    AREAS,
    FAIL,
    PASS,
    SKIP,
    STATUSES,
    WARN,
    Check,
    CheckResult,
    CheckRun,
    DoctorConfig,
    detect_container,
    parse_ignore,
)
from regctl.doctor.plan import DoctorPlan, DoctorRequest, plan_doctor
from regctl.doctor.registry import DoctorReport, check_names, list_checks, run_checks, select_checks

__all__ = ["AREAS", "FAIL", "PASS", "SKIP", "STATUSES", "WARN", "Check", "CheckResult", "CheckRun",
           "DoctorConfig", "DoctorPlan", "DoctorReport", "DoctorRequest", "check_names", "detect_container",
           "list_checks", "parse_ignore", "plan_doctor", "run_checks", "select_checks"]
