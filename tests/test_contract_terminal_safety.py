"""No control or bidi character from registry data ever reaches the operator's terminal.

Every C0/C1 control, DEL, every bidi override/isolate/mark and the line/paragraph
separators are written into real ZooKeeper nodes (service URL, status, metadata,
service names where ZooKeeper allows them) and pushed through every reading command
in every format, with stdout and stderr on a real pseudo-terminal (colour on). The
bytes the terminal receives may hold only regctl's own colour/cursor sequences,
CR and LF; each hostile character is followed by ``Q`` in the data, so an emitted
one shows up as ``<char>Q``. JSON and YAML still decode to the exact value.
"""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
import threading

import pytest
import yaml

from regctl.safety import is_safe, json_dumps, safe_lines, safe_text, yaml_dump
from tests.helpers import run_cli

CONTROLS = [chr(c) for c in [*range(0x00, 0x20), *range(0x7F, 0xA0)]]
BIDI = [chr(c) for c in [0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x2028, 0x2029]]
HOSTILE = CONTROLS + BIDI
PAYLOAD = "".join(c + "Q" for c in HOSTILE) + "\x1b]0;PWNED\x07\x1b[2J[red]MARKUP[/red]"
#: ZooKeeper refuses controls in node names but takes bidi characters (Unicode category Cf)
EVIL_NAME = "evil-" + "".join(c + "Q" for c in BIDI if c not in "\u2028\u2029") + "[red]NAME"

#: what regctl itself may send a terminal: SGR colours, rich Live's cursor hide/show, line erase, cursor up
OWN_SEQUENCES = re.compile(r"\x1b\[[0-9;]*m|\x1b\[\?25[lh]|\x1b\[2K|\x1b\[[0-9]*A|\x1b\[\?7[lh]")


def emitted_hostile(raw: bytes, folded: bool = False) -> list:
    """Hostile characters (with context) in what a terminal received, regctl's own sequences removed.

    ``folded``: the output wraps long cells itself (a live view), so a line break before ``Q`` proves nothing.
    """
    text = OWN_SEQUENCES.sub("", raw.decode("utf-8", "replace"))
    found = [text[max(0, m.start() - 20):m.end() + 5] for m in re.finditer("[" + "".join(
        re.escape(c) for c in HOSTILE if c not in "\r\n") + "]", text)]
    if not folded:
        found += [text[max(0, m.start() - 20):m.end() + 5] for m in re.finditer(r"[\r\n]Q", text)]
    return found


def run_on_pty(args, env, timeout=60) -> tuple:
    """Run regctl with stdin, stdout and stderr on one pseudo-terminal; (exit code, bytes received)."""
    master, slave = pty.openpty()
    full_env = {**os.environ, **env, "COLUMNS": "200", "LINES": "50", "TERM": "xterm-256color"}
    full_env.pop("NO_COLOR", None)
    p = subprocess.Popen([sys.executable, "-m", "regctl", *args], stdin=slave, stdout=slave, stderr=slave,
                         env=full_env, close_fds=True)
    os.close(slave)
    chunks: list = []

    def pump() -> None:
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        code = p.wait(timeout=timeout)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    reader.join(5)
    os.close(master)
    return code, b"".join(chunks)


@pytest.fixture
def hostile_registry(registry, kazoo_client):
    base = registry.base_path
    node = {"instance_id": "evil-1" + PAYLOAD, "service_name": "evil", "service_url": "http://127.0.0.1:9/" + PAYLOAD,
            "health_check_url": "http://127.0.0.1:9/h" + PAYLOAD, "status": "healthy" + PAYLOAD,
            "service_metadata": {"k" + PAYLOAD: PAYLOAD, "version": PAYLOAD}}
    kazoo_client.create(f"{base}/evil/instances/evil-1", json.dumps(node).encode(), makepath=True, ephemeral=True)
    named = {**node, "service_name": EVIL_NAME, "service_url": "http://127.0.0.1:9/x"}
    kazoo_client.create(f"{base}/{EVIL_NAME}/instances/n-1", json.dumps(named).encode(), makepath=True,
                        ephemeral=True)
    return registry


#: (arguments, whether the table shows the hostile value, so its visible escape must be there)
COMMANDS = [
    (["list", "--source", "zk"], True),
    (["list", "--source", "api"], False),
    (["list"], True),
    (["inspect", "evil", "--source", "zk"], True),
    (["inspect", "evil"], True),
    (["inspect", EVIL_NAME, "--source", "zk"], True),
    (["url", "evil"], False),
    (["discover", "evil"], False),  # its status is not one the Config Service can parse: a plain 500, as the real one
    (["health", "evil", "--timeout", "1"], True),
    (["doctor", "--service", "evil", "--all", "--timeout", "2"], True),
    (["export", "--source", "zk"], True),
]


