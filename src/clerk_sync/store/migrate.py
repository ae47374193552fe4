"""Alembic, run from code: the migrations ship inside the package.

clerk-sync keeps its own version table (``clerk_sync_alembic_version``, prefixed like the other
tables) and only ever looks at its own tables, so it can share a database with an application
that uses Alembic too. Before it creates anything in a database that has no clerk-sync schema,
it checks that none of the names it needs is taken (an application's own ``users``): that is
refused with the settings that fix it, rather than failing half-way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, inspect, text
from sqlalchemy.exc import SQLAlchemyError

from ..errors import SchemaError, StoreUnavailable
from .schema import VERSION_TABLE, Naming

__all__ = ["VERSION_TABLE", "ensure_schema", "schema_state", "upgrade"]
MIGRATIONS = Path(__file__).parent / "migrations"
SchemaState = Literal["empty", "current", "outdated", "unknown"]


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
    naming = naming or Naming()
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(
                conn,
                opts={
                    "version_table": naming.version_table,
                    "version_table_schema": naming.schema,
                },
            )
            return ctx.get_current_revision()
    except SQLAlchemyError as exc:
        raise StoreUnavailable(f"The database did not answer: {exc.__class__.__name__}.") from None


def schema_state(engine: Engine, naming: Naming | None = None) -> SchemaState:
    current = current_revision(engine, naming)
    if current is None:
        return "empty"
    if current == head_revision():
        return "current"
    script = ScriptDirectory.from_config(alembic_config())
    known = {rev.revision for rev in script.walk_revisions()}
    return "outdated" if current in known else "unknown"


def upgrade(engine: Engine, revision: str = "head", naming: Naming | None = None) -> str:
    """Bring the schema to ``revision``; returns the revision now in place."""
    naming = naming or Naming()
    state = schema_state(engine, naming)
    if state == "unknown":
        raise _unknown_revision()
    if state in ("empty", "outdated"):
        _check_names_free(engine, naming, current_revision(engine, naming))
    try:
        with engine.begin() as conn:
            if naming.schema is not None and conn.dialect.name == "postgresql":
                conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{naming.schema}"'))
            command.upgrade(alembic_config(conn, naming), revision)
    except SQLAlchemyError as exc:
        raise StoreUnavailable(
            f"The database did not answer during the upgrade ({type(exc).__name__}); nothing "
            "was changed that a retry would not finish."
        ) from None
    return current_revision(engine, naming) or ""


def _check_names_free(engine: Engine, naming: Naming, current: str | None) -> None:
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
    try:
        with engine.connect() as conn:
            existing = set(inspect(conn).get_table_names(schema=naming.schema))
    except SQLAlchemyError as exc:
        raise StoreUnavailable(f"The database did not answer: {exc.__class__.__name__}.") from None
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
