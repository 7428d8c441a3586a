"""Shell completion's candidates from the registry: service names, instance ids, context names.

Typer-free (a TAB is answered without importing typer; see
:mod:`regctl.cli.completion.tree`), and free of httpx: names come from ZooKeeper
(kazoo, imported only then) or from the API through the standard library.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Callable

from regctl.deadline import Value, run_with_deadline

#: seconds a looked-up list (or a failure) is reused
CACHE_TTL = 5.0
#: seconds the whole name lookup may take, connecting included
LOOKUP_BUDGET = 0.5
#: the part of the budget ZooKeeper may use before the API is asked instead
ZK_SHARE = 0.5
MAX_CACHE_ENTRIES = 64


def _check_names() -> list:
    from regctl.doctor import check_names

    names = list(check_names())
    return sorted({n.split(".", 1)[0] for n in names}) + names


# ---------------------------------------------------------------------------
# completers (typer's autocompletion=; ctx, args and incomplete are passed by name)
# ---------------------------------------------------------------------------

def complete_context_names(incomplete):
    """Context names from the config file."""
    try:
        from regctl import contexts

        cfg = contexts.load()
        return _shown([n for n in sorted(cfg.contexts) if n.startswith(incomplete or "")])
    except Exception:
        return []


def complete_service_names(ctx, incomplete):
    """Service names from the registry the command line points at."""
    try:
        settings = _settings_from(ctx)
        if settings is None:
            return []
        names = lookup(settings, None)
        return _shown([n for n in names if n.startswith(incomplete or "")])
    except Exception:
        return []


def complete_instance_ids(ctx, args, incomplete):
    """Instance ids of the service named earlier on the command line (``deregister NAME <TAB>``)."""
    try:
        service = (ctx.params or {}).get("name")
        if not service:
            return []
        settings = _settings_from(ctx)
        if settings is None:
            return []
        already = set((ctx.params or {}).get("instance_ids") or ())
        ids = lookup(settings, str(service))
        return _shown([i for i in ids if i.startswith(incomplete or "") and i not in already])
    except Exception:
        return []


def _shown(candidates: list) -> list:
    """Candidates as the shell may print them: controls and bidi characters escaped (registry data)."""
    from regctl.safety import safe_text

    return [safe_text(c) for c in candidates]


def _settings_from(ctx):
    """Settings for the command being completed: options typed so far, env, context.

    Only where to connect matters here: a bad ``REGCTL_TIMEOUT`` or ``REGCTL_OUTPUT``
    must not cost the candidates, so those two are fixed.
    """
    from regctl import contexts
    from regctl.settings import resolve

    common: dict = {}
    chain = []
    c = ctx
    while c is not None:
        chain.append(c)
        c = c.parent
    for c in reversed(chain):  # the command's own values win over the root's
        for k, v in (c.params or {}).items():
            if v is not None and v != [] and v != ():
                common[k] = v
    try:
        name, values, _ = contexts.load_selected(common.get("context"))
    except Exception:
        name, values = None, {}
    flags = {"config_url": common.get("config_url"), "zk_hosts": common.get("zk"),
             "zk_base": common.get("zk_base"), "timeout": 5.0, "output": "table",
             "headers": list(common.get("header") or []) or None, "token_file": common.get("token_file"),
             "ca_bundle": common.get("ca_bundle"), "insecure": common.get("insecure"),
             "zk_auth_file": common.get("zk_auth_file"), "zk_tls": common.get("zk_tls"),
             "zk_ca": common.get("zk_ca"), "zk_cert": common.get("zk_cert"), "zk_key": common.get("zk_key")}
    try:
        # an explicit --context wins over the environment for its keys, as for the command itself
        return resolve(flags, context=values, context_name=name,
                       context_from_flag=bool(common.get("context")) and name is not None)
    except Exception:
        return None


# ---------------------------------------------------------------------------
# the lookup: cache, budget, sources
# ---------------------------------------------------------------------------

def cache_path() -> Path:
    base = os.environ.get("XDG_CACHE_HOME", "")
    root = Path(base).expanduser() if base else Path.home() / ".cache"
    return root / "regctl" / "completion.json"


def _cache_key(settings, service: "str | None") -> str:
    where = f"api:{settings.endpoint.config_url}"
    if settings.endpoint.zk_configured:
        where = f"zk:{settings.endpoint.zk_hosts}:{settings.endpoint.zk_base}|{where}"
    return hashlib.sha256(f"{where}|{service or ''}".encode()).hexdigest()[:24]


def _cache_read() -> dict:
    try:
        data = json.loads(cache_path().read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except Exception:
        return {}


def _cache_write(key: str, names: list) -> None:
    try:
        path = cache_path()
        data = _cache_read()
        now = time.time()
        data = {k: v for k, v in data.items()
                if isinstance(v, dict) and now - float(v.get("t", 0)) < CACHE_TTL}
        data[key] = {"t": now, "v": names}
        if len(data) > MAX_CACHE_ENTRIES:
            data = dict(sorted(data.items(), key=lambda kv: kv[1]["t"])[-MAX_CACHE_ENTRIES:])
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f)
        os.replace(tmp, path)
    except Exception:
        pass


def lookup_budget() -> float:
    """:data:`LOOKUP_BUDGET`, or ``$REGCTL_COMPLETION_BUDGET`` seconds (0.05 to 30) for slow links."""
    try:
        value = float(os.environ.get("REGCTL_COMPLETION_BUDGET", ""))
    except ValueError:
        return LOOKUP_BUDGET
    return min(30.0, max(0.05, value)) if value == value else LOOKUP_BUDGET


def lookup(settings, service: "str | None", budget: "float | None" = None) -> list:
    """Service names (``service`` None) or one service's instance ids; [] on any failure.

    Like ``regctl list``: ZooKeeper when it is configured and answers, else the API.
    Both share one deadline of ``budget`` seconds; ZooKeeper gets at most
    :data:`ZK_SHARE` of it so the API still has time when ZooKeeper hangs.
    """
    budget = lookup_budget() if budget is None else budget
    key = _cache_key(settings, service)
    entry = _cache_read().get(key)
    if isinstance(entry, dict) and 0 <= time.time() - float(entry.get("t", 0)) < CACHE_TTL:
        return [str(x) for x in entry.get("v") or []]
    deadline = time.monotonic() + budget
    names = None
    if settings.endpoint.zk_configured:
        names = _within(lambda: _from_zookeeper(settings, service, budget * ZK_SHARE), budget * ZK_SHARE)
    if names is None:
        left = deadline - time.monotonic()
        if left > 0.02:
            names = _within(lambda: _from_api(settings, service, left), left)
    names = sorted(str(x) for x in (names or []))
    _cache_write(key, names)
    return names


def _within(fn: Callable[[], list], seconds: float) -> "list | None":
    """``fn()`` run in a daemon thread for at most ``seconds``; None when it failed or ran out of time."""
    got = run_with_deadline(fn, seconds, name="regctl-complete")
    return got.value if isinstance(got, Value) else None


def _from_zookeeper(settings, service: "str | None", budget: float) -> list:
    if not _any_member_accepts(settings.endpoint.zk_hosts, budget / 2):  # before kazoo's import (~0.1 s)
        raise OSError("no ZooKeeper member accepts")  # do not let kazoo retry until the budget is gone
    import logging

    from kazoo.client import KazooClient
    from kazoo.retry import KazooRetry

    from regctl.names import zk_join
    from regctl.zookeeper.reader import _close, harden, start

    quiet = logging.getLogger("regctl.completion.kazoo")
    quiet.addHandler(logging.NullHandler())
    quiet.propagate = False
    path = settings.endpoint.zk_base if service is None else zk_join(settings.endpoint.zk_base, service, "instances")
    # the main reader's bounds (regctl.zookeeper.reader.harden): a frame cap, a deadline per frame, the granted
    # session timeout capped at the one asked for, a bounded close
    client = KazooClient(hosts=settings.endpoint.zk_hosts, timeout=4.0, logger=quiet,
                         connection_retry=KazooRetry(max_tries=1, delay=0.05),
                         command_retry=KazooRetry(max_tries=0),
                         auth_data=settings.endpoint.zk_auth_data or None, **settings.endpoint.zk_client_kwargs)
    harden(client, budget)
    started = time.monotonic()
    try:
        start(client, budget * 0.8)
        left = max(0.05, budget - (time.monotonic() - started))
        names = client.get_children_async(path).get(timeout=left)
    finally:
        _close(client, wait=max(0.05, budget - (time.monotonic() - started)))
    if service is None and settings.endpoint.zk_base == "/":
        names = [n for n in names if n != "zookeeper"]
    return list(names)


def _any_member_accepts(hosts: str, timeout: float) -> bool:
    import socket

    from regctl.names import parse_zk_hosts

    for host, port in parse_zk_hosts(hosts).members:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            return True
        except OSError:
            continue
    return False


def _from_api(settings, service: "str | None", budget: float) -> list:
    """Names only, with the standard library (httpx costs ~0.1 s to import), by the rules of
    :func:`regctl.http.config.http_options`: the same headers, TLS verification and proxies
    (HTTP(S)_PROXY, NO_PROXY), never a redirect followed, an identity body of at most 4 MiB."""
    import ssl
    import urllib.request

    from regctl.names import url_segment

    base = settings.endpoint.config_url.rstrip("/") + "/api/v1/registry"
    url = base + "/services" if service is None else f"{base}/services/{url_segment(service)}"
    req = urllib.request.Request(url, headers={**dict(settings.endpoint.headers), "Accept": "application/json",
                                               "Accept-Encoding": "identity"})
    verify = settings.endpoint.verify
    context = None
    if url.startswith("https"):
        if verify is False:
            context = ssl._create_unverified_context()
        elif isinstance(verify, str):
            context = ssl.create_default_context(cafile=verify)
        elif isinstance(verify, ssl.SSLContext):
            context = verify
    class NoRedirects(urllib.request.HTTPRedirectHandler):  # replaces urllib's: a 3xx is an error here
        def redirect_request(self, req, fp, code, msg, headers, newurl):
            return None

    opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=context),
                                         urllib.request.ProxyHandler(), NoRedirects())
    with opener.open(req, timeout=budget) as resp:
        if resp.status != 200:
            return []
        data = json.loads(resp.read(4 * 1024 * 1024))
    if not isinstance(data, list):
        return []
    field = "service_name" if service is None else "instance_id"
    return sorted({str(x[field]) for x in data if isinstance(x, dict) and isinstance(x.get(field), str)})
