"""clerk-sync beside an application's own tables: a name it needs that is taken is refused with
the settings that fix it (``TABLE_PREFIX``, ``DATABASE_SCHEMA``), before anything is created;
a malformed setting is a one-line ConfigError. In code and through the ``clerk-sync`` command.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import Engine, inspect, text

from clerk_sync import ConfigError, Naming, SchemaError, Settings, tables
from clerk_sync.store import ensure_schema, migrate, schema_state, upgrade
from tests.conftest import SECRET
from tests.e2e.server import CliResult, clean_env, free_port, run_cli, run_cli_many
from tests.store.test_migrations import drift

APP_ROWS = [(1, "the application's own user"), (2, "another")]


def _app_users(engine: Engine) -> None:
    """The application's ``users`` table, which is not clerk-sync's."""
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE users (pk INTEGER PRIMARY KEY, label TEXT NOT NULL)"))
        conn.execute(text("INSERT INTO users (pk, label) VALUES (1, :a), (2, :b)"),
                     {"a": APP_ROWS[0][1], "b": APP_ROWS[1][1]})  # fmt: skip


def _app_users_untouched(engine: Engine) -> None:
    with engine.connect() as conn:
        columns = [c["name"] for c in inspect(conn).get_columns("users")]
        rows = conn.execute(text("SELECT pk, label FROM users ORDER BY pk")).all()
    assert columns == ["pk", "label"]
    assert [tuple(r) for r in rows] == APP_ROWS


def _names_the_fix(line: str) -> None:
    assert "'users'" in line
    assert "TABLE_PREFIX" in line
    assert "DATABASE_SCHEMA" in line


def _one_line(result: CliResult) -> str:
    """The refusal went to stderr as one line, without a traceback, and stdout is empty."""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, str(result)
    assert "Traceback" not in result.stderr, str(result)
    assert result.stdout == "", str(result)
    return lines[0]


def test_a_taken_name_is_refused_before_anything_is_created(empty_engine: Engine) -> None:
    _app_users(empty_engine)

    for attempt in (lambda: upgrade(empty_engine), lambda: ensure_schema(empty_engine)):
        with pytest.raises(SchemaError) as info:
            attempt()
        assert "\n" not in info.value.detail
        _names_the_fix(info.value.detail)
        assert (info.value.code, info.value.exit_code) == ("table_taken", 3)

    assert inspect(empty_engine).get_table_names() == ["users"]  # not even the version table
    assert schema_state(empty_engine) == "empty"
    _app_users_untouched(empty_engine)

    # With a prefix the same database takes clerk-sync's tables beside the application's.
    naming = Naming("clerk_")
    ensure_schema(empty_engine, naming=naming)
    assert schema_state(empty_engine, naming) == "current"
    assert drift(empty_engine, naming) == []
    _app_users_untouched(empty_engine)


@pytest.mark.parametrize("backend", ["postgresql"])
def test_a_database_schema_avoids_a_taken_name(empty_engine: Engine) -> None:
    _app_users(empty_engine)
    naming = Naming(schema="clerk_sync_test_schema")
    try:
        ensure_schema(empty_engine, naming=naming)
        assert schema_state(empty_engine, naming) == "current"
        with empty_engine.connect() as conn:
            assert "users" in inspect(conn).get_table_names(schema=naming.schema)
        _app_users_untouched(empty_engine)
    finally:
        with empty_engine.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{naming.schema}" CASCADE'))


def test_a_name_0002_needs_that_is_taken_is_refused_by_name(empty_engine: Engine) -> None:
    """A deployment at 0001 whose database also holds the application's ``sessions``."""
    with empty_engine.begin() as conn:
        command.upgrade(migrate.alembic_config(conn), "0001")
        conn.execute(text("CREATE TABLE sessions (sid VARCHAR(64) PRIMARY KEY, blob TEXT)"))
    try:
        with pytest.raises(SchemaError, match="'sessions'"):
            upgrade(empty_engine)
    finally:
        assert migrate.current_revision(empty_engine) == "0001"  # rolled back whole
        with empty_engine.connect() as conn:
            columns = [c["name"] for c in inspect(conn).get_columns("sessions")]
        assert columns == ["sid", "blob"]


def test_the_cli_refuses_a_taken_name_and_a_prefix_fixes_it(
    empty_engine: Engine, empty_db_url: str, tmp_path: Path
) -> None:
    _app_users(empty_engine)
    env = clean_env({"DATABASE_URL": empty_db_url, "CLERK_WEBHOOK_SECRET": SECRET})
    upgraded, served = run_cli_many(
        [(["db", "upgrade"], env), (["serve", "--port", str(free_port())], env)],
        cwd=tmp_path,
        timeout=60,
    )
    for result in (upgraded, served):
        assert result.returncode == 3, str(result)
        line = _one_line(result)
        _names_the_fix(line)
        assert "[table_taken]" in line  # the README's troubleshooting anchor
        assert SECRET not in result.stderr
    assert inspect(empty_engine).get_table_names() == ["users"]

    prefixed = {**env, "TABLE_PREFIX": "clerk_"}
    fixed = run_cli("db", "upgrade", env=prefixed, cwd=tmp_path)
    assert fixed.returncode == 0, str(fixed)
    assert f"revision {migrate.head_revision()}" in fixed.stdout
    status = run_cli("db", "status", env=prefixed, cwd=tmp_path)
    assert status.returncode == 0, str(status)
    assert "current" in status.stdout
    names = set(inspect(empty_engine).get_table_names())
    assert {t.name for t in tables("clerk_").metadata.tables.values()} <= names
    _app_users_untouched(empty_engine)


def test_bad_naming_settings_are_one_line_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="TABLE_PREFIX 'Clerk-'"):
        Naming("Clerk-")
    with pytest.raises(ConfigError, match="DATABASE_SCHEMA"):
        Naming(schema="Has Spaces")
    sqlite_url = f"sqlite:///{tmp_path / 'x.db'}"
    with pytest.raises(ConfigError, match="DATABASE_SCHEMA is for PostgreSQL"):
        Settings(database_url=sqlite_url, database_schema="clerk").schema_name()

    never = tmp_path / "never_created.db"
    base = {"DATABASE_URL": f"sqlite:///{never}", "CLERK_WEBHOOK_SECRET": SECRET}
    on_sqlite = clean_env({**base, "DATABASE_SCHEMA": "clerk"})
    bad_prefix = clean_env({**base, "TABLE_PREFIX": "Clerk-"})
    serve = ["serve", "--port", str(free_port())]
    results = run_cli_many(
        [
            (["db", "upgrade"], on_sqlite),
            (serve, on_sqlite),
            (["db", "upgrade"], bad_prefix),
            (serve, bad_prefix),
        ],
        cwd=tmp_path,
        timeout=60,
    )
    for result in results[:2]:
        assert result.returncode == 2, str(result)
        line = _one_line(result)
        assert "DATABASE_SCHEMA is for PostgreSQL" in line
        assert "TABLE_PREFIX" in line  # what to use on SQLite instead
    for result in results[2:]:
        assert result.returncode == 2, str(result)
        line = _one_line(result)
        assert "TABLE_PREFIX 'Clerk-'" in line
        assert "clerk_" in line  # an example of a good one
    assert not never.exists()  # refused before the database was opened
