"""Output that changes while a command runs: ``watch``'s stream of events and the probing progress bar.

Both print through the run's :class:`~regctl.cli.render.Output` (its console, its colour and
terminal rules), so the renderer stays the only printer.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from regctl import deadline

from regctl.cli.render import Output, human_text, status_style, to_json

# ---------------------------------------------------------------------------
# a stream of events (watch): a result that cannot wait for the end
# ---------------------------------------------------------------------------

def event_line(ev: Any) -> str:
    """One event as a plain line: ``<time> ADDED svc/id url status`` (``watch`` off a terminal)."""
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


class EventStream:
    """Where ``watch``'s events are printed, chosen once (``mode``): ``json`` (one JSON object per event
    per line, flushed at once), ``plain`` (one :func:`event_line` each) or ``live`` (a table of the live
    instances redrawn in place on a terminal, with the connection state and the last events).

    :meth:`open` prints the watcher's warnings on stderr first; the watcher's ``snapshot``,
    ``connected``, ``hosts``, ``base`` and ``disconnected_since`` feed the live table.
    """

    RECENT = 8

    def __init__(self, out: "Output", mode: str) -> None:
        self.out = out
        self.mode = mode
        self.stream = out.stdout
        self.watcher: Any = None
        self.recent: list = []
        self.changed_at: dict = {}
        self.live: Any = None

    def open(self, watcher: Any, warnings: "list | tuple" = ()) -> None:
        for w in warnings:
            self.out.warn(w)
        self.watcher = watcher
        if self.mode == "live":
            from rich.live import Live

            self.live = Live(self._live_view(), console=self.out._console(self.stream), refresh_per_second=4,
                             transient=False, get_renderable=self._live_view)
            self.live.__enter__()

    def emit(self, ev: Any) -> None:
        if self.mode == "json":
            self.stream.write(to_json(ev.to_dict(), indent=None) + "\n")
            self.stream.flush()
            return
        if self.mode == "plain":
            self.stream.write(human_text(event_line(ev)) + "\n")
            self.stream.flush()
            return
        if ev.is_instance_event:
            self.changed_at[(ev.service, ev.instance_id)] = (ev.event, ev.time)
        self.recent = [*self.recent, human_text(event_line(ev))][-self.RECENT:]
        if self.live is not None:
            self.live.refresh()

    def close(self) -> None:
        if self.live is not None:
            self.live.update(self._live_view(), refresh=True)
            self.live.__exit__(None, None, None)
            self.live = None

    def _live_view(self) -> Any:
        from rich import box
        from rich.console import Group
        from rich.table import Table as RichTable
        from rich.text import Text

        w = self.watcher
        table = RichTable(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
        for col in ("SERVICE", "INSTANCE", "STATUS", "URL", "LAST EVENT"):
            table.add_column(col, overflow="fold")
        now = time.time()
        for (svc, iid), inst in sorted(w.snapshot.items()):
            last = self.changed_at.get((svc, iid))
            last_text = f"{last[0]} {int(now - last[1])}s ago" if last else "-"
            status = Text(human_text(inst.status), style=status_style(inst.status) or "")
            table.add_row(Text(human_text(svc)), Text(human_text(iid)), status,
                          Text(human_text(inst.service_url or "-")), last_text)
        if w.connected:
            state = Text(human_text(f"connected to {w.hosts} {w.base}: {len(w.snapshot)} instance(s); "
                                    "Ctrl-C to stop"), style="green")
        else:
            away = int(now - (w.disconnected_since or now))
            state = Text(human_text(f"DISCONNECTED from {w.hosts} for {away}s; reconnecting "
                                    "(changes will be reported)"), style="bold red")
        return Group(state, table, Text("\n".join(self.recent), style="dim"))


class ProgressBar:
    """The one progress display: a transient bar on stderr counting work done (``health`` probing).

    Handed to the core as its ``on_progress(done, total)`` callback. It shows only
    when ``total`` is above ``threshold``, stderr is a terminal and the output is for
    people (not ``-o json|yaml``); used as a context manager, it is removed when the
    block ends, however it ends.
    """

    def __init__(self, out: Output, label: str, threshold: int = 20) -> None:
        self.out, self.label, self.threshold = out, label, threshold
        self._bar: Any = None
        self._task: Any = None
        self._decided = False

    def __enter__(self) -> "ProgressBar":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __call__(self, done: int, total: int) -> None:
        if not self._decided:
            self._decided = True
            if total > self.threshold and self.out.output not in ("json", "yaml") and self.out.is_tty(self.out.stderr):
                self._start(total)
        if self._bar is not None:
            self._bar.update(self._task, completed=done)

    def _start(self, total: int) -> None:
        from rich.console import Console
        from rich.markup import escape
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        console = Console(file=self.out.stderr, color_system="auto" if self.out.color(self.out.stderr) else None,
                          highlight=False)
        self._bar = Progress(TextColumn(escape(human_text(self.label))), BarColumn(),
                             MofNCompleteColumn(), TimeElapsedColumn(), console=console, transient=True)
        self._task = self._bar.add_task(self.label, total=total)
        self._bar.start()

    def stop(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


class CountLine:
    """After a second, ``WHAT: N of M NOUN done...`` on stderr (a terminal only), rewritten in place
    and erased at the end; never on a pipe, never with -o json/yaml. ``done(row)`` counts a row
    once by its name (doctor's checks report as they end)."""

    DELAY = 1.0

    def __init__(self, out: Output, what: str, total: int, noun: str) -> None:
        self.out, self.what, self.total, self.noun, self.count = out, what, total, noun, 0
        self.names: set = set()
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.shown = False
        self.enabled = out.is_tty(out.stderr) and out.output not in ("json", "yaml")
        self.running: "deadline.Running | None" = None

    def done(self, row: Any) -> None:
        with self.lock:
            if row.name not in self.names:
                self.names.add(row.name)
                self.count += 1

    def _loop(self) -> None:
        if self.stop.wait(self.DELAY):
            return
        while True:
            with self.lock:
                text = f"{self.what}: {self.count} of {self.total} {self.noun} done..."
            try:
                self.out.stderr.write("\r" + text)
                self.out.stderr.flush()
                self.shown = True
            except (OSError, ValueError):
                return
            if self.stop.wait(0.25):
                return

    def __enter__(self) -> "CountLine":
        if self.enabled:
            self.running = deadline.start(self._loop, name=f"{self.what}-progress")
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop.set()
        if self.running is not None:
            self.running.outcome(1.0)
        if self.shown:
            try:
                self.out.stderr.write("\r\x1b[K")
                self.out.stderr.flush()
            except (OSError, ValueError):
                pass
