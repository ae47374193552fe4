"""Alembic, run from code: the migrations ship inside the package.

clerk-sync keeps its own version table (``clerk_sync_alembic_version``) and only ever looks at
its own tables, so it can share a database with an application that uses Alembic too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from ..errors import SchemaError, StoreUnavailable

VERSION_TABLE = "clerk_sync_alembic_version"
MIGRATIONS = Path(__file__).parent / "migrations"
SchemaState = Literal["empty", "current", "outdated", "unknown"]


def alembic_config(connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
            return ctx.get_current_revision()
    except SQLAlchemyError as exc:
        raise StoreUnavailable(f"The database did not answer: {exc.__class__.__name__}.") from None


def schema_state(engine: Engine) -> SchemaState:
    current = current_revision(engine)
    if current is None:
        return "empty"
    if current == head_revision():
        return "current"
    script = ScriptDirectory.from_config(alembic_config())
    known = {rev.revision for rev in script.walk_revisions()}
    return "outdated" if current in known else "unknown"


def upgrade(engine: Engine, revision: str = "head") -> str:
    """Bring the schema to ``revision``; returns the revision now in place."""
    if schema_state(engine) == "unknown":
        raise _unknown_revision()
    try:
        with engine.begin() as conn:
            command.upgrade(alembic_config(conn), revision)
    except SQLAlchemyError as exc:
        raise StoreUnavailable(
            f"The database did not answer during the upgrade ({type(exc).__name__}); nothing "
            "was changed that a retry would not finish."
        ) from None
    return current_revision(engine) or ""


def ensure_schema(engine: Engine, *, upgrade_empty: bool = True) -> None:
    """Create the schema in an empty database; refuse one that is behind or unknown."""
    state = schema_state(engine)
    if state == "current":
        return
    if state == "empty" and upgrade_empty:
        upgrade(engine)
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
