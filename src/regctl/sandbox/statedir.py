"""The sandbox's state directory, trusted only as far as it can be: stdlib only.

* :func:`claim` creates the directory 0700 with a marker file (:data:`MARKER`), or accepts an
  existing one only when it is a directory owned by the current user, writable by nobody else,
  and either carries the marker or is empty (then adopted: nobody else could have put anything
  there); anything else is refused (:class:`UntrustedDir`, exit 2). Callers pass the resolved
  path, so a symlinked directory is judged by the directory it names.
* Every file regctl writes there goes through :func:`write_atomic` (a new temp file opened
  ``O_CREAT|O_EXCL|O_NOFOLLOW`` in the same directory, then renamed over the name) or
  :func:`open_append` (``O_NOFOLLOW``, a regular file only), and directories through
  :func:`make_dir`; a symlink planted in their place is refused, never followed.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from regctl.http.bounded import replace_file
from regctl.errors import SandboxError, UsageError

#: written by :func:`claim` into every directory it creates (its content names regctl)
MARKER = ".regctl-sandbox"
MARKER_TEXT = "regctl sandbox state directory (created by regctl; see docs/sandbox.md)\n"
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


class UntrustedDir(UsageError, SandboxError):
    """The state directory, or something planted in it, is not one regctl can trust (exit 2)."""

    exit_code = UsageError.exit_code


def _refuse(dir: Path, why: str) -> UntrustedDir:
    return UntrustedDir(f"refusing the sandbox directory {dir}: {why}", where=str(dir),
                        hint="pass --dir with a new path (regctl creates it), or fix or remove that directory")


def check(dir: Path) -> None:
    """Raise :class:`UntrustedDir` unless ``dir`` is a directory regctl can trust (it must exist)."""
    try:
        st = os.lstat(dir)
    except OSError as exc:
        raise _refuse(dir, f"cannot look at it ({exc.strerror})") from None
    if stat.S_ISLNK(st.st_mode):
        raise _refuse(dir, "it is a symlink")
    if not stat.S_ISDIR(st.st_mode):
        raise _refuse(dir, "it is not a directory")
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        raise _refuse(dir, f"it is owned by uid {st.st_uid}, not by you (uid {os.getuid()})")
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise _refuse(dir, f"others can write it (mode {stat.S_IMODE(st.st_mode):04o})")
    marker = dir / MARKER
    try:
        mst = os.lstat(marker)
    except FileNotFoundError:
        try:
            empty = not any(os.scandir(dir))
        except OSError as exc:
            raise _refuse(dir, f"cannot list it ({exc.strerror})") from None
        if not empty:
            raise _refuse(dir, f"regctl did not create it (no {MARKER} in it, and it is not empty)")
        write_atomic(marker, MARKER_TEXT)  # an empty directory of yours, writable by you alone: adopted
        return
    if not stat.S_ISREG(mst.st_mode) or mst.st_uid != st.st_uid:
        raise _refuse(dir, f"its {MARKER} is not a regular file of yours")


def claim(dir: Path) -> None:
    """Create ``dir`` (0700, with the marker) or check the existing one (see the module docstring)."""
    dir = Path(dir)
    if not os.path.lexists(dir):
        dir.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.mkdir(dir, 0o700)
        except FileExistsError:
            pass  # created meanwhile: checked below like any existing one
        else:
            os.chmod(dir, 0o700)  # whatever the umask
            write_atomic(dir / MARKER, MARKER_TEXT)
            return
    check(dir)


def make_dir(path: Path) -> Path:
    """``path`` as a directory of ours (created 0700 with its parents); a symlink there is refused."""
    path = Path(path)
    if os.path.lexists(path):
        st = os.lstat(path)
        if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
            raise UntrustedDir(f"refusing to use {path}: it is {'a symlink' if stat.S_ISLNK(st.st_mode) else 'not a directory'}"
                               " regctl did not make", where=str(path), hint="remove it and try again")
        return path
    if not os.path.lexists(path.parent):
        make_dir(path.parent)
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        return make_dir(path)
    return path


def _symlink_refused(path: Path) -> SandboxError:
    return UntrustedDir(f"refusing to write {path}: it is a symlink (or not a regular file) regctl did not make",
                        where=str(path), hint="remove it and try again")


def write_atomic(path: Path, data: "str | bytes", mode: int = 0o600) -> None:
    """Replace ``path`` with ``data``: a new temp file (``O_EXCL|O_NOFOLLOW``) renamed over it.

    A symlink (or anything but a regular file) already at ``path`` is refused; the rename
    itself never follows one, so a symlink planted meanwhile is replaced, its target untouched.
    """
    path = Path(path)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        pass
    else:
        if not stat.S_ISREG(st.st_mode):
            raise _symlink_refused(path)
    replace_file(path, data.encode() if isinstance(data, str) else data, mode)


def open_append(path: Path, mode: int = 0o600) -> int:
    """A file descriptor appending to ``path`` (created when missing); a symlink or a non-regular file
    (a FIFO, a device) there is refused without blocking."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NONBLOCK | _NOFOLLOW | _CLOEXEC, mode)
    except OSError as exc:
        if os.path.islink(path) or exc.errno in (errno.ELOOP, errno.ENXIO):
            raise _symlink_refused(path) from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise _symlink_refused(path)
    os.set_blocking(fd, True)
    return fd


def open_lock(path: Path) -> int:
    """The lock file's descriptor (read-write, created, never truncated, never through a symlink)."""
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | _NOFOLLOW | _CLOEXEC, 0o600)
    except OSError as exc:
        if os.path.islink(path):
            raise _symlink_refused(path) from None
        raise SandboxError(f"cannot open the sandbox lock {path}: {exc.strerror}", where=str(path)) from None


def read_text(path: Path, limit: int = 1024 * 1024) -> str:
    """A state file's text (at most ``limit`` bytes), never through a symlink; FileNotFoundError when missing."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | _NOFOLLOW | _CLOEXEC)
    except OSError:
        if os.path.islink(path):
            raise _symlink_refused(path) from None
        raise
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
            raise _symlink_refused(path)
        return fh.read(limit).decode("utf-8", "replace")
