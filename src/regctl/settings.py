"""Resolved settings: where regctl talks to and how it prints.

Lookup order, for every setting: **flag > environment > context > default**, except
that a context named on the command line (``--context NAME``) wins over the
environment for the keys it sets: **flag > --context's value > environment > default**.
A context selected by ``REGCTL_CONTEXT`` or the file's ``current-context`` keeps the
plain order. Either way :attr:`Settings.notes` says which environment variable
overrode (or was overridden by) a context's value; the CLI prints them with ``-v``.

============  ====================  ======================  ==============================
setting       flag                  environment             default
============  ====================  ======================  ==============================
config_url    ``--config-url``      ``CONFIG_SERVICE_URL``  ``http://config-service:8082``
zk_hosts      ``--zk``              ``ZOOKEEPER_HOSTS``     none (ZooKeeper not used)
zk_base       ``--zk-base``         ``ZOOKEEPER_BASE_PATH`` ``/services``
timeout       ``--timeout``         ``REGCTL_TIMEOUT``      ``5`` seconds
output        ``-o/--output``       ``REGCTL_OUTPUT``       ``table``
color         ``--no-color``        ``NO_COLOR`` (any)      auto: only on a terminal
headers       ``--header/-H``       ``REGCTL_HEADERS``      none (merged, see below)
token         ``--token-file``      ``REGCTL_TOKEN``        none (-> ``Authorization: Bearer``)
verify        ``--ca-bundle``       ``REGCTL_CA_BUNDLE``    system CAs
              ``--insecure``        ``REGCTL_INSECURE=1``   off (verification on)
zk_auth       ``--zk-auth-file``    ``REGCTL_ZK_AUTH``      none
zk_tls        ``--zk-tls``          ``REGCTL_ZK_TLS=1``     off (on when a CA/cert is given)
              ``--zk-ca``           ``REGCTL_ZK_CA``        system CAs
              ``--zk-cert/--zk-key`` ``REGCTL_ZK_CERT/KEY`` none (no client certificate)
============  ====================  ======================  ==============================

**Headers merge** instead of replacing: the context's headers (its ``headers``,
plus ``Authorization: Bearer <token>`` from ``token_file``/``token_env``), then
``REGCTL_HEADERS`` (plus ``REGCTL_TOKEN``), then ``--header`` flags (plus
``--token-file``); a later layer replaces a header of the same name (names compare
case-insensitively) and keeps the others. ``REGCTL_HEADERS`` holds either a JSON
object (``{"X-Team": "ops"}``) or ``Name: value`` lines separated by newlines.
Inside one layer, a token and an explicit ``Authorization`` header are a
:class:`UsageError` (which one was meant?); the context keeps its own rule (its
explicit header wins, see :func:`regctl.contexts.settings_values`).

**TLS**: ``--insecure`` beats ``--ca-bundle`` of the same layer; across layers the
highest layer that says anything wins. Turning verification off adds a warning to
:attr:`Settings.warnings` that the CLI prints on every run.

**ZooKeeper auth** is ``SCHEME:CREDENTIAL`` (``digest:user:password``): from a file
(``--zk-auth-file``, one line), ``REGCTL_ZK_AUTH`` or the context's ``zk_auth``.
There is deliberately no flag taking the credential itself: command lines end up
in shell history and ``ps``.

The config-service default is the guide's. ZooKeeper has no default on purpose:
regctl reads ZooKeeper only when told where it is, so ``--source auto`` never
waits on a ``zookeeper:2181`` that does not resolve from an operator's laptop.

The context layer comes from :mod:`regctl.contexts` (a YAML file); :func:`resolve`
takes it as a plain mapping so this module has no file handling.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from regctl.errors import UsageError
from regctl.guide import DEFAULT_CONFIG_SERVICE_URL
from regctl.names import normalize_base_path, parse_zk_hosts, validate_url
from regctl.redaction import header_secrets, mask_url, url_password

DEFAULT_CONFIG_URL = DEFAULT_CONFIG_SERVICE_URL  # the guide's default
DEFAULT_ZK_BASE = "/services"
DEFAULT_TIMEOUT = 5.0
OUTPUT_FORMATS = ("table", "wide", "json", "yaml", "name")

#: setting name -> environment variable
ENV_VARS = {
    "config_url": "CONFIG_SERVICE_URL",
    "zk_hosts": "ZOOKEEPER_HOSTS",
    "zk_base": "ZOOKEEPER_BASE_PATH",
    "timeout": "REGCTL_TIMEOUT",
    "output": "REGCTL_OUTPUT",
}

#: auth and TLS environment variables (see the module docstring)
AUTH_ENV_VARS = {
    "headers": "REGCTL_HEADERS",
    "token": "REGCTL_TOKEN",
    "ca_bundle": "REGCTL_CA_BUNDLE",
    "insecure": "REGCTL_INSECURE",
    "zk_auth": "REGCTL_ZK_AUTH",
    "zk_tls": "REGCTL_ZK_TLS",
    "zk_ca": "REGCTL_ZK_CA",
    "zk_cert": "REGCTL_ZK_CERT",
    "zk_key": "REGCTL_ZK_KEY",
}

DEFAULTS: dict[str, Any] = {
    "config_url": DEFAULT_CONFIG_URL,
    "zk_hosts": None,
    "zk_base": DEFAULT_ZK_BASE,
    "timeout": DEFAULT_TIMEOUT,
    "output": "table",
    "headers": {},
}

#: setting name -> command-line flag
FLAGS = {"config_url": "--config-url", "zk_hosts": "--zk", "zk_base": "--zk-base", "timeout": "--timeout",
         "output": "--output", "headers": "--header"}



@dataclass(frozen=True)
class Endpoint:
    """Where regctl talks to: the Config Service (URL, headers, TLS verification), the deadline of each
    call, and the optional ZooKeeper target (hosts, base path, auth, TLS; ``zk_hosts`` None: not used).

    It builds the clients (:meth:`api`, :meth:`zk_reader`); every consumer takes an endpoint rather
    than loose fields. Its repr never shows a header value or a credential.
    """

    config_url: str = DEFAULT_CONFIG_URL
    #: sent to the Config Service only (never to an instance a probe reaches)
    headers: Mapping[str, str] = field(default_factory=dict)
    #: HTTPS verification: True, False (--insecure) or a CA bundle path
    verify: "bool | str" = True
    timeout: float = DEFAULT_TIMEOUT
    zk_hosts: str | None = None
    zk_base: str = DEFAULT_ZK_BASE
    #: ZooKeeper auth as kazoo takes it, [(scheme, credential)]; never printed unredacted
    zk_auth_data: "list | None" = None
    #: kazoo's TLS options (use_ssl, ca, certfile, keyfile, verify_certs)
    zk_client_kwargs: Mapping[str, Any] = field(default_factory=dict)

    @property
    def zk_configured(self) -> bool:
        return bool(self.zk_hosts)

    def zk_options(self) -> dict:
        """Keyword arguments for :class:`regctl.zookeeper.reader.ZkReader` / ``RegistryWatcher``: auth and TLS."""
        return {"auth_data": self.zk_auth_data, "client_kwargs": dict(self.zk_client_kwargs)}

    def api(self):
        """A synchronous :class:`regctl.http.api.RegistryApi` for this endpoint (the caller closes it)."""
        from regctl.http.api import RegistryApi  # imported on use: settings are read on the start-up path

        return RegistryApi(self.config_url, timeout=self.timeout, headers=self.headers, verify=self.verify)

    def zk_reader(self):
        """An unconnected :class:`regctl.zookeeper.reader.ZkReader`; :class:`UsageError` without ZooKeeper."""
        if not self.zk_configured:
            raise UsageError("ZooKeeper is not configured", hint="pass {zk}HOST:PORT or set ZOOKEEPER_HOSTS")
        from regctl.zookeeper.reader import ZkReader

        return ZkReader(self.zk_hosts, self.zk_base, timeout=self.timeout, **self.zk_options())

    def secret_values(self) -> list[str]:
        """Every secret this endpoint holds (for :func:`regctl.redaction.add_secrets`)."""
        out: list[str] = header_secrets(dict(self.headers))
        for url in (self.config_url, self.zk_hosts):
            password = url_password(url)
            if password:
                out.append(password)
        for _scheme, cred in self.zk_auth_data or []:
            out.append(cred)
            user, sep, password = cred.partition(":")
            if sep and password:
                out.append(password)
        return out

    def redacted(self) -> dict:
        """A printable view: every header value replaced by ``***``, URL passwords and credentials masked."""
        return {
            "config_url": mask_url(self.config_url),
            "zk_hosts": self.zk_hosts,
            "zk_base": self.zk_base,
            "timeout": self.timeout,
            "headers": redact_headers(self.headers),
            "verify": self.verify,
            "zk_auth": [f"{scheme}:***" for scheme, _ in (self.zk_auth_data or [])],
            "zk_tls": {k: v for k, v in self.zk_client_kwargs.items() if k != "keyfile_password"},
        }

    def __repr__(self) -> str:  # never leak headers through logs or tracebacks
        return f"Endpoint({self.redacted()!r})"


@dataclass(frozen=True)
class Settings:
    """A run's settings: the :class:`Endpoint`, output preferences, and where each value came from."""

    endpoint: Endpoint = field(default_factory=Endpoint)
    output: str = "table"
    #: True/False forced by flag or NO_COLOR; None means "colour only on a terminal".
    color: bool | None = None
    verbose: int = 0
    context: str | None = None
    #: setting name -> where its value came from: "flag", "env", "context" or "default".
    sources: Mapping[str, str] = field(default_factory=dict)
    #: warnings the CLI prints on stderr on every run (e.g. TLS verification is off)
    warnings: tuple = ()
    #: where an environment variable and the context disagreed, and which won (the CLI shows them with -v)
    notes: tuple = ()

    def secret_values(self) -> list[str]:
        """Every secret these settings hold (for :func:`regctl.redaction.add_secrets`)."""
        return self.endpoint.secret_values()

    @property
    def machine_output(self) -> bool:
        return self.output in ("json", "yaml")

    def describe(self, name: str) -> str:
        """``'http://x:8082' (from CONFIG_SERVICE_URL)`` style text for hints."""
        src = self.sources.get(name, "default")
        label = {"flag": FLAGS.get(name, name), "env": ENV_VARS.get(name, "env"),
                 "context": f"context {self.context!r}", "default": "default"}.get(src, src)
        value = getattr(self.endpoint, name) if hasattr(self.endpoint, name) else getattr(self, name)
        return f"{value!r} (from {label})"

    def redacted(self) -> dict:
        """A printable view: the endpoint's (secrets masked), the output, the context and the sources."""
        return {**self.endpoint.redacted(), "output": self.output, "context": self.context,
                "sources": dict(self.sources)}

    def __repr__(self) -> str:  # never leak headers through logs or tracebacks
        return f"Settings({self.redacted()!r})"


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Every header value replaced with ``***``: regctl cannot tell which one a gateway treats as a secret."""
    return {k: "***" for k in headers}


def resolve(flags: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None,
            context: Mapping[str, Any] | None = None, context_name: str | None = None,
            verbose: int = 0, context_from_flag: bool = False) -> Settings:
    """Resolve every setting; the one place the lookup order lives.

    1. a flag on the command line;
    2. with ``context_from_flag`` (``--context NAME`` was given): the context's value;
    3. the environment variable (``CONFIG_SERVICE_URL``, ``REGCTL_HEADERS``, ...);
    4. the context's value (context chosen by ``REGCTL_CONTEXT`` or ``current-context``);
    5. the default.

    Headers merge by name in that same order (later layers replace a header of the
    same name). ``flags`` holds values given on the command line (None = not given),
    ``env`` is the environment (default ``os.environ``), ``context`` the selected
    context's values from the config file. Values are validated here, so a bad URL
    or host list is a :class:`UsageError` naming where it came from. Each place an
    environment variable and the context both set a key is described in
    :attr:`Settings.notes`.
    """
    flags = {k: v for k, v in (flags or {}).items() if v is not None}
    env = os.environ if env is None else env
    context = context or {}
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    notes: list[str] = []
    for name, default in DEFAULTS.items():
        var = ENV_VARS.get(name)
        in_env = bool(var) and env.get(var or "", "") != ""
        in_context = context.get(name) is not None
        if name in flags:
            values[name], sources[name] = flags[name], "flag"
        elif in_context and (context_from_flag or not in_env):
            values[name], sources[name] = context[name], "context"
            if in_env:
                notes.append(_note(var, name, context_name, context_won=True))
        elif in_env:
            values[name], sources[name] = env[var], "env"
            if in_context:
                notes.append(_note(var, name, context_name, context_won=False))
        else:
            values[name], sources[name] = default, "default"

    def origin(name: str) -> str:
        return {"flag": FLAGS.get(name, name), "env": ENV_VARS.get(name, ""),
                "context": f"context {context_name!r}", "default": "default"}[sources[name]]

    url = str(values["config_url"]).strip()
    try:
        validate_url(url, "Config Service URL")
    except UsageError as exc:
        raise UsageError(exc.message, where=origin("config_url"), hint=exc.hint) from None
    url = url.rstrip("/")

    zk = values["zk_hosts"]
    if zk is not None:
        zk = str(zk).strip() or None
    if zk:
        try:
            zk = parse_zk_hosts(zk).connection_string()
        except UsageError as exc:
            raise UsageError(exc.message, where=origin("zk_hosts"), hint=exc.hint) from None
    try:
        base = normalize_base_path(str(values["zk_base"]))
    except UsageError as exc:
        raise UsageError(exc.message, where=origin("zk_base"), hint=exc.hint) from None

    try:
        timeout = float(values["timeout"])
    except (TypeError, ValueError):
        raise UsageError(f"timeout {values['timeout']!r} is not a number", where=origin("timeout"),
                         hint="give seconds, e.g. --timeout 5") from None
    if not 0 < timeout <= 3600:
        raise UsageError(f"timeout {timeout:g} is out of range", where=origin("timeout"),
                         hint="give seconds between 0 and 3600") from None

    output = str(values["output"]).lower()
    if output not in OUTPUT_FORMATS:
        raise UsageError(f"output format {output!r} is unknown", where=origin("output"),
                         hint="use one of " + ", ".join(OUTPUT_FORMATS))

    color: bool | None = None
    if flags.get("no_color"):
        color, sources["color"] = False, "flag"
    elif "NO_COLOR" in env and env.get("NO_COLOR", "") != "":
        color, sources["color"] = False, "env"

    extra = {k: v for k, v in context.items() if k not in DEFAULTS}
    warnings: list[str] = []
    if context_from_flag:  # the context's keys beat the environment's: hide the env vars it overrides
        env, overridden = _without_context_keys(env, extra, context)
        notes.extend(_note(var, key, context_name, context_won=True) for var, key in overridden)
    else:
        notes.extend(_note(var, key, context_name, context_won=False)
                     for var, key in _context_keys_in_env(env, extra, context))
    headers = _resolve_headers(flags, env, context, sources, warnings, context_from_flag, notes, context_name)
    _resolve_tls(flags, env, extra, sources, url, warnings)
    _resolve_zk(flags, env, extra, sources, warnings)
    endpoint = Endpoint(config_url=url, headers=headers, verify=extra.get("verify", True), timeout=timeout,
                        zk_hosts=zk, zk_base=base, zk_auth_data=extra.get("zk_auth_data"),
                        zk_client_kwargs=dict(extra.get("zk_client_kwargs") or {}))
    return Settings(endpoint=endpoint, output=output, color=color, verbose=verbose, context=context_name,
                    sources=sources, warnings=tuple(warnings), notes=tuple(notes))


#: environment variable -> the context key (in :func:`regctl.contexts.settings_values`' terms) it competes with
_ENV_CONTEXT_KEYS = {
    "REGCTL_CA_BUNDLE": ("verify", None), "REGCTL_INSECURE": ("verify", None),
    "REGCTL_ZK_AUTH": ("zk_auth_data", None),
    "REGCTL_ZK_TLS": ("zk_client_kwargs", "use_ssl"), "REGCTL_ZK_CA": ("zk_client_kwargs", "ca"),
    "REGCTL_ZK_CERT": ("zk_client_kwargs", "certfile"), "REGCTL_ZK_KEY": ("zk_client_kwargs", "keyfile"),
}


def _context_keys_in_env(env: Mapping[str, str], extra: Mapping[str, Any],
                         context: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(variable, context key) for each auth/TLS variable set while the context sets that key too."""
    out = []
    for var, (key, sub) in _ENV_CONTEXT_KEYS.items():
        if not env.get(var, "").strip():
            continue
        value = extra[key] if key in extra else context.get(key)
        if sub is not None:
            value = value.get(sub) if isinstance(value, Mapping) else None
        if value is not None and value != [] and value != {}:
            out.append((var, f"{key}.{sub}" if sub else key))
    return out


