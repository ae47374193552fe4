"""The write statements of the hot path, for any table of the generic shape: written in
SQLAlchemy Core, compiled once per deployment and dialect, run by the driver.

Ordering rules live in the statements themselves (``ON CONFLICT … WHERE excluded.sync_version >
t.sync_version``, and ``NOT EXISTS`` a tombstone of the row or of any of its parents), so
deciding and writing are one atomic step, correct without extra locking against anything but a
concurrent delete (see :func:`lock_keys`).

Statements run on the transaction's own DBAPI connection. Going through
``Connection.execute`` cost about 150 µs a statement in SQLAlchemy's Python code — more than
SQLite takes to run it (see ``bench/README.md``). The statements stay SQLAlchemy's; only the
per-call machinery is skipped. :func:`run` executes a list of steps in order: one after another
on SQLite, in one round trip (psycopg's pipeline mode) on PostgreSQL — the same batch path for
both.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import orjson
from sqlalchemy import (
    JSON,
    BigInteger,
    Connection,
    Dialect,
    Executable,
    Table,
    and_,
    bindparam,
    case,
    delete,
    exists,
    func,
    literal,
    null,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from .schema import Tables

PERSONAL_KIND = "user"
"""The tombstone kind whose bodies are erased (``events.user_id``)."""


def json_text(value: Any) -> str:
    """A JSON column's value as the driver receives it."""
    return orjson.dumps(value).decode()


class Compiled:
    """One statement as SQL text for one dialect, and how to lay out its parameters."""

    __slots__ = ("defaults", "order", "sql")

    def __init__(self, statement: Any, dialect: Dialect) -> None:
        compiled = statement.compile(dialect=dialect)
        self.sql = str(compiled)
        # Values written into the statement itself (``delivery_count + 1``, a kind's name).
        self.defaults = {
            name: bind.value for name, bind in compiled.binds.items() if not bind.required
        }
        self.order: Sequence[str] | None = compiled.positiontup if compiled.positional else None

    def params(self, values: Mapping[str, Any]) -> Sequence[Any] | Mapping[str, Any]:
        merged = {**self.defaults, **values} if self.defaults else values
        if self.order is None:
            return merged
        return [merged[name] for name in self.order]


Step = tuple[Compiled, Mapping[str, Any]]
"""One statement to run and its values."""


def _insert(dialect: str, table: Table) -> postgresql.Insert | sqlite.Insert:
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


def _earliest(tombstones: Table, ins: Any) -> Any:
    """A tombstone written twice (a delete, and its parent's cascade) keeps the earliest
    deletion time, so its value does not depend on the order they came in."""
    return case(
        (ins.excluded.deleted_at < tombstones.c.deleted_at, ins.excluded.deleted_at),
        else_=tombstones.c.deleted_at,
    )


def _deleted_at(tables: Tables, kind: Any, id_param: str) -> Any:
    """When the object ``kind``/``:id_param`` was deleted, or NULL."""
    t = tables.tombstones
    return (
        select(t.c.deleted_at)
        .where(and_(t.c.kind == kind, t.c.id == bindparam(id_param)))
        .scalar_subquery()
    )


def _tombstoned(tables: Tables, kind: Any, id_param: str) -> Any:
    t = tables.tombstones
    return exists().where(and_(t.c.kind == kind, t.c.id == bindparam(id_param)))


@dataclass(frozen=True, eq=False)
class EntityStatements:
    """The statements of one entity table."""

    table: Table
    json_columns: frozenset[str]
    upsert: Compiled
    why: Compiled
    """``(tombstoned, each parent's deleted_at or NULL…, stored sync_version)`` of a refused
    upsert."""
    delete: Compiled
    cascades: Mapping[str, Compiled]
    """Column → ``DELETE … WHERE column = :id``, one per parent kind column."""
    cascade_tombstones: Mapping[str, Compiled]
    """Column → tombstones for the rows that cascade is about to delete."""
    scrubs: Mapping[str, Compiled]
    """Column → ``UPDATE … SET data = data without a key WHERE column = :id``."""

    def upsert_values(self, row: Mapping[str, Any], synced_at: int, svix_id: str) -> dict[str, Any]:
        values = {
            name: json_text(value) if name in self.json_columns else value
            for name, value in row.items()
        }
        values["synced_at"] = synced_at
        values["b_svix_id"] = svix_id
        return values


