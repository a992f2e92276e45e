"""What every command group shares: the consoles, error handling, progress bars and the board/profile tables.

Every command module imports this one; only :mod:`.app` imports the command modules (never the other way).
"""

from __future__ import annotations

import functools
import math
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.progress import Progress, ProgressColumn
from rich.table import Table

from .. import _interrupt
from ..config import Settings
from ..errors import InputError, RequestError, TastemakerError

# piped output (CI logs, tests) gets a sensible width instead of 80 columns of wrapped tables
console = Console(width=None if sys.stdout.isatty() else 140)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 140)
F = TypeVar("F", bound=Callable[..., Any])


def _option_name(name: str) -> str:
    return "--" + name.replace("_", "-")


def _check_numbers(kwargs: dict[str, Any]) -> None:
    """Every float option is a finite number (``nan`` and ``inf`` parse as floats, and compare false with
    every bound, so range checks alone let them through)."""
    for name, value in kwargs.items():
        values = value if isinstance(value, list | tuple) else [value]
        for v in values:
            if isinstance(v, float) and not math.isfinite(v):
                raise RequestError(f"{_option_name(name)}: {v} is not a finite number")


def _validation_message(exc: Any) -> str:
    parts = []
    for err in exc.errors()[:3]:
        where = ".".join(str(p) for p in err.get("loc", ()))
        parts.append(f"{where}: {err.get('msg', 'invalid')} (got {str(err.get('input'))[:40]!r})")
    return "; ".join(parts)


def handle_errors(fn: F) -> F:
    """Turn Tastemaker errors into one clean line and the error's exit code."""
    from pydantic import ValidationError

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            _check_numbers(kwargs)
            return fn(*args, **kwargs)
        except TastemakerError as exc:
            err_console.print(f"[bold red]{type(exc).__name__}[/]: {exc.message}", highlight=False, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None
        except ValidationError as exc:  # settings from the environment, option values checked by a model
            err_console.print(f"[bold red]InputError[/]: {_validation_message(exc)}", highlight=False,
                              soft_wrap=True)
            raise typer.Exit(InputError.exit_code) from None
        except KeyboardInterrupt:
            _interrupt.announce()
            raise typer.Exit(_interrupt.EXIT_CODE) from None

    return wrapper  # type: ignore[return-value]


def warn_skipped(board: Any) -> None:
    """Name each file of a board folder that was left out, and why (never silently)."""
    for name, reason in board.skipped:
        err_console.print(f"[yellow]skipped[/] {name}: {reason}", highlight=False)


def modes_table(profile: Any) -> Table:
    """The profile's modes as a table (look, medium, weight, pins, tags)."""
    table = Table(title=f"Taste profile of board '{profile.board.get('name', '')}'", show_lines=False)
    for col in ("mode", "look", "medium", "weight", "pins", "top tags"):
        table.add_column(col)
    for m in profile.modes:
        medium = "?" if m.medium is None else (
            m.medium.kind if m.medium.photographic else f"{m.medium.kind} ({m.medium.strength:.2f})")
        table.add_row(m.id, m.name, medium, f"{m.weight:.2f}", str(m.n_pins), ", ".join(list(m.tags)[:4]))
    return table


def progress_bar(settings: Settings, *columns: ProgressColumn | str) -> Progress:
    """A progress bar on stderr: shown on a terminal, or anywhere with ``TASTEMAKER_PROGRESS=1``.

    An interrupted run stops it first, so its last line is not a bar."""
    progress = Progress(*columns, console=err_console, transient=False,
                        disable=not err_console.is_terminal and not settings.progress)
    _interrupt.before_exit("progress", progress.stop)
    return progress