def _without_context_keys(env: Mapping[str, str], extra: Mapping[str, Any],
                          context: Mapping[str, Any]) -> tuple[dict[str, str], list[tuple[str, str]]]:
    overridden = _context_keys_in_env(env, extra, context)
    hidden = {var for var, _ in overridden}
    return {k: v for k, v in env.items() if k not in hidden}, overridden


def _note(var: str | None, key: str, context_name: str | None, context_won: bool) -> str:
    ctx = f"context {context_name!r}" if context_name else "the context"
    if context_won:
        return f"{var} is set but --context {context_name} sets {key}: using {ctx}'s value"
    hint = f" (pass --context {context_name} to use the context's value)" if context_name else ""
    return f"{var} overrides {ctx}'s {key}{hint}"


# ---------------------------------------------------------------------------
# auth and TLS
# ---------------------------------------------------------------------------

_TOKEN_CHARS = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def check_header(name: Any, value: Any, where: str) -> tuple[str, str]:
    """A header as HTTP can send it: a token name (RFC 9110) and a printable ASCII value, else a
    :class:`UsageError` naming ``where``. The error never repeats the value (it may be a secret)."""
    if not isinstance(name, str) or not name or not set(name) <= _TOKEN_CHARS:
        raise UsageError(f"header name {name!r} is not valid (letters, digits and !#$%&'*+-.^_`|~ only)",
                         where=where, hint="write headers as 'Name: value', e.g. 'X-Team: ops'")
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise UsageError(f"header {name!r} must have a text value", where=where, hint="write 'Name: value'")
    value = str(value).strip()
    if not value:
        raise UsageError(f"header {name!r} has no value", where=where, hint="write 'Name: value'")
    if any(c in value for c in "\r\n\0"):
        raise UsageError(f"header {name!r} value contains a line break", where=where, hint="remove it")
    if not all(c == "\t" or " " <= c <= "~" for c in value):
        raise UsageError(f"header {name!r} value holds a control or non-ASCII character", where=where,
                         hint="HTTP header values are ASCII; encode the value (e.g. base64)")
    return name, value


