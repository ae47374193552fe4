"""Which database errors the receiver retries before giving up with a 503."""

from __future__ import annotations

import sqlite3

import psycopg.errors
import pytest
from sqlalchemy.exc import OperationalError

from clerk_sync.receiver import _retryable


@pytest.mark.parametrize(
    "error",
    [psycopg.errors.DeadlockDetected("deadlock"), psycopg.errors.SerializationFailure("race")],
    ids=["deadlock", "serialization"],
)
def test_raw_driver_deadlocks_and_serialization_failures_are_retried(error: Exception) -> None:
    """The hot path runs statements on the driver, so these arrive unwrapped by SQLAlchemy."""
    assert _retryable(error)
    assert _retryable(OperationalError("stmt", {}, error))


@pytest.mark.parametrize(
    "error",
    [
        psycopg.errors.UniqueViolation("dup"),
        sqlite3.OperationalError("database is locked"),
        RuntimeError("a cleanup hook failed"),
    ],
    ids=["unique", "sqlite", "hook"],
)
def test_other_errors_are_not_retried(error: Exception) -> None:
    assert not _retryable(error)
