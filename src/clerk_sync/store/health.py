"""Could the database take a write now? Asked by ``/healthz``, without writing anything.

A connection that answers ``SELECT 1`` proves little: a SQLite file deleted while the server
runs still answers (and takes writes, into a file no one will open again: every 2xx given after
is lost on restart), a read-only file answers, a PostgreSQL standby answers. So the probe asks
what a write needs, and stays cheap enough to be polled every few seconds:

* **SQLite** — the file at the configured path is still the one the engine opened (same device
  and inode), and a *new* connection can take the write lock (``BEGIN IMMEDIATE``) within
  ``lock_wait`` seconds and run a write statement that changes nothing (the header's
  ``user_version`` set to itself), then ``ROLLBACK``: a lock another process holds, or a
  file SQLite can only open read-only, fails here first. A read-only file or mount is also
  asked of the file system (``access``, ``statvfs``), because SQLite may reuse a descriptor
  the process already holds read-write.
* **PostgreSQL** — not a standby in recovery, and a transaction would not be read-only
  (``default_transaction_read_only``); one query on a pooled connection. A pooled connection the
  server closed (a restart, a failover, an idle timeout) is replaced and the question asked
  once more, so a recovered database is not reported down.

Each answer is one sentence for a public endpoint: no path or host in it (those are logged).
"""

from __future__ import annotations

import logging
import os
import sqlite3
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import Engine, event, text
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

log = logging.getLogger("clerk_sync.health")


