"""The write statements of the hot path, for any table of the generic shape: written in
SQLAlchemy Core, compiled once per deployment and dialect, run by the driver.

Ordering rules live in the statements themselves (``ON CONFLICT … WHERE excluded.sync_version >
t.sync_version``, and no tombstone of the row or of any of its parents), so deciding and
writing are one atomic step, correct without extra locking against anything but a concurrent
delete (see :func:`lock_steps`).

The log rows, upserts, questions and outbox rows of a batch take their rows together
(:func:`rows_param`): on PostgreSQL as one JSON parameter the server unpacks
(``json_to_recordset``), so a run's log rows are one statement and its upserts one per table per
layer (see :func:`clerk_sync.plan_sql.run_steps`), whatever their number; on SQLite the same
statement for one row, executed once per row (see :func:`_rows` for why).

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
    Integer,
    Table,
    Text,
    and_,
    bindparam,
    case,
    cast,
    column,
    delete,
    func,
    literal,
    null,
    select,
    text,
    true,
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

    __slots__ = ("defaults", "order", "refused_only", "rows", "sql")

    def __init__(
        self, statement: Any, dialect: Dialect, *, rows: bool = False, refused_only: bool = False
    ) -> None:
        compiled = statement.compile(dialect=dialect)
        self.sql = str(compiled)
        # Values written into the statement itself (``delivery_count + 1``, a kind's name).
        self.defaults = {
            name: bind.value for name, bind in compiled.binds.items() if not bind.required
        }
        self.order: Sequence[str] | None = compiled.positiontup if compiled.positional else None
        self.rows = rows
        """Whether it takes :func:`rows_param`: many rows, in one execution on PostgreSQL, one
        execution per row on SQLite (see :func:`_rows`)."""
        self.refused_only = refused_only
        """A question about the rows of the step before it: SQLite, which runs steps one at a
        time, asks only about the rows that step did not write (their ``id`` is not in its
        answer); PostgreSQL asks about all of them in the same round trip."""

    def params(self, values: Mapping[str, Any]) -> Sequence[Any] | Mapping[str, Any]:
        defaults = self.defaults
        if self.order is None:
            return {**defaults, **values} if defaults else values
        return [values[name] if name in values else defaults[name] for name in self.order]


Step = tuple[Compiled, Mapping[str, Any]]
"""One statement to run and its values."""

_ORDER = "ord"
"""The key of each row's position in a :func:`rows_param` array."""


