"""Alembic, run from code: the migrations ship inside the package.

clerk-sync keeps its own version table (``clerk_sync_alembic_version``, prefixed like the other
tables) and only ever looks at its own tables, so it can share a database with an application
that uses Alembic too. Before it creates anything in a database that has no clerk-sync schema,
it checks that none of the names it needs is taken (an application's own ``users``): that is
refused with the settings that fix it, rather than failing half-way.

Any number of processes may start at once on an empty database (replicas, a ``db upgrade``
beside them): the state is read cheaply first, and if there is anything to do, again under a
migration lock that only one of them holds at a time, so exactly one migrates and the others
find the schema current. The lock is PostgreSQL's session-level advisory lock (its two-key form,
a key space apart from the writers' per-transaction locks) or SQLite's own write lock taken by
``BEGIN IMMEDIATE``; either way the check, the upgrade and the version row are one transaction
on the connection that holds it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, inspect, text
from sqlalchemy.exc import SQLAlchemyError

from ..errors import SchemaError
from .engine import WRITE_OPTIONS, store_error
from .schema import VERSION_TABLE, Naming

__all__ = ["VERSION_TABLE", "ensure_schema", "schema_state", "upgrade"]
MIGRATIONS = Path(__file__).parent / "migrations"
SchemaState = Literal["empty", "current", "outdated", "unknown"]
MIGRATION_LOCK = {"a": 0x636C6B73, "b": 0x6D696772}
"""PostgreSQL advisory lock key (two int4s: "clks", "migr") held while a process migrates."""


def alembic_config(connection: Connection | None = None, naming: Naming | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    cfg.attributes["naming"] = naming or Naming()
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine, naming: Naming | None = None) -> str | None:
    try:
        with engine.connect() as conn:
            return _revision(conn, naming or Naming())
    except SQLAlchemyError as exc:
        raise store_error(exc, engine.url) from None


def _revision(conn: Connection, naming: Naming) -> str | None:
    ctx = MigrationContext.configure(
        conn,
        opts={"version_table": naming.version_table, "version_table_schema": naming.schema},
    )
    return ctx.get_current_revision()


def schema_state(engine: Engine, naming: Naming | None = None) -> SchemaState:
    return _state(current_revision(engine, naming))


def _state(current: str | None) -> SchemaState:
    if current is None:
        return "empty"
    if current == head_revision():
        return "current"
    script = ScriptDirectory.from_config(alembic_config())
    known = {rev.revision for rev in script.walk_revisions()}
    return "outdated" if current in known else "unknown"


def upgrade(engine: Engine, revision: str = "head", naming: Naming | None = None) -> str:
    """Bring the schema to ``revision``; returns the revision now in place.

    Safe to run from any number of processes at once: see the module docstring."""
    naming = naming or Naming()
    if revision == "head":
        current = current_revision(engine, naming)
        if _state(current) == "current":
            return current or ""  # nothing to do: no lock to wait for behind running writers
    try:
        with _migration_lock(engine) as conn, conn.begin():
            # Read again under the lock: another process may have migrated meanwhile.
            current = _revision(conn, naming)
            state = _state(current)
            if state == "unknown":
                raise _unknown_revision()
            if state == "current" and revision == "head":
                return current or ""
            if state in ("empty", "outdated"):
                _check_names_free(conn, naming, current)
            if naming.schema is not None and conn.dialect.name == "postgresql":
                conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{naming.schema}"'))
            command.upgrade(alembic_config(conn, naming), revision)
            return _revision(conn, naming) or ""
    except SQLAlchemyError as exc:
        raise store_error(exc, engine.url) from None


@contextmanager
def _migration_lock(engine: Engine) -> Iterator[Connection]:
    """A connection that alone may migrate while it is open.

    PostgreSQL: ``pg_advisory_lock`` for the connection's session (waits for the holder),
    released when done or when the session ends, so a killed migrator never leaves it held.
    SQLite: the connection begins with ``BEGIN IMMEDIATE`` (``WRITE_OPTIONS``), which takes the
    database's write lock at once instead of failing to upgrade a read lock later (the
    ``database is locked`` of two migrators), and waits for it up to the busy timeout.
    """
    with engine.connect() as conn:
        if conn.dialect.name != "postgresql":
            conn.execution_options(**WRITE_OPTIONS)
            yield conn
            return
        conn.execute(text("SELECT pg_advisory_lock(:a, :b)"), MIGRATION_LOCK)
        conn.commit()
        try:
            yield conn
        finally:
            if conn.in_transaction():
                conn.rollback()
            conn.execute(text("SELECT pg_advisory_unlock(:a, :b)"), MIGRATION_LOCK)
            conn.commit()


def _check_names_free(conn: Connection, naming: Naming, current: str | None) -> None:
    """Refuse to run migrations that would create a table an application already has: each
    revision names the tables it creates (``TABLES``), so those still to come are checked."""
    script = ScriptDirectory.from_config(alembic_config())
    done = {rev.revision for rev in script.iterate_revisions(current, "base")} if current else set()
    coming = [
        naming.table(name)
        for rev in script.walk_revisions()
        if rev.revision not in done
        for name in getattr(rev.module, "TABLES", ())
    ]
    existing = set(inspect(conn).get_table_names(schema=naming.schema))
    taken = sorted(name for name in coming if name in existing)
    if taken:
        where = f" in schema {naming.schema!r}" if naming.schema else ""
        fix = (
            "set TABLE_PREFIX (e.g. clerk_) or, on PostgreSQL, DATABASE_SCHEMA so clerk-sync's "
            "tables get names of their own"
            if current is None
            else "rename the application's table (clerk-sync's existing tables already use "
            "these names)"
        )
        raise SchemaError(
            f"Table {taken[0]!r}{where} already exists and is not clerk-sync's: {fix}.",
            code="table_taken",
        )


def ensure_schema(
    engine: Engine, *, upgrade_empty: bool = True, naming: Naming | None = None
) -> None:
    """Create the schema in an empty database; refuse one that is behind or unknown."""
    state = schema_state(engine, naming)
    if state == "current":
        return
    if state == "empty" and upgrade_empty:
        upgrade(engine, naming=naming)
        return
    if state == "unknown":
        raise _unknown_revision()
    if state == "empty":
        raise SchemaError("The database has no clerk-sync schema yet: run `clerk-sync db upgrade`.")
    raise SchemaError(
        "The database schema is behind this version of clerk-sync: run `clerk-sync db upgrade`."
    )


def _unknown_revision() -> SchemaError:
    return SchemaError(
        "The database schema is at a revision this clerk-sync does not know (a newer "
        "version migrated it?): upgrade clerk-sync, or point DATABASE_URL elsewhere."
    )
