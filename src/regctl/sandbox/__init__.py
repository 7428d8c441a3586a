"""A local, disposable registry stack for trying regctl and for its tests.

* :mod:`regctl.sandbox.zookeeper` finds and starts a real ZooKeeper (standalone, or a
  loopback ensemble; ``srvr`` the only four-letter word allowed unless asked otherwise,
  as deployments run it) and speaks its four-letter words.
* :mod:`regctl.sandbox.registry.server` is a Config Service look-alike that behaves as the real
  service's code does, quirks and failures included (stdlib HTTP server + kazoo;
  ``tests/test_real_parity.py`` holds the two side by side); its HTTP routing and
  validation live in :mod:`regctl.sandbox.registry.http`, its database and cache
  stand-ins in :mod:`regctl.sandbox.registry.db`, its health checks and the later generation's
  monitor in :mod:`regctl.sandbox.registry.monitor`, its command line in
  :mod:`regctl.sandbox.registry.__main__`; it reaches ZooKeeper through the loopback relay
  of :mod:`regctl.sandbox.zkrelay` so that a session can be abandoned unclosed.
* :mod:`regctl.sandbox.demo` plants a handful of demo services (healthy, zombie,
  undiscoverable, deregistered) through the registry's HTTP API.
* :mod:`regctl.sandbox.stack` starts, inspects and stops all of it as detached
  background processes with state and logs under one directory;
  :mod:`regctl.sandbox.recovery` checks what came back after a restart.
* :mod:`regctl.sandbox.proc` holds the small process and port helpers they share.
* :mod:`regctl.sandbox.statedir` creates or checks the state directory and writes its files
  without ever following a symlink.

Core code: stdlib, kazoo and httpx only (no typer, no rich).
"""
