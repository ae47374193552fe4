"""The write statements of the hot path, in SQLAlchemy Core: one round trip each.

Ordering rules live in the statements themselves (``ON CONFLICT … WHERE excluded.updated_at >
users.updated_at``) so deciding and writing are one atomic step, correct without extra locking
against anything but a concurrent delete (see :func:`lock_subject`).
"""

from __future__ import annotations

from functools import cache
from typing import Any

from sqlalchemy import Connection, Insert, Table, bindparam, delete, exists, select, text, update
from sqlalchemy.dialects import postgresql, sqlite

from .schema import events_table, tombstones_table, users_table

_USER_COLUMNS = [c.name for c in users_table.columns if c.name != "id"]

# Built once: constructing a statement per call costs more than running it on SQLite.
_IS_TOMBSTONED = select(exists().where(tombstones_table.c.id == bindparam("id")))
_STORED_VERSION = select(users_table.c.updated_at).where(users_table.c.id == bindparam("id"))
_DELETE_USER = delete(users_table).where(users_table.c.id == bindparam("id"))
_FINISH = update(events_table).where(events_table.c.seq == bindparam("b_seq"))
_ERASE = (
    update(events_table)
    .where(events_table.c.subject_id == bindparam("b_subject"))
    .where(events_table.c.seq != bindparam("b_keep"))
    .values(payload=None)
)
_ADVISORY_LOCK = text("SELECT pg_advisory_xact_lock(hashtextextended(:id, 0))")


def _insert(dialect: str, table: Table) -> postgresql.Insert | sqlite.Insert:
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


@cache
def _record_stmt(dialect: str) -> Insert:
    ins = _insert(dialect, events_table)
    return ins.on_conflict_do_update(
        index_elements=[events_table.c.svix_id],
        set_={
            "delivery_count": events_table.c.delivery_count + 1,
            "last_received_at": ins.excluded.last_received_at,
        },
    ).returning(events_table.c.seq, events_table.c.delivery_count, events_table.c.status)


@cache
def _upsert_user_stmt(dialect: str) -> Insert:
    ins = _insert(dialect, users_table)
    return ins.on_conflict_do_update(
        index_elements=[users_table.c.id],
        set_={name: ins.excluded[name] for name in _USER_COLUMNS},
        where=ins.excluded.updated_at > users_table.c.updated_at,
    ).returning(users_table.c.id)


@cache
def _tombstone_stmt(dialect: str) -> Insert:
    return _insert(dialect, tombstones_table).on_conflict_do_nothing(
        index_elements=[tombstones_table.c.id]
    )


def record_delivery(conn: Connection, values: dict[str, Any]) -> tuple[int, int, str]:
    """Insert the log row, or count one more delivery of a known svix id.

    Returns ``(seq, delivery_count, status)``: a count of 1 means this svix id is new.
    """
    row = conn.execute(_record_stmt(conn.dialect.name), values).one()
    return int(row.seq), int(row.delivery_count), str(row.status)


def finish_delivery(conn: Connection, seq: int, values: dict[str, Any]) -> None:
    conn.execute(_FINISH, {"b_seq": seq, **values})


def lock_subject(conn: Connection, subject_id: str) -> None:
    """Serialize writes about one subject across processes (PostgreSQL; SQLite's writer lock
    already does). Without it an update racing a delete could re-insert a deleted user."""
    if conn.dialect.name == "postgresql":
        conn.execute(_ADVISORY_LOCK, {"id": subject_id})


def is_tombstoned(conn: Connection, entity_id: str) -> bool:
    return bool(conn.execute(_IS_TOMBSTONED, {"id": entity_id}).scalar())


def stored_version(conn: Connection, user_id: str) -> int | None:
    version: int | None = conn.execute(_STORED_VERSION, {"id": user_id}).scalar()
    return version


def upsert_user(conn: Connection, values: dict[str, Any]) -> bool:
    """Insert or update the user if ``values`` is newer; returns whether a row changed."""
    # RETURNING rather than rowcount: not every driver reports rowcount for an upsert.
    return conn.execute(_upsert_user_stmt(conn.dialect.name), values).first() is not None


def add_tombstone(conn: Connection, entity_id: str, kind: str, deleted_at: int) -> None:
    conn.execute(
        _tombstone_stmt(conn.dialect.name),
        {"id": entity_id, "kind": kind, "deleted_at": deleted_at},
    )


def delete_user(conn: Connection, user_id: str) -> None:
    """Delete the row; the database cascades to rows that reference it."""
    conn.execute(_DELETE_USER, {"id": user_id})


def erase_payloads(conn: Connection, subject_id: str, keep_seq: int) -> None:
    """Drop the stored bodies of a deleted subject's events: they hold personal data."""
    conn.execute(_ERASE, {"b_subject": subject_id, "b_keep": keep_seq})
