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
  can encode them),
* invisible characters (:data:`INVISIBLE_CHARS`: zero-width space U+200B, word joiner
  U+2060, soft hyphen U+00AD, BOM U+FEFF, variation selectors, tags ...): ``asr-service``
  with a U+200B at its end is shown as ``asr-service\\u200b``, never as ``asr-service``.

Lookalikes: in human output, a word that mixes ASCII with a character that looks like
an ASCII one (Cyrillic ``і`` U+0456 for ``i``, Greek ``ο``, the hyphen U+2010 for ``-``)
has those characters escaped too (``asr-serv\\u0456ce``); :func:`lookalike_groups` finds
names that differ only by invisible or lookalike characters, for a warning wherever
names are listed (``regctl.cli.render`` does it for every table).

No rich/typer here: core modules may use it too.
"""

from __future__ import annotations

import json
import re
import unicodedata
from typing import Any

#: every character that is never written raw to a terminal
#: characters that show nothing (or nothing distinct) on a terminal: two names differing only by them look alike
INVISIBLE_CHARS = ("\u00ad\u034f\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200d\u2060-\u2065"
                   "\u206a-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff9-\ufffb\U0001bca0-\U0001bca3"
                   "\U0001d173-\U0001d17a\U000e0000-\U000e0fff")
UNSAFE_CHARS = ("\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069"
                "\ud800-\udfff" + INVISIBLE_CHARS)
_UNSAFE = re.compile(f"[{UNSAFE_CHARS}]")
_UNSAFE_KEEP_NL = re.compile("[\x00-\x09\x0b-\x1f" + UNSAFE_CHARS[len("\x00-\x1f"):] + "]")
#: what JSON (even with ensure_ascii=False) or YAML (allow_unicode) would leave raw
_UNSAFE_BEYOND_C0 = re.compile("[\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff"
                               + INVISIBLE_CHARS + "]")
_INVISIBLE = re.compile(f"[{INVISIBLE_CHARS}]")

#: characters that look like an ASCII one (Cyrillic and Greek letters, dashes, dotless i ...) -> that one
LOOKALIKES = {
    **dict(zip("\u0430\u0435\u043e\u0440\u0441\u0443\u0445\u0456\u0458\u0455\u0501\u04bb\u04cf\u051b\u051d"
               "\u0410\u0412\u0415\u041a\u041c\u041d\u041e\u0420\u0421\u0422\u0425\u0423\u0406\u0408\u0405",
               "aeopcyxijsdhlqwABEKMHOPCTXYIJS")),
    **dict(zip("\u03b1\u03bf\u03bd\u03c1\u03b9\u03ba\u03c5\u03c7\u0391\u0392\u0395\u0396\u0397\u0399\u039a"
               "\u039c\u039d\u039f\u03a1\u03a4\u03a5\u03a7",
               "aovpikuxABEZHIKMNOPTYX")),
    **dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63\uff0d\u2043\u02d7", "-"),
    "\u0131": "i", "\u2139": "i", "\u2113": "l", "\u01c0": "l", "\u2024": ".", "\u02bc": "'", "\u2019": "'",
    "\u0261": "g", "\u0251": "a", "\u1d00": "A",
}
_LOOKALIKE = re.compile("[" + "".join(re.escape(c) for c in LOOKALIKES) + "]")

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(ch: str) -> str:
    if ch in _NAMED:
        return _NAMED[ch]
    code = ord(ch)
    if code > 0xFFFF:
        return f"\\U{code:08x}"
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def _json_escape(ch: str) -> str:
    code = ord(ch)
    if code > 0xFFFF:  # JSON spells a character beyond the BMP as a surrogate pair
        code -= 0x10000
        return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"
    return f"\\u{code:04x}"


def _escape_lookalikes(text: str) -> str:
    """Escape lookalike characters in every word that also holds an ASCII letter or digit."""
    def word(m: "re.Match[str]") -> str:
        w = m.group()
        if _LOOKALIKE.search(w) is None or not any(c.isascii() and c.isalnum() for c in w):
            return w
        return _LOOKALIKE.sub(lambda c: _escape(c.group()), w)

    return re.sub(r"\S+", word, text)


def escape_non_ascii(text: Any) -> str:
    """Every character beyond ASCII (and every unsafe one) shown as an escape: a flagged lookalike name."""
    text = text if isinstance(text, str) else str(text)
    return "".join(c if c.isascii() and c.isprintable() else _escape(c) for c in text)


def skeleton(name: str) -> str:
    """What ``name`` looks like: NFKC, invisible characters dropped, lookalikes mapped to ASCII."""
    text = unicodedata.normalize("NFKC", name)
    text = _INVISIBLE.sub("", text)
    return _LOOKALIKE.sub(lambda m: LOOKALIKES[m.group()], text)


def lookalike_groups(names: Any) -> "list[list[str]]":
    """Groups (two or more) of distinct names that differ only by invisible or lookalike characters."""
    by_look: dict = {}
    for name in dict.fromkeys(n for n in names if isinstance(n, str)):
        by_look.setdefault(skeleton(name), []).append(name)
    return [group for group in by_look.values() if len(group) > 1]


def is_safe(text: str) -> bool:
    """Whether ``text`` holds no control, bidi or surrogate character."""
    return _UNSAFE.search(text) is None


def safe_text(text: Any) -> str:
    """``text`` with every control/bidi character shown as a visible escape (``\\x1b``, ``\\u202e``).

    Newlines are escaped too: one value stays on one line (a table cell, a URL).
    """
    text = text if isinstance(text, str) else str(text)
    if text.isascii():
        return text if _UNSAFE.search(text) is None else _UNSAFE.sub(lambda m: _escape(m.group()), text)
    return _escape_lookalikes(_UNSAFE.sub(lambda m: _escape(m.group()), text))


def safe_lines(text: Any) -> str:
    """Like :func:`safe_text` but keeps line breaks (``\\n``): for multi-line messages regctl composes."""
    text = text if isinstance(text, str) else str(text)
    if text.isascii():
        return text if _UNSAFE_KEEP_NL.search(text) is None else _UNSAFE_KEEP_NL.sub(lambda m: _escape(m.group()), text)
    return _escape_lookalikes(_UNSAFE_KEEP_NL.sub(lambda m: _escape(m.group()), text))


def json_safe(text: str) -> str:
    """A JSON text from ``json.dumps(..., ensure_ascii=False)`` with C1, bidi and surrogates ``\\u``-escaped.

    These characters can only stand inside JSON strings, where ``\\uXXXX`` means the
    same character: the document decodes to the same value.
    """
    if _UNSAFE_BEYOND_C0.search(text) is None:
        return text
    return _UNSAFE_BEYOND_C0.sub(lambda m: _json_escape(m.group()), text)


def json_dumps(data: Any, indent: "int | None" = 2) -> str:
    """``data`` as terminal-safe JSON (non-ASCII letters kept, every unsafe character escaped)."""
    return json_safe(json.dumps(data, indent=indent, ensure_ascii=False, default=str))


def yaml_dump(data: Any) -> str:
    """``data`` as terminal-safe YAML: a string holding an unsafe character is double-quoted with escapes."""
    import yaml  # on use: this module is on the start-up path, yaml is not needed there

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
