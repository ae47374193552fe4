"""What every command shares: settings, the engine, error rendering, output."""

from __future__ import annotations

import errno
import socket
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import orjson
import typer
from rich.console import Console
from rich.markup import escape

from ..errors import ClerkSyncError, DatabaseDirectoryMissing, PortInUse, SchemaError
from ..logformat import configure_logging as configure_logging

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from ..config import Settings
    from ..store import Tables

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
    from ..config import Settings

    return Settings.load()


def deployment(settings: Settings) -> Tables:
    """The tables ``TABLE_PREFIX`` and ``DATABASE_SCHEMA`` name."""
    from ..entities import tables

    return tables(settings.table_prefix, settings.schema_name())


@contextmanager
def open_engine(
    settings: Settings, *, require_current: bool = True, create: bool | None = None
) -> Iterator[Engine]:
    """The engine of ``DATABASE_URL``, disposed afterwards; a driver's failure inside the block
    becomes the one-line error that names its cause (:func:`store_error`).

    ``create``: whether a missing SQLite file may be created (by default only when the schema
    is not required to be current already, i.e. by ``serve``, ``dev`` and ``db upgrade``). A
    read-only command on a path with no database refuses, rather than leave an empty file.
    """
    from sqlalchemy.exc import SQLAlchemyError

    from ..store import ensure_schema, make_engine
    from ..store.engine import store_error

    url = settings.sqlalchemy_url()
    may_create = not require_current if create is None else create
    if not may_create:
        refuse_missing_sqlite(url)
    engine = make_engine(url, sqlite_synchronous=settings.sqlite_synchronous)
    try:
        if require_current:
            ensure_schema(engine, upgrade_empty=False, naming=deployment(settings).naming)
        yield engine
    except SQLAlchemyError as exc:
        raise store_error(exc, engine.url) from None
    finally:
        engine.dispose()


def refuse_missing_sqlite(url: str) -> None:
    """Raise when ``url`` is a SQLite file that does not exist (opening it would create it)."""
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except Exception:
        return  # make_engine says what is wrong with it
    raw = parsed.database or ""
    if parsed.get_backend_name() != "sqlite" or raw in ("", ":memory:") or raw.startswith("file:"):
        return
    path = Path(raw).absolute()
    if path.exists():
        return
    if not path.parent.is_dir():
        raise DatabaseDirectoryMissing(
            f"The directory {path.parent} of the SQLite database {path.name} does not exist, so "
            "there is no database there: point DATABASE_URL at the server's database."
        )
    raise SchemaError(
        f"There is no database at {path} yet: run `clerk-sync db upgrade` (or start "
        "`clerk-sync serve`, which creates it), or point DATABASE_URL at the server's database.",
        code="database_missing",
    )


def check_port_free(host: str, port: int) -> None:
    """Refuse at once, with the fix, when another process listens on ``host:port`` (uvicorn
    would print its own traceback-like line and exit 3, the schema's status)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise PortInUse(
                    f"Port {port} on {host} is taken by another process (address already in "
                    f"use): stop it (`ss -ltnp 'sport = :{port}'` shows which), or choose "
                    "another with --port."
                ) from None
            # Anything else (an address not of this machine, a privileged port) uvicorn says.


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


def list_objects(
    kind_name: str,
    columns: list[tuple[str, str]],
    noun: str,
    *,
    limit: int,
    as_json: bool,
    cursor: str | None = None,
    where: dict[str, str] | None = None,
    search: tuple[tuple[str, ...], str] | None = None,
) -> None:
    """List one entity kind's objects by id (the ``… list`` commands)."""
    from ..entities import kind_named
    from ..store import reads

    settings = load_settings()
    kind = kind_named(kind_name)
    with open_engine(settings) as engine:
        rows, _ = reads.list_rows(
            engine,
            deployment(settings),
            kind.name,
            kind.read_fields(),
            limit=limit,
            cursor=cursor,
            where=where,
            search=search,
        )
    print_rows(rows, columns, noun, as_json=as_json)


def show_object(kind_name: str, object_id: str, noun: str, *, as_json: bool) -> None:
    """Print one object (the ``… show`` commands); exit 1 when it is absent."""
    from ..entities import kind_named
    from ..errors import NotFound
    from ..store import reads

    settings = load_settings()
    kind = kind_named(kind_name)
    with open_engine(settings) as engine:
        row = reads.get_row(engine, deployment(settings), kind.name, kind.read_fields(), object_id)
    if row is None:
        raise NotFound(f"No {noun} {object_id!r}: never synced, or deleted.")
    print_object(row, as_json=as_json)