def parse_header_line(text: str, where: str, allow_removal: bool = False) -> "tuple[str, str | None]":
    """The one header parser: ``'Name: value'`` -> (name, value); a :class:`UsageError` naming
    ``where`` otherwise. ``allow_removal``: ``'Name-'`` or ``'Name:'`` -> (name, None)."""
    text = str(text)
    if allow_removal and text.endswith("-") and ":" not in text:
        name = text[:-1].strip()
        check_header(name, "x", where)
        return name, None
    name, sep, value = text.partition(":")
    name = name.strip()
    if not sep:
        raise UsageError("header (no ':') is not 'Name: value'", where=where,
                         hint="write e.g. --header 'Authorization: Bearer TOKEN'")
    if allow_removal and not value.strip():
        check_header(name, "x", where)
        return name, None
    return check_header(name, value, where)


def parse_headers_env(text: str, var: str = "REGCTL_HEADERS") -> dict[str, str]:
    """``REGCTL_HEADERS``: a JSON object, or ``Name: value`` lines (blank lines and ``#`` comments skipped)."""
    text = text.strip()
    if not text:
        return {}
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise UsageError(f"{var} is not a valid JSON object ({type(exc).__name__} at "
                             f"position {getattr(exc, 'pos', '?')})", where=var,
                             hint='write {"Name": "value"} or Name: value lines') from None
        if not isinstance(data, dict):
            raise UsageError(f"{var} must map header names to text values", where=var,
                             hint='write {"Name": "value"}')
        return dict(check_header(k, v, var) for k, v in data.items())
    out: dict[str, str] = {}
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, value = parse_header_line(line, var)
            out = _merge({**out}, {name: value})
    return out


