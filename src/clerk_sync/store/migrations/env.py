"""Alembic environment for clerk-sync's own tables (run from code, see ``store/migrate.py``)."""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlalchemy import create_engine

from clerk_sync.store.migrate import VERSION_TABLE
from clerk_sync.store.schema import metadata

config = context.config


def _ours(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    """Ignore tables that belong to the host application."""
    if type_ == "table":
        return name in metadata.tables
    return True


def run() -> None:
    options: dict[str, Any] = {
        "target_metadata": metadata,
        "version_table": VERSION_TABLE,
        "include_object": _ours,
        "render_as_batch": True,
        "compare_type": True,
    }
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, **options)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(config.get_main_option("sqlalchemy.url") or "")
    with engine.begin() as conn:
        context.configure(connection=conn, **options)
        with context.begin_transaction():
            context.run_migrations()


run()
