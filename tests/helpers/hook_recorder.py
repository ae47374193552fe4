"""Hooks for ``HOOKS=tests.helpers.hook_recorder`` in a real ``serve``: every run is appended as
one JSON line to the file ``$CLERK_SYNC_TEST_HOOK_LOG`` names, so a test (or a proof that
SIGKILLs the server) can read back what ran, how often and with which key.

A line is written with one ``write`` on a file opened for appending, then flushed, before the
hook returns: a run that is killed before its row is marked done may be recorded and run again
(hooks are at least once); a line cut short by a kill is ignored by :func:`read_runs`.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Connection

import clerk_sync
from clerk_sync import ChangeEvent

LOG_ENV = "CLERK_SYNC_TEST_HOOK_LOG"
SLEEP_ENV = "CLERK_SYNC_TEST_HOOK_SLEEP"
"""Seconds each run of :func:`record` lasts (so that two runs of one row would overlap)."""
PATTERNS = ("user.*", "organization.*", "organizationMembership.*")
NAME = "tests.helpers.hook_recorder:record"


def _append(hook: str, event: ChangeEvent, started: float | None = None) -> None:
    line = {
        "started": started if started is not None else time.time(),
        "ended": time.time(),
        "hook": hook,
        "svix_id": event.svix_id,
        "type": event.type,
        "subject_id": event.subject_id,
        "status": str(event.status),
        "attempt": event.attempt,
        "key": event.idempotency_key,
        "first_name": event.data.get("first_name"),
        "pid": os.getpid(),
    }
    with open(os.environ[LOG_ENV], "a", encoding="utf-8") as log:
        log.write(json.dumps(line) + "\n")
        log.flush()


@clerk_sync.after_commit(*PATTERNS)
def record(event: ChangeEvent) -> None:
    started = time.time()
    pause = float(os.environ.get(SLEEP_ENV) or 0)
    if pause:
        time.sleep(pause)
    _append(NAME, event, started)


@clerk_sync.after_commit("user.created")
def flaky(event: ChangeEvent) -> None:
    """Fails its first attempt at every delivery, then succeeds."""
    _append("tests.helpers.hook_recorder:flaky", event)
    if event.attempt == 1:
        raise RuntimeError("the first attempt always fails")


@clerk_sync.in_transaction("user.deleted")
def keep_protected(conn: Connection, event: ChangeEvent) -> None:
    """Runs in the delete's transaction (in the writer process): refuses ``user_protected…``."""
    _append("tests.helpers.hook_recorder:keep_protected", event)
    if event.subject_id.startswith("user_protected"):
        raise RuntimeError("this user may not be deleted")


def not_a_hook(event: ChangeEvent) -> None:
    """Never decorated: ``HOOKS`` naming it must stop the server at start."""


def read_runs(path: Path) -> list[dict[str, Any]]:
    """Every complete line of the log (a line cut short by a SIGKILL is skipped)."""
    if not path.exists():
        return []
    runs = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            runs.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return runs
