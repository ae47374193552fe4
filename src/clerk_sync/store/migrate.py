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

Alembic itself (about 12 MB and a tenth of a second or more to import) is loaded only when there
is something to do or to explain. A database already at the newest revision — what every start
and every read-only command meets — is recognised with one query of the version table against
the head the migration files name (:func:`shipped_head`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from sqlalchemy import Connection, Engine, column, inspect, select, table, text
from sqlalchemy.exc import SQLAlchemyError

from ..errors import SchemaError
from .engine import WRITE_OPTIONS, store_error
from .schema import VERSION_TABLE, Naming

if TYPE_CHECKING:
    from alembic.config import Config

__all__ = ["VERSION_TABLE", "ensure_schema", "schema_state", "upgrade"]
MIGRATIONS = Path(__file__).parent / "migrations"
_REVISION_LINE = re.compile(
    r"""^(revision|down_revision)\s*(?::[^=\n]*)?=\s*(?:"([^"\n]*)"|'([^'\n]*)'|(None))\s*$""",
    re.MULTILINE,
)
"""``revision = "0004"`` and ``down_revision = "0003"`` (or ``None``) as ``script.py.mako``
writes them, optionally annotated."""
SchemaState = Literal["empty", "current", "outdated", "unknown"]
MIGRATION_LOCK = {"a": 0x636C6B73, "b": 0x6D696772}
"""PostgreSQL advisory lock key (two int4s: "clks", "migr") held while a process migrates."""


def alembic_config(connection: Connection | None = None, naming: Naming | None = None) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    cfg.attributes["naming"] = naming or Naming()
    return cfg


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def shipped_head() -> str | None:
    """The newest revision of the migrations in :data:`MIGRATIONS`, read from each file's
    ``revision`` and ``down_revision`` lines without Alembic; ``None`` when the files are not
    one plain line of history (a branch, a merge, a line not written as the template writes
    it), and then only Alembic is asked. tests/store/test_migrations.py holds it equal to
    :func:`head_revision`."""
    parents: dict[str, str | None] = {}
    for path in sorted((MIGRATIONS / "versions").glob("*.py")):
        found: dict[str, list[str | None]] = {"revision": [], "down_revision": []}
        for match in _REVISION_LINE.finditer(path.read_text(encoding="utf-8")):
            found[match[1]].append(match[2] if match[2] is not None else match[3])
        if len(found["revision"]) != 1 or len(found["down_revision"]) != 1:
            return None
        revision = found["revision"][0]
        if revision is None or revision in parents:
            return None
        parents[revision] = found["down_revision"][0]
    heads = set(parents) - set(parents.values())
    roots = [r for r, parent in parents.items() if parent is None]
    if len(heads) != 1 or len(roots) != 1 or len(set(parents.values())) != len(parents):
        return None
    return heads.pop()


def _head_in_place(engine: Engine, naming: Naming) -> str | None:
    """The shipped head when the database is at it (one query, no Alembic), else ``None``:
    then the database is empty, behind, unknown or unreadable, and Alembic says which."""
    head = shipped_head()
    if head is None:
        return None
    try:
        with engine.connect() as conn:
            if not inspect(conn).has_table(naming.version_table, schema=naming.schema):
                return None
            versions = table(naming.version_table, column("version_num"), schema=naming.schema)
            found = conn.execute(select(versions.c.version_num)).scalars().all()
    except SQLAlchemyError as exc:
        raise store_error(exc, engine.url) from None
    return head if list(found) == [head] else None


def current_revision(engine: Engine, naming: Naming | None = None) -> str | None:
    try:
        with engine.connect() as conn:
            return _revision(conn, naming or Naming())
    except SQLAlchemyError as exc:
        raise store_error(exc, engine.url) from None


def _revision(conn: Connection, naming: Naming) -> str | None:
    from alembic.runtime.migration import MigrationContext

    ctx = MigrationContext.configure(
        conn,
        opts={"version_table": naming.version_table, "version_table_schema": naming.schema},
    )
    return ctx.get_current_revision()


def schema_state(engine: Engine, naming: Naming | None = None) -> SchemaState:
    if _head_in_place(engine, naming or Naming()) is not None:
        return "current"
    return _state(current_revision(engine, naming))


def _state(current: str | None) -> SchemaState:
    from alembic.script import ScriptDirectory

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
        in_place = _head_in_place(engine, naming)
        if in_place is not None:
            return in_place
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
            from alembic import command

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
    from alembic.script import ScriptDirectory

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
