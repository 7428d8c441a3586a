"""Exit codes and the error tree every part of regctl raises.

Core modules (``api``, ``zk``, ``health`` ...) translate library exceptions
(httpx, kazoo, OSError) into these classes where the library is called, so the
CLI has exactly one place that turns an error into a line on stderr and an
exit code: :func:`regctl.cli.app.main`.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Documented exit codes (README, "Exit codes"; a test keeps both in step)."""

    OK = 0
    #: The answer is no: not found, nothing healthy, a check failed, a wait timed out.
    NO = 1
    #: Usage or invalid input: bad flags, bad names, bad files.
    USAGE = 2
    #: The Config Service or ZooKeeper cannot be reached or answered something unusable.
    UNAVAILABLE = 3
    #: A bug in regctl (an exception nobody translated); run with --traceback and report it.
    INTERNAL = 70
    #: Interrupted by Ctrl-C.
    INTERRUPTED = 130


class RegctlError(Exception):
    """Base error: a message, where it happened, and what to try.

    ``str(err)`` is the one line regctl prints:
    ``<message> (<where>); try: <hint>``.
    """

    exit_code: ExitCode = ExitCode.INTERNAL

    def __init__(self, message: str, *, where: str | None = None, hint: str | None = None,
                 detail: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.where = where
        self.hint = hint
        #: Extra text shown only with -v (the underlying exception, a body excerpt).
        self.detail = detail

    def __str__(self) -> str:
        line = self.message
        if self.where:
            line += f" ({self.where})"
        if self.hint:
            line += f"; try: {self.hint}"
        return line

    def to_dict(self) -> dict:
        """The error document printed on stdout with ``-o json|yaml``."""
        return {
            "error": {
                "code": int(self.exit_code),
                "type": type(self).__name__,
                "message": self.message,
                "where": self.where,
                "hint": self.hint,
            }
        }


class UsageError(RegctlError):
    """Bad flags, bad input values, unreadable input files (exit 2)."""

    exit_code = ExitCode.USAGE


class NotFound(RegctlError):
    """The answer is no: nothing registered, nothing healthy (exit 1)."""

    exit_code = ExitCode.NO


class Unreachable(RegctlError):
    """A backend could not be reached: DNS, refused, timeout, lost session (exit 3)."""

    exit_code = ExitCode.UNAVAILABLE


class BadResponse(RegctlError):
    """A backend answered something unusable: 5xx, HTML, wrong shape (exit 3)."""

    exit_code = ExitCode.UNAVAILABLE

    def __init__(self, message: str, *, status_code: int | None = None, **kw) -> None:
        super().__init__(message, **kw)
        self.status_code = status_code


class NotAuthorized(BadResponse):
    """A gateway or ZooKeeper ACL refused us (401/403, NOAUTH) (exit 3)."""


class SandboxError(RegctlError):
    """The local sandbox could not be started, found or stopped (exit 3)."""

    exit_code = ExitCode.UNAVAILABLE
