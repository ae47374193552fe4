"""Alembic owns the schema: migrations match the models, and startup checks the revision."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
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
from clerk_sync.store.engine import WRITE_OPTIONS
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


# -- the migration lock: any number of migrators at once on an empty database ----------------


def _upgrade_from_threads(url: str, count: int) -> list[str | BaseException]:
    """``upgrade`` from ``count`` threads at once, each with its own engine (as processes do)."""
    engines = [make_engine(url) for _ in range(count)]
    start = threading.Barrier(count)
    results: list[str | BaseException] = [""] * count

    def run(n: int) -> None:
        start.wait()
        try:
            results[n] = upgrade(engines[n])
        except BaseException as exc:
            results[n] = exc

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
            assert not thread.is_alive(), "an upgrade hung"
    finally:
        for engine in engines:
            engine.dispose()
    return results


def test_concurrent_upgrades_of_an_empty_database_all_succeed(
    empty_db_url: str, empty_engine: Engine
) -> None:
    results = _upgrade_from_threads(empty_db_url, 5)
    assert results == [migrate.head_revision()] * 5
    assert schema_state(empty_engine) == "current"
    with empty_engine.connect() as conn:
        rows = conn.execute(text(f"SELECT version_num FROM {migrate.VERSION_TABLE}")).all()
    assert len(rows) == 1


@contextmanager
def _migration_lock_held(engine: Engine) -> Iterator[None]:
    """What another migrator holds: PostgreSQL's advisory lock, SQLite's write lock."""
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_lock(:a, :b)"), migrate.MIGRATION_LOCK)
            conn.commit()
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:a, :b)"), migrate.MIGRATION_LOCK)
                conn.commit()
            return
        with conn.execution_options(**WRITE_OPTIONS).begin():  # BEGIN IMMEDIATE
            yield


def test_upgrade_waits_for_the_lock_and_reads_the_state_again(
    empty_db_url: str, empty_engine: Engine
) -> None:
    """A migrator that finds the lock taken waits; when it gets it, it looks again and does
    not redo what the holder did (before: `table ... already exists` / UniqueViolation)."""
    outcome: list[str | BaseException] = []
    with _migration_lock_held(empty_engine):
        waiter = threading.Thread(
            target=lambda: outcome.extend(_upgrade_from_threads(empty_db_url, 1))
        )
        waiter.start()
        waiter.join(1.0)
        assert waiter.is_alive(), outcome  # blocked on the lock
        assert schema_state(empty_engine) == "empty"
    waiter.join(30)
    assert outcome == [migrate.head_revision()]
    assert schema_state(empty_engine) == "current"


def test_upgrade_of_a_current_schema_takes_no_lock(engine: Engine, db_url: str) -> None:
    """`db upgrade` beside a running server does not queue behind its writes."""
    with _migration_lock_held(engine):
        assert _upgrade_from_threads(db_url, 1) == [migrate.head_revision()]
