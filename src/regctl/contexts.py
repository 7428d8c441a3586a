"""The config file with named contexts (in the spirit of kubectl's kubeconfig).

Where: ``$REGCTL_CONFIG``, else ``$XDG_CONFIG_HOME/regctl/config.yaml``, else
``~/.config/regctl/config.yaml``. Format (YAML)::

    current-context: dev
    contexts:
      dev:
        config_url: http://localhost:8082
        zk_hosts: localhost:2181
        zk_base: /services
        timeout: 5
        headers: {X-Team: ops}
      prod:
        config_url: https://gateway.example.com/config
        headers: {Authorization: "Bearer ..."}   # or token_file / token_env
        token_file: ~/.config/regctl/prod.token
        token_env: PROD_TOKEN
        ca_bundle: /etc/ssl/corp-ca.pem
        insecure: false
        zk_auth: {scheme: digest, credential: "user:password"}

Which context is used: ``--context NAME`` > ``$REGCTL_CONTEXT`` > ``current-context``
> none. Its values sit *below* flags and environment variables
(:func:`regctl.settings.resolve`: flag > environment > context > default).

Every mistake in the file is a :class:`UsageError` whose one line names the file,
the line and the key. Writes are atomic (temporary file + rename) with mode 0600.
No printing here; :func:`permission_warnings` returns warnings for the caller.
"""

from __future__ import annotations

import copy
import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

import yaml

from regctl.errors import UsageError
from regctl.http.bounded import CONFIG_FILE_MAX_BYTES, compose_yaml, construct_yaml, read_file_text, replace_file
from regctl.redaction import header_secrets, is_secret_name, mask_url
from regctl.settings import file_readable_by_others, parse_header_line, redact_headers

CURRENT_KEY = "current-context"
TOP_KEYS = ("version", CURRENT_KEY, "contexts")
FILE_VERSION = 1

#: context key -> (python types accepted, description for errors and docs)
CONTEXT_KEYS: dict[str, tuple[tuple[type, ...], str]] = {
    "config_url": ((str,), "Config Service base URL"),
    "zk_hosts": ((str,), "ZooKeeper hosts 'h1:2181,h2:2181[/chroot]'"),
    "zk_base": ((str,), "registry base path in ZooKeeper"),
    "timeout": ((int, float), "seconds per network step"),
    "headers": ((dict,), "extra HTTP headers {name: value}"),
    "token_file": ((str,), "file holding a bearer token (sent as Authorization: Bearer ...)"),
    "token_env": ((str,), "environment variable holding a bearer token"),
    "ca_bundle": ((str,), "CA bundle (PEM) to verify the Config Service's TLS certificate"),
    "insecure": ((bool,), "do not verify TLS certificates"),
    "zk_auth": ((dict,), "ZooKeeper auth {scheme, credential}"),
    "zk_tls": ((bool,), "connect to ZooKeeper over TLS (its secureClientPort)"),
    "zk_ca": ((str,), "CA bundle (PEM) to verify ZooKeeper's TLS certificate"),
    "zk_cert": ((str,), "client certificate (PEM) for ZooKeeper TLS"),
    "zk_key": ((str,), "client private key (PEM) for ZooKeeper TLS"),
    "description": ((str,), "free text"),
    "ignore": ((list,), "doctor findings acknowledged, each 'CHECK[:TARGET]' (regctl doctor --ignore)"),
}
ZK_AUTH_KEYS = ("scheme", "credential")

#: keys whose values are file paths or variable names, not secrets (whatever their names say)
NOT_SECRET_KEYS = ("token_file", "token_env", "zk_key", "zk_cert", "zk_ca", "ca_bundle", "scheme")
REDACTED = "***"


