"""Commands that change the registry: ``register``, ``deregister`` (issue 3)."""

import typer


def register(app: typer.Typer) -> None:
    """Nothing yet."""
