"""Engines configured the way clerk-sync needs them on each database.

SQLite: WAL (readers never block the writer), ``foreign_keys=ON`` on *every* connection (without
it ``ON DELETE CASCADE`` silently does nothing), an explicit ``synchronous`` level, a busy
timeout, and ``BEGIN IMMEDIATE`` for write transactions so two writers queue for the lock instead
of failing to upgrade a read lock. PostgreSQL: psycopg 3. Both serialize JSON with orjson.
"""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

from ..errors import ConfigError

WRITE_OPTIONS = {"clerk_sync_write": True}
"""Execution options a write transaction's connection carries (SQLite: ``BEGIN IMMEDIATE``)."""


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def make_engine(url: str, *, sqlite_synchronous: str = "FULL", pool_size: int = 5) -> Engine:
    """Create an engine for ``url`` (an already-normalised SQLAlchemy URL)."""
    try:
        parsed = make_url(url)
    except Exception as exc:
        raise ConfigError(f"DATABASE_URL is not a valid SQLAlchemy URL ({exc}).") from None
    common: dict[str, Any] = {"json_serializer": _json_dumps, "json_deserializer": orjson.loads}
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(
            parsed, connect_args={"check_same_thread": False, "timeout": 30}, **common
        )
        _configure_sqlite(engine, sqlite_synchronous)
        return engine
    if parsed.get_backend_name() == "postgresql":
        try:
            import psycopg  # noqa: F401
        except ImportError:
            raise ConfigError(
                "PostgreSQL needs the psycopg driver: pip install 'clerk-sync[postgres]'."
            ) from None
        return create_engine(parsed, pool_size=pool_size, max_overflow=10, **common)
    raise ConfigError(
        f"DATABASE_URL uses {parsed.get_backend_name()!r}; clerk-sync supports sqlite and "
        "postgresql."
    )


def _configure_sqlite(engine: Engine, synchronous: str) -> None:
    if synchronous not in ("FULL", "NORMAL"):
        raise ConfigError("SQLITE_SYNCHRONOUS must be FULL or NORMAL.")

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event below issue BEGIN itself.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute("PRAGMA busy_timeout=30000")
        # Deleted rows (a deleted user's e-mail, names, IPs) are overwritten, not left in free
        # pages of the file.
        cursor.execute("PRAGMA secure_delete=ON")
        cursor.close()
        # SQLite's lower() folds ASCII only; searches (`?query=`) must match "Émile" as
        # PostgreSQL does.
        dbapi_connection.create_function("lower", 1, _lower, deterministic=True)

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        write = conn.get_execution_options().get("clerk_sync_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def _lower(value: object) -> object:
    return value.lower() if isinstance(value, str) else value


def checkpoint(engine: Engine) -> bool:
    """Copy SQLite's write-ahead log into the database file and truncate it; whether it
    completed. Readers on an older snapshot hold it back: then it gives up after 100 ms rather
    than stall the writer."""
    with engine.connect() as conn:
        driver = conn.connection.driver_connection
        assert driver is not None
        cursor = driver.cursor()
        try:
            cursor.execute("PRAGMA busy_timeout=100")
            busy, _, _ = cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        finally:
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()
    return not busy


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def redacted(url: str) -> str:
    """The URL with any password hidden, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparseable DATABASE_URL>"