class Statements:
    """Every statement of one deployment's tables, for one dialect, compiled on first use."""

    def __init__(self, tables: Tables, dialect: Dialect) -> None:
        self.tables = tables
        self.dialect = dialect
        d = dialect.name
        events, tombstones = tables.events, tables.tombstones
        log_columns = [c.name for c in events.columns if c.name not in ("seq", "payload")]
        ins = _insert(d, events)
        payload = case(
            (_tombstoned(tables, PERSONAL_KIND, "user_id"), null()), else_=bindparam("payload")
        )
        self.record = self._compile(
            ins.values({**{name: bindparam(name) for name in log_columns}, "payload": payload})
            .on_conflict_do_update(
                index_elements=[events.c.svix_id],
                set_={
                    "delivery_count": events.c.delivery_count + 1,
                    "last_received_at": ins.excluded.last_received_at,
                },
            )
            .returning(events.c.seq, events.c.delivery_count, events.c.status)
        )
        self.finish = self._compile(
            update(events)
            .where(events.c.seq == bindparam("b_seq"))
            .values(status=bindparam("status"), error=bindparam("error"))
        )
        self.erase = self._compile(
            update(events)
            .where(events.c.user_id == bindparam("b_user"))
            .where(events.c.payload.is_not(None))
            .values(payload=None)
        )
        outbox = tables.outbox
        enqueued = [c.name for c in outbox.columns if c.name != "id"]
        self.enqueue = self._compile(
            _insert(d, outbox)
            .values({name: bindparam(name) for name in enqueued})
            .on_conflict_do_nothing(index_elements=[outbox.c.key])
        )
        # A deleted user's data leaves the outbox too: now from the rows that ran, and from
        # each pending row once it has run (``store/outbox.py`` ``finish``) — every processed
        # delivery's hooks run, with the data they were written with.
        self.erase_outbox = self._compile(
            update(outbox)
            .where(outbox.c.user_id == bindparam("b_user"))
            .where(outbox.c.status != "pending")
            .where(outbox.c.data.is_not(None))
            .values(data=None)
        )
        ins_t = _insert(d, tombstones)
        self.tombstone = self._compile(
            ins_t.values(
                kind=bindparam("kind"), id=bindparam("id"), deleted_at=bindparam("deleted_at")
            ).on_conflict_do_update(
                index_elements=[tombstones.c.kind, tombstones.c.id],
                set_={"deleted_at": _earliest(tombstones, ins_t)},
            )
        )
        # Sorted in a subquery so every transaction takes its locks in one global order.
        self.advisory_locks = self._compile(
            text(
                "SELECT pg_advisory_xact_lock(h) FROM (SELECT DISTINCT hashtextextended(k, 0) "
                "AS h FROM unnest(CAST(:keys AS text[])) AS k ORDER BY h) AS ordered"
            )
        )
        self._entities: dict[str, EntityStatements] = {}

    def _redelivered(self) -> Any:
        """The delivery's svix id was recorded before (and did not fail): a redelivery, whose
        writes must change nothing — whatever its body says. Writes run in the same batch as
        their log row, before its answer is read, so this is checked in the statement."""
        events = self.tables.events
        return exists().where(
            and_(
                events.c.svix_id == bindparam("b_svix_id"),
                events.c.delivery_count > 1,
                events.c.status != "failed",
            )
        )

    def _compile(self, statement: Executable) -> Compiled:
        return Compiled(statement, self.dialect)

    def entity(
        self, kind: str, parents: Mapping[str, str], scrubs: Mapping[str, tuple[str, str]]
    ) -> EntityStatements:
        """The statements of ``kind``'s table, whose ``parents`` map column → parent kind and
        ``scrubs`` column → (kind, key of ``data`` removed when that object is deleted)."""
        found = self._entities.get(kind)
        if found is None:
            found = self._entities[kind] = self._entity(kind, parents, scrubs)
        return found

    def _entity(
        self, kind: str, parents: Mapping[str, str], scrubs: Mapping[str, tuple[str, str]]
    ) -> EntityStatements:
        table = self.tables.entity(kind)
        names = [c.name for c in table.columns]
        guards = [~_tombstoned(self.tables, kind, "id")]
        guards += [~_tombstoned(self.tables, parent, col) for col, parent in parents.items()]
        guards.append(~self._redelivered())
        values: dict[str, Any] = {n: bindparam(n, type_=table.c[n].type) for n in names}
        for col, (target, key) in scrubs.items():
            # Written after its referent's delete (and scrub): arrive already scrubbed.
            values["data"] = case(
                (_tombstoned(self.tables, target, col), self._without(values["data"], key)),
                else_=values["data"],
            )
        row = select(*values.values()).where(*guards)
        ins = _insert(self.dialect.name, table)
        upsert = (
            ins.from_select(names, row)
            .on_conflict_do_update(
                index_elements=[table.c.id],
                set_={n: ins.excluded[n] for n in names if n != "id"},
                where=ins.excluded.sync_version > table.c.sync_version,
            )
            .returning(table.c.id)
        )
        why = select(
            _tombstoned(self.tables, kind, "id"),
            *[_deleted_at(self.tables, parent, col) for col, parent in parents.items()],
            select(table.c.sync_version).where(table.c.id == bindparam("id")).scalar_subquery(),
        )
        cascades = {
            col: self._compile(delete(table).where(table.c[col] == bindparam("b_parent")))
            for col in parents
        }
        cascade_tombstones = {
            # The rows a cascade removes are deleted for good: an older copy of one that no
            # longer names the deleted parent (a pending invitation) must not come back.
            col: self._cascade_tombstones(table, kind, col)
            for col in parents
        }
        scrubbed = {
            col: self._compile(
                update(table)
                .where(table.c[col] == bindparam("b_parent"))
                .values(data=self._without(table.c.data, key))
            )
            for col, (_, key) in scrubs.items()
        }
        return EntityStatements(
            table=table,
            json_columns=frozenset(c.name for c in table.columns if isinstance(c.type, JSON)),
            upsert=self._compile(upsert),
            why=self._compile(why),
            delete=self._compile(delete(table).where(table.c.id == bindparam("id"))),
            cascades=cascades,
            cascade_tombstones=cascade_tombstones,
            scrubs=scrubbed,
        )

    def _cascade_tombstones(self, table: Table, kind: str, column: str) -> Compiled:
        tombstones = self.tables.tombstones
        ins = _insert(self.dialect.name, tombstones)
        rows = select(literal(kind), table.c.id, bindparam("deleted_at", type_=BigInteger))
        return self._compile(
            ins.from_select(
                ["kind", "id", "deleted_at"], rows.where(table.c[column] == bindparam("b_parent"))
            ).on_conflict_do_update(
                index_elements=[tombstones.c.kind, tombstones.c.id],
                set_={"deleted_at": _earliest(tombstones, ins)},
            )
        )

    def _without(self, document: Any, key: str) -> Any:
        """A JSON ``document`` without its top-level ``key``, in the dialect's functions."""
        if self.dialect.name == "postgresql":
            return document.op("-")(literal(key))
        return func.json_remove(document, literal(f"$.{key}"))


