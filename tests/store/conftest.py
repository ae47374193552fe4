"""Databases for the schema tests: each one starts with no tables at all.

The shared ``db_url`` fixture is already migrated to head; a migration test needs a database it
can build from nothing (revision 0001, an application's own tables, a schema of its own) and
that no other test sees.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from clerk_sync.store import make_engine
from tests.helpers.databases import empty_database


@pytest.fixture
def empty_db_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """A database with no tables: a new SQLite file, or a new PostgreSQL database (dropped)."""
    with empty_database(backend, tmp_path, "store", drivername="postgresql+psycopg") as url:
        yield url


@pytest.fixture
def empty_engine(empty_db_url: str) -> Iterator[Engine]:
    eng = make_engine(empty_db_url)
    yield eng
    eng.dispose()
