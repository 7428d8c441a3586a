"""Resolved settings: where regctl talks to and how it prints.

Lookup order, for every setting: **flag > environment > context > default**.

============  ====================  ======================  ==============================
setting       flag                  environment             default
============  ====================  ======================  ==============================
config_url    ``--config-url``      ``CONFIG_SERVICE_URL``  ``http://config-service:8082``
zk_hosts      ``--zk``              ``ZOOKEEPER_HOSTS``     none (ZooKeeper not used)
zk_base       ``--zk-base``         ``ZOOKEEPER_BASE_PATH`` ``/services``
timeout       ``--timeout``         ``REGCTL_TIMEOUT``      ``5`` seconds
output        ``-o/--output``       ``REGCTL_OUTPUT``       ``table``
color         ``--no-color``        ``NO_COLOR`` (any)      auto: only on a terminal
headers       ``--header`` (later)  (later)                 none
============  ====================  ======================  ==============================

The config-service default is the guide's. ZooKeeper has no default on purpose:
regctl reads ZooKeeper only when told where it is, so ``--source auto`` never
waits on a ``zookeeper:2181`` that does not resolve from an operator's laptop.

The context layer comes from :mod:`regctl.contexts` (a YAML file); :func:`resolve`
takes it as a plain mapping so this module has no file handling.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Mapping

from regctl.errors import UsageError
from regctl.names import normalize_base_path, parse_zk_hosts, validate_url

DEFAULT_CONFIG_URL = "http://config-service:8082"
DEFAULT_ZK_BASE = "/services"
DEFAULT_TIMEOUT = 5.0
OUTPUT_FORMATS = ("table", "wide", "json", "yaml")

#: setting name -> environment variable
ENV_VARS = {
    "config_url": "CONFIG_SERVICE_URL",
    "zk_hosts": "ZOOKEEPER_HOSTS",
    "zk_base": "ZOOKEEPER_BASE_PATH",
    "timeout": "REGCTL_TIMEOUT",
    "output": "REGCTL_OUTPUT",
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

_SECRET_HEADER_WORDS = ("authorization", "token", "secret", "key", "cookie", "password")


@dataclass(frozen=True)
class Settings:
    """Everything a command needs to know about where to connect and how to print."""

    config_url: str = DEFAULT_CONFIG_URL
    zk_hosts: str | None = None
    zk_base: str = DEFAULT_ZK_BASE
    timeout: float = DEFAULT_TIMEOUT
    output: str = "table"
    #: True/False forced by flag or NO_COLOR; None means "colour only on a terminal".
    color: bool | None = None
    verbose: int = 0
    headers: Mapping[str, str] = field(default_factory=dict)
    context: str | None = None
    #: setting name -> where its value came from: "flag", "env", "context" or "default".
    sources: Mapping[str, str] = field(default_factory=dict)
    #: extra context values later features read (TLS, auth); never printed unredacted.
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def zk_configured(self) -> bool:
        return bool(self.zk_hosts)

    @property
    def machine_output(self) -> bool:
        return self.output in ("json", "yaml")

    def describe(self, name: str) -> str:
        """``'http://x:8082' (from CONFIG_SERVICE_URL)`` style text for hints."""
        src = self.sources.get(name, "default")
        label = {"flag": FLAGS.get(name, name), "env": ENV_VARS.get(name, "env"),
                 "context": f"context {self.context!r}", "default": "default"}.get(src, src)
        return f"{getattr(self, name)!r} (from {label})"

    def redacted(self) -> dict:
        """A printable view: secret header values replaced by ``***``."""
        return {
            "config_url": self.config_url,
            "zk_hosts": self.zk_hosts,
            "zk_base": self.zk_base,
            "timeout": self.timeout,
            "output": self.output,
            "context": self.context,
            "headers": redact_headers(self.headers),
            "sources": dict(self.sources),
        }

    def __repr__(self) -> str:  # never leak headers through logs or tracebacks
        return f"Settings({self.redacted()!r})"


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Replace the value of every header that may hold a secret with ``***``."""
    return {k: ("***" if any(w in k.lower() for w in _SECRET_HEADER_WORDS) else v) for k, v in headers.items()}


def resolve(flags: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None,
            context: Mapping[str, Any] | None = None, context_name: str | None = None,
            verbose: int = 0) -> Settings:
    """Resolve every setting: flag > environment > context > default.

    ``flags`` holds values given on the command line (None = not given), ``env`` is
    the environment (default ``os.environ``), ``context`` the current context's
    values from the config file. Values are validated here, so a bad URL or host
    list is a :class:`UsageError` naming where it came from.
    """
    flags = {k: v for k, v in (flags or {}).items() if v is not None}
    env = os.environ if env is None else env
    context = context or {}
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for name, default in DEFAULTS.items():
        var = ENV_VARS.get(name)
        if name in flags:
            values[name], sources[name] = flags[name], "flag"
        elif var and env.get(var, "") != "":
            values[name], sources[name] = env[var], "env"
        elif context.get(name) is not None:
            values[name], sources[name] = context[name], "context"
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

    headers = dict(values["headers"] or {})
    extra = {k: v for k, v in context.items() if k not in DEFAULTS}
    return Settings(config_url=url, zk_hosts=zk, zk_base=base, timeout=timeout, output=output,
                    color=color, verbose=verbose, headers=headers, context=context_name,
                    sources=sources, extra=extra)
