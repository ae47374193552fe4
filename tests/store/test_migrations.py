"""Alembic owns the schema: migrations match the models, and startup checks the revision."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, text

from clerk_sync import SchemaError
from clerk_sync.store import ensure_schema, make_engine, migrate, schema_state, upgrade
from tests.helpers.tables import metadata

OURS = set(metadata.tables)


def test_migrations_create_exactly_the_models(engine: Engine) -> None:
    """The `alembic check` of this project: models and migrations agree on every backend."""
    with engine.connect() as conn:
        ctx = MigrationContext.configure(
            conn,
            opts={
                "compare_type": True,
                "include_object": lambda obj, name, type_, *_: type_ != "table" or name in OURS,
            },
        )
        assert compare_metadata(ctx, metadata) == []
    assert schema_state(engine) == "current"


def test_version_table_does_not_clash_with_the_applications_alembic(engine: Engine) -> None:
    tables = set(inspect(engine).get_table_names())
    assert "clerk_sync_alembic_version" in tables
    assert "alembic_version" not in tables


def test_an_empty_database_is_migrated_on_start(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'fresh.db'}")
    try:
        assert schema_state(engine) == "empty"
        ensure_schema(engine)
        assert schema_state(engine) == "current"
        assert set(inspect(engine).get_table_names()) >= OURS
    finally:
        engine.dispose()


def test_an_empty_database_is_refused_when_upgrading_is_not_allowed(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'fresh.db'}")
    try:
        with pytest.raises(SchemaError, match="clerk-sync db upgrade"):
            ensure_schema(engine, upgrade_empty=False)
    finally:
        engine.dispose()


def test_an_unknown_revision_is_refused(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("UPDATE clerk_sync_alembic_version SET version_num = 'fffffff'"))
    try:
        assert schema_state(engine) == "unknown"
        with pytest.raises(SchemaError, match="does not know") as info:
            ensure_schema(engine)
        assert info.value.exit_code == 3
    finally:
        with engine.begin() as conn:
            conn.execute(
                text("UPDATE clerk_sync_alembic_version SET version_num = :v"),
                {"v": migrate.head_revision()},
            )


NEXT_REVISION = """
from alembic import op

revision = "9999"
down_revision = "{head}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_test_users_last_name", "users", ["last_name"])


def downgrade() -> None:
    op.drop_index("ix_test_users_last_name", table_name="users")
"""


def test_an_outdated_schema_is_refused_until_upgraded(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A newer clerk-sync (one more migration) meets a database migrated by this one."""
    newer = tmp_path / "migrations"
    shutil.copytree(migrate.MIGRATIONS, newer, ignore=shutil.ignore_patterns("__pycache__"))
    head = migrate.head_revision()
    (newer / "versions" / "9999_next.py").write_text(NEXT_REVISION.format(head=head))
    monkeypatch.setattr(migrate, "MIGRATIONS", newer)

    assert schema_state(engine) == "outdated"
    with pytest.raises(SchemaError, match="clerk-sync db upgrade"):
        ensure_schema(engine)
    try:
        assert upgrade(engine) == "9999"
        assert schema_state(engine) == "current"
    finally:
        with engine.begin() as conn:
            command.downgrade(migrate.alembic_config(conn), head)


def test_sqlite_connections_enforce_foreign_keys_and_use_wal(tmp_path: Path) -> None:
    for level, expected in (("FULL", 2), ("NORMAL", 1)):
        engine = make_engine(f"sqlite:///{tmp_path / 'p.db'}", sqlite_synchronous=level)
        try:
            with engine.connect() as conn:
                assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
                assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
                assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == expected
        finally:
            engine.dispose()