@dataclass
class ConfigFile:
    """The parsed file: ``contexts`` maps a name to its (validated) values."""
    path: Path
    current: str | None = None
    contexts: dict[str, dict[str, Any]] = field(default_factory=dict)
    exists: bool = False

    def get(self, name: str) -> dict[str, Any]:
        if name not in self.contexts:
            known = ", ".join(sorted(self.contexts)) or "none defined"
            raise UsageError(f"context {name!r} is not defined", where=str(self.path),
                             hint=f"use one of: {known}; or create it with: regctl config set-context {name} ...")
        return self.contexts[name]

    def to_dict(self) -> dict:
        return {CURRENT_KEY: self.current, "contexts": copy.deepcopy(self.contexts)}


# ---------------------------------------------------------------------------
# locating and reading
# ---------------------------------------------------------------------------

def config_path(env: Mapping[str, str] | None = None) -> Path:
    """``$REGCTL_CONFIG``, else ``$XDG_CONFIG_HOME/regctl/config.yaml``, else ``~/.config/regctl/config.yaml``."""
    env = os.environ if env is None else env
    explicit = env.get("REGCTL_CONFIG", "")
    if explicit:
        return Path(explicit).expanduser()
    xdg = env.get("XDG_CONFIG_HOME", "")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".config"
    return base / "regctl" / "config.yaml"


def load(path: Path | str | None = None) -> ConfigFile:
    """Read and validate the file; a missing file is an empty config."""
    path = config_path() if path is None else Path(path)
    try:
        text = read_file_text(path, CONFIG_FILE_MAX_BYTES, "config file")
    except FileNotFoundError:
        return ConfigFile(path)
    except IsADirectoryError:
        raise UsageError("config file is a directory", where=str(path),
                         hint="point REGCTL_CONFIG at a file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read the config file ({type(exc).__name__}: {exc})", where=str(path),
                         hint="check its permissions and encoding (UTF-8)") from None
    cfg = parse(text, path)
    cfg.exists = True
    return cfg


def parse(text: str, path: Path | str = "<config>") -> ConfigFile:
    """Parse and validate config text; errors name ``path``, the line and the key."""
    path = Path(path)
    try:
        root = compose_yaml(text, str(path))
        data = construct_yaml(root)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise UsageError(f"invalid YAML in the config file: {problem}", where=_where(path, mark),
                         hint="fix the file, or move it away to start afresh") from None
    if data is None:
        return ConfigFile(path)
    if not isinstance(data, dict) or not isinstance(root, yaml.MappingNode):
        raise UsageError("the config file is not a mapping", where=_where(path, root.start_mark if root else None),
                         hint="it must hold 'current-context:' and 'contexts:'")
    keys = _key_nodes(root)
    for key in data:
        if key not in TOP_KEYS:
            raise UsageError(f"unknown key {key!r} in the config file", where=_where(path, keys.get(key)),
                             hint="top-level keys are: " + ", ".join(TOP_KEYS))
    version = data.get("version", FILE_VERSION)
    if version != FILE_VERSION:
        raise UsageError(f"config file version {version!r} is not supported", where=_where(path, keys.get("version")),
                         hint=f"this regctl reads version {FILE_VERSION}")
    current = data.get(CURRENT_KEY)
    if current is not None and not isinstance(current, str):
        raise UsageError(f"{CURRENT_KEY} must be a context name", where=_where(path, keys.get(CURRENT_KEY)),
                         hint="write e.g. 'current-context: dev'")
    contexts_raw = data.get("contexts") or {}
    ctx_node = _value_node(root, "contexts")
    if not isinstance(contexts_raw, dict):
        raise UsageError("'contexts' must be a mapping of name -> settings",
                         where=_where(path, ctx_node.start_mark if ctx_node else keys.get("contexts")),
                         hint="write 'contexts:' then one indented block per context")
    contexts: dict[str, dict[str, Any]] = {}
    for name, values in contexts_raw.items():
        name_mark = _key_nodes(ctx_node).get(name) if isinstance(ctx_node, yaml.MappingNode) else None
        if not isinstance(name, str) or not name.strip():
            raise UsageError(f"context name {name!r} is not a non-empty string", where=_where(path, name_mark),
                             hint="quote the name")
        node = _value_node(ctx_node, name) if isinstance(ctx_node, yaml.MappingNode) else None
        try:
            contexts[name] = validate_context(values or {}, context=name)
        except _KeyProblem as exc:
            mark = None
            if isinstance(node, yaml.MappingNode):
                mark = _key_nodes(node).get(exc.key)
                if exc.sub is not None:
                    sub = _value_node(node, exc.key)
                    if isinstance(sub, yaml.MappingNode):
                        mark = _key_nodes(sub).get(exc.sub) or mark
            raise UsageError(exc.message, where=_where(path, mark or name_mark), hint=exc.hint) from None
    return ConfigFile(path, current, contexts)


