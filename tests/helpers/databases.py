"""Databases that start with no tables at all, for tests that build a schema from nothing."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from clerk_sync.config import normalize_database_url
from tests.conftest import PG_ADMIN_URL


@contextmanager
def empty_database(
    backend: str, tmp_path: Path, tag: str, *, drivername: str = "postgresql"
) -> Iterator[str]:
    """The URL of a new SQLite file, or of a new PostgreSQL database dropped afterwards
    (``drivername`` as a user writes it, or ``postgresql+psycopg`` for SQLAlchemy)."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    admin = make_url(normalize_database_url(PG_ADMIN_URL)).set(drivername="postgresql")
    conninfo = admin.render_as_string(hide_password=False)
    name = f"clerk_sync_{tag}_{os.getpid()}_{secrets.token_hex(3)}"
    try:
        with psycopg.connect(conninfo, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL is required at {PG_ADMIN_URL}: {exc}", pytrace=False)
    try:
        yield admin.set(drivername=drivername, database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
