"""Click's exception classes and context lookup, wherever typer keeps them.

Typer 0.2x vendors its own copy of click as ``typer._click``; older releases use
the ``click`` package. regctl's error funnel must catch the classes typer raises.
"""

try:  # typer with vendored click
    from typer._click import exceptions as click_exceptions
    from typer._click.globals import get_current_context
    from typer._click.shell_completion import CompletionItem
except ImportError:  # pragma: no cover - typer that depends on click
    from click import exceptions as click_exceptions  # type: ignore[no-redef]
    from click import get_current_context  # type: ignore[no-redef]
    from click.shell_completion import CompletionItem  # type: ignore[no-redef,assignment]

__all__ = ["CompletionItem", "click_exceptions", "get_current_context"]
