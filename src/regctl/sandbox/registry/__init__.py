"""The contract-compatible registry: the server (server), its stores (db), HTTP layer (http), health
monitor (monitor); ``python -m regctl.sandbox.registry`` runs it (__main__)."""