class _KeyProblem(Exception):
    def __init__(self, message: str, key: str, hint: str, sub: str | None = None) -> None:
        super().__init__(message)
        self.message, self.key, self.hint, self.sub = message, key, hint, sub


def validate_context(values: Any, context: str = "?") -> dict[str, Any]:
    """Check one context's keys and value types; return a clean copy.

    Raises :class:`UsageError` (``_KeyProblem`` internally, so :func:`parse` can add the line).
    """
    if not isinstance(values, dict):
        raise _KeyProblem(f"context {context!r} must be a mapping of settings", key="", hint="indent its keys")
    out: dict[str, Any] = {}
    for key, value in values.items():
        if key not in CONTEXT_KEYS:
            raise _KeyProblem(f"unknown key {key!r} in context {context!r}", key=key,
                              hint="known keys: " + ", ".join(CONTEXT_KEYS))
        types, what = CONTEXT_KEYS[key]
        if value is None:
            continue
        if isinstance(value, bool) and bool not in types:
            ok = False
        else:
            ok = isinstance(value, types)
        if not ok:
            raise _KeyProblem(f"{key} in context {context!r} must be {_type_words(types)} ({what}), "
                              f"not {type(value).__name__}", key=key, hint=f"fix the value of {key}")
        if key == "ignore" and not all(isinstance(v, str) and v.strip() for v in value):
            raise _KeyProblem(f"ignore in context {context!r} must be a list of 'CHECK[:TARGET]' strings", key=key,
                              hint="e.g. ignore: [hygiene.stale-rows:legacy-billing]")
        if key == "headers":
            from regctl.settings import check_header

            clean = {}
            for hk, hv in value.items():
                try:
                    name, text = check_header(hk, hv, f"context {context!r}")
                except UsageError as exc:
                    raise _KeyProblem(f"{exc.message} in context {context!r}", key=key,
                                      sub=hk if isinstance(hk, str) else None, hint=exc.hint or "") from None
                clean[name] = text
            value = clean
        if key == "zk_auth":
            for sub in value:
                if sub not in ZK_AUTH_KEYS:
                    raise _KeyProblem(f"unknown key {sub!r} in zk_auth of context {context!r}", key=key,
                                      sub=sub, hint="zk_auth takes: scheme, credential")
            if not isinstance(value.get("scheme"), str) or not isinstance(value.get("credential"), str):
                raise _KeyProblem(f"zk_auth in context {context!r} needs text 'scheme' and 'credential'",
                                  key=key, hint="e.g. {scheme: digest, credential: 'user:password'}")
            from regctl.settings import parse_zk_auth

            try:
                parse_zk_auth(f"{value['scheme']}:{value['credential']}", f"context {context!r}")
            except UsageError as exc:
                raise _KeyProblem(f"zk_auth in context {context!r}: {exc.message}", key=key, sub="scheme",
                                  hint=exc.hint or "") from None
            value = {"scheme": value["scheme"], "credential": value["credential"]}
        out[key] = value
    return out


