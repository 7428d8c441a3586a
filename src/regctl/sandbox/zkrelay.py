"""A loopback TCP relay between the sandbox registry's kazoo client and ZooKeeper.

The registry's ZooKeeper connection goes through one :class:`Relay` per session.
:meth:`Relay.cut` drops every connection and stops listening: the kazoo client can
no longer reach ZooKeeper, so it cannot close its session either, and ZooKeeper
keeps that session's ephemeral nodes until its timeout, as after a process that
died without saying goodbye. Stdlib only.
"""

from __future__ import annotations

import logging
import socket
import threading

log = logging.getLogger("regctl.sandbox.registry")


def split_hosts(hosts: str) -> tuple[list[tuple[str, int]], str]:
    """``"h1:1,h2:2/chroot"`` -> ``([("h1", 1), ("h2", 2)], "/chroot")``; port 2181 when absent."""
    hosts = hosts.strip()
    chroot = ""
    slash = hosts.find("/")
    if slash >= 0:
        hosts, chroot = hosts[:slash], hosts[slash:]
    out = []
    for item in hosts.split(","):
        item = item.strip()
        if not item:
            continue
        if item.startswith("["):  # [::1]:2181
            host, _, rest = item[1:].partition("]")
            port = rest.lstrip(":") or "2181"
        else:
            host, _, port = item.rpartition(":") if ":" in item else (item, "", "2181")
        out.append((host, int(port)))
    return out, chroot


class Relay:
    """Listen on loopback ports, one per upstream ZooKeeper member, and copy bytes both ways."""

    def __init__(self, hosts: str, *, connect_timeout: float = 2.0) -> None:
        self.upstreams, self.chroot = split_hosts(hosts)
        self.connect_timeout = connect_timeout
        self._listeners: list[socket.socket] = []
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._cut = threading.Event()

    def start(self) -> "Relay":
        for upstream in self.upstreams:
            lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            lsock.bind(("127.0.0.1", 0))
            lsock.listen(16)
            self._listeners.append(lsock)
            threading.Thread(target=self._accept, args=(lsock, upstream), daemon=True,
                             name=f"zk-relay-{lsock.getsockname()[1]}").start()
        return self

    @property
    def hosts(self) -> str:
        """The connection string kazoo should use (the relay's ports, the original chroot)."""
        return ",".join(f"127.0.0.1:{s.getsockname()[1]}" for s in self._listeners) + self.chroot

    def cut(self) -> None:
        """Drop every connection and stop listening, for good. Idempotent."""
        self._cut.set()
        with self._lock:
            socks = list(self._listeners) + list(self._conns)
            self._conns.clear()
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                s.close()
            except OSError:
                pass

    def _accept(self, lsock: socket.socket, upstream: tuple[str, int]) -> None:
        while not self._cut.is_set():
            try:
                client, _ = lsock.accept()
            except OSError:
                return
            if self._cut.is_set():
                client.close()
                return
            try:
                server = socket.create_connection(upstream, timeout=self.connect_timeout)
                server.settimeout(None)
            except OSError as exc:
                log.debug("relay: ZooKeeper %s:%s unreachable: %s", *upstream, exc)
                client.close()
                continue
            for s in (client, server):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                if self._cut.is_set():
                    client.close()
                    server.close()
                    return
                self._conns.update((client, server))
            threading.Thread(target=self._pump, args=(client, server), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        with self._lock:
            for s in (src, dst):
                if s in self._conns:
                    self._conns.discard(s)
                    s.close()
