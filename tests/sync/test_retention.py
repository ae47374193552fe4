"""Retention of stored bodies (``EVENT_RETENTION_DAYS``): old payloads erased, rows kept, in
bounded batches, never waiting on the write path; on SQLite nothing left in the WAL. Both
databases."""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from clerk_sync import tables as build_tables
from clerk_sync.devtools import deleted_user_event, encode, envelope, user_event, user_object
from clerk_sync.receiver import Delivery, Receiver
from clerk_sync.retention import DAY_MS, Pruner, Walk, clear_wal, prune, walk
from clerk_sync.store import reads
from tests.helpers.tables import events_table

TABLES = build_tables()
NOW_MS = int(time.time() * 1000)


def _ignored(marker: str) -> bytes:
    """An event clerk-sync records but does not sync: its body lives in the log alone."""
    return encode(envelope("email.created", {"id": f"ema_{marker}", "body": marker}, NOW_MS))


def _seed(engine: Engine, ages_days: list[float]) -> list[str]:
    """One ignored event per age (days before now); their svix ids, in order."""
    receiver = Receiver(engine)
    ids = []
    for age in ages_days:
        svix_id = f"msg_{secrets.token_hex(6)}"
        receiver.receive(
            Delivery(svix_id, _ignored(svix_id), received_at=NOW_MS - int(age * DAY_MS))
        )
        ids.append(svix_id)
    return ids


def _payloads(engine: Engine) -> dict[str, str | None]:
    with engine.connect() as conn:
        rows = conn.execute(select(events_table.c.svix_id, events_table.c.payload))
        return {r.svix_id: r.payload for r in rows}


def test_prune_erases_old_payloads_in_batches_and_keeps_rows(engine: Engine) -> None:
    ids = _seed(engine, [40, 31, 45, 29, 1, 33, 60, 0.01, 35, 31])
    old = {
        i for i, age in zip(ids, [40, 31, 45, 29, 1, 33, 60, 0.01, 35, 31], strict=True) if age > 30
    }

    erased = prune(engine, TABLES, NOW_MS - 30 * DAY_MS, batch=3)

    assert erased == len(old) == 7
    payloads = _payloads(engine)
    assert set(payloads) == set(ids)  # every row stays
    assert {i for i, p in payloads.items() if p is None} == old
    assert all(payloads[i] == _ignored(i).decode() for i in set(ids) - old)
    # A second pass finds nothing left to do.
    assert prune(engine, TABLES, NOW_MS - 30 * DAY_MS, batch=3) == 0


def test_a_partial_walk_stops_a_day_past_the_cutoff_and_says_where_to_resume(
    engine: Engine,
) -> None:
    """What the hourly passes do: stop once the rows are a day younger than the cutoff, and
    resume after the last row left without a body; a whole walk still finds a row recorded
    with an old ``received_at`` after younger ones."""
    ids = _seed(engine, [40, 40, 10, 5, 40])
    seqs = [_seq(engine, i) for i in ids]
    before = NOW_MS - 30 * DAY_MS

    partial = walk(engine, TABLES, before, stop_at_ms=before + DAY_MS, batch=2)

    assert partial == Walk(erased=2, resume_after=seqs[2] - 1)
    assert [p is None for p in map(_payloads(engine).get, ids)] == [True, True, False, False, False]
    again = walk(
        engine, TABLES, before, after=partial.resume_after, stop_at_ms=before + DAY_MS, batch=2
    )
    assert again == Walk(erased=0, resume_after=seqs[2] - 1)
    whole = walk(engine, TABLES, before, batch=2)
    assert whole == Walk(erased=1, resume_after=seqs[2] - 1)
    assert _payloads(engine)[ids[4]] is None


def _seq(engine: Engine, svix_id: str) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                select(events_table.c.seq).where(events_table.c.svix_id == svix_id)
            ).scalar_one()
        )


def test_prune_stops_between_batches_when_halted(engine: Engine) -> None:
    _seed(engine, [40] * 5)
    halt = threading.Event()
    halt.set()
    assert prune(engine, TABLES, NOW_MS, batch=2, halt=halt) == 0
    assert all(p is not None for p in _payloads(engine).values())


def test_why_a_payload_is_gone(engine: Engine) -> None:
    """Erased (its user was deleted) and pruned are told apart by the user's tombstone."""
    receiver = Receiver(engine)
    gone_user = user_object()
    kept_user = user_object(user_id="user_kept")
    receiver.receive(Delivery("msg_gone", encode(user_event("user.created", gone_user))))
    receiver.receive(
        Delivery(
            "msg_old",
            encode(user_event("user.created", kept_user)),
            received_at=NOW_MS - 40 * DAY_MS,
        )
    )
    receiver.receive(Delivery("msg_fresh", encode(user_event("user.updated", kept_user))))
    receiver.receive(Delivery("msg_delete", encode(deleted_user_event(gone_user["id"]))))
    assert prune(engine, TABLES, NOW_MS - 30 * DAY_MS) == 1

    erased = reads.get_event(engine, TABLES, "msg_gone")
    pruned = reads.get_event(engine, TABLES, "msg_old")
    kept = reads.get_event(engine, TABLES, "msg_fresh")
    assert erased is not None
    assert pruned is not None
    assert kept is not None
    assert (erased["payload"], erased["payload_gone"]) == (None, reads.ERASED)
    assert (pruned["payload"], pruned["payload_gone"]) == (None, reads.PRUNED)
    assert kept["payload_gone"] is None
    assert kept["payload"] == encode(user_event("user.updated", kept_user)).decode()
    assert kept["source"] == "webhook"
    assert set(kept) == {*reads.EVENT_FIELDS, "source", "payload", "payload_gone"}
    assert reads.get_event(engine, TABLES, "msg_unknown") is None