def _type_words(types: tuple[type, ...]) -> str:
    names = {str: "text", int: "a number", float: "a number", bool: "true or false", dict: "a mapping"}
    return " or ".join(dict.fromkeys(names.get(t, t.__name__) for t in types))


def _key_nodes(node: Any) -> dict:
    """key -> the mark where the key starts, for a MappingNode."""
    out = {}
    if isinstance(node, yaml.MappingNode):
        for k, _ in node.value:
            if isinstance(k, yaml.ScalarNode):
                out[k.value] = k.start_mark
    return out


def _value_node(node: Any, key: str) -> Any:
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode) and k.value == key:
                return v
    return None


def _where(path: Path, mark: Any) -> str:
    if mark is None:
        return str(path)
    return f"{path} line {mark.line + 1}"


# ---------------------------------------------------------------------------
# writing
# ---------------------------------------------------------------------------

def dump(cfg: ConfigFile) -> str:
    doc: dict[str, Any] = {"version": FILE_VERSION}
    if cfg.current is not None:
        doc[CURRENT_KEY] = cfg.current
    doc["contexts"] = cfg.contexts
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, default_flow_style=False)


def _real(path: Path) -> Path:
    """Where the bytes live: a symlinked config file is written through to its target."""
    return Path(os.path.realpath(path))


