"""Databases for the schema tests: each one starts with no tables at all.

The shared ``db_url`` fixture is already migrated to head; a migration test needs a database it
can build from nothing (revision 0001, an application's own tables, a schema of its own) and
that no other test sees.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from clerk_sync.config import normalize_database_url
from clerk_sync.store import make_engine
from tests.conftest import PG_ADMIN_URL


@pytest.fixture
def empty_db_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """A database with no tables: a new SQLite file, or a new PostgreSQL database (dropped)."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    admin = make_url(normalize_database_url(PG_ADMIN_URL)).set(drivername="postgresql")
    conninfo = admin.render_as_string(hide_password=False)
    name = f"clerk_sync_store_{os.getpid()}_{secrets.token_hex(3)}"
    try:
        with psycopg.connect(conninfo, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL is required at {PG_ADMIN_URL}: {exc}", pytrace=False)
    try:
        url = admin.set(drivername="postgresql+psycopg", database=name)
        yield url.render_as_string(hide_password=False)
    finally:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def empty_engine(empty_db_url: str) -> Iterator[Engine]:
    eng = make_engine(empty_db_url)
    yield eng
    eng.dispose()
