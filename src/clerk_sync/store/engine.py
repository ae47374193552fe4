"""Engines configured the way clerk-sync needs them on each database.

SQLite: WAL (readers never block the writer), ``foreign_keys=ON`` on *every* connection (without
it ``ON DELETE CASCADE`` silently does nothing), an explicit ``synchronous`` level, a busy
timeout, and ``BEGIN IMMEDIATE`` for write transactions so two writers queue for the lock instead
of failing to upgrade a read lock. PostgreSQL: psycopg 3. Both serialize JSON with orjson.

:func:`store_error` is the one place a driver's failure is read: a missing directory, a file
that cannot be written, a lock held too long, a refused connection, an unknown database or a
refused role each become their own :class:`~clerk_sync.errors.StoreUnavailable` subclass, whose
one-line detail names the cause and the fix.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import URL, Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url

from ..errors import (
    ConfigError,
    DatabaseAuthFailed,
    DatabaseDirectoryMissing,
    DatabaseLocked,
    DatabaseNotWritable,
    DatabaseUnknown,
    DatabaseUnreachable,
    StoreUnavailable,
)

WRITE_OPTIONS = {"clerk_sync_write": True}
"""Execution options a write transaction's connection carries (SQLite: ``BEGIN IMMEDIATE``)."""


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction that writes: on SQLite it takes the write lock at its start, so it waits
    its turn (busy timeout) instead of failing to upgrade a read lock mid-way."""
    with engine.connect() as conn:
        conn = conn.execution_options(**WRITE_OPTIONS)
        with conn.begin():
            yield conn


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
        timeout = sqlite_busy_timeout(parsed)
        engine = create_engine(
            parsed, connect_args={"check_same_thread": False, "timeout": timeout}, **common
        )
        _configure_sqlite(engine, sqlite_synchronous, timeout)
        return engine
    if parsed.get_backend_name() == "postgresql":
        try:
            import psycopg  # noqa: F401
        except ImportError:
            raise ConfigError(
                "PostgreSQL needs the psycopg driver: pip install 'clerk-sync[postgres]'."
            ) from None
        engine = create_engine(parsed, pool_size=pool_size, max_overflow=10, **common)
        _configure_postgres(engine)
        return engine
    raise ConfigError(
        f"DATABASE_URL uses {parsed.get_backend_name()!r}; clerk-sync supports sqlite and "
        "postgresql."
    )


def sqlite_busy_timeout(url: URL) -> float:
    """Seconds a SQLite connection waits for another's lock: ``?timeout=`` in the URL (the
    driver's own parameter), else 30."""
    raw = url.query.get("timeout", "30")
    try:
        value = float(raw if isinstance(raw, str) else raw[-1])
    except ValueError:
        value = -1.0
    if not 0 <= value <= 3600:
        raise ConfigError(f"DATABASE_URL's timeout={raw} must be a number of seconds, 0 to 3600.")
    return value


def _configure_sqlite(engine: Engine, synchronous: str, timeout: float = 30.0) -> None:
    if synchronous not in ("FULL", "NORMAL"):
        raise ConfigError("SQLITE_SYNCHRONOUS must be FULL or NORMAL.")
    busy_ms = int(timeout * 1000)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event below issue BEGIN itself.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
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