def read_token_file(path: str, where: str) -> str:
    """The token in ``path`` (stripped; one line), or a :class:`UsageError` naming the file, never the token."""
    from regctl.http.bounded import TOKEN_FILE_MAX_BYTES, read_file_text

    p = Path(os.path.expanduser(path))
    try:
        text = read_file_text(p, TOKEN_FILE_MAX_BYTES, "token file", where=f"{where} {p}")
    except FileNotFoundError:
        raise UsageError(f"token file {str(p)!r} does not exist", where=where, hint="check the path") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read token file {str(p)!r} ({type(exc).__name__})", where=where,
                         hint="check its path and permissions") from None
    token = text.strip()
    if not token:
        raise UsageError(f"token file {str(p)!r} is empty", where=where, hint="put the token in it")
    if any(c in token for c in "\r\n\0"):
        raise UsageError(f"token file {str(p)!r} holds more than one line", where=where,
                         hint="the file must hold only the token")
    return token


def file_readable_by_others(path: "str | Path") -> str | None:
    """The one "readable by others" check: ``'readable by group and other'`` style text when a file's
    mode lets others read it (None when it does not, or the file cannot be looked at)."""
    try:
        mode = Path(os.path.expanduser(str(path))).stat().st_mode
    except OSError:
        return None
    who = [w for w, bit in (("group", stat.S_IRGRP), ("other", stat.S_IROTH)) if mode & bit]
    return f"readable by {' and '.join(who)}" if who else None