def rows_param(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The values of a statement over ``rows`` (column → value, JSON columns already text),
    taken in this order."""
    return {"rows": rows}


def _rows_json(rows: Sequence[Mapping[str, Any]]) -> str:
    numbered = [{**row, _ORDER: n} for n, row in enumerate(rows)]
    # Column names are SQLAlchemy's ``quoted_name``, a ``str`` subclass orjson takes as a key
    # only with this option.
    return orjson.dumps(numbered, option=orjson.OPT_NON_STR_KEYS).decode()


def _rows(dialect: str, table: Table, names: Sequence[str]) -> tuple[Any, dict[str, Any]]:
    """The source of a statement over many rows, and each of ``names`` as a column of it (a
    JSON column cast from its text; ``b_svix_id``: the svix id of the delivery the row is from).

    On PostgreSQL, the rows are one parameter, a JSON array the server unpacks
    (``json_to_recordset``): one statement and one round trip for them all, with parsing and
    looping in C. On SQLite, which runs in this process, the statement is for one row and runs
    once per row: unpacking JSON there (``json_each``) cost twice as much per row as binding
    its values, mostly for parsing the 2 KB bodies again for every column (``bench/README.md``).
    """
    types = {n: table.c[n].type if n in table.c else Text() for n in names}
    if dialect != "postgresql":
        return None, {n: bindparam(n, type_=t) for n, t in types.items()}
    declared = [column(n, Text if isinstance(t, JSON) else t) for n, t in types.items()]
    source = (
        func.json_to_recordset(cast(bindparam("rows", type_=Text), postgresql.JSON))
        .table_valued(*declared, column(_ORDER, Integer))
        .render_derived("r", with_types=True)
    )
    columns = {
        n: cast(source.c[n], t) if isinstance(t, JSON) else source.c[n] for n, t in types.items()
    }
    return source, {**columns, _ORDER: source.c[_ORDER]}


def _select_rows(source: Any, columns: Sequence[Any], *where: Any, ordered: Any = None) -> Any:
    """``SELECT columns FROM source WHERE …`` (no FROM for SQLite's one row). SQLite needs a
    WHERE to parse an upsert after a SELECT."""
    query = select(*columns).where(*(where or (true(),)))
    if source is None:
        return query
    query = query.select_from(source)
    return query.order_by(ordered) if ordered is not None else query


def _insert(dialect: str, table: Table) -> postgresql.Insert | sqlite.Insert:
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


def _earliest(tombstones: Table, ins: Any) -> Any:
    """A tombstone written twice (a delete, and its parent's cascade) keeps the earliest
    deletion time, so its value does not depend on the order they came in."""
    return case(
        (ins.excluded.deleted_at < tombstones.c.deleted_at, ins.excluded.deleted_at),
        else_=tombstones.c.deleted_at,
    )


def _deleted_at(tables: Tables, kind: Any, ident: str | Any) -> Any:
    """When the object ``kind``/``ident`` was deleted, or NULL; ``ident`` names a parameter or
    is an expression (a column of a statement's rows)."""
    t = tables.tombstones
    if isinstance(ident, str):
        ident = bindparam(ident)
    return select(t.c.deleted_at).where(and_(t.c.kind == kind, t.c.id == ident)).scalar_subquery()


def _tombstoned(tables: Tables, kind: Any, ident: str | Any) -> Any:
    """Whether ``kind``/``ident`` was deleted. A scalar subquery rather than ``EXISTS``: for a
    statement over many rows PostgreSQL turns ``EXISTS`` into a join or a hashed subplan that
    reads every tombstone of the kind; this stays one index probe per row."""
    return _deleted_at(tables, kind, ident).is_not(None)


@dataclass(frozen=True, eq=False)
class EntityStatements:
    """The statements of one entity table."""

    table: Table
    json_columns: frozenset[str]
    upsert: Compiled
    """Rows (:func:`rows_param` of :meth:`upsert_values`), no id twice: each is written unless
    a newer version is stored or it (or a parent) is tombstoned. The ids written come back."""
    why: Compiled
    """Rows of ``id`` and the parent columns → ``(id, tombstoned, each parent's deleted_at or
    NULL…, stored sync_version)``: why an upsert was refused, asked right after it."""
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
        logged = [c.name for c in events.columns if c.name != "seq"]
        source, row = _rows(d, events, logged)
        # A body naming a deleted user is not kept (its erasure ran before it came).
        row["payload"] = case(
            (_tombstoned(tables, PERSONAL_KIND, row["user_id"]), null()), else_=row["payload"]
        )
        ins = _insert(d, events)
        self.record = self._compile_rows(
            ins.from_select(
                logged,
                # In their order, so ``seq`` follows arrival.
                _select_rows(source, [row[n] for n in logged], ordered=row.get(_ORDER)),
            )
            .on_conflict_do_update(
                index_elements=[events.c.svix_id],
                set_={
                    "delivery_count": events.c.delivery_count + 1,
                    "last_received_at": ins.excluded.last_received_at,
                },
            )
            .returning(events.c.svix_id, events.c.seq, events.c.delivery_count, events.c.status)
        )
        """Log rows, :func:`rows_param` of the events' columns; one row back per row written,
        in any order: ``(svix_id, seq, delivery_count, status)``, a count of 1 for a new one."""
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
        source, row = _rows(d, outbox, enqueued)
        self.enqueue = self._compile_rows(
            _insert(d, outbox)
            .from_select(
                enqueued, _select_rows(source, [row[n] for n in enqueued], ordered=row.get(_ORDER))
            )
            .on_conflict_do_nothing(index_elements=[outbox.c.key])
        )
        """Outbox rows, :func:`rows_param` of the outbox's columns but ``id``."""
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

    def _redelivered(self, svix_id: Any) -> Any:
        """The delivery's svix id was recorded before (and did not fail): a redelivery, whose
        writes must change nothing — whatever its body says. Writes run in the same batch as
        their log row, before its answer is read, so this is checked in the statement."""
        events = self.tables.events
        # A scalar subquery (the svix id is unique), for the reason given in _tombstoned.
        return (
            select(and_(events.c.delivery_count > 1, events.c.status != "failed"))
            .where(events.c.svix_id == svix_id)
            .scalar_subquery()
            .is_(True)
        )

    def _compile(self, statement: Executable) -> Compiled:
        return Compiled(statement, self.dialect)

    def _compile_rows(self, statement: Executable, *, refused_only: bool = False) -> Compiled:
        return Compiled(statement, self.dialect, rows=True, refused_only=refused_only)

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
        source, row = _rows(self.dialect.name, table, [*names, "b_svix_id"])
        guards = [~_tombstoned(self.tables, kind, row["id"])]
        guards += [~_tombstoned(self.tables, parent, row[col]) for col, parent in parents.items()]
        guards.append(~self._redelivered(row["b_svix_id"]))
        values = {n: row[n] for n in names}
        for col, (target, key) in scrubs.items():
            # Written after its referent's delete (and scrub): arrive already scrubbed.
            values["data"] = case(
                (_tombstoned(self.tables, target, row[col]), self._without(values["data"], key)),
                else_=values["data"],
            )
        ins = _insert(self.dialect.name, table)
        upsert = (
            ins.from_select(names, _select_rows(source, list(values.values()), *guards))
            .on_conflict_do_update(
                index_elements=[table.c.id],
                set_={n: ins.excluded[n] for n in names if n != "id"},
                where=ins.excluded.sync_version > table.c.sync_version,
            )
            .returning(table.c.id)
        )
        asked, ask = _rows(self.dialect.name, table, ["id", *parents])
        why = _select_rows(
            asked,
            [
                ask["id"],
                _tombstoned(self.tables, kind, ask["id"]),
                *[_deleted_at(self.tables, parent, ask[col]) for col, parent in parents.items()],
                select(table.c.sync_version).where(table.c.id == ask["id"]).scalar_subquery(),
            ],
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
            upsert=self._compile_rows(upsert),
            why=self._compile_rows(why, refused_only=True),
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
            out: list[list[Any]] = []
            for compiled, values in steps:
                rows = values["rows"] if compiled.rows else (values,)
                if compiled.refused_only and out:
                    written = {answer[0] for answer in out[-1]}
                    rows = [row for row in rows if row["id"] not in written]
                got: list[Any] = []
                for row in rows:
                    cursor.execute(compiled.sql, compiled.params(row))
                    if cursor.description:
                        got += cursor.fetchall()
                out.append(got)
            return out
        finally:
            cursor.close()
    cursors = []
    with driver.pipeline():
        for compiled, values in steps:
            if compiled.rows:
                values = {"rows": _rows_json(values["rows"])}
            cursor = driver.cursor()
            cursor.execute(compiled.sql, compiled.params(values))
            cursors.append(cursor)
    try:
        return [cursor.fetchall() if cursor.description else [] for cursor in cursors]
    finally:
        for cursor in cursors:
            cursor.close()


def recorded(rows: Sequence[Any]) -> dict[str, tuple[int, int, str]]:
    """Svix id → ``(seq, delivery_count, status)`` from a ``record`` step's rows: a count of 1
    means the svix id is new."""
    return {
        str(svix_id): (int(seq), int(count), str(status)) for svix_id, seq, count, status in rows
    }


def lock_steps(conn: Connection, tables: Tables, keys: Sequence[str]) -> list[Step]:
    """The statement that serializes transactions touching the same objects or svix ids, across
    processes (PostgreSQL; SQLite's single writer lock already does): to run first.

    Without it an update racing a delete on another replica could re-insert a deleted object.
    All of a transaction's locks are taken at its start in one statement, in one global order
    (by hash), so two batches that share keys queue instead of deadlocking: the row locks taken
    later (the log's unique svix id, the rows, the tombstones) are then never contended.
    """
    if conn.dialect.name != "postgresql" or not keys:
        return []
    return [(statements(tables, conn.dialect).advisory_locks, {"keys": list(keys)})]