@cache
def statements(tables: Tables, dialect: Dialect) -> Statements:
    return Statements(tables, dialect)


def run(conn: Connection, steps: Sequence[Step]) -> list[list[Any]]:
    """Run ``steps`` in order inside the caller's transaction; the rows of each.

    PostgreSQL sends them all in one round trip (pipeline mode): the statements still run one
    after another on the server, in this order; the client just does not wait for each answer
    before sending the next. An error in any of them raises here, and the transaction is lost.
    """
    driver = conn.connection.driver_connection
    assert driver is not None
    if not steps:
        return []
    if conn.dialect.name != "postgresql":
        cursor = driver.cursor()
        try:
            out = []
            for compiled, values in steps:
                cursor.execute(compiled.sql, compiled.params(values))
                out.append(cursor.fetchall() if cursor.description else [])
            return out
        finally:
            cursor.close()
    cursors = []
    with driver.pipeline():
        for compiled, values in steps:
            cursor = driver.cursor()
            cursor.execute(compiled.sql, compiled.params(values))
            cursors.append(cursor)
    try:
        return [cursor.fetchall() if cursor.description else [] for cursor in cursors]
    finally:
        for cursor in cursors:
            cursor.close()


def record_values(rows: list[Any]) -> tuple[int, int, str]:
    """The ``(seq, delivery_count, status)`` of a ``record`` step's rows: a count of 1 means
    the svix id is new."""
    seq, count, status = rows[0]
    return int(seq), int(count), str(status)


def needs_locks(conn: Connection) -> bool:
    """Whether transactions must lock their keys (PostgreSQL; SQLite has one writer)."""
    return conn.dialect.name == "postgresql"


def lock_keys(conn: Connection, tables: Tables, keys: Sequence[str]) -> None:
    """Serialize transactions that touch the same objects or svix ids, across processes
    (PostgreSQL; SQLite's single writer lock already does).

    Without it an update racing a delete on another replica could re-insert a deleted object.
    All of a transaction's locks are taken at its start in one statement, in one global order
    (by hash), so two batches that share keys queue instead of deadlocking: the row locks taken
    later (the log's unique svix id, the rows, the tombstones) are then never contended.
    """
    if conn.dialect.name == "postgresql" and keys:
        stmts = statements(tables, conn.dialect)
        run(conn, [(stmts.advisory_locks, {"keys": list(keys)})])
