"""``regctl watch [NAME...]``: live registrations and removals from ZooKeeper watches.

Output (stdout), chosen once at start:

* a terminal with ``-o table`` (the default): a table of live instances that
  updates in place (rich Live), with the connection state and the last events;
* ``-o json``, or stdout not a terminal and no ``-o`` given: one JSON object per
  event per line (``{"event": "added", "service", "instance_id", "time", ...}``),
  flushed at once, for ``jq`` and friends;
* ``-o table``/``wide`` given explicitly and stdout not a terminal: one plain line
  per event (``<time> ADDED svc/id url status``).

Streaming output cannot be a single :class:`Result`, so this module writes the
events itself, through ``rc.out``'s streams.
"""

import time
from typing import Annotated, Optional

import typer

from regctl.cli.options import ServiceNamesArg
from regctl.cli.options import command
from regctl.cli.render import Result, human_text, to_json
from regctl.errors import NotFound, UsageError


def register(app: typer.Typer) -> None:
    command(app, "watch")(watch)


def watch(
    rc,
    names: ServiceNamesArg = None,
    for_: Annotated[Optional[float], typer.Option(
        "--for", metavar="SECONDS", show_default=False,
        help="Stop after this many seconds [default: run until Ctrl-C].")] = None,
    count: Annotated[Optional[int], typer.Option(
        "--count", metavar="N", show_default=False,
        help="Stop after N added/removed/changed events (exit 1 if --for ends first).")] = None,
    initial: Annotated[bool, typer.Option(
        "--initial", help="Start with an 'added' event (initial: true) for every instance live now.")] = False,
) -> Result:
    """Follow registrations and removals live, from ZooKeeper watches (ZooKeeper required).

    Survives a lost ZooKeeper connection: prints a 'disconnected' event, keeps
    reconnecting, then a 'reconnected' event with gap_seconds, the changes made
    during the gap (during_gap: true) and a 'resync' event. Ctrl-C exits 0.

    Output: a live table on a terminal; JSON lines with -o json or when piped; plain
    'ADDED svc/id' lines with an explicit -o table off a terminal.

    Example: regctl watch asr-service -o json --count 1 --for 60
    """
    from regctl.names import validate_service_name
    from regctl.zookeeper.watch import RegistryWatcher

    s = rc.settings
    if not s.endpoint.zk_configured:
        raise UsageError("watch needs ZooKeeper: the API has no change feed",
                         hint="pass --zk HOST:PORT, set ZOOKEEPER_HOSTS, or add zk_hosts to the context")
    for n in names or []:
        validate_service_name(n)
    if for_ is not None and for_ <= 0:
        raise UsageError(f"--for {for_:g} must be more than 0 seconds", hint="e.g. --for 30")
    if count is not None and count < 1:
        raise UsageError(f"--count {count} must be at least 1", hint="e.g. --count 1")
    mode = _mode(rc)

    watcher = RegistryWatcher(s.endpoint.zk_hosts, s.endpoint.zk_base, timeout=s.endpoint.timeout, names=names or None,
                              **s.endpoint.zk_options())
    snapshot = watcher.start()
    if not getattr(watcher, "base_exists", True):
        rc.out.warn(f"the base path {watcher.base} does not exist in ZooKeeper {s.endpoint.zk_hosts} (yet): check "
                    "--zk-base / ZOOKEEPER_BASE_PATH")
    elif getattr(watcher, "base_empty", False):
        rc.out.warn(f"the base path {watcher.base} holds no services: check --zk-base / ZOOKEEPER_BASE_PATH")
    until = None if for_ is None else time.monotonic() + for_
    sink = {"json": JsonLines, "plain": PlainLines, "live": LiveTable}[mode](rc, watcher)
    seen = 0
    interrupted = False
    stop_flag = _CtrlC()
    try:
        stop_flag.install()
        with sink:
            if initial:
                from regctl.zookeeper.watch import WatchEvent

                now = time.time()
                for (svc, iid), inst in sorted(snapshot.items()):
                    sink.emit(WatchEvent("added", now, svc, iid, inst, detail={"initial": True}))

            def done() -> bool:
                return stop_flag.pressed or (count is not None and seen >= count)

            for ev in watcher.events(until=until, stop=done):
                sink.emit(ev)
                if ev.is_instance_event and not ev.detail.get("initial"):
                    seen += 1
                if count is not None and seen >= count:
                    break
    except KeyboardInterrupt:
        interrupted = True
    finally:
        stop_flag.uninstall()
        watcher.close()
    interrupted = interrupted or stop_flag.pressed
    result = Result()
    if interrupted:
        if mode != "json":
            rc.out.note("stopped (Ctrl-C)")
    elif count is not None and seen < count:
        result.error = NotFound(f"saw {seen} of {count} events within {for_:g}s",
                                hint="raise --for, or check that something changes under "
                                     f"{s.endpoint.zk_base} on {s.endpoint.zk_hosts}")
    return result