def save(cfg: ConfigFile) -> Path:
    """Write atomically (temporary file in the target's directory, fsync, rename) with mode 0600.

    A symlink stays a symlink: its target is replaced. Use :func:`editing` for a
    read-modify-write, so that concurrent writers do not lose each other's changes.
    """
    path = cfg.path
    target = _real(path)
    text = dump(cfg)
    try:
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        replace_file(target, text.encode("utf-8"), 0o600, durable=True)
        _fsync_dir(target.parent)
    except OSError as exc:
        raise UsageError(f"cannot write the config file ({exc.strerror or exc})", where=str(path),
                         hint="check the directory's permissions, or set REGCTL_CONFIG") from None
    cfg.exists = True
    return path


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(str(directory), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def editing(path: Path | str | None = None) -> Iterator[ConfigFile]:
    """Load the config file under an exclusive advisory lock, yield it, save it when the block succeeds.

    The lock (``fcntl.flock`` on ``<file>.lock`` next to the real file) is held from the
    read to the rename, so parallel ``config set-context`` runs all keep their change.
    """
    path = config_path() if path is None else Path(path)
    lock_path = _real(path).with_name(f".{_real(path).name}.lock")
    try:
        lock_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(str(lock_path), os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise UsageError(f"cannot lock the config file ({exc.strerror or exc})", where=str(lock_path),
                         hint="check the directory's permissions, or set REGCTL_CONFIG") from None
    try:
        try:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX)
        except ImportError:  # no fcntl (Windows): atomic writes only
            pass
        cfg = load(path)
        yield cfg
        save(cfg)
    finally:
        os.close(fd)  # releases the lock


def set_context(cfg: ConfigFile, name: str, updates: Mapping[str, Any], unset: tuple = (),
                headers: Mapping[str, str | None] | None = None) -> dict[str, Any]:
    """Create or update context ``name``: merge ``updates``, drop ``unset`` keys, merge ``headers``
    (a None value removes that header). Returns the new values (validated)."""
    if not name or name != name.strip() or any(c in name for c in "\r\n\t"):
        raise UsageError(f"context name {name!r} is not usable", hint="use letters, digits, '-' or '_'")
    values = copy.deepcopy(cfg.contexts.get(name, {}))
    for key in unset:
        if key not in CONTEXT_KEYS:
            raise UsageError(f"cannot unset {key!r}: not a context key", hint="known keys: " + ", ".join(CONTEXT_KEYS))
        values.pop(key, None)
    for key, value in updates.items():
        if value is not None:
            values[key] = value
    if headers:
        merged = dict(values.get("headers") or {})
        for hk, hv in headers.items():
            if hv is None:
                merged = {k: v for k, v in merged.items() if k.lower() != hk.lower()}
            else:
                merged = {k: v for k, v in merged.items() if k.lower() != hk.lower()}
                merged[hk] = hv
        if merged:
            values["headers"] = merged
        else:
            values.pop("headers", None)
    try:
        clean = validate_context(values, context=name)
    except _KeyProblem as exc:
        raise UsageError(exc.message, hint=exc.hint) from None
    cfg.contexts[name] = clean
    return clean


def delete_context(cfg: ConfigFile, name: str) -> bool:
    """Remove ``name``; returns whether it was the current context (which is then unset)."""
    cfg.get(name)
    del cfg.contexts[name]
    if cfg.current == name:
        cfg.current = None
        return True
    return False


def use_context(cfg: ConfigFile, name: str) -> None:
    cfg.get(name)
    cfg.current = name


def parse_header(text: str) -> tuple[str, str | None]:
    """``'Name: value'`` -> (name, value); ``'Name-'`` or ``'Name:'`` -> (name, None) (remove it)."""
    return parse_header_line(text, "--header", allow_removal=True)


# ---------------------------------------------------------------------------
# selecting and turning a context into settings
# ---------------------------------------------------------------------------

def select(flag: str | None = None, env: Mapping[str, str] | None = None,
           cfg: ConfigFile | None = None) -> tuple[str | None, str | None]:
    """(context name, where the choice came from): ``--context`` > ``REGCTL_CONTEXT`` > current-context."""
    env = os.environ if env is None else env
    if flag:
        return flag, "--context"
    if env.get("REGCTL_CONTEXT", ""):
        return env["REGCTL_CONTEXT"], "REGCTL_CONTEXT"
    if cfg is not None and cfg.current:
        return cfg.current, CURRENT_KEY
    return None, None


def settings_values(values: Mapping[str, Any], env: Mapping[str, str] | None = None,
                    context: str = "?", path: Path | None = None) -> dict[str, Any]:
    """A context's values in the shape :func:`regctl.settings.resolve` takes.

    ``token_file``/``token_env`` become an ``Authorization: Bearer`` header (unless
    one is set already), ``ca_bundle``/``insecure`` become ``verify``, ``zk_auth``
    becomes ``zk_auth_data`` [(scheme, credential)].
    """
    env = os.environ if env is None else env
    where = f"context {context!r}" + (f" in {path}" if path else "")
    out: dict[str, Any] = {k: values[k] for k in ("config_url", "zk_hosts", "zk_base", "timeout") if k in values}
    headers = dict(values.get("headers") or {})
    if not any(k.lower() == "authorization" for k in headers):
        token = None
        if values.get("token_file"):
            from regctl.http.bounded import TOKEN_FILE_MAX_BYTES, read_file_text

            tpath = Path(os.path.expanduser(values["token_file"]))
            try:
                token = read_file_text(tpath, TOKEN_FILE_MAX_BYTES, "token_file",
                                       where=f"{where}: token_file {tpath}").strip()
            except (OSError, UnicodeDecodeError) as exc:
                raise UsageError(f"cannot read token_file {str(tpath)!r} ({type(exc).__name__})", where=where,
                                 hint="fix token_file in the context, or unset it") from None
        elif values.get("token_env"):
            token = env.get(values["token_env"], "").strip() or None
            if token is None:
                raise UsageError(f"token_env names {values['token_env']} but it is not set", where=where,
                                 hint=f"export {values['token_env']}=..., or unset token_env")
        if token:
            headers["Authorization"] = f"Bearer {token}"
    if headers:
        out["headers"] = headers
    if values.get("insecure"):
        out["verify"] = False
    elif values.get("ca_bundle"):
        bundle = os.path.expanduser(values["ca_bundle"])
        if not os.path.isfile(bundle):
            raise UsageError(f"ca_bundle {bundle!r} is not a file", where=where, hint="fix ca_bundle in the context")
        out["verify"] = bundle
    auth = values.get("zk_auth")
    if auth:
        out["zk_auth_data"] = [(auth["scheme"], auth["credential"])]
    zk_tls: dict[str, Any] = {}
    for key, kw in (("zk_ca", "ca"), ("zk_cert", "certfile"), ("zk_key", "keyfile")):
        if values.get(key):
            fpath = os.path.expanduser(values[key])
            if not os.path.isfile(fpath):
                raise UsageError(f"{key} {fpath!r} is not a file", where=where, hint=f"fix {key} in the context")
            zk_tls[kw] = fpath
    if zk_tls or values.get("zk_tls"):
        out["zk_client_kwargs"] = {"use_ssl": True, **zk_tls}
    return out


def load_selected(flag: str | None = None, env: Mapping[str, str] | None = None,
                  path: Path | None = None) -> tuple[str | None, dict[str, Any], list[str]]:
    """Everything a command needs: (context name, settings values, warnings).

    No file and no context asked for: ``(None, {}, [])``. An asked-for context
    that does not exist is a :class:`UsageError` naming where the name came from.
    """
    env = os.environ if env is None else env
    cfg = load(config_path(env) if path is None else path)
    name, source = select(flag, env, cfg)
    if name is None:
        return None, {}, permission_warnings(cfg)
    if name not in cfg.contexts:
        known = ", ".join(sorted(cfg.contexts)) or "none defined"
        raise UsageError(f"context {name!r} (from {source}) is not defined", where=str(cfg.path),
                         hint=f"use one of: {known} (regctl config get-contexts)")
    values = cfg.contexts[name]
    return name, settings_values(values, env, name, cfg.path), permission_warnings(cfg, only=name)


# ---------------------------------------------------------------------------
# secrets
# ---------------------------------------------------------------------------

def is_secret_key(key: str) -> bool:
    """Whether a context value under ``key`` is a secret (:func:`regctl.redaction.is_secret_name`)."""
    return key.lower() not in NOT_SECRET_KEYS and is_secret_name(key)


def redact(values: Any) -> Any:
    """A copy with every secret replaced by ``***``: every header value, any value under a
    secret-looking key (zk_auth.credential), and the password of any URL."""

    if isinstance(values, str):
        return mask_url(values)
    if isinstance(values, dict):
        out = {}
        for k, v in values.items():
            if k == "headers" and isinstance(v, dict):
                out[k] = redact_headers(v)
            elif isinstance(k, str) and is_secret_key(k) and v is not None and not isinstance(v, (dict, list)):
                out[k] = REDACTED
            else:
                out[k] = redact(v)
        return out
    if isinstance(values, list):
        return [redact(v) for v in values]
    return values


def holds_secret(values: Mapping[str, Any]) -> bool:
    """Whether a context keeps a secret in the file itself (not token_file/token_env): a secret-looking
    or long header value, a credential, a URL password."""

    plain = dict(values)
    if header_secrets(dict(plain.pop("headers", None) or {})):
        return True
    return redact(plain) != plain


def permission_warnings(cfg: ConfigFile, only: str | None = None) -> list[str]:
    """Warnings for secrets others may read: the config file (when it holds a
    secret) and token files, when group- or other-readable."""

    warnings = []
    contexts = {only: cfg.contexts[only]} if only and only in cfg.contexts else cfg.contexts
    if cfg.exists and any(holds_secret(v) for v in contexts.values()):
        w = file_readable_by_others(cfg.path)
        if w:
            warnings.append(f"{cfg.path} holds secrets and is {w}; run: chmod 600 {cfg.path}")
    for name, values in contexts.items():
        if values.get("token_file"):
            tpath = Path(os.path.expanduser(values["token_file"]))
            w = file_readable_by_others(tpath)
            if w:
                warnings.append(f"token_file {tpath} (context {name!r}) is {w}; run: chmod 600 {tpath}")
    return warnings