@pytest.mark.parametrize("fmt", ["table", "wide", "json", "yaml"])
@pytest.mark.parametrize("args,shows", COMMANDS, ids=[safe_text(" ".join(a))[:30] for a, _ in COMMANDS])
def test_no_hostile_character_reaches_the_terminal(hostile_registry, args, shows, fmt):
    code, raw = run_on_pty([*args, "-o", fmt], hostile_registry.env)
    assert code in (0, 1, 2, 3), raw[-3000:]
    assert b"Traceback" not in raw, raw[-3000:]
    assert emitted_hostile(raw) == [], raw[-3000:]
    text = raw.decode("utf-8", "replace")
    if shows:
        assert "\\x1bQ" in text or "\\u202eQ" in text or "\\eQ" in text, text[-3000:]
    if "MARKUP" in text and fmt in ("table", "wide"):
        assert "[red]MARKUP[/red]" in OWN_SEQUENCES.sub("", text)  # shown as text, never styling


@pytest.mark.parametrize("how", ["live", "line", "json"])
def test_watch_shows_hostile_data_escaped(hostile_registry, how):
    args = ["watch", "--initial", "--for", "1.5"] + {"live": [], "line": ["-o", "table"], "json": ["-o", "json"]}[how]
    if how == "line":  # line mode is for a stdout that is not a terminal
        p = subprocess.run([sys.executable, "-m", "regctl", *args], env={**os.environ, **hostile_registry.env},
                           capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
        code, raw = p.returncode, p.stdout + p.stderr
        assert b"ADDED" in raw, raw
    else:
        code, raw = run_on_pty(args, hostile_registry.env)
    assert code == 0, raw[-3000:]
    assert emitted_hostile(raw, folded=how == "live") == [], raw[-3000:]
    assert b"evil" in raw
    if how != "json":
        assert b"\\nQ" in raw.replace(b"\r\n", b"") and b"\\x1bQ" in raw.replace(b"\r\n", b""), raw[-3000:]


@pytest.mark.parametrize("fmt", ["json", "yaml"])
def test_machine_output_round_trips_the_hostile_value(hostile_registry, fmt):
    res = run_cli("inspect", "evil", "--source", "zk", "-o", fmt, env=hostile_registry.env)
    assert res.exit_code == 0, res
    assert emitted_hostile(res.stdout.encode()) == []
    doc = res.json if fmt == "json" else res.yaml
    urls = json.dumps(doc, ensure_ascii=False)
    assert json.dumps("http://127.0.0.1:9/" + PAYLOAD, ensure_ascii=False) in urls


def test_a_hostile_url_in_an_api_error_is_escaped_on_stderr(hostile_registry):
    res = run_cli("inspect", "nope\u202e\x1b[2J", "--source", "api", env=hostile_registry.env)
    assert res.exit_code in (1, 2), res  # not registered, or refused as a name the operator typed
    assert res.stderr.startswith("regctl: error: ") and "nope" in res.stderr, res
    assert "\\u202e" in res.stderr or "\\x1b" in res.stderr, res  # shown, escaped
    assert "\x1b" not in res.stderr and "\u202e" not in res.stderr, res


# --------------------------------------------------------------------------- the rule itself

@pytest.mark.parametrize("ch", HOSTILE + ["\ud800"])
def test_every_unsafe_character_is_shown_as_a_visible_escape(ch):
    shown = safe_text(f"a{ch}b")
    assert is_safe(shown) and shown.startswith("a\\") and shown.endswith("b")
    assert ("\\x" if ord(ch) < 0x100 else "\\u") in shown or shown in ("a\\nb", "a\\rb", "a\\tb")


def test_ordinary_text_is_left_alone():
    for text in ("plain", "caf\u00e9 \u20ac \u4e2d\u6587 \U0001f600", "[red]x[/red]", "a\\x1b"):
        assert safe_text(text) == text
    assert safe_lines("one\ntwo\x1b") == "one\ntwo\\x1b"


def test_json_and_yaml_escape_and_round_trip():
    value = {"k" + PAYLOAD: [PAYLOAD, "caf\u00e9", "\ud800"], "n": 1}
    j = json_dumps(value)
    assert is_safe(j.replace("\n", "")) and json.loads(j) == value
    assert "caf\u00e9" in j  # ordinary letters stay readable
    y = yaml_dump({"k" + PAYLOAD: [PAYLOAD, "caf\u00e9"], "n": 1})
    assert is_safe(y.replace("\n", ""))
    assert yaml.safe_load(y) == {"k" + PAYLOAD: [PAYLOAD, "caf\u00e9"], "n": 1}
    assert "caf\u00e9" in y

