"""An endpoint's clients: the protocol operations take (``api()``, ``zk()``), and the one
implementation that opens each on first use and closes them together.

The CLI's per-run state is one too (:class:`regctl.cli.runtime.RunContext`), so a command's
operations share its clients; a library caller may pass nothing and the operation opens and
closes its own.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator, Protocol

from regctl.settings import Endpoint


class Clients(Protocol):
    """Where an operation gets its clients: anything with these two (a :class:`Connections`, the CLI's run)."""

    def api(self) -> Any:
        """The registry API client (:class:`regctl.http.api.RegistryApi`)."""

    def zk(self) -> Any:
        """A connected :class:`regctl.zookeeper.reader.ZkReader` (asked only when ZooKeeper is configured)."""


class Connections:
    """An endpoint's clients, each opened on first use and all closed together (a context manager)."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self._open: dict = {}

    def api(self) -> Any:
        if "api" not in self._open:
            self._open["api"] = self.endpoint.api()
        return self._open["api"]

    def zk(self) -> Any:
        if "zk" not in self._open:
            reader = self.endpoint.zk_reader()
            reader.connect()
            self._open["zk"] = reader
        return self._open["zk"]

    def close(self) -> None:
        while self._open:
            self._open.popitem()[1].close()

    def __enter__(self) -> Connections:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def connections(endpoint: Endpoint, clients: Clients | None = None) -> Iterator[Clients]:
    """The caller's ``clients`` (the caller closes them), or a :class:`Connections` to ``endpoint``
    closed on leaving: how an operation that may be given clients gets them."""
    if clients is not None:
        yield clients
    else:
        with Connections(endpoint) as own:
            yield own