def _merge(base: dict[str, str], over: Mapping[str, str]) -> dict[str, str]:
    """``base`` with every header of ``over`` replacing one of the same name (case-insensitive)."""
    out = dict(base)
    for name, value in over.items():
        out = {k: v for k, v in out.items() if k.lower() != name.lower()}
        out[name] = value
    return out


def _with_token(headers: dict[str, str], token: str | None, where: str, token_where: str) -> dict[str, str]:
    if not token:
        return headers
    if any(k.lower() == "authorization" for k in headers):
        raise UsageError(f"both an Authorization header and a token ({token_where}) are given", where=where,
                         hint="give one of them")
    return {**headers, "Authorization": f"Bearer {token}"}


def _flag_headers(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if isinstance(value, Mapping):
        items = [f"{k}: {v}" for k, v in value.items()]
    elif isinstance(value, str):
        items = [value]
    else:
        items = list(value)
    out: dict[str, str] = {}
    for item in items:
        name, val = parse_header_line(item, "--header")
        out = _merge(out, {name: val})
    return out


def _truthy(value: str, var: str) -> bool:
    v = value.strip().lower()
    if v in ("1", "true", "yes", "on"):
        return True
    if v in ("0", "false", "no", "off", ""):
        return False
    raise UsageError(f"{var}={value!r} is not a boolean", where=var, hint=f"set {var}=1 or {var}=0")


def _resolve_headers(flags: Mapping[str, Any], env: Mapping[str, str], context: Mapping[str, Any],
                     sources: dict[str, str], warnings: list[str], context_from_flag: bool = False,
                     notes: list[str] | None = None, context_name: str | None = None) -> dict[str, str]:
    """Context headers, then REGCTL_HEADERS/REGCTL_TOKEN, then --header/--token-file (by name).

    With ``context_from_flag`` the context's headers come after the environment's.
    """
    ctx_headers = dict(check_header(k, v, "context headers") for k, v in dict(context.get("headers") or {}).items())
    env_headers = parse_headers_env(env.get(AUTH_ENV_VARS["headers"], ""))
    env_token = env.get(AUTH_ENV_VARS["token"], "").strip() or None
    if env_token and any(c in env_token for c in "\r\n\0"):
        raise UsageError("REGCTL_TOKEN holds a line break", where="REGCTL_TOKEN", hint="set only the token")
    env_headers = _with_token(env_headers, env_token, "environment", "REGCTL_TOKEN")
    flag_headers = _flag_headers(flags.get("headers"))
    flag_token = None
    if flags.get("token_file"):
        flag_token = read_token_file(str(flags["token_file"]), "--token-file")
        w = file_readable_by_others(str(flags["token_file"]))
        if w:
            warnings.append(f"token file {flags['token_file']} is {w}; run: chmod 600 {flags['token_file']}")
    flag_headers = _with_token(flag_headers, flag_token, "command line", "--token-file")
    layers = [(ctx_headers, "context"), (env_headers, "env"), (flag_headers, "flag")]
    if context_from_flag:
        layers[0], layers[1] = layers[1], layers[0]
    shared = sorted({k.lower() for k in ctx_headers} & {k.lower() for k in env_headers})
    if shared and notes is not None:
        var = "REGCTL_HEADERS/REGCTL_TOKEN"
        notes.extend(_note(var, f"header {name!r}", context_name, context_won=context_from_flag) for name in shared)
    headers: dict[str, str] = {}
    for layer, src in layers:
        if layer:
            headers = _merge(headers, layer)
            sources["headers"] = src  # the highest layer that contributed
    if not headers:
        sources["headers"] = "default"
    return headers


def _resolve_tls(flags: Mapping[str, Any], env: Mapping[str, str], extra: dict[str, Any],
                 sources: dict[str, str], url: str, warnings: list[str]) -> None:
    """``extra['verify']``: --insecure/--ca-bundle > REGCTL_INSECURE/REGCTL_CA_BUNDLE > context > True."""
    verify: bool | str | None = None
    src = "default"
    env_insecure = _truthy(env.get(AUTH_ENV_VARS["insecure"], ""), AUTH_ENV_VARS["insecure"])
    if flags.get("insecure"):
        verify, src = False, "--insecure"
    elif flags.get("ca_bundle"):
        verify, src = _ca_file(str(flags["ca_bundle"]), "--ca-bundle"), "--ca-bundle"
    elif env_insecure:
        verify, src = False, "REGCTL_INSECURE"
    elif env.get(AUTH_ENV_VARS["ca_bundle"], ""):
        verify, src = _ca_file(env[AUTH_ENV_VARS["ca_bundle"]], "REGCTL_CA_BUNDLE"), "REGCTL_CA_BUNDLE"
    elif "verify" in extra:
        verify, src = extra["verify"], "context"
    if verify is None:
        extra.pop("verify", None)
        sources["verify"] = "default"
        return
    extra["verify"] = verify
    sources["verify"] = src
    if verify is False:
        scheme_note = "" if url.lower().startswith("https://") else " (and every https:// health URL)"
        warnings.append(f"TLS certificate verification is OFF for {url}{scheme_note} (from {src}): "
                        "anyone on the network path can read and change this traffic")


def _ca_file(path: str, where: str) -> str:
    p = os.path.expanduser(path)
    if not os.path.isfile(p):
        raise UsageError(f"CA bundle {p!r} is not a file", where=where, hint="give a PEM file of CA certificates")
    return p


def _resolve_zk(flags: Mapping[str, Any], env: Mapping[str, str], extra: dict[str, Any],
                sources: dict[str, str], warnings: list[str]) -> None:
    """``extra['zk_auth_data']`` and ``extra['zk_client_kwargs']`` (kazoo ``use_ssl``, ``ca``, ``certfile``...)."""
    auth = None
    if flags.get("zk_auth_file"):
        path = str(flags["zk_auth_file"])
        auth = parse_zk_auth(read_token_file(path, "--zk-auth-file"), "--zk-auth-file")
        sources["zk_auth"] = "flag"
        w = file_readable_by_others(path)
        if w:
            warnings.append(f"ZooKeeper auth file {path} is {w}; run: chmod 600 {path}")
    elif env.get(AUTH_ENV_VARS["zk_auth"], "").strip():
        auth = parse_zk_auth(env[AUTH_ENV_VARS["zk_auth"]].strip(), "REGCTL_ZK_AUTH")
        sources["zk_auth"] = "env"
    elif extra.get("zk_auth_data"):
        sources["zk_auth"] = "context"
    if auth is not None:
        extra["zk_auth_data"] = [auth]

    kwargs = dict(extra.get("zk_client_kwargs") or {})
    for key, kw, var in (("zk_ca", "ca", "REGCTL_ZK_CA"), ("zk_cert", "certfile", "REGCTL_ZK_CERT"),
                         ("zk_key", "keyfile", "REGCTL_ZK_KEY")):
        flag = FLAG_NAMES[key]
        value, where = (flags[key], flag) if flags.get(key) else (env.get(var, ""), var)
        if value:
            p = os.path.expanduser(str(value))
            if not os.path.isfile(p):
                raise UsageError(f"{flag.lstrip('-')} {p!r} is not a file", where=where,
                                 hint="give a PEM file")
            kwargs[kw] = p
            kwargs["use_ssl"] = True
    tls_flag = flags.get("zk_tls")
    if tls_flag is None and env.get(AUTH_ENV_VARS["zk_tls"], "") != "":
        tls_flag = _truthy(env[AUTH_ENV_VARS["zk_tls"]], AUTH_ENV_VARS["zk_tls"])
    if tls_flag:
        kwargs["use_ssl"] = True
    if bool(kwargs.get("certfile")) != bool(kwargs.get("keyfile")):
        raise UsageError("a ZooKeeper client certificate needs both --zk-cert and --zk-key",
                         where="--zk-cert/--zk-key", hint="give both, or neither")
    if kwargs.get("use_ssl"):
        kwargs.setdefault("verify_certs", True)
        if extra.get("verify") is False and "ca" not in kwargs:
            kwargs["verify_certs"] = False
            warnings.append("TLS certificate verification is OFF for ZooKeeper too (--insecure)")
        extra["zk_client_kwargs"] = kwargs
    else:
        extra.pop("zk_client_kwargs", None)


#: ZooKeeper auth schemes a client can add (an unknown one fails the whole session)
ZK_AUTH_SCHEMES = ("digest", "sasl", "x509")


def parse_zk_auth(text: str, where: str) -> tuple[str, str]:
    """``SCHEME:CREDENTIAL`` -> (scheme, credential); a :class:`UsageError` (never repeating the credential)."""
    scheme, sep, credential = text.strip().partition(":")
    if not sep or not scheme or not credential or any(c in text for c in "\r\n\0"):
        raise UsageError("ZooKeeper auth is not SCHEME:CREDENTIAL", where=where,
                         hint="write e.g. digest:user:password")
    if scheme not in ZK_AUTH_SCHEMES:
        from regctl.safety import safe_text

        raise UsageError(f"ZooKeeper auth scheme {safe_text(scheme[:40])!r} is not one of "
                         + ", ".join(ZK_AUTH_SCHEMES), where=where, hint="write e.g. digest:user:password")
    if scheme == "digest" and ":" not in credential:
        raise UsageError("digest ZooKeeper auth needs user:password", where=where,
                         hint="write digest:user:password")
    return scheme, credential


FLAG_NAMES = {"zk_ca": "--zk-ca", "zk_cert": "--zk-cert", "zk_key": "--zk-key"}
