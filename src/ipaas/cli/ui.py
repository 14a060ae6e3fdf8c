"""Console output shared by the user commands: errors, JSON for scripts, tables for people."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable, Sequence
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import typer

if TYPE_CHECKING:
    from rich.console import Console

P = ParamSpec("P")
R = TypeVar("R")


class Output(StrEnum):
    text = "text"
    json = "json"


OUTPUT_OPTION = typer.Option(
    Output.text, "--output", "-o", help="text for people, json for scripts", case_sensitive=False
)


def console() -> Console:
    from rich.console import Console

    # Looked up at call time so that test runners that swap sys.stdout see the output.
    return Console(file=sys.stdout, highlight=False, soft_wrap=True)


def err_console() -> Console:
    from rich.console import Console

    return Console(file=sys.stderr, highlight=False, soft_wrap=True)


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print `error: ...` in red on stderr; returns the Exit to raise."""
    from rich.markup import escape

    err_console().print(f"[red]error: {escape(message)}[/red]")
    return typer.Exit(code)


def handles_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """API errors and unreachable servers become one red line on stderr and exit status 1."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        import httpx

        from ipaas.cli.client import ApiError, NotLoggedIn

        try:
            return fn(*args, **kwargs)
        except ApiError as exc:
            raise fail(f"{exc.detail} ({exc.code})") from None
        except NotLoggedIn as exc:
            raise fail(str(exc)) from None
        except httpx.TransportError as exc:
            raise fail(f"cannot reach the ipaas server: {exc or type(exc).__name__}") from None

    return wrapper


def print_json(data: Any) -> None:
    """Plain JSON on stdout, no Rich markup or wrapping, so scripts can parse it."""
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    sys.stdout.flush()


def print_json_line(data: Any) -> None:
    sys.stdout.write(json.dumps(data, default=str) + "\n")
    sys.stdout.flush()


STATE_STYLES = {
    "running": "green",
    "failed": "red",
    "crashed": "red",
    "stopped": "dim",
    "deleting": "dim",
}


def state_text(state: str) -> str:
    return f"[{STATE_STYLES.get(state, 'yellow')}]{state}[/]"


def table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    from rich.markup import escape
    from rich.table import Table

    t = Table(*columns, box=None, header_style="bold", pad_edge=False)
    for row in rows:
        t.add_row(*("" if v is None else v if _is_markup(v) else escape(str(v)) for v in row))
    console().print(t)


class Markup(str):
    """A cell that already contains Rich markup (everything else is escaped)."""


def _is_markup(value: Any) -> bool:
    return isinstance(value, Markup)


def short_time(value: str | None) -> str:
    """'2026-01-02T03:04:05.123456Z' → '2026-01-02 03:04:05'."""
    if not value:
        return ""
    return value.replace("T", " ")[:19]
