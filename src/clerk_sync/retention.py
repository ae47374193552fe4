"""Event-log retention: stored bodies older than ``EVENT_RETENTION_DAYS`` are erased.

The log keeps each delivery's exact body so that a delivery clerk-sync failed can be replayed
(``clerk-sync events replay``) — and a body holds what Clerk sent about a person: e-mail
addresses, names, IP addresses. Past the retention period the body is set to NULL and the row
stays: it is the record that the delivery came and what became of it, and it keeps a
redelivery of that svix id a duplicate. A pruned body is gone for good; Clerk Dashboard (the
endpoint's message log, through Svix) can still resend the message.

:func:`walk` erases in batches of :data:`BATCH` rows, each its own write transaction, so a big
log never holds SQLite's single writer lock (or many PostgreSQL row locks) for long: the rows
of a batch are chosen by a read outside the transaction and erased by primary key. On
PostgreSQL a row a delivery's transaction holds is skipped (``SKIP LOCKED``), so pruning never
waits on — or deadlocks with — the write path; the next pass gets it. On SQLite the
write-ahead log still holds the erased pages until a checkpoint, so a pass that erased ends
with one (as :meth:`~clerk_sync.receiver.Receiver.idle` does after a deletion). On PostgreSQL
the old row versions stay in the table file until (auto)vacuum reclaims them.

:class:`Pruner` runs a pass in ``serve``: once at start, then every :data:`INTERVAL` seconds.
There is no index on ``received_at`` (and no migration for one): a pass walks the primary key,
and an hourly one reads only the part of the log around the cutoff (see :class:`Pruner`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Engine, select, update

from .errors import PayloadGone
from .store import Tables
from .store.engine import checkpoint, is_sqlite, write_transaction
from .store.reads import ERASED, PRUNED

log = logging.getLogger("clerk_sync.retention")

BATCH = 5_000
"""Rows erased per transaction."""
INTERVAL = 3_600.0
"""Seconds between two passes of :class:`Pruner`."""
FULL_EVERY = 24
"""Every this many passes of :class:`Pruner` (a day, hourly) walks the whole log."""
DAY_MS = 86_400_000
GONE_REASONS = {
    ERASED: "erased because the user it names was deleted",
    PRUNED: "pruned after EVENT_RETENTION_DAYS (or by `clerk-sync events prune`)",
}
"""Why an event has no body, by its ``payload_gone`` (:func:`clerk_sync.store.reads.get_event`)."""
RESEND = "Clerk Dashboard → Webhooks → your endpoint's message log can resend the message"
_CHECKPOINT_TRIES = 10
_CHECKPOINT_WAIT = 1.0


def payload_gone(svix_id: str, gone: str) -> PayloadGone:
    """The error for event ``svix_id`` whose ``payload_gone`` is ``gone``."""
    return PayloadGone(
        f"No payload stored for {svix_id!r}: {GONE_REASONS[gone]}, so there is nothing to "
        f"replay ({RESEND})."
    )


def cutoff_ms(now_ms: int, older_than_ms: int) -> int:
    """Bodies of events received before this instant are pruned."""
    return now_ms - older_than_ms


@dataclass(frozen=True, slots=True)
class Walk:
    """What one walk of the log did."""

    erased: int
    """Bodies erased."""
    resume_after: int
    """Every row up to this ``seq`` has no body now, and none gets one again (a body is
    written only with its row): a later walk may start after it."""


def walk(
    engine: Engine,
    tables: Tables,
    before_ms: int,
    *,
    after: int = 0,
    stop_at_ms: int | None = None,
    batch: int = BATCH,
    halt: threading.Event | None = None,
) -> Walk:
    """Erase the bodies of events received before ``before_ms``, walking rows that still have
    one in ``seq`` order from ``after``, ``batch`` a transaction.

    ``stop_at_ms``: end the walk at the first batch holding a row received at or after it.
    ``seq`` follows arrival within seconds, so past a row received a day after the cutoff no
    row is old — save one a caller recorded with an earlier ``received_at`` of its own, which
    only a whole walk (the default) finds. ``halt`` ends the walk between two batches.
    """
    events = tables.events
    old = (events.c.received_at < before_ms, events.c.payload.is_not(None))
    erased = 0
    first_kept: int | None = None
    last = after
    while halt is None or not halt.is_set():
        with engine.connect() as conn:
            rows = conn.execute(
                select(events.c.seq, events.c.received_at)
                .where(events.c.seq > last, events.c.payload.is_not(None))
                .order_by(events.c.seq)
                .limit(batch)
            ).all()
        if not rows:
            break
        last = rows[-1].seq
        due = [r.seq for r in rows if r.received_at < before_ms]
        gone: set[int] = set()
        if due:
            # Re-checked inside the transaction; on PostgreSQL a row locked by a delivery's
            # transaction is left for the next walk rather than waited for.
            chosen = (
                select(events.c.seq)
                .where(events.c.seq.in_(due), *old)
                .with_for_update(skip_locked=True)
                .scalar_subquery()
            )
            with write_transaction(engine) as conn:
                gone = set(
                    conn.execute(
                        update(events)
                        .where(events.c.seq.in_(chosen))
                        .values(payload=None)
                        .returning(events.c.seq)
                    ).scalars()
                )
            erased += len(gone)
        kept = [r.seq for r in rows if r.seq not in gone]
        if kept and first_kept is None:
            first_kept = kept[0]
        if stop_at_ms is not None and any(r.received_at >= stop_at_ms for r in rows):
            break
    return Walk(erased, last if first_kept is None else first_kept - 1)


def prune(
    engine: Engine,
    tables: Tables,
    before_ms: int,
    *,
    batch: int = BATCH,
    halt: threading.Event | None = None,
) -> int:
    """Erase the stored bodies of events received before ``before_ms`` (a whole walk of the
    log); how many were erased. Rows stay; only ``payload`` goes."""
    return walk(engine, tables, before_ms, batch=batch, halt=halt).erased


def clear_wal(
    engine: Engine, *, tries: int = 1, halt: threading.Event | None = None
) -> bool | None:
    """On SQLite, checkpoint and truncate the write-ahead log so erased bodies do not linger in
    it; whether that completed (None: not SQLite). A reader on an older snapshot holds a
    checkpoint back: it is tried ``tries`` times, a second apart."""
    if not is_sqlite(engine):
        return None
    for attempt in range(tries):
        if checkpoint(engine):
            return True
        if attempt + 1 < tries:
            if halt is not None:
                if halt.wait(_CHECKPOINT_WAIT):
                    break
            else:
                time.sleep(_CHECKPOINT_WAIT)
    return False


class Pruner:
    """``serve``'s retention: a pass at start, then every ``interval`` seconds, in a
    background task; with ``retention_days`` 0 it never runs (bodies are kept forever).

    The first pass, and every :data:`FULL_EVERY`-th, walks the whole log. The others start
    where the last one left every earlier body erased and stop a day past the cutoff, so an
    hourly pass reads about a day of the log rather than all the bodies it keeps."""

    def __init__(
        self,
        engine: Engine,
        tables: Tables,
        retention_days: int,
        *,
        interval: float = INTERVAL,
        batch: int = BATCH,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self.tables = tables
        self.retention_days = retention_days
        self.interval = interval
        self.batch = batch
        self._clock = clock
        self._passes = 0
        self._after = 0
        self._wal_owed = False
        self._halt = threading.Event()
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start the background task (the first pass runs at once, without delaying start)."""
        if self.retention_days <= 0 or self._task is not None:
            return
        self._halt.clear()
        self._wake = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name="clerk-sync retention")

    async def stop(self) -> None:
        """Stop; a pass under way ends after its current batch (so the engine outlives it)."""
        task, self._task = self._task, None
        if task is None:
            return
        self._halt.set()
        if self._wake is not None:
            self._wake.set()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    def prune_once(self) -> int:
        """One pass: erase bodies older than the retention period; how many were erased."""
        now_ms = int(self._clock() * 1000)
        before = cutoff_ms(now_ms, self.retention_days * DAY_MS)
        whole = self._passes % FULL_EVERY == 0
        self._passes += 1
        done = walk(
            self.engine,
            self.tables,
            before,
            after=0 if whole else self._after,
            stop_at_ms=None if whole else before + DAY_MS,
            batch=self.batch,
            halt=self._halt,
        )
        self._after = done.resume_after
        if done.erased:
            log.info(
                "erased %d stored payload(s) older than EVENT_RETENTION_DAYS=%d",
                done.erased,
                self.retention_days,
            )
        if done.erased or self._wal_owed:
            self._wal_owed = (
                clear_wal(self.engine, tries=_CHECKPOINT_TRIES, halt=self._halt) is False
            )
            if self._wal_owed:
                log.warning(
                    "readers kept the SQLite WAL from being checkpointed after pruning; the "
                    "next pass tries again"
                )
        return done.erased

    async def _run(self) -> None:
        assert self._wake is not None
        while not self._halt.is_set():
            try:
                await asyncio.to_thread(self.prune_once)
            except Exception as exc:  # the database may be down: try again next time
                log.warning("pruning the event log failed (%s: %s)", type(exc).__name__, exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval)


__all__ = [
    "BATCH",
    "FULL_EVERY",
    "GONE_REASONS",
    "INTERVAL",
    "RESEND",
    "Pruner",
    "clear_wal",
    "cutoff_ms",
    "payload_gone",
    "prune",
    "walk",
]
