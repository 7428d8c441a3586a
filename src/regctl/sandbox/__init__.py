"""A local, disposable registry stack for trying regctl and for its tests.

* :mod:`regctl.sandbox.zookeeper` finds and starts a real ZooKeeper (standalone, or a
  loopback ensemble) and speaks its four-letter words.
* :mod:`regctl.sandbox.registry` is a Config Service look-alike that follows
  ``registry-contract.md`` to the letter, quirks included (stdlib HTTP server + kazoo);
  its HTTP routing and validation live in :mod:`regctl.sandbox.registry_http`.
* :mod:`regctl.sandbox.demo` plants a handful of demo services (healthy, zombie,
  undiscoverable, deregistered) through the registry's HTTP API.
* :mod:`regctl.sandbox.stack` starts, inspects and stops all of it as detached
  background processes with state and logs under one directory.
* :mod:`regctl.sandbox.proc` holds the small process and port helpers they share.

Core code: stdlib, kazoo and httpx only (no typer, no rich).
"""
