"""Alembic owns the schema: migrations match the models, and startup checks the revision."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, select, text

from clerk_sync import Delivery, Naming, Receiver, SchemaError, Status, tables
from clerk_sync.devtools import encode, new_msg_id, user_event, user_object
from clerk_sync.store import ensure_schema, make_engine, migrate, schema_state, upgrade
from tests.helpers.tables import metadata

OURS = set(metadata.tables)


def drift(engine: Engine, naming: Naming | None = None) -> list[Any]:
    """What `alembic check` would report for ``naming``'s tables: [] when the database the
    migrations built is exactly the models (the application's own tables are not looked at)."""
    naming = naming or Naming()
    models = tables(naming.prefix, naming.schema).metadata
    ours = {t.name for t in models.tables.values()}
    with engine.connect() as conn:
        ctx = MigrationContext.configure(
            conn,
            opts={
                "compare_type": True,
                "include_schemas": naming.schema is not None,
                "include_object": lambda obj, name, type_, *_: type_ != "table" or name in ours,
                "version_table": naming.version_table,
                "version_table_schema": naming.schema,
            },
        )
        return list(compare_metadata(ctx, models))


def test_migrations_create_exactly_the_models(engine: Engine) -> None:
    """The `alembic check` of this project: models and migrations agree on every backend."""
    assert drift(engine) == []
    assert schema_state(engine) == "current"


def test_migrations_create_exactly_the_models_with_a_table_prefix(empty_engine: Engine) -> None:
    naming = Naming("clerk_")
    assert upgrade(empty_engine, naming=naming) == migrate.head_revision()
    assert drift(empty_engine, naming) == []
    assert schema_state(empty_engine, naming) == "current"
    names = set(inspect(empty_engine).get_table_names())
    assert {t.name for t in tables("clerk_").metadata.tables.values()} <= names
    assert names.isdisjoint(OURS)  # nothing unprefixed, not even Alembic's version table
    assert schema_state(empty_engine) == "empty"  # the default deployment is another one


SCHEMA = "clerk_sync_test_schema"


@pytest.fixture
def in_schema(empty_engine: Engine) -> Iterator[Naming]:
    """clerk-sync's tables migrated into their own PostgreSQL schema (dropped afterwards)."""
    naming = Naming(schema=SCHEMA)
    try:
        assert upgrade(empty_engine, naming=naming) == migrate.head_revision()
        yield naming
    finally:
        with empty_engine.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{SCHEMA}" CASCADE'))


@pytest.mark.parametrize("backend", ["postgresql"])
def test_a_database_schema_holds_every_table(empty_engine: Engine, in_schema: Naming) -> None:
    with empty_engine.connect() as conn:
        inspector = inspect(conn)
        assert inspector.has_schema(SCHEMA)  # the upgrade created it
        assert inspector.get_table_names() == []  # public holds nothing of clerk-sync's
        found = set(inspector.get_table_names(schema=SCHEMA))
    wanted = {t.name for t in tables(schema=SCHEMA).metadata.tables.values()}
    assert found == wanted | {migrate.VERSION_TABLE}
    assert schema_state(empty_engine, in_schema) == "current"
    assert schema_state(empty_engine) == "empty"

    deployment = tables(schema=SCHEMA)
    user = user_object(email="ada@example.com")
    body = encode(user_event("user.created", user))
    outcome = Receiver(empty_engine, tables=deployment).receive(Delivery(new_msg_id(), body))
    assert outcome.status == Status.PROCESSED
    with empty_engine.connect() as conn:
        stored = conn.execute(select(deployment.entity("user").c.email)).scalars().all()
    assert stored == ["ada@example.com"]


@pytest.mark.parametrize("backend", ["postgresql"])
def test_migrations_create_exactly_the_models_in_a_schema(
    empty_engine: Engine, in_schema: Naming
) -> None:
    assert drift(empty_engine, in_schema) == []


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