class _CtrlC:
    """Ctrl-C sets a flag the event loop checks (a KeyboardInterrupt raised inside kazoo's calls could
    be swallowed by its bare excepts); a second Ctrl-C interrupts at once."""

    def __init__(self) -> None:
        self.pressed = False
        self._previous = None
        self._installed = False

    def _handler(self, signum, frame) -> None:
        if self.pressed:
            raise KeyboardInterrupt
        self.pressed = True

    def install(self) -> None:
        import signal
        import threading

        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handler)
            self._installed = True

    def uninstall(self) -> None:
        import signal

        if self._installed:
            signal.signal(signal.SIGINT, self._previous)
            self._installed = False


def _mode(rc) -> str:
    s = rc.settings
    if s.output == "json":
        return "json"
    if s.output == "yaml":
        raise UsageError("watch streams events and cannot print YAML",
                         hint="use -o json (one JSON object per line) or -o table")
    if rc.out.is_tty(rc.out.stdout):
        return "live"
    return "plain" if s.sources.get("output") in ("flag", "env", "context") else "json"


class _Sink:
    def __init__(self, rc, watcher) -> None:
        self.rc = rc
        self.watcher = watcher
        self.out = rc.out.stdout

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        pass

    def emit(self, ev) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


class JsonLines(_Sink):
    def emit(self, ev) -> None:
        self.out.write(to_json(ev.to_dict(), indent=None) + "\n")
        self.out.flush()


def plain_line(ev) -> str:
    d = ev.to_dict()
    head = f"{d['time']} {ev.event.upper()}"
    if ev.is_instance_event:
        line = f"{head} {ev.service}/{ev.instance_id} {d.get('service_url') or '-'} {d.get('status') or '-'}"
        if ev.changes:
            line += " changed: " + ",".join(ev.changes)
        if ev.during_gap:
            line += " (during gap)"
        if ev.detail.get("initial"):
            line += " (initial)"
        return line
    if ev.event == "disconnected":
        return f"{head} {ev.detail.get('reason')}; reconnecting"
    if ev.event == "reconnected":
        return f"{head} after {ev.detail.get('gap_seconds')}s (session {ev.detail.get('session')})"
    extra = ", ".join(f"{k}={v}" for k, v in ev.detail.items() if k != "reason")
    return f"{head} {ev.detail.get('reason')}: {extra}"


class PlainLines(_Sink):
    def emit(self, ev) -> None:
        self.out.write(human_text(plain_line(ev)) + "\n")
        self.out.flush()


class LiveTable(_Sink):
    """A table of live instances redrawn in place, with the connection state and recent events."""

    RECENT = 8

    def __init__(self, rc, watcher) -> None:
        super().__init__(rc, watcher)
        self.recent: list = []
        self.changed_at: dict = {}
        self.live = None

    def __enter__(self):
        from rich.live import Live

        self.live = Live(self._render(), console=self.rc.out._console(self.out), refresh_per_second=4,
                         transient=False, get_renderable=self._render)
        self.live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self.live is not None:
            self.live.update(self._render(), refresh=True)
            self.live.__exit__(None, None, None)

    def emit(self, ev) -> None:
        if ev.is_instance_event:
            self.changed_at[(ev.service, ev.instance_id)] = (ev.event, ev.time)
        self.recent.append(human_text(plain_line(ev)))
        self.recent = self.recent[-self.RECENT:]
        if self.live is not None:
            self.live.refresh()

    def _render(self):
        from rich import box
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        from regctl.cli.render import status_style

        w = self.watcher
        table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
        for col in ("SERVICE", "INSTANCE", "STATUS", "URL", "LAST EVENT"):
            table.add_column(col, overflow="fold")
        now = time.time()
        for (svc, iid), inst in sorted(w.snapshot.items()):
            last = self.changed_at.get((svc, iid))
            last_text = f"{last[0]} {int(now - last[1])}s ago" if last else "-"
            style = status_style(inst.status)
            status = Text(human_text(inst.status), style=style or "")
            table.add_row(Text(human_text(svc)), Text(human_text(iid)), status,
                          Text(human_text(inst.service_url or "-")), last_text)
        if w.connected:
            state = Text(human_text(f"connected to {w.hosts} {w.base}: {len(w.snapshot)} instance(s); "
                                    "Ctrl-C to stop"), style="green")
        else:
            away = int(now - (w.disconnected_since or now))
            state = Text(human_text(f"DISCONNECTED from {w.hosts} for {away}s; reconnecting "
                                    "(changes will be reported)"), style="bold red")
        recent = Text("\n".join(self.recent), style="dim")
        return Group(state, table, recent)
