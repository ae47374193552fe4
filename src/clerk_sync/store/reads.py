"""Queries behind the read API and the CLI. Cursors are opaque to callers: the last key seen."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, Row, select, text

from .schema import events_table, users_table

USER_FIELDS = (
    "id",
    "email",
    "phone_number",
    "external_id",
    "first_name",
    "last_name",
    "username",
    "image_url",
    "public_metadata",
    "unsafe_metadata",
    "created_at",
    "updated_at",
    "last_sign_in_at",
    "banned",
    "locked",
    "synced_at",
)
EVENT_FIELDS = (
    "seq",
    "svix_id",
    "type",
    "subject_id",
    "event_timestamp",
    "received_at",
    "last_received_at",
    "delivery_count",
    "status",
    "error",
)


def user_json(row: Row[Any]) -> dict[str, Any]:
    """A user as the API and ``--json`` show it: Clerk's millisecond epochs unchanged."""
    mapping = row._mapping
    return {name: mapping[name] for name in USER_FIELDS}


def event_json(row: Row[Any]) -> dict[str, Any]:
    mapping = row._mapping
    return {name: mapping[name] for name in EVENT_FIELDS}


def get_user(engine: Engine, user_id: str) -> dict[str, Any] | None:
    cols = [users_table.c[name] for name in USER_FIELDS]
    with engine.connect() as conn:
        row = conn.execute(select(*cols).where(users_table.c.id == user_id)).first()
    return user_json(row) if row else None


def list_users(
    engine: Engine, *, limit: int, cursor: str | None = None
) -> tuple[list[dict[str, Any]], str | None]:
    """Users by id; the next cursor is the last id of a full page."""
    cols = [users_table.c[name] for name in USER_FIELDS]
    stmt = select(*cols).order_by(users_table.c.id).limit(limit)
    if cursor:
        stmt = stmt.where(users_table.c.id > cursor)
    with engine.connect() as conn:
        rows = [user_json(r) for r in conn.execute(stmt)]
    return rows, (rows[-1]["id"] if len(rows) == limit else None)


def list_events(
    engine: Engine,
    *,
    limit: int,
    cursor: int | None = None,
    status: str | None = None,
    event_type: str | None = None,
) -> tuple[list[dict[str, Any]], int | None]:
    """The log, newest first, without payloads; the next cursor is the last ``seq`` seen."""
    cols = [events_table.c[name] for name in EVENT_FIELDS]
    stmt = select(*cols).order_by(events_table.c.seq.desc()).limit(limit)
    if cursor is not None:
        stmt = stmt.where(events_table.c.seq < cursor)
    if status:
        stmt = stmt.where(events_table.c.status == status)
    if event_type:
        stmt = stmt.where(events_table.c.type == event_type)
    with engine.connect() as conn:
        rows = [event_json(r) for r in conn.execute(stmt)]
    return rows, (rows[-1]["seq"] if len(rows) == limit else None)


def ping(engine: Engine) -> None:
    """Raise unless the database answers a trivial query."""
    with engine.connect() as conn:
        conn.execute(text("SELECT 1")).scalar()
