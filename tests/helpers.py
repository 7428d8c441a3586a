"""Run regctl as a user would: through main(), capturing stdout, stderr and the exit code."""

from __future__ import annotations

import contextlib
import io
import json
import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import Mapping

import yaml

from regctl.cli.app import main


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def json(self):
        return json.loads(self.stdout)

    @property
    def yaml(self):
        return yaml.safe_load(self.stdout)

    def __repr__(self) -> str:
        return f"CliResult(exit_code={self.exit_code}, stdout={self.stdout[-2000:]!r}, stderr={self.stderr[-2000:]!r})"


class _FakeTTYStdin(io.StringIO):
    def isatty(self) -> bool:  # pragma: no cover - trivial
        return True


def run_cli(*args: str, env: Mapping[str, str] | None = None, input: str | None = None,
            tty_stdin: bool = False) -> CliResult:
    """Call ``regctl.cli.app.main(args)`` in-process with ``env`` added to the environment.

    stdin is empty and not a terminal unless ``input``/``tty_stdin`` say otherwise.
    """
    out, err = io.StringIO(), io.StringIO()
    stdin = _FakeTTYStdin(input or "") if tty_stdin else io.StringIO(input or "")
    old_env = dict(os.environ)
    old_stdin = sys.stdin
    try:
        os.environ.update(env or {})
        sys.stdin = stdin
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main([str(a) for a in args])
    finally:
        sys.stdin = old_stdin
        os.environ.clear()
        os.environ.update(old_env)
    return CliResult(int(code), out.getvalue(), err.getvalue())


def run_subprocess(*args: str, env: Mapping[str, str] | None = None, timeout: float = 60,
                   input: str | None = None) -> CliResult:
    """Run ``python -m regctl ARGS`` in a child process (for startup, import and signal tests)."""
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run([sys.executable, "-m", "regctl", *[str(a) for a in args]], env=full_env,
                          capture_output=True, text=True, timeout=timeout, input=input,
                          stdin=None if input is not None else subprocess.DEVNULL)
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def assert_one_line_error(result: CliResult, code: int) -> str:
    """The failure contract: exit ``code``, one ``regctl: error:`` line, no traceback."""
    assert result.exit_code == code, result
    assert "Traceback" not in result.stderr, result
    errors = [l for l in result.stderr.splitlines() if l.startswith("regctl: error:")]
    assert len(errors) == 1, result
    return errors[0]


class LoopbackServer:
    """A TCP server on 127.0.0.1 for hostile-answer tests: each connection goes to ``_one(conn)``
    in its own daemon thread. Subclasses set their own attributes before calling ``__init__``."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn: socket.socket) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self.sock.close()


def doctor_config(**kw):
    """A :class:`regctl.doctor.DoctorConfig` from flat keywords: the endpoint's (config_url, timeout, zk_hosts ...)
    go to its :class:`regctl.settings.Endpoint`, the rest to the config."""
    from dataclasses import fields

    from regctl.doctor import DoctorConfig
    from regctl.settings import Endpoint

    names = {f.name for f in fields(Endpoint)}
    endpoint = Endpoint(**{k: v for k, v in kw.items() if k in names})
    return DoctorConfig(endpoint=endpoint, **{k: v for k, v in kw.items() if k not in names})


#: the health_check_url register() derives from the service URL unless told otherwise
DERIVED = object()


def register(target, name: str, iid: str, *, url: str | None = None, status: str | None = "healthy",
             health: "str | None | object" = DERIVED, tries: int = 1, **meta) -> str:
    """Register one instance through the registry's HTTP API, as a service following the guide would.

    ``target`` is a registry fixture (anything with ``.url``) or a base URL. ``url`` defaults to
    ``http://NAME.test:8090``; the health check URL is ``URL/health`` unless ``health`` names another or
    is None; ``status`` None leaves it out of the metadata; ``meta`` adds to it. ``tries`` > 1 retries
    while the registry reconnects to ZooKeeper. Asserts the 201 and returns the instance id.
    """
    import httpx

    base = getattr(target, "url", target)
    url = url or f"http://{name}.test:8090"
    body = {"service_name": name, "service_url": url,
            "health_check_url": url + "/health" if health is DERIVED else health,
            "service_metadata": {"instance_id": iid, **({"status": status} if status else {}), **meta}}
    answer = None
    for attempt in range(tries):
        try:
            answer = httpx.post(f"{base}/api/v1/registry/register", json=body, timeout=30)
        except httpx.HTTPError as exc:
            answer = exc
        if not isinstance(answer, Exception) and answer.status_code == 201:
            said = answer.json()
            return said.get("instance_id", iid) if isinstance(said, dict) else iid
        if attempt + 1 < tries:
            time.sleep(0.5)
    raise AssertionError(f"could not register {name}/{iid}: {getattr(answer, 'text', answer)}")


def wait_until(predicate, timeout: float = 30.0, interval: float = 0.1, what: str = "condition"):
    """Poll ``predicate`` until it returns something truthy and return that; fail after ``timeout`` s.

    A bounded wait, never a timing assertion: the timeout is generous and only ends a hung test."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not reached within {timeout:g}s")
        time.sleep(interval)


def instance_nodes(kazoo_client, base: str) -> dict:
    """``{(service, instance id): (node data as JSON, node stat)}`` straight from ZooKeeper under ``base``."""
    out = {}
    for svc in kazoo_client.get_children(base):
        path = f"{base}/{svc}/instances"
        if not kazoo_client.exists(path):
            continue
        for iid in kazoo_client.get_children(path):
            data, stat_ = kazoo_client.get(f"{path}/{iid}")
            out[(svc, iid)] = (json.loads(data), stat_)
    return out


def read_http_head(conn) -> bytes:
    """Read a request's head (through the blank line) from a socket; b"" when the client closed first."""
    head = b""
    while b"\r\n\r\n" not in head:
        data = conn.recv(65536)
        if not data:
            return b""
        head += data
    return head
