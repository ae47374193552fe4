"""What every command shares: settings, the engine, error rendering, output."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import Any, ParamSpec, TypeVar

import orjson
import typer
from rich.console import Console
from rich.markup import escape
from sqlalchemy import Engine

from ..config import Settings
from ..entities import tables
from ..errors import ClerkSyncError
from ..logformat import configure_logging as configure_logging
from ..store import Tables, ensure_schema, make_engine

P = ParamSpec("P")
R = TypeVar("R")

# Piped or captured output is not bound by a terminal's width: tables keep whole ids.
stdout = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 160)
stderr = Console(stderr=True, soft_wrap=True)


def reports_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Render a :class:`ClerkSyncError` as one line on stderr and exit with its code."""

    @wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except ClerkSyncError as exc:
            tag = escape(f"[{exc.code}]")
            stderr.print(f"[bold red]error[/] {tag} {escape(exc.detail)}", highlight=False)
            raise typer.Exit(exc.exit_code) from None

    return wrapper


def load_settings() -> Settings:
    return Settings.load()


def deployment(settings: Settings) -> Tables:
    """The tables ``TABLE_PREFIX`` and ``DATABASE_SCHEMA`` name."""
    return tables(settings.table_prefix, settings.schema_name())


@contextmanager
def open_engine(settings: Settings, *, require_current: bool = True) -> Iterator[Engine]:
    engine = make_engine(settings.sqlalchemy_url(), sqlite_synchronous=settings.sqlite_synchronous)
    try:
        if require_current:
            ensure_schema(engine, upgrade_empty=False, naming=deployment(settings).naming)
        yield engine
    finally:
        engine.dispose()


def print_json(value: Any) -> None:
    sys.stdout.write(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode() + "\n")


def ms_to_text(value: int | None) -> str:
    if value is None:
        return "-"
    from datetime import UTC, datetime

    return datetime.fromtimestamp(value / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def print_rows(
    rows: list[dict[str, Any]], columns: list[tuple[str, str]], noun: str, *, as_json: bool
) -> None:
    """Rows as JSON, or as a table of ``(key, heading)`` columns; ids (the first) never cut."""
    if as_json:
        print_json(rows)
        return
    from rich.table import Column, Table

    table = Table(*[heading for _, heading in columns[1:]])
    table.columns.insert(0, Column(columns[0][1], no_wrap=True))
    for row in rows:
        table.add_row(*[_cell(key, row.get(key)) for key, _ in columns])
    stdout.print(table)
    stdout.print(f"{len(rows)} {noun}(s)")


def print_object(row: dict[str, Any], *, as_json: bool) -> None:
    """One object as JSON, or as a two-column table of its fields."""
    if as_json:
        print_json(row)
        return
    from rich.table import Table

    table = Table("field", "value", show_header=False)
    for key, value in row.items():
        table.add_row(key, _cell(key, value))
    stdout.print(table)


def _cell(key: str, value: Any) -> str:
    if value is None:
        return "-"
    if key.endswith("_at") and isinstance(value, int):
        return ms_to_text(value)
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode()
    return str(value)
