"""Exit codes and the error tree every part of regctl raises.

Core modules (``api``, ``zk``, ``health`` ...) translate library exceptions
(httpx, kazoo, OSError) into these classes where the library is called, and the
CLI raises them on: it has exactly one place that turns an error into a line on
stderr, the error document (:meth:`RegctlError.to_dict`) on stdout with -o json|yaml,
and an exit code: :func:`regctl.cli.app.main`.
"""

from __future__ import annotations

import contextlib
import re
from enum import IntEnum
from typing import Iterator, Mapping


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


#: What a hint calls a setting, in the words of the library (:mod:`regctl.client`'s parameters).
#: Core code writes hints with these ``{placeholders}``; a library user reads them as below, and the
#: command line installs its own flags for the time it runs (:data:`regctl.cli.runtime.CLI_HINT_WORDS`).
LIBRARY_HINT_WORDS: Mapping[str, str] = {
    "config_url": "base_url=",
    "config_url_sources": "base_url= or CONFIG_SERVICE_URL",
    "localhost_url": "base_url='http://localhost:8082'",
    "timeout": "request_timeout_s=",
    "zk": "zk_hosts=",
    "server_timeout": "the call's timeout",
    "headers": "headers=",
    "credentials": "pass headers={'Authorization': 'Bearer ...'}",
    "ca_bundle": "verify='/path/to/ca.pem'",
    "insecure": "verify=False",
    "see_dry_run": "",
    "inspect": "GET /api/v1/registry/services/",
    "instance_id": "the metadata's instance_id",
    "status_example": "\"status\": \"healthy\" in the metadata",
}
_hint_words: Mapping[str, str] = LIBRARY_HINT_WORDS
_PLACEHOLDER = re.compile(r"\{(" + "|".join(LIBRARY_HINT_WORDS) + r")\}")


def render_hint(template: str) -> str:
    """``template`` with its ``{setting}`` placeholders in the words now in use (the library's by default)."""
    return _PLACEHOLDER.sub(lambda m: _hint_words.get(m.group(1), LIBRARY_HINT_WORDS[m.group(1)]), template)


@contextlib.contextmanager
def hint_words(words: Mapping[str, str]) -> Iterator[None]:
    """Render every hint with ``words`` inside the block (the CLI: its flags while a command runs)."""
    global _hint_words
    previous, _hint_words = _hint_words, {**LIBRARY_HINT_WORDS, **words}
    try:
        yield
    finally:
        _hint_words = previous


class RegctlError(Exception):
    """Base error: a message, where it happened, and what to try.

    ``str(err)`` is the one line regctl prints:
    ``<message> (<where>); try: <hint>``. A hint may name a setting as a
    ``{placeholder}`` (see :data:`LIBRARY_HINT_WORDS`): ``err.hint`` reads it in the
    words in use, so a library user is told ``base_url=`` where the CLI says ``--config-url``.
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

    @property
    def hint(self) -> str | None:
        """What to try, in the words in use (the library's parameters, or the CLI's flags while it runs)."""
        return render_hint(self._hint) if self._hint else self._hint

    @hint.setter
    def hint(self, value: str | None) -> None:
        self._hint = value

    @property
    def hint_template(self) -> str | None:
        """The hint as written, ``{placeholders}`` and all (to hand on to another error)."""
        return self._hint

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
    """Bad flags, bad input values, unreadable input files (exit 2).

    ``status_code`` is 422 when the Config Service itself rejected the values (not a local check).
    """

    exit_code = ExitCode.USAGE

    def __init__(self, message: str, *, status_code: int | None = None, **kw) -> None:
        super().__init__(message, **kw)
        self.status_code = status_code


class NotFound(RegctlError):
    """The answer is no: nothing registered, nothing healthy (exit 1). ``reason``: the registry's own words."""

    exit_code = ExitCode.NO

    def __init__(self, message: str, *, reason: str | None = None, **kw) -> None:
        super().__init__(message, **kw)
        self.reason = reason


class Unreachable(RegctlError):
    """A backend could not be reached: DNS, refused, timeout, lost session (exit 3).

    ``out_of_time``: a deadline ran out (not a refusal); ``still_running_after``: a slow
    server-side call cut at its own deadline (seconds), the server still working;
    ``connection_lost``: ZooKeeper's connection dropped, the session may survive elsewhere.
    """

    exit_code = ExitCode.UNAVAILABLE

    def __init__(self, message: str, *, out_of_time: bool = False, still_running_after: float | None = None,
                 connection_lost: bool = False, **kw) -> None:
        super().__init__(message, **kw)
        self.out_of_time = out_of_time
        self.still_running_after = still_running_after
        self.connection_lost = connection_lost


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
