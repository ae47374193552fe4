"""Alembic environment for clerk-sync's own tables (run from code, see ``store/migrate.py``)."""

from __future__ import annotations

from typing import Any

from alembic import context

from clerk_sync.store.schema import Naming, Tables, table_key

config = context.config


def _tables() -> Tables:
    from clerk_sync.entities import tables

    naming = config.attributes.get("naming") or Naming()
    return tables(naming.prefix, naming.schema)


def run() -> None:
    tables = _tables()
    ours = {t.name for t in tables.metadata.tables.values()}

    def include(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
        """Ignore tables that belong to the host application."""
        return name in ours if type_ == "table" else True

    connection = config.attributes["connection"]
    context.configure(
        connection=connection,
        target_metadata=tables.metadata,
        version_table=tables.naming.version_table,
        version_table_schema=tables.naming.schema,
        include_object=include,
        include_schemas=tables.naming.schema is not None,
        render_as_batch=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
    assert all(table_key(t) for t in tables.metadata.tables.values())


run()
