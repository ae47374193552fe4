"""The write statements of the hot path: written in SQLAlchemy Core, run by the driver.

Ordering rules live in the statements themselves (``ON CONFLICT … WHERE excluded.updated_at >
users.updated_at``) so deciding and writing are one atomic step, correct without extra locking
against anything but a concurrent delete (see :func:`lock_subject`).

Each statement is compiled once per dialect and then executed on the transaction's own DBAPI
connection. Going through ``Connection.execute`` cost about 150 µs a statement in SQLAlchemy's
Python code — more than SQLite takes to run it — and a delivery runs three or four (see
``bench/README.md``). The statements stay SQLAlchemy's; only the per-call machinery is skipped.
JSON columns are therefore passed already serialized (:func:`json_text`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import cache
from typing import Any

import orjson
from sqlalchemy import (
    Connection,
    Dialect,
    Executable,
    Table,
    bindparam,
    delete,
    exists,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from .schema import events_table, tombstones_table, users_table

_USER_COLUMNS = [c.name for c in users_table.columns if c.name != "id"]


def json_text(value: Any) -> str:
    """A JSON column's value as the driver receives it."""
    return orjson.dumps(value).decode()


_LOG_COLUMNS = [c.name for c in events_table.columns if c.name != "seq"]


def _insert(dialect: str, table: Table, columns: list[str]) -> postgresql.Insert | sqlite.Insert:
    """An INSERT of exactly ``columns``, each a bound parameter of the same name."""
    ins = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)
    return ins.values({name: bindparam(name) for name in columns})


def _record(dialect: str) -> Executable:
    ins = _insert(dialect, events_table, _LOG_COLUMNS)
    return ins.on_conflict_do_update(
        index_elements=[events_table.c.svix_id],
        set_={
            "delivery_count": events_table.c.delivery_count + 1,
            "last_received_at": ins.excluded.last_received_at,
        },
    ).returning(events_table.c.seq, events_table.c.delivery_count, events_table.c.status)


def _upsert_user(dialect: str) -> Executable:
    # INSERT … SELECT so the tombstone guard is part of the same statement: one round trip.
    columns = ["id", *_USER_COLUMNS]
    row = select(*[bindparam(name, type_=users_table.c[name].type) for name in columns]).where(
        ~exists().where(tombstones_table.c.id == bindparam("id"))
    )
    ins = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(users_table)
    return (
        ins.from_select(columns, row)
        .on_conflict_do_update(
            index_elements=[users_table.c.id],
            set_={name: ins.excluded[name] for name in _USER_COLUMNS},
            where=ins.excluded.updated_at > users_table.c.updated_at,
        )
        .returning(users_table.c.id)
    )


def _tombstone(dialect: str) -> Executable:
    return _insert(dialect, tombstones_table, ["id", "kind", "deleted_at"]).on_conflict_do_nothing(
        index_elements=[tombstones_table.c.id]
    )


_STATEMENTS: dict[str, Callable[[str], Executable]] = {
    "record": _record,
    "upsert_user": _upsert_user,
    "tombstone": _tombstone,
    "is_tombstoned": lambda _: select(exists().where(tombstones_table.c.id == bindparam("id"))),
    "stored_version": lambda _: select(users_table.c.updated_at).where(
        users_table.c.id == bindparam("id")
    ),
    "delete_user": lambda _: delete(users_table).where(users_table.c.id == bindparam("id")),
    "finish": lambda _: (
        update(events_table)
        .where(events_table.c.seq == bindparam("b_seq"))
        .values(status=bindparam("status"), error=bindparam("error"))
    ),
    "finish_erased": lambda _: (
        update(events_table)
        .where(events_table.c.seq == bindparam("b_seq"))
        .values(status=bindparam("status"), error=bindparam("error"), payload=None)
    ),
    "erase": lambda _: (
        update(events_table)
        .where(events_table.c.subject_id == bindparam("b_subject"))
        .where(events_table.c.seq != bindparam("b_keep"))
        .values(payload=None)
    ),
    # Sorted in a subquery so every transaction takes its locks in one global order.
    "advisory_locks": lambda _: text(
        "SELECT pg_advisory_xact_lock(h) FROM (SELECT DISTINCT hashtextextended(k, 0) AS h "
        "FROM unnest(CAST(:keys AS text[])) AS k ORDER BY h) AS ordered"
    ),
}


