"""Keep secrets out of every line regctl writes: log records, debug output, errors.

Two layers:

* **by value**: every secret regctl learns while resolving settings (bearer
  tokens, values of secret-looking headers, ZooKeeper credentials) is registered
  with :func:`add_secrets`; :func:`redact_text` replaces each occurrence with ``***``.
* **by shape**: the userinfo of any URL (``http://user:***@host``), ``Authorization: ...``/``Proxy-Authorization: ...``/``Cookie: ...``
  header lines and ``Bearer <token>`` are masked even when the value was never
  registered (a library logging a request it built itself).

:class:`RedactingFormatter` applies both to every formatted log record (the CLI
installs it on its log handler, so ``-v``/``-vv`` debug logs of httpx, httpcore
and kazoo pass through it). No printing here.
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Iterable

REDACTED = "***"
_MIN_LEN = 3

_lock = threading.Lock()
_secrets: set[str] = set()
#: _secrets sorted longest first, rebuilt on the next read after a change
_by_length: "tuple[str, ...] | None" = None

_HEADER_LINE = re.compile(
    r"(?i)(\b(?:proxy-)?authorization|\bcookie|\bx-api-key|\bapi-key)(['\"]?\s*[:=,]\s*(?:b?['\"])?)([^'\"\r\n,)}\]]+)")
#: ``scheme://userinfo@`` in any URL (the userinfo cannot hold '/', '@' or whitespace)
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)([^/@\s?#\[\]'\"<>]*)@")
_BEARER = re.compile(r"(?i)\b(bearer|basic|digest)\s+([A-Za-z0-9._~+/=:-]{3,})")
#: what a credential after ``Bearer``/``Basic`` looks like, as opposed to a word ("Basic plan", "Digest
#: authentication"): a digit, a token punctuation mark or a capital letter after its first character
_TOKENISH = re.compile(r"[0-9._~+/=:]|.[A-Z]")


#: a header or key whose name holds one of these words carries a secret value
SECRET_WORDS = ("auth", "token", "secret", "key", "cookie", "password", "passwd", "session", "credential",
                "signature", "pass")
#: words before a credential in a header value (``Bearer <token>``): the credential is secret in any header
_SCHEME_WORDS = ("bearer", "basic", "digest", "token", "negotiate", "apikey")


def is_secret_name(name: str) -> bool:
    """The one secret heuristic: whether a header or setting named ``name`` may hold a secret
    (Authorization, X-Api-Key, X-Custom-Pass, Signature, zk_auth.credential ...)."""
    n = str(name).lower()
    return any(w in n for w in SECRET_WORDS)


def header_secrets(headers: "dict[str, str] | Iterable[tuple[str, str]]") -> list[str]:
    """The values of ``headers`` to redact from output: every value of a header whose name marks it
    secret (:func:`is_secret_name`), and in any header the credential after a scheme word
    (``Bearer x``). A value of an ordinary header (``X-Team: platform-ops``) is not a secret:
    replacing it would alter registry data that happens to hold the same word."""
    items = headers.items() if isinstance(headers, dict) else headers
    out: list[str] = []
    for name, value in items:
        value = str(value)
        scheme, _, rest = value.strip().partition(" ")
        if is_secret_name(name):
            out.append(value)
            if rest.strip():
                out.append(rest.strip())
        elif scheme.lower() in _SCHEME_WORDS and rest.strip():
            out.append(rest.strip())
    return out


def url_password(url: "str | None") -> "str | None":
    """The password (or bare token) in ``url``'s userinfo, if any."""
    m = _USERINFO.search(url or "")
    if not m or not m.group(2):
        return None
    user, sep, password = m.group(2).partition(":")
    return (password or None) if sep else user


def add_secrets(values: Iterable[str | None]) -> None:
    """Remember ``values`` (ignored: None, empty, shorter than 3 characters) for :func:`redact_text`."""
    with _lock:
        for v in values:
            if isinstance(v, str) and len(v.strip()) >= _MIN_LEN:
                _secrets.add(v)
                if v.strip() != v:
                    _secrets.add(v.strip())
        _forget_order()


def clear_secrets() -> None:
    """Forget every registered secret (each CLI run starts afresh)."""
    with _lock:
        _secrets.clear()
        _forget_order()


def _forget_order() -> None:
    global _by_length
    _by_length = None


def known_secrets() -> "tuple[str, ...]":
    """The registered secrets, longest first (so a secret containing another is replaced whole)."""
    global _by_length
    with _lock:
        if _by_length is None:
            _by_length = tuple(sorted(_secrets, key=len, reverse=True))
        return _by_length


def redact_text(text: str) -> str:
    """``text`` with every registered secret and every header/bearer-shaped credential replaced by ``***``."""
    if not text:
        return text
    for secret in known_secrets():
        if secret in text:
            text = text.replace(secret, REDACTED)
    text = _USERINFO.sub(_mask_userinfo, text)
    text = _HEADER_LINE.sub(lambda m: m.group(1) + m.group(2) + REDACTED, text)
    text = _BEARER.sub(_mask_bearer, text)
    return text


def _mask_bearer(m: "re.Match[str]") -> str:
    if not _TOKENISH.search(m.group(2)):
        return m.group(0)  # an ordinary word after "Basic"/"Digest" ("Basic plan"), not a credential
    return m.group(1) + " " + REDACTED


def _mask_userinfo(m: "re.Match[str]") -> str:
    user, sep, password = m.group(2).partition(":")
    if not sep:
        return f"{m.group(1)}{REDACTED}@" if user else m.group(0)
    return f"{m.group(1)}{user}:{REDACTED}@"


def mask_url(url: str) -> str:
    """``url`` with the password of its userinfo (or a bare token userinfo) replaced by ``***``."""
    return _USERINFO.sub(_mask_userinfo, url) if url else url


class RedactingFormatter(logging.Formatter):
    """A formatter whose output (message, arguments, traceback) went through :func:`redact_text`."""

    def format(self, record: logging.LogRecord) -> str:
        return redact_text(super().format(record))
