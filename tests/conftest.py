"""Shared fixtures: real databases (a SQLite file and PostgreSQL), svix-signed deliveries.

PostgreSQL is at ``CLERK_SYNC_TEST_POSTGRES_URL`` (default the CI service). When it cannot be
reached the PostgreSQL half of the suite *fails*: a green run must mean both databases passed.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from clerk_sync import metadata
from clerk_sync.config import normalize_database_url
from clerk_sync.devtools import encode, sign_headers
from clerk_sync.receiver import Delivery, Outcome, Receiver
from clerk_sync.store import make_engine, upgrade

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
OTHER_SECRET = "whsec_plJ3nmyCDGBKInavdOK15jslJ3nmyCDGBK"
FIXTURES = Path(__file__).parent / "fixtures"
REDIS_URL = os.environ.get("CLERK_SYNC_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
PG_ADMIN_URL = os.environ.get(
    "CLERK_SYNC_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
BACKENDS = ["sqlite", "postgresql"]
USER_KEYS = {
    "id",
    "email",
    "first_name",
    "last_name",
    "username",
    "image_url",
    "public_metadata",
    "created_at",
    "updated_at",
}
"""The keys the issue promises in a user's JSON (read API and ``--json``)."""


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, dropped at the end."""
    admin = make_url(normalize_database_url(PG_ADMIN_URL))
    name = f"clerk_sync_test_{os.getpid()}_{secrets.token_hex(3)}"
    conninfo = admin.set(drivername="postgresql").render_as_string(hide_password=False)
    try:
        with psycopg.connect(conninfo, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        pytest.fail(
            f"PostgreSQL is required at {PG_ADMIN_URL} (set CLERK_SYNC_TEST_POSTGRES_URL): {exc}",
            pytrace=False,
        )
    url = admin.set(database=name).render_as_string(hide_password=False)
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    yield url
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def redis_url() -> str:
    """The real Redis, with no rate-limit budgets left from earlier runs. Unreachable *fails*:
    the shared budget must be proven in CI, never skipped."""
    import redis

    try:
        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
        stale = list(client.scan_iter("clerk_sync:*"))
        if stale:
            client.delete(*stale)
        client.close()
    except redis.RedisError as exc:
        pytest.fail(
            f"Redis is required at {REDIS_URL} (set CLERK_SYNC_TEST_REDIS_URL): {exc}",
            pytrace=False,
        )
    return REDIS_URL


def _truncate_pg(url: str) -> None:
    engine = make_engine(url)
    names = ", ".join(t.name for t in metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    engine.dispose()


def migrated_sqlite(path: Path) -> str:
    """The URL of a SQLite file at ``path`` with clerk-sync's schema."""
    url = f"sqlite:///{path}"
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    return url


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def migrated_database(backend: str, directory: Path, request: pytest.FixtureRequest) -> str:
    """A migrated, empty database of ``backend``: a new SQLite file in ``directory``, or the
    session's PostgreSQL database with every table emptied."""
    if backend == "sqlite":
        return migrated_sqlite(directory / "clerk_sync.db")
    url = str(request.getfixturevalue("pg_database"))
    _truncate_pg(url)
    return url


@pytest.fixture
def db_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A migrated, empty database of the parametrized backend."""
    return migrated_database(backend, tmp_path, request)


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def observer(db_url: str) -> Iterator[Engine]:
    """A second, independent engine: what it sees has really been committed."""
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def receiver(engine: Engine) -> Receiver:
    return Receiver(engine)


@pytest.fixture
def receive(receiver: Receiver) -> Callable[..., Outcome]:
    """``receive(event_dict_or_bytes, msg_id=None)`` straight through the receiver."""

    def _receive(event: dict[str, Any] | bytes, msg_id: str | None = None) -> Outcome:
        body = event if isinstance(event, bytes) else encode(event)
        return receiver.receive(Delivery(msg_id or f"msg_{secrets.token_hex(8)}", body))

    return _receive


def signed(event: dict[str, Any] | bytes, **kwargs: Any) -> tuple[bytes, dict[str, str]]:
    """Body bytes and svix headers, signed now with the svix library's signer."""
    body = event if isinstance(event, bytes) else encode(event)
    secret = kwargs.pop("secret", SECRET)
    return body, sign_headers(secret, body, **kwargs)


def load_fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()
