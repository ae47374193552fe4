"""Deadlines, end to end: a real ``clerk-sync serve`` answers every delivery within
``DELIVERY_TIMEOUT_SECONDS`` while its database is locked by another process, replaces a writer
that makes no progress, and answers Svix's retry of the same svix id once the lock is gone —
``duplicate`` if the first delivery committed after all, ``processed`` if it never did — with
the event recorded exactly once.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.engine import make_url

from clerk_sync.config import normalize_database_url
from clerk_sync.devtools import encode, new_msg_id, user_event, user_object
from tests.conftest import SECRET, signed
from tests.e2e.server import ServerProcess
from tests.helpers.tables import events_table, users_table

TIMEOUT = 1.5
SLACK = 1.0
"""What a busy 2-core test machine may add to the deadline (the server's event loop, the
client): Svix's own limit is 15 s against a default deadline of 10."""

_HOLD_SQLITE_LOCK = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.read()
conn.execute("ROLLBACK")
"""


def _server(db_url: str, workdir: Path, **env: str) -> ServerProcess:
    return ServerProcess(
        database_url=db_url,
        secret=SECRET,
        workdir=workdir,
        extra_env={"DELIVERY_TIMEOUT_SECONDS": str(TIMEOUT), **env},
    )


@contextmanager
def sqlite_lock_held(db_url: str) -> Iterator[None]:
    """Another process holds SQLite's write lock until the block ends."""
    path = make_url(db_url).database
    assert path
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD_SQLITE_LOCK, path],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "locked"
        yield
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        try:
            holder.wait(10)
        except subprocess.TimeoutExpired:
            holder.kill()
            holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()


@contextmanager
def postgres_table_locked(db_url: str) -> Iterator[None]:
    """Another session holds ``ACCESS EXCLUSIVE`` on the event log until the block ends."""
    conninfo = make_url(normalize_database_url(db_url)).set(drivername="postgresql")
    with psycopg.connect(conninfo.render_as_string(hide_password=False)) as conn:
        conn.execute(f"LOCK TABLE {events_table.name} IN ACCESS EXCLUSIVE MODE")
        try:
            yield
        finally:
            conn.rollback()


def _wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        time.sleep(0.05)


def _healthy(server: ServerProcess) -> bool:
    try:
        return server.get("/healthz").status_code == 200
    except httpx.TransportError:
        return False


def _recorded(observer: Engine, svix_id: str) -> int:
    with observer.connect() as conn:
        return int(
            conn.execute(select(func.count()).where(events_table.c.svix_id == svix_id)).scalar_one()
        )


def _users_with_id(observer: Engine, user_id: str) -> int:
    with observer.connect() as conn:
        return int(
            conn.execute(select(func.count()).where(users_table.c.id == user_id)).scalar_one()
        )


def _deliver_late(server: ServerProcess, body: bytes, headers: dict[str, str]) -> None:
    """POST one delivery while the database is locked: answered 503 within the deadline.
    Signed beforehand, on a connection already open: the clock times the server only."""
    started = time.monotonic()
    response = server.post(body, headers)
    elapsed = time.monotonic() - started
    assert response.status_code == 503, response.text
    assert response.json()["error"] == "store_unavailable"
    assert "DELIVERY_TIMEOUT_SECONDS" in response.json()["detail"]
    assert "webhook-delivery" not in response.headers  # Svix must retry it
    assert elapsed < TIMEOUT + SLACK, f"answered after {elapsed:.2f} s"


def _retry(server: ServerProcess, body: bytes, svix_id: str) -> dict[str, Any]:
    """Svix's retry: the same svix id and bytes, signed anew."""
    response = server.post(body, signed(body, msg_id=svix_id)[1])
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    assert answer["svix_id"] == svix_id
    return answer


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_locked_sqlite_file_is_answered_503_in_time_and_the_stuck_child_replaced(
    db_url: str, observer: Engine, tmp_path: Path
) -> None:
    user = user_object()
    body, svix_id = encode(user_event("user.created", user)), new_msg_id()
    headers = signed(body, msg_id=svix_id)[1]
    with _server(db_url, tmp_path / "srv") as server:
        assert _healthy(server)
        with sqlite_lock_held(db_url):
            _deliver_late(server, body, headers)
            health = server.get("/healthz")
            assert health.status_code == 503, health.text
            assert health.json()["error"] == "store_unavailable"
            _wait_for(lambda: "made no progress" in server.stderr_text(), 10, "the child replaced")
        _wait_for(lambda: _healthy(server), 30, "healthy once the lock is gone")
        answer = _retry(server, body, svix_id)
    # The child was killed while waiting for the lock, so the first delivery never committed;
    # had it, the retry would be a duplicate. Either way: recorded once, applied once.
    assert (answer["status"], answer["duplicate"]) in {("processed", False), ("processed", True)}
    assert _recorded(observer, svix_id) == 1
    assert _users_with_id(observer, user["id"]) == 1


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_commit_after_the_deadline_is_answered_duplicate_on_the_retry(
    db_url: str, observer: Engine, tmp_path: Path
) -> None:
    """The thread writer cannot be killed: it is left to finish its batch (another thread
    takes over), and commits once the lock is released — after its 503 was sent. Svix's
    retry is then a duplicate, not a second application."""
    user = user_object()
    body, svix_id = encode(user_event("user.created", user)), new_msg_id()
    headers = signed(body, msg_id=svix_id)[1]
    with _server(db_url, tmp_path / "srv", WRITER="thread") as server:
        assert _healthy(server)
        with sqlite_lock_held(db_url):
            _deliver_late(server, body, headers)
            time.sleep(TIMEOUT / 2)  # past the deadline: the stuck thread is replaced
        _wait_for(lambda: _recorded(observer, svix_id) == 1, 10, "the late commit")
        answer = _retry(server, body, svix_id)
        assert "made no progress" in server.stderr_text()
        assert _healthy(server)
    assert (answer["status"], answer["duplicate"]) == ("processed", True)
    assert _recorded(observer, svix_id) == 1
    assert _users_with_id(observer, user["id"]) == 1


@pytest.mark.parametrize("backend", ["postgresql"])
def test_a_locked_postgresql_table_is_answered_503_in_time_and_retried_once(
    db_url: str, observer: Engine, tmp_path: Path
) -> None:
    """The child is killed while its transaction waits for the lock; PostgreSQL may still run
    what it had sent (a pipeline ending in COMMIT) once the lock is free: the retry says which."""
    user = user_object()
    body, svix_id = encode(user_event("user.created", user)), new_msg_id()
    headers = signed(body, msg_id=svix_id)[1]
    with _server(db_url, tmp_path / "srv") as server:
        assert _healthy(server)
        with postgres_table_locked(db_url):
            _deliver_late(server, body, headers)
            _wait_for(lambda: "made no progress" in server.stderr_text(), 10, "the child replaced")
        _wait_for(lambda: _healthy(server), 30, "healthy once the lock is gone")
        answer = _retry(server, body, svix_id)
        assert answer["status"] == "processed"
        later = server.post(*signed(user_event("user.created", user_object())))
        assert later.status_code == 200, later.text  # the new child serves new deliveries
    assert _recorded(observer, svix_id) == 1
    assert _users_with_id(observer, user["id"]) == 1