def test_events_with_payloads_pages_oldest_first(engine: Engine) -> None:
    ids = _seed(engine, [5, 4, 3, 2, 1])
    page = reads.events_with_payloads(engine, TABLES, limit=2)
    assert [e["svix_id"] for e in page] == ids[:2]
    rest = reads.events_with_payloads(engine, TABLES, limit=10, after=page[-1]["seq"])
    assert [e["svix_id"] for e in rest] == ids[2:]
    recent = reads.events_with_payloads(engine, TABLES, limit=10, since=NOW_MS - int(2.5 * DAY_MS))
    assert [e["svix_id"] for e in recent] == ids[3:]
    assert reads.events_with_payloads(engine, TABLES, limit=10, status="failed") == []
    typed = reads.events_with_payloads(engine, TABLES, limit=10, event_type="email.created")
    assert len(typed) == 5


def _wait(condition: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_pruner_runs_at_start_then_every_interval(engine: Engine) -> None:
    """A pass at once when started, then one per interval with the clock of that moment."""
    old, younger = _seed(engine, [31, 29])
    now = [time.time()]
    pruner = Pruner(engine, TABLES, 30, interval=0.2, clock=lambda: now[0])

    async def scenario() -> float:
        await pruner.start()
        await asyncio.to_thread(_wait, lambda: _payloads(engine)[old] is None)
        assert _payloads(engine)[younger] is not None
        now[0] += 2 * 86_400  # two days later, the younger one is past the period too
        await asyncio.to_thread(_wait, lambda: _payloads(engine)[younger] is None)
        started = time.monotonic()
        await pruner.stop()
        return time.monotonic() - started

    assert asyncio.run(scenario()) < 2.0
    late = _seed(engine, [90])[0]
    time.sleep(0.5)
    assert _payloads(engine)[late] is not None  # stopped: no more passes


def test_retention_zero_keeps_payloads_forever(engine: Engine) -> None:
    ids = _seed(engine, [3650])
    pruner = Pruner(engine, TABLES, 0, interval=0.05)

    async def scenario() -> None:
        await pruner.start()
        await asyncio.sleep(0.3)
        await pruner.stop()

    asyncio.run(scenario())
    assert _payloads(engine)[ids[0]] is not None


@pytest.mark.parametrize("backend", ["sqlite"])
def test_pruned_bytes_do_not_linger_in_the_sqlite_files(engine: Engine, tmp_path: Path) -> None:
    """As erasure does: the WAL is checkpointed and truncated, freed space overwritten."""
    marker = f"private-{secrets.token_hex(8)}"
    receiver = Receiver(engine)
    body = encode(envelope("email.created", {"id": "ema_1", "body": marker}))
    receiver.receive(Delivery("msg_private", body, received_at=NOW_MS - 40 * DAY_MS))
    _seed(engine, [1] * 3)
    database = tmp_path / "clerk_sync.db"
    files = [database, database.with_name(database.name + "-wal")]

    def holds_marker() -> bool:
        return any(f.exists() and marker.encode() in f.read_bytes() for f in files)

    assert holds_marker()
    pruner = Pruner(engine, TABLES, 30)
    assert pruner.prune_once() == 1
    assert not holds_marker()
    assert clear_wal(engine) is True


@pytest.mark.parametrize("backend", ["postgresql"])
def test_prune_skips_rows_a_delivery_holds_instead_of_waiting(engine: Engine) -> None:
    """A row locked by another transaction is left for the next pass: pruning never waits on
    (or deadlocks with) the write path."""
    ids = _seed(engine, [40, 40, 40])
    with engine.connect() as holder, holder.begin():
        holder.execute(
            select(events_table.c.seq).where(events_table.c.svix_id == ids[1]).with_for_update()
        )
        started = time.monotonic()
        assert prune(engine, TABLES, NOW_MS - 30 * DAY_MS) == 2
        assert time.monotonic() - started < 5.0
    payloads = _payloads(engine)
    assert [payloads[i] is None for i in ids] == [True, False, True]
    assert prune(engine, TABLES, NOW_MS - 30 * DAY_MS) == 1


def test_rows_and_counts_survive_pruning(engine: Engine) -> None:
    _seed(engine, [40] * 4)
    with engine.connect() as conn:
        before = conn.execute(select(func.count()).select_from(events_table)).scalar_one()
    prune(engine, TABLES, NOW_MS)
    with engine.connect() as conn:
        after = conn.execute(select(func.count()).select_from(events_table)).scalar_one()
        nulls = conn.execute(
            select(func.count()).select_from(events_table).where(events_table.c.payload.is_(None))
        ).scalar_one()
    assert before == after == nulls == 4
