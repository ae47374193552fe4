"""What the proofs check of after-commit hooks, from the outbox and the recorder's log."""

from __future__ import annotations

import itertools
import time
from collections import defaultdict
from typing import Any

from sqlalchemy import Engine, func, select

from clerk_sync.hooks import idempotency_key
from tests.helpers.tables import events_table, metadata

outbox_table = metadata.tables["outbox"]


def wait_settled(engine: Engine, timeout: float) -> None:
    """Until no outbox row is pending (the worker caught up), or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        with engine.connect() as conn:
            pending = conn.execute(
                select(func.count()).where(outbox_table.c.status == "pending")
            ).scalar_one()
        if not pending:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{pending} outbox rows still pending after {timeout} s")
        time.sleep(0.1)


def check_runs(
    engine: Engine, runs: list[dict[str, Any]], hook: str, *, exactly_once: bool
) -> None:
    """Every processed delivery's hook ran (at least, or exactly, once), each run with the
    delivery's own key; no run for any delivery that was not processed; rows of one subject
    first ran in their outbox order; nothing left pending or dead."""
    with engine.connect() as conn:
        statuses = dict(conn.execute(select(events_table.c.svix_id, events_table.c.status)).all())
        rows = conn.execute(
            select(
                outbox_table.c.id,
                outbox_table.c.svix_id,
                outbox_table.c.subject_id,
                outbox_table.c.status,
            ).order_by(outbox_table.c.id)
        ).all()
    processed = {svix_id for svix_id, status in statuses.items() if status == "processed"}
    assert {r.status for r in rows} <= {"done"}, "rows left pending or dead"
    assert [r.svix_id for r in rows if r.svix_id not in processed] == []
    assert {r.svix_id for r in rows} == processed, "a processed delivery has no outbox row"
    by_svix: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for run in runs:
        by_svix[run["svix_id"]].append(run)
    not_processed = set(by_svix) - processed
    assert not not_processed, (
        f"hooks ran for deliveries that were not processed: {sorted(not_processed)[:5]}"
    )
    missing = processed - set(by_svix)
    assert not missing, f"{len(missing)} processed deliveries never ran their hook"
    for svix_id, seen in by_svix.items():
        assert {r["key"] for r in seen} == {idempotency_key(hook, svix_id)}, svix_id
        if exactly_once:
            assert len(seen) == 1, f"{svix_id} ran {len(seen)} times: {seen}"
    first_run: dict[str, int] = {}
    for position, run in enumerate(runs):
        first_run.setdefault(run["svix_id"], position)
    by_subject: dict[str, list[str]] = defaultdict(list)
    for r in rows:
        by_subject[r.subject_id].append(r.svix_id)
    for subject, ordered in by_subject.items():
        assert sorted(ordered, key=first_run.__getitem__) == ordered, f"{subject} ran out of order"


def check_no_overlap(runs: list[dict[str, Any]]) -> None:
    """No two runs of one delivery's hook were in progress at the same time."""
    by_svix: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for run in runs:
        by_svix[run["svix_id"]].append(run)
    for svix_id, seen in by_svix.items():
        spans = sorted((r["started"], r["ended"]) for r in seen)
        for (_, end), (start, _) in itertools.pairwise(spans):
            assert start >= end, f"{svix_id} ran twice at once: {seen}"
