"""Terminal-safe text: what regctl prints never carries a control or bidi character.

Registry data is written by anyone who can reach the Config Service. A service
URL holding ``ESC ]0;...BEL`` or ``ESC [2J`` would retitle or clear the
operator's terminal; a right-to-left override (U+202E) would make ``evil.com``
read as something else. Every human-facing string goes through
:func:`safe_text` (the CLI's renderer does it in one place); machine output
goes through :func:`json_safe` / :func:`yaml_dump`, which escape the same
characters the way JSON and YAML spell escapes, so the value still round-trips.

Shown escaped, never emitted:

* C0 controls U+0000-U+001F and DEL U+007F (``\\x1b``, ``\\n``, ``\\t``),
* C1 controls U+0080-U+009F (``\\x9b``: a one-byte CSI on some terminals),
* bidi embeddings/overrides U+202A-U+202E, isolates U+2066-U+2069 and the
  marks U+200E, U+200F, U+061C (``\\u202e``),
* line/paragraph separators U+2028/U+2029 and lone surrogates (no UTF-8 stream
  can encode them).

No rich/typer here: core modules may use it too.
"""

from __future__ import annotations

import re
from typing import Any

#: every character that is never written raw to a terminal
UNSAFE_CHARS = ("\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069"
                "\ud800-\udfff")
_UNSAFE = re.compile(f"[{UNSAFE_CHARS}]")
_UNSAFE_KEEP_NL = re.compile("[\x00-\x09\x0b-\x1f" + UNSAFE_CHARS[len("\x00-\x1f"):] + "]")
#: what JSON (even with ensure_ascii=False) or YAML (allow_unicode) would leave raw
_UNSAFE_BEYOND_C0 = re.compile("[\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(ch: str) -> str:
    if ch in _NAMED:
        return _NAMED[ch]
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def is_safe(text: str) -> bool:
    """Whether ``text`` holds no control, bidi or surrogate character."""
    return _UNSAFE.search(text) is None


def safe_text(text: Any) -> str:
    """``text`` with every control/bidi character shown as a visible escape (``\\x1b``, ``\\u202e``).

    Newlines are escaped too: one value stays on one line (a table cell, a URL).
    """
    text = text if isinstance(text, str) else str(text)
    if _UNSAFE.search(text) is None:
        return text
    return _UNSAFE.sub(lambda m: _escape(m.group()), text)


def safe_lines(text: Any) -> str:
    """Like :func:`safe_text` but keeps line breaks (``\\n``): for multi-line messages regctl composes."""
    text = text if isinstance(text, str) else str(text)
    if _UNSAFE_KEEP_NL.search(text) is None:
        return text
    return _UNSAFE_KEEP_NL.sub(lambda m: _escape(m.group()), text)


def json_safe(text: str) -> str:
    """A JSON text from ``json.dumps(..., ensure_ascii=False)`` with C1, bidi and surrogates ``\\u``-escaped.

    These characters can only stand inside JSON strings, where ``\\uXXXX`` means the
    same character: the document decodes to the same value.
    """
    if _UNSAFE_BEYOND_C0.search(text) is None:
        return text
    return _UNSAFE_BEYOND_C0.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def json_dumps(data: Any, indent: "int | None" = 2) -> str:
    """``data`` as terminal-safe JSON (non-ASCII letters kept, every unsafe character escaped)."""
    import json

    return json_safe(json.dumps(data, indent=indent, ensure_ascii=False, default=str))


def yaml_dump(data: Any) -> str:
    """``data`` as terminal-safe YAML: a string holding an unsafe character is double-quoted with escapes."""
    import yaml

    return yaml.dump(data, Dumper=_dumper(), sort_keys=False, allow_unicode=True, default_flow_style=False)


def _yaml_dumper():
    import yaml
    from yaml.emitter import ScalarAnalysis

    class SafeDumper(yaml.SafeDumper):
        """Forces the double-quoted style, with every non-ASCII escaped, on a scalar holding an unsafe character."""

        def analyze_scalar(self, scalar):
            analysis = super().analyze_scalar(scalar)
            if _UNSAFE.search(scalar) is not None:
                return ScalarAnalysis(scalar=scalar, empty=analysis.empty, multiline=analysis.multiline,
                                      allow_flow_plain=False, allow_block_plain=False,
                                      allow_single_quoted=False, allow_double_quoted=True, allow_block=False)
            return analysis

        def write_double_quoted(self, text, split=True):
            if _UNSAFE.search(text) is None:
                return super().write_double_quoted(text, split)
            allow, self.allow_unicode = self.allow_unicode, False
            try:
                return super().write_double_quoted(text, split=False)
            finally:
                self.allow_unicode = allow

    return SafeDumper


_DUMPER: list = []


def _dumper():
    if not _DUMPER:
        _DUMPER.append(_yaml_dumper())
    return _DUMPER[0]