def _configure_postgres(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Bodies and objects are ~2 KB, past the size at which PostgreSQL compresses a value
        # when it stores it: lz4 takes a fraction of the default pglz's CPU (about a tenth of
        # the writer's wall time, bench/README.md). PostgreSQL 14+ built with lz4 only; any
        # other keeps its own default.
        try:
            with dbapi_connection.cursor() as cursor:
                cursor.execute("SET default_toast_compression = 'lz4'")
            dbapi_connection.commit()
        except Exception:
            dbapi_connection.rollback()


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
            cursor.execute(f"PRAGMA busy_timeout={int(sqlite_busy_timeout(engine.url) * 1000)}")
            cursor.close()
    return not busy


def store_error(exc: BaseException, url: str | URL) -> StoreUnavailable:
    """What a driver's failure at ``url`` means, as an error that names the cause and the fix.

    ``exc`` is a SQLAlchemy ``DBAPIError`` (its ``orig`` is read) or the driver's own exception.
    SQLite is read by its result code name (``sqlite_errorname``), PostgreSQL by SQLSTATE when
    the server sent one and otherwise by libpq's message: a failed connection has no SQLSTATE
    in psycopg, only text such as ``database "x" does not exist``.
    """
    orig = getattr(exc, "orig", None) or exc
    message = " ".join(str(orig).split())
    try:
        parsed = make_url(url) if isinstance(url, str) else url
    except Exception:
        return StoreUnavailable(f"The database did not answer ({_first_words(orig)}).")
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_error(orig, message, parsed)
    if parsed.get_backend_name() == "postgresql":
        return _postgres_error(orig, message, parsed)
    return StoreUnavailable(f"The database did not answer ({_first_words(orig)}).")


def _first_words(orig: BaseException) -> str:
    text = " ".join(str(orig).split())
    text = text.removeprefix("connection failed: ")
    if len(text) > 200:
        text = text[:200] + "…"
    return f"{type(orig).__name__}: {text}" if text else type(orig).__name__


def _sqlite_error(orig: BaseException, message: str, url: URL) -> StoreUnavailable:
    name = str(getattr(orig, "sqlite_errorname", ""))
    lowered = message.lower()
    raw = url.database or ""
    if raw in ("", ":memory:") or raw.startswith("file:"):
        shown = raw or ":memory:"
        path = None
    else:
        path = Path(raw).absolute()
        shown = str(path)
    if name.startswith("SQLITE_BUSY") or name.startswith("SQLITE_LOCKED") or "locked" in lowered:
        waited = sqlite_busy_timeout(url)
        return DatabaseLocked(
            f"The SQLite database {shown} stayed locked by another process for {waited:g} s: "
            "let that process finish (a long transaction, an open sqlite3 shell, a stopped "
            "server) and retry, or raise the wait with ?timeout=SECONDS in DATABASE_URL."
        )
    if name.startswith("SQLITE_READONLY") or "readonly" in lowered or "read-only" in lowered:
        where = f"{path} and its directory {path.parent}" if path else shown
        return DatabaseNotWritable(
            f"The SQLite database {shown} cannot be written by this user: make {where} "
            "writable (SQLite writes its -wal and -shm files beside it), or point DATABASE_URL "
            "elsewhere."
        )
    cannot_open = name.startswith("SQLITE_CANTOPEN") or "unable to open" in lowered
    if cannot_open and path is not None:
        return _cannot_open(path)
    if name == "SQLITE_NOTADB" or "not a database" in lowered:
        return StoreUnavailable(
            f"{shown} is not a SQLite database file: point DATABASE_URL at clerk-sync's "
            "database, or at a path where none exists yet."
        )
    if name == "SQLITE_FULL" or "disk is full" in lowered:
        return StoreUnavailable(
            f"The disk holding the SQLite database {shown} is full: free space, then retry."
        )
    return StoreUnavailable(
        f"The SQLite database {shown} failed ({_first_words(orig)}): check DATABASE_URL and "
        "the file."
    )


def _cannot_open(path: Path) -> StoreUnavailable:
    """SQLITE_CANTOPEN says only that the file could not be opened; the filesystem says why."""
    missing = path.parent
    while not missing.parent.exists() and missing.parent != missing:
        missing = missing.parent
    if not path.parent.exists():
        return DatabaseDirectoryMissing(
            f"The directory {path.parent} of the SQLite database {path.name} does not exist "
            f"({missing} is missing): create it (mkdir -p {path.parent}) or point DATABASE_URL "
            "elsewhere."
        )
    if path.is_dir():
        return StoreUnavailable(
            f"DATABASE_URL points at {path}, which is a directory: name a file in it, e.g. "
            f"sqlite:///{path / 'clerk_sync.db'}."
        )
    if not path.parent.is_dir():
        return DatabaseDirectoryMissing(
            f"{path.parent} is a file, not a directory, so the SQLite database {path.name} "
            "cannot be created in it: point DATABASE_URL elsewhere."
        )
    return DatabaseNotWritable(
        f"The SQLite database {path} cannot be opened for writing by this user: make it and "
        f"its directory {path.parent} readable and writable, or point DATABASE_URL elsewhere."
    )


def _postgres_error(orig: BaseException, message: str, url: URL) -> StoreUnavailable:
    sqlstate = getattr(orig, "sqlstate", None) or ""
    host = url.host or os.environ.get("PGHOST") or "localhost"
    port = url.port or 5432
    where = f"{host}:{port}" if not host.startswith("/") else host
    user = url.username or os.environ.get("PGUSER") or "(the current OS user)"
    database = url.database or user
    lowered = message.lower()
    if sqlstate == "3D000" or ("database" in lowered and "does not exist" in lowered):
        return DatabaseUnknown(
            f"PostgreSQL at {where} has no database {database!r}: create it (createdb -h "
            f"{host} -p {port} {database}) or fix the database name in DATABASE_URL."
        )
    if (
        sqlstate in ("28P01", "28000")
        or "password authentication failed" in lowered
        or ("role" in lowered and "does not exist" in lowered)
        or "no pg_hba.conf entry" in lowered
        or "no password supplied" in lowered
    ):
        reason = (
            f"role {user!r} does not exist"
            if "role" in lowered and "does not exist" in lowered
            else "no pg_hba.conf entry admits it"
            if "pg_hba.conf" in lowered
            else "no password was given"
            if "no password supplied" in lowered
            else "the password is wrong"
        )
        return DatabaseAuthFailed(
            f"PostgreSQL at {where} refused user {user!r} ({reason}): fix the user and "
            "password in DATABASE_URL (postgresql://USER:PASSWORD@HOST/DB), or create the role."
        )
    if "connection refused" in lowered:
        return DatabaseUnreachable(
            f"Nothing accepts connections at {where} (connection refused): start PostgreSQL "
            "there, or fix the host and port in DATABASE_URL."
        )
    if (
        "failed to resolve host" in lowered
        or "could not translate host name" in lowered
        or "name or service not known" in lowered
    ):
        return DatabaseUnreachable(
            f"The database host {host!r} is not known (DNS): fix the host in DATABASE_URL."
        )
    if "timeout expired" in lowered or "timed out" in lowered:
        return DatabaseUnreachable(
            f"PostgreSQL at {where} did not answer in time (timeout): check that it runs and "
            "that no firewall drops the connection, or fix DATABASE_URL."
        )
    if "no such file or directory" in lowered and "socket" in lowered:
        return DatabaseUnreachable(
            f"No PostgreSQL listens on the socket at {where}: start it, or give DATABASE_URL a "
            "host (postgresql://USER@127.0.0.1:5432/DB)."
        )
    if sqlstate in ("57P03", "53300"):
        return StoreUnavailable(
            f"PostgreSQL at {where} is not accepting connections now ({_first_words(orig)}): "
            "retry once it has started, or raise max_connections."
        )
    return StoreUnavailable(
        f"PostgreSQL at {where} failed ({_first_words(orig)}): check DATABASE_URL and that "
        "the database is running."
    )


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def redacted(url: str) -> str:
    """The URL with any password hidden, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparseable DATABASE_URL>"
