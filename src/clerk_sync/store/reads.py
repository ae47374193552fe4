"""Queries behind the read API and the CLI, for any entity table. Cursors are opaque to
callers: the last key seen."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Engine, Row, Table, or_, select

from .schema import Tables

EVENT_FIELDS = (
    "seq",
    "svix_id",
    "type",
    "subject_id",
    "user_id",
    "event_timestamp",
    "received_at",
    "last_received_at",
    "delivery_count",
    "status",
    "error",
)


def _json(row: Row[Any], fields: Sequence[str]) -> dict[str, Any]:
    mapping = row._mapping
    return {name: mapping[name] for name in fields}


def get_row(
    engine: Engine, tables: Tables, kind: str, fields: Sequence[str], object_id: str
) -> dict[str, Any] | None:
    """One object of ``kind`` as the API shows it (Clerk's millisecond epochs unchanged)."""
    table = tables.entity(kind)
    with engine.connect() as conn:
        row = conn.execute(
            select(*[table.c[n] for n in fields]).where(table.c.id == object_id)
        ).first()
    return _json(row, fields) if row else None


def list_rows(
    engine: Engine,
    tables: Tables,
    kind: str,
    fields: Sequence[str],
    *,
    limit: int,
    cursor: str | None = None,
    where: Mapping[str, str] | None = None,
    search: tuple[Sequence[str], str] | None = None,
) -> tuple[list[dict[str, Any]], str | None]:
    """Objects of ``kind`` by id, ``where`` columns equal to values, ``search`` = (columns, a
    substring any of them contains, case-insensitive); the next cursor is the last id of a
    full page."""
    table = tables.entity(kind)
    stmt = select(*[table.c[n] for n in fields]).order_by(table.c.id).limit(limit)
    if cursor:
        stmt = stmt.where(table.c.id > cursor)
    for column, value in (where or {}).items():
        stmt = stmt.where(table.c[column] == value)
    if search is not None:
        columns, needle = search
        pattern = "%" + _escape_like(needle) + "%"
        stmt = stmt.where(or_(*[table.c[c].ilike(pattern, escape="\\") for c in columns]))
    with engine.connect() as conn:
        rows = [_json(r, fields) for r in conn.execute(stmt)]
    return rows, (rows[-1]["id"] if len(rows) == limit else None)


def exists(engine: Engine, tables: Tables, kind: str, object_id: str) -> bool:
    table: Table = tables.entity(kind)
    with engine.connect() as conn:
        return conn.execute(select(table.c.id).where(table.c.id == object_id)).first() is not None


def _escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def list_events(
    engine: Engine,
    tables: Tables,
    *,
    limit: int,
    cursor: int | None = None,
    status: str | None = None,
    event_type: str | None = None,
) -> tuple[list[dict[str, Any]], int | None]:
    """The log, newest first, without payloads; the next cursor is the last ``seq`` seen."""
    events = tables.events
    stmt = select(*[events.c[name] for name in EVENT_FIELDS]).order_by(events.c.seq.desc())
    stmt = stmt.limit(limit)
    if cursor is not None:
        stmt = stmt.where(events.c.seq < cursor)
    if status:
        stmt = stmt.where(events.c.status == status)
    if event_type:
        stmt = stmt.where(events.c.type == event_type)
    with engine.connect() as conn:
        rows = [_json(r, EVENT_FIELDS) for r in conn.execute(stmt)]
    return rows, (rows[-1]["seq"] if len(rows) == limit else None)
