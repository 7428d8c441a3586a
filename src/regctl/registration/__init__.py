"""Registrations and deregistrations as operations that return reports (no printing).

Shared by ``regctl register``/``deregister`` and the library; import from the modules:

* :mod:`regctl.registration.request`: what ``register`` is told (flags, ``--from-env``, ``-f FILE``)
  read and validated into one :class:`~regctl.registration.request.RegisterRequest`;
* :mod:`regctl.registration.register`: :func:`~regctl.registration.register.register` sends it,
  confirms the new nodes in ZooKeeper and returns a ``RegisterReport``;
* :mod:`regctl.registration.deregister`: deregister plans, the operation
  (:func:`~regctl.registration.deregister.deregister`), its ``DeregisterReport`` and the check that
  each instance is gone;
* :mod:`regctl.registration.writes`: what both share: the clients an operation opens, a request as it
  would be sent, and the look in ZooKeeper after a write the API reported as failed.
"""