class WriteProbe:
    """Asks ``engine``'s database whether it could take a write (:meth:`problem`)."""

    def __init__(self, engine: Engine, *, lock_wait: float = 1.0) -> None:
        self.engine = engine
        self.lock_wait = lock_wait
        self.path = sqlite_file(engine)
        self._identity: tuple[int, int] | None = None
        self._last: str | None = None
        if self.path is not None:
            self._remember()
            event.listen(engine, "connect", self._on_connect)

    def _on_connect(self, _dbapi_connection: Any, _record: Any) -> None:
        if self._identity is None:
            self._remember()

    def _remember(self) -> None:
        """Note which file the engine has open: the first one found at its path."""
        assert self.path is not None
        try:
            info = self.path.stat()
        except OSError:
            return
        self._identity = (info.st_dev, info.st_ino)

    def problem(self) -> str | None:
        """Why a write would fail or not last, in one sentence; ``None`` when it would not.
        Blocks (at most ``lock_wait`` on SQLite; a network round trip on PostgreSQL)."""
        found = self._sqlite() if self.engine.dialect.name == "sqlite" else self._postgresql()
        if found != self._last:
            if found is not None:
                log.warning("health check: %s (%s)", found, self.path or self.engine.url)
            elif self._last is not None:
                log.warning("health check: the database takes writes again")
            self._last = found
        return found

    # -- SQLite -----------------------------------------------------------------------------

    def _sqlite(self) -> str | None:
        if self.path is None:  # in memory, or a URI filename: ask the engine's own connection
            return self._sqlite_pooled()
        try:
            info = self.path.stat()
        except FileNotFoundError:
            return (
                "The SQLite database file was deleted while the server runs: what it commits "
                "now is lost on restart; restore the file or restart the server."
            )
        except OSError as exc:
            return f"The SQLite database file cannot be examined ({exc.strerror})."
        identity = (info.st_dev, info.st_ino)
        if self._identity is None:
            self._identity = identity
        elif identity != self._identity:
            return (
                "The SQLite database file was replaced by another file while the server runs: "
                "it still writes to the old one; restart the server."
            )
        refused = self._sqlite_refuses_writes()
        if refused is not None:
            return refused
        try:
            conn = sqlite3.connect(
                f"file:{quote(str(self.path))}?mode=rw",
                uri=True,
                timeout=self.lock_wait,
                isolation_level=None,
                check_same_thread=False,
            )
        except sqlite3.Error as exc:
            return self._sqlite_cause(exc)
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                # In WAL mode BEGIN IMMEDIATE succeeds on a read-only file: only a write
                # statement is refused. This one writes the header's value back unchanged,
                # and is rolled back.
                (version,) = conn.execute("PRAGMA user_version").fetchone()
                conn.execute(f"PRAGMA user_version = {int(version)}")
            finally:
                conn.execute("ROLLBACK")
        except sqlite3.Error as exc:
            return self._sqlite_cause(exc)
        finally:
            conn.close()
        return None

    def _sqlite_refuses_writes(self) -> str | None:
        """The file system's answer, which the lock probe cannot give: SQLite reuses a file
        descriptor the process already has open read-write, and in WAL mode the file itself
        is written only at checkpoints, so a read-only file or mount shows up late."""
        assert self.path is not None
        wal = self.path.with_name(self.path.name + "-wal")
        if os.statvfs(self.path).f_flag & os.ST_RDONLY:
            return (
                "The SQLite database refuses writes (its filesystem is mounted read-only): "
                "deliveries get 503 until it is writable."
            )
        if not os.access(self.path, os.W_OK) or (wal.exists() and not os.access(wal, os.W_OK)):
            return (
                "The SQLite database refuses writes (its file or -wal file is read-only): "
                "deliveries get 503 until it is writable."
            )
        return None

    def _sqlite_pooled(self) -> str | None:
        try:
            with self.engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1").scalar()
        except SQLAlchemyError as exc:
            return self._sqlite_cause(exc)
        return None

    def _sqlite_cause(self, exc: BaseException) -> str:
        orig = getattr(exc, "orig", None) or exc
        name = str(getattr(orig, "sqlite_errorname", ""))
        message = str(orig).lower()
        if name.startswith("SQLITE_READONLY") or "readonly" in message:
            return (
                "The SQLite database refuses writes (a read-only file, directory or "
                "filesystem): deliveries get 503 until it is writable."
            )
        if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "locked" in message:
            return (
                f"Another connection has held the SQLite write lock for over {self.lock_wait:g} "
                "s: deliveries wait for it, and get 503 past DELIVERY_TIMEOUT_SECONDS."
            )
        if name.startswith("SQLITE_CANTOPEN") or "unable to open" in message:
            return (
                "The SQLite database file cannot be opened for writing (its directory is gone "
                "or not writable?)."
            )
        return f"The SQLite database refuses a write transaction ({type(orig).__name__})."

    # -- PostgreSQL -------------------------------------------------------------------------

    def _postgresql(self) -> str | None:
        query = text("SELECT pg_is_in_recovery(), current_setting('transaction_read_only')")
        for attempt in (1, 2):
            try:
                with self.engine.connect() as conn:
                    in_recovery, read_only = conn.execute(query).one()
                break
            except DBAPIError as exc:
                if attempt == 1 and exc.connection_invalidated:
                    continue  # a pooled connection the server had closed: ask a new one
                return _did_not_answer(exc)
            except SQLAlchemyError as exc:
                return _did_not_answer(exc)
        if in_recovery:
            return (
                "PostgreSQL is a standby in recovery and refuses writes: point DATABASE_URL "
                "at the primary."
            )
        if read_only == "on":
            return (
                "PostgreSQL refuses writes: transactions are read-only "
                "(default_transaction_read_only is on for this database or role)."
            )
        return None


def _did_not_answer(exc: SQLAlchemyError) -> str:
    orig = getattr(exc, "orig", None) or exc
    log.warning("health check: the database did not answer: %s", " ".join(str(orig).split()))
    return (
        f"The database did not answer ({type(orig).__name__}); check DATABASE_URL and that "
        "the database is running."
    )


def sqlite_file(engine: Engine) -> Path | None:
    """The absolute path of ``engine``'s SQLite file; ``None`` for PostgreSQL, an in-memory
    database or a ``file:`` URI."""
    if engine.dialect.name != "sqlite":
        return None
    database = engine.url.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        return None
    return Path(os.path.abspath(database))
