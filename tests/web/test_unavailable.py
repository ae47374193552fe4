"""When the database goes away: 503 (Svix retries), nothing half-applied, healthz says so.

``/healthz`` reports the write path: a SQLite file deleted, replaced, read-only or locked, and a
PostgreSQL database that refuses writes, are 503 with the cause; a PostgreSQL connection the
server closed is replaced without a 503.
"""

from __future__ import annotations

import os
import secrets
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url
from starlette.testclient import TestClient

from clerk_sync.config import normalize_database_url
from clerk_sync.devtools import user_event, user_object
from clerk_sync.web import WEBHOOK_PATH, create_app
from tests.conftest import PG_ADMIN_URL, migrated_sqlite, signed

from .conftest import make_settings


@pytest.fixture
def doomed_database(pg_database: str) -> Iterator[tuple[str, str]]:
    admin = make_url(normalize_database_url(PG_ADMIN_URL)).set(drivername="postgresql")
    conninfo = admin.render_as_string(hide_password=False)
    name = f"clerk_sync_doomed_{secrets.token_hex(4)}"
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield admin.set(database=name).render_as_string(hide_password=False), conninfo
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.parametrize("writer", ["thread", "process"])
def test_database_down_answers_503_and_healthz_fails(
    doomed_database: tuple[str, str], writer: str
) -> None:
    url, admin = doomed_database
    with TestClient(create_app(make_settings(url, writer=writer))) as client:
        body, headers = signed(user_event("user.created", user_object()))
        assert client.post(WEBHOOK_PATH, content=body, headers=headers).status_code == 200

        name = make_url(url).database
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')

        body, headers = signed(user_event("user.created", user_object()))
        response = client.post(WEBHOOK_PATH, content=body, headers=headers)
        assert response.status_code == 503
        assert response.json()["error"] == "store_unavailable"
        assert "webhook-delivery" not in response.headers
        health = client.get("/healthz")
        assert health.status_code == 503
        assert health.json()["error"] == "store_unavailable"


def _post_user(client: TestClient) -> int:
    body, headers = signed(user_event("user.created", user_object()))
    return client.post(WEBHOOK_PATH, content=body, headers=headers).status_code


def _unhealthy(client: TestClient) -> str:
    """The cause ``/healthz`` gives; fails unless it is a 503 ``store_unavailable``."""
    health = client.get("/healthz")
    assert health.status_code == 503, health.text
    assert health.json()["error"] == "store_unavailable"
    return str(health.json()["detail"])


@pytest.fixture
def sqlite_file(tmp_path: Path) -> Path:
    path = tmp_path / "data" / "clerk_sync.db"
    path.parent.mkdir()
    migrated_sqlite(path)
    return path


def test_a_sqlite_file_deleted_while_running_fails_healthz(sqlite_file: Path) -> None:
    with TestClient(create_app(make_settings(f"sqlite:///{sqlite_file}"))) as client:
        assert client.get("/healthz").status_code == 200
        for suffix in ("", "-wal", "-shm"):
            Path(f"{sqlite_file}{suffix}").unlink(missing_ok=True)
        assert "deleted" in _unhealthy(client)


def test_a_sqlite_file_replaced_while_running_fails_healthz(
    sqlite_file: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other.db"
    migrated_sqlite(other)
    with TestClient(create_app(make_settings(f"sqlite:///{sqlite_file}"))) as client:
        assert _post_user(client) == 200
        assert client.get("/healthz").status_code == 200
        os.replace(other, sqlite_file)  # e.g. a backup restored over it
        detail = _unhealthy(client)
        assert "replaced" in detail
        assert str(sqlite_file) not in detail  # a public endpoint names no path


def test_a_read_only_sqlite_file_fails_healthz(sqlite_file: Path) -> None:
    """Immutable (``chattr +i``), which refuses writes to root too (the tests may run as
    root, for whom a mode of 0444 changes nothing)."""
    if shutil.which("chattr") is None:
        pytest.skip("needs chattr (e2fsprogs) to make a file read-only for root")
    with TestClient(create_app(make_settings(f"sqlite:///{sqlite_file}"))) as client:
        assert client.get("/healthz").status_code == 200
        made = subprocess.run(
            ["chattr", "+i", str(sqlite_file)], capture_output=True, text=True, check=False
        )
        if made.returncode != 0:
            pytest.skip(f"this filesystem cannot make a file immutable: {made.stderr.strip()}")
        try:
            assert "refuses writes" in _unhealthy(client)
        finally:
            subprocess.run(["chattr", "-i", str(sqlite_file)], check=True)
        assert client.get("/healthz").status_code == 200


def test_a_held_sqlite_write_lock_fails_healthz_until_released(sqlite_file: Path) -> None:
    with TestClient(create_app(make_settings(f"sqlite:///{sqlite_file}"))) as client:
        holder = sqlite3.connect(sqlite_file, isolation_level=None)
        try:
            holder.execute("BEGIN IMMEDIATE")
            assert "write lock" in _unhealthy(client)
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert client.get("/healthz").status_code == 200


@pytest.fixture
def own_database(pg_database: str) -> Iterator[tuple[str, str, str]]:
    """A migrated PostgreSQL database of its own: (its URL, its name, the admin conninfo)."""
    admin = make_url(normalize_database_url(PG_ADMIN_URL)).set(drivername="postgresql")
    conninfo = admin.render_as_string(hide_password=False)
    name = f"clerk_sync_ro_{secrets.token_hex(4)}"
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield admin.set(database=name).render_as_string(hide_password=False), name, conninfo
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _close_connections_to(conninfo: str, name: str) -> int:
    """What a PostgreSQL restart or failover does to the pool: every connection is closed."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        ).fetchone()
    assert row is not None
    return int(row[0])


@pytest.mark.parametrize("writer", ["thread", "process"])
def test_postgresql_refusing_writes_fails_healthz_and_closed_connections_do_not(
    own_database: tuple[str, str, str], writer: str
) -> None:
    url, name, admin = own_database
    with TestClient(create_app(make_settings(url, writer=writer))) as client:
        assert _post_user(client) == 200
        assert client.get("/healthz").status_code == 200

        assert _close_connections_to(admin, name) >= 1
        assert client.get("/healthz").status_code == 200  # a new connection, no spurious 503
        assert _post_user(client) == 200  # the writer's pool recovers the same way

        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
        _close_connections_to(admin, name)  # new sessions take the setting
        assert "read-only" in _unhealthy(client)
        assert _post_user(client) == 503

        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'ALTER DATABASE "{name}" RESET default_transaction_read_only')
        _close_connections_to(admin, name)
        assert client.get("/healthz").status_code == 200
        assert _post_user(client) == 200