class _Compiled:
    """One statement as SQL text for one dialect, and how to lay out its parameters."""

    __slots__ = ("defaults", "order", "sql")

    def __init__(self, statement: Any, dialect: Dialect) -> None:
        compiled = statement.compile(dialect=dialect)
        self.sql = str(compiled)
        # Values written into the statement itself (``delivery_count + 1``, ``payload=NULL``).
        self.defaults = {
            name: bind.value for name, bind in compiled.binds.items() if not bind.required
        }
        self.order: Sequence[str] | None = compiled.positiontup if compiled.positional else None

    def params(self, values: Mapping[str, Any]) -> Sequence[Any] | Mapping[str, Any]:
        merged = {**self.defaults, **values} if self.defaults else values
        if self.order is None:
            return merged
        return [merged[name] for name in self.order]


@cache
def _compiled(dialect: Dialect, name: str) -> _Compiled:
    return _Compiled(_STATEMENTS[name](dialect.name), dialect)


def _run(conn: Connection, name: str, values: Mapping[str, Any]) -> list[Any]:
    statement = _compiled(conn.dialect, name)
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(statement.sql, statement.params(values))
        return cursor.fetchall() if cursor.description else []
    finally:
        cursor.close()


Step = tuple[str, Mapping[str, Any]]
"""One statement of :func:`run_pipelined`: its name in ``_STATEMENTS`` and its values."""


def run_pipelined(conn: Connection, steps: Sequence[Step]) -> list[list[Any]]:
    """Run ``steps`` in order in one round trip (psycopg's pipeline mode); their rows.

    PostgreSQL only. The statements still run one after another on the server, in this order,
    inside the caller's transaction; the client simply does not wait for each answer before
    sending the next. An error in any of them raises here, and the transaction is lost.
    """
    driver = conn.connection.driver_connection
    assert driver is not None
    cursors = []
    with driver.pipeline():
        for name, values in steps:
            statement = _compiled(conn.dialect, name)
            cursor = driver.cursor()
            cursor.execute(statement.sql, statement.params(values))
            cursors.append(cursor)
    try:
        return [cursor.fetchall() if cursor.description else [] for cursor in cursors]
    finally:
        for cursor in cursors:
            cursor.close()


def record_values(rows: list[Any]) -> tuple[int, int, str]:
    """The ``(seq, delivery_count, status)`` of a ``record`` step's rows."""
    seq, count, status = rows[0]
    return int(seq), int(count), str(status)


def record_delivery(conn: Connection, values: dict[str, Any]) -> tuple[int, int, str]:
    """Insert the log row, or count one more delivery of a known svix id.

    Returns ``(seq, delivery_count, status)``: a count of 1 means this svix id is new.
    """
    return record_values(_run(conn, "record", values))


def finish_delivery(
    conn: Connection, seq: int, status: str, error: str | None, *, erase_payload: bool = False
) -> None:
    """Set the final status of a logged delivery (and drop its body when asked)."""
    name = "finish_erased" if erase_payload else "finish"
    _run(conn, name, {"b_seq": seq, "status": status, "error": error})


def lock_keys(conn: Connection, keys: Sequence[str]) -> None:
    """Serialize transactions that touch the same subjects or svix ids, across processes
    (PostgreSQL; SQLite's single writer lock already does).

    Without it an update racing a delete on another replica could re-insert a deleted user.
    All of a transaction's locks are taken at its start in one statement, in one global order
    (by hash), so two batches that share keys queue instead of deadlocking: the row locks taken
    later (the log's unique svix id, the user row, the tombstone) are then never contended.
    """
    if conn.dialect.name == "postgresql" and keys:
        _run(conn, "advisory_locks", {"keys": list(keys)})


def is_tombstoned(conn: Connection, entity_id: str) -> bool:
    return bool(_run(conn, "is_tombstoned", {"id": entity_id})[0][0])


def stored_version(conn: Connection, user_id: str) -> int | None:
    rows = _run(conn, "stored_version", {"id": user_id})
    return int(rows[0][0]) if rows else None


def upsert_user(conn: Connection, values: dict[str, Any]) -> bool:
    """Insert or update the user if ``values`` is newer and the id is not tombstoned; returns
    whether a row changed.

    JSON columns (``public_metadata``, ``unsafe_metadata``, ``data``) must be :func:`json_text`.
    """
    # RETURNING rather than rowcount: not every driver reports rowcount for an upsert.
    return bool(_run(conn, "upsert_user", values))


def add_tombstone(conn: Connection, entity_id: str, kind: str, deleted_at: int) -> None:
    _run(conn, "tombstone", {"id": entity_id, "kind": kind, "deleted_at": deleted_at})


def delete_user(conn: Connection, user_id: str) -> None:
    """Delete the row; the database cascades to rows that reference it."""
    _run(conn, "delete_user", {"id": user_id})


def erase_payloads(conn: Connection, subject_id: str, keep_seq: int) -> None:
    """Drop the stored bodies of a deleted subject's events: they hold personal data."""
    _run(conn, "erase", {"b_subject": subject_id, "b_keep": keep_seq})
