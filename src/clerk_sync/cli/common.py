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
from ..errors import ClerkSyncError
from ..logformat import configure_logging as configure_logging
from ..store import ensure_schema, make_engine

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


@contextmanager
def open_engine(settings: Settings, *, require_current: bool = True) -> Iterator[Engine]:
    engine = make_engine(settings.sqlalchemy_url(), sqlite_synchronous=settings.sqlite_synchronous)
    try:
        if require_current:
            ensure_schema(engine, upgrade_empty=False)
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
