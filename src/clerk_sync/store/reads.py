"""Queries behind the read API and the CLI, for any entity table. Cursors are opaque to
callers: the last key seen."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Engine, Row, Select, Table, or_, select
from sqlalchemy import exists as sql_exists

from .schema import Tables
from .writes import PERSONAL_KIND

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
    since: int | None = None,
    until: int | None = None,
    subject_id: str | None = None,
    type_prefix: str | None = None,
) -> tuple[list[dict[str, Any]], int | None]:
    """The log, newest first, without payloads; the next cursor is the last ``seq`` seen.
    ``since`` / ``until``: only events received at or after / before it (ms);
    ``type_prefix``: types starting with it (``user.``)."""
    events = tables.events
    stmt = select(*[events.c[name] for name in EVENT_FIELDS]).order_by(events.c.seq.desc())
    stmt = stmt.limit(limit)
    if cursor is not None:
        stmt = stmt.where(events.c.seq < cursor)
    if status:
        stmt = stmt.where(events.c.status == status)
    if event_type:
        stmt = stmt.where(events.c.type == event_type)
    if since is not None:
        stmt = stmt.where(events.c.received_at >= since)
    if until is not None:
        stmt = stmt.where(events.c.received_at < until)
    if subject_id:
        stmt = stmt.where(events.c.subject_id == subject_id)
    if type_prefix:
        stmt = stmt.where(events.c.type.like(_escape_like(type_prefix) + "%", escape="\\"))
    with engine.connect() as conn:
        rows = [_json(r, EVENT_FIELDS) for r in conn.execute(stmt)]
    return rows, (rows[-1]["seq"] if len(rows) == limit else None)


REPLAY_FIELDS = (*EVENT_FIELDS, "source", "payload")
"""An event as ``events show`` and replay read it: the listed fields, its source and body."""
ERASED = "erased"
"""``payload_gone``: the body was erased because the user it names was deleted."""
PRUNED = "pruned"
"""``payload_gone``: the body was erased by retention (``EVENT_RETENTION_DAYS``, ``events
prune``)."""


def _with_payloads(tables: Tables) -> Select[Any]:
    """The log's columns with the body, and whether the user the event names was deleted.

    A body goes two ways: erased with its user (who leaves a tombstone) or pruned by
    retention. So a missing body whose user has a tombstone was erased, any other was pruned;
    no column records why. (One pruned and then erased is reported erased: both are true.)"""
    events, tombstones = tables.events, tables.tombstones
    user_deleted = (
        sql_exists()
        .where(tombstones.c.kind == PERSONAL_KIND)
        .where(tombstones.c.id == events.c.user_id)
    )
    return select(*[events.c[name] for name in REPLAY_FIELDS], user_deleted.label("user_deleted"))


def _event_with_payload(row: Row[Any]) -> dict[str, Any]:
    found = _json(row, REPLAY_FIELDS)
    gone = None
    if found["payload"] is None:
        gone = ERASED if row._mapping["user_deleted"] else PRUNED
    found["payload_gone"] = gone
    return found


def get_event(engine: Engine, tables: Tables, svix_id: str) -> dict[str, Any] | None:
    """One event with its stored body (``payload``, text) and ``payload_gone``: None while
    the body is stored, else :data:`ERASED` or :data:`PRUNED`."""
    events = tables.events
    with engine.connect() as conn:
        row = conn.execute(_with_payloads(tables).where(events.c.svix_id == svix_id)).first()
    return _event_with_payload(row) if row else None


def events_with_payloads(
    engine: Engine,
    tables: Tables,
    *,
    limit: int,
    after: int = 0,
    status: str | None = None,
    event_type: str | None = None,
    since: int | None = None,
) -> list[dict[str, Any]]:
    """Events oldest first from ``seq > after``, with their bodies as :func:`get_event` gives
    them: what a replay selects by status, type and ``received_at >= since`` (ms), a page at
    a time so a long log is never held in memory."""
    events = tables.events
    stmt = _with_payloads(tables).where(events.c.seq > after).order_by(events.c.seq).limit(limit)
    if status:
        stmt = stmt.where(events.c.status == status)
    if event_type:
        stmt = stmt.where(events.c.type == event_type)
    if since is not None:
        stmt = stmt.where(events.c.received_at >= since)
    with engine.connect() as conn:
        return [_event_with_payload(r) for r in conn.execute(stmt)]
