"""``regctl watch [NAME...]``: live registrations and removals from ZooKeeper watches.

Output (stdout), chosen once at start:

* a terminal with ``-o table`` (the default): a table of live instances that
  updates in place (rich Live), with the connection state and the last events;
* ``-o json``, or stdout not a terminal and no ``-o`` given: one JSON object per
  event per line (``{"event": "added", "service", "instance_id", "time", ...}``),
  flushed at once, for ``jq`` and friends;
* ``-o table``/``wide`` given explicitly and stdout not a terminal: one plain line
  per event (``<time> ADDED svc/id url status``).

Streaming output cannot wait for a single :class:`Result`: the events go to
:class:`regctl.cli.live.EventStream` as they happen; the :class:`Result` carries how it ended.
"""

from typing import Annotated, Optional

import typer

from regctl.cli.options import ServiceNamesArg, command
from regctl.cli.live import EventStream
from regctl.cli.render import Result
from regctl.errors import UsageError


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
    from regctl.zookeeper.watch import WatchRequest, watch_registry  # kazoo: not on the start-up path

    request = WatchRequest(names=tuple(names or ()), seconds=for_, count=count, initial=initial)
    request.check(rc.settings.endpoint)
    mode = _mode(rc)
    report = watch_registry(rc.settings.endpoint, request, EventStream(rc.out, mode))
    result = Result(error=report.error)
    if report.interrupted and mode != "json":
        result.notes.append("stopped (Ctrl-C)")
    return result


def _mode(rc) -> str:
    """json, plain or live: how the events are printed (see the module's note)."""
    s = rc.settings
    if s.output == "json":
        return "json"
    if s.output == "yaml":
        raise UsageError("watch streams events and cannot print YAML",
                         hint="use -o json (one JSON object per line) or -o table")
    if rc.out.is_tty(rc.out.stdout):
        return "live"
    return "plain" if s.sources.get("output") in ("flag", "env", "context") else "json"
