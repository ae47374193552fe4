"""The outbox worker: runs after-commit hooks, notifications and sinks, once each, with retries.

Each processed delivery's transaction wrote one row per matching after-commit hook
(:meth:`Receiver._enqueue`), so a hook never runs for a change that did not commit, and a
crash anywhere cannot lose one: the row stays until a run of it ends. The worker claims rows
with a lease (:func:`store.outbox.claim`: replicas never claim the same row), runs each outside
any transaction, and records how it ended:

* it returned: ``done``;
* it raised or ran past ``OUTBOX_HANDLER_TIMEOUT_SECONDS``: due again after 1 s, 2 s, 4 s …
  (at most an hour), and ``dead`` with its last error after ``OUTBOX_MAX_ATTEMPTS`` runs.

Runs are at least once: a worker killed during a run leaves its claim, which a restarted
worker on the same host releases at once (:func:`store.outbox.release_dead_claims`) and any
other waits out. Rows of one hook and one subject run one after another in delivery order; a
failing row holds back only the rows of its own subject.

Every processed delivery's hooks run, with the data the delivery brought, even when its user
was deleted after it committed; once a row has run, a deleted user's data is erased from it.
Rows are finished without running their hook, with a ``note`` saying why, only for a *mirror*
hook (a sink copying objects elsewhere): a row that a later row of the same subject has
superseded, or an upsert of an object that is tombstoned by now — and a finished row retried
by hand after its data was erased.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson
from sqlalchemy import Connection, Engine, and_, exists, select

from .entities import route
from .events import Status
from .hooks import ChangeEvent, Hook, HookSet
from .store import Tables
from .store import outbox as rows
from .store.engine import write_transaction
from .store.outbox import OutboxRow

log = logging.getLogger("clerk_sync.outbox")

T = TypeVar("T")
_FIRST_DELAY = 1.0
_MAX_DELAY = 3600.0
_LEASE_MARGIN = 30.0
"""Seconds a claim outlives two runs' timeouts: it covers the wait to start, and recording."""
_CLAIM_BATCH = 4
"""Rows claimed at a time, per unit of ``OUTBOX_CONCURRENCY``."""
_COALESCE_SECONDS = 0.02
"""Longest a finished run waits to be recorded with others."""
_ERROR_CHARS = 2000

Periodic = tuple[float, Callable[[Connection, int], Any]]
"""``(every seconds, fn(connection, now_ms))``: work the worker does on a timer (alerts)."""


@dataclass(frozen=True)
class OutboxSettings:
    """The worker's knobs (``OUTBOX_*`` settings), as plain values."""

    max_attempts: int = 10
    handler_timeout: float = 30.0
    concurrency: int = 4
    poll_seconds: float = 0.2


def retry_delay(attempts: int) -> float:
    """Seconds before the next run after ``attempts`` failed runs: 1, 2, 4 … at most 1 h."""
    return min(_MAX_DELAY, _FIRST_DELAY * 2.0 ** max(0, attempts - 1))


class OutboxWorker:
    """Claims and runs outbox rows until stopped; one per process that runs hooks."""

    def __init__(
        self,
        engine: Engine,
        tables: Tables,
        hooks: HookSet,
        settings: OutboxSettings | None = None,
        *,
        periodic: Sequence[Periodic] = (),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self.tables = tables
        self.hooks = hooks
        self.settings = settings or OutboxSettings()
        self.periodic = list(periodic)
        self.id = rows.worker_id()
        self._clock = clock
        self._db = ThreadPoolExecutor(max_workers=2, thread_name_prefix="clerk-sync-outbox-db")
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()
        self._running: set[asyncio.Task[None]] = set()
        self._queue: deque[OutboxRow] = deque()
        """Claimed rows not started yet."""
        self._results: list[_Result] = []
        """Finished runs not recorded yet."""
        self._releases: list[OutboxRow] = []
        """Claims to give back (rows not started)."""
        self._next_periodic = [0.0] * len(self.periodic)
        self.on_run: Callable[[str, str], None] | None = None
        """Told ``(handler, result)`` as each run ends: ``done``, ``skipped`` (finished without
        running, see the row's note), ``failed`` (retried later) or ``dead`` (metrics)."""

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    async def _db_call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._db, lambda: fn(*args, **kwargs))

    def _in_transaction(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        with write_transaction(self.engine) as conn:
            return fn(conn, self.tables, *args, **kwargs)

    @property
    def _lease_ms(self) -> int:
        return int((2 * self.settings.handler_timeout + _LEASE_MARGIN) * 1000)

    async def start(self, *, background: bool = True) -> None:
        """Release the claims of this host's dead workers, then run in the background (or
        not: :meth:`drain` runs what is due)."""
        released = await self._db_call(
            self._in_transaction, rows.release_dead_claims, socket.gethostname()
        )
        if released:
            log.info("released %d outbox rows claimed by a worker that is gone", released)
        if background:
            self._task = asyncio.create_task(self._loop(), name="clerk-sync outbox worker")

    async def stop(self, grace: float = 5.0) -> None:
        """Stop claiming; give running hooks ``grace`` seconds, record what finished and give
        back the claims of rows not started. A run cut short keeps its claim and runs again
        later (hooks are at least once)."""
        self._stopping.set()
        self._wake.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._running:
            _, late = await asyncio.wait(self._running, timeout=grace)
            for task in late:
                task.cancel()
        self._releases += self._queue
        self._queue.clear()
        with contextlib.suppress(Exception):
            await self._flush()
        self._db.shutdown(wait=True, cancel_futures=False)

    async def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                await self._run_periodic()
                progressed = await self.run_due()
            except Exception as exc:  # the database may be down: keep trying, say so
                log.warning("outbox worker: %s: %s; trying again", type(exc).__name__, exc)
                progressed = 0
            if progressed:
                continue
            self._wake.clear()
            wait = _COALESCE_SECONDS if self._results else self.settings.poll_seconds
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)

    async def run_due(self) -> int:
        """Record finished runs, claim due rows when few are left to start, and start as many
        as there are free slots; returns how many rows were recorded or started.

        Claims and results go in batches (one transaction, one commit, for many rows): a
        commit per row — two per run — held a worker to a few hundred rows a second."""
        concurrency = self.settings.concurrency
        progressed = 0
        if self._releases or (
            self._results
            and (
                len(self._results) >= concurrency
                or not self._running
                or time.monotonic() - self._results[0].since >= _COALESCE_SECONDS
            )
        ):
            progressed += await self._flush()
        if len(self._queue) < concurrency and not self._stopping.is_set():
            limit = concurrency * _CLAIM_BATCH - len(self._queue) - len(self._running)
            if limit > 0:
                self._queue.extend(
                    await self._db_call(
                        self._in_transaction,
                        rows.claim,
                        worker=self.id,
                        now_ms=self._now_ms(),
                        lease_ms=self._lease_ms,
                        limit=limit,
                    )
                )
        while self._queue and len(self._running) < concurrency:
            row = self._queue.popleft()
            needed = int((self.settings.handler_timeout + _LEASE_MARGIN / 2) * 1000)
            if (row.claimed_until or 0) - self._now_ms() < needed:
                self._releases.append(row)  # its claim would run out during the run
                continue
            task = asyncio.create_task(self._run(row), name=f"outbox row {row.id}")
            self._running.add(task)
            task.add_done_callback(self._finished)
            progressed += 1
        return progressed

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        self._wake.set()

    async def _flush(self) -> int:
        """Record every finished run (and give back unstarted claims) in one transaction; on
        failure they are kept for the next try (their claims outlive a run by a margin)."""
        results, self._results = self._results, []
        releases, self._releases = self._releases, []
        try:
            lost = await self._db_call(self._record_all, results, releases)
        except Exception:
            self._results = results + self._results
            self._releases = releases + self._releases
            raise
        if lost:
            log.warning("%d outbox runs ended after their claim ran out (not recorded)", lost)
        return len(results) + len(releases)

    def _record_all(self, results: Sequence[_Result], releases: Sequence[OutboxRow]) -> int:
        """Returns how many results found their claim gone (another worker has the row)."""
        with self.engine.begin() as conn:
            kept = rows.finish(conn, self.tables, [r.ending for r in results], worker=self.id)
            if releases:
                rows.release(conn, self.tables, [r.id for r in releases], worker=self.id)
        return len(results) - kept

    async def drain(self, timeout: float = 30.0) -> None:
        """Run rows until none is due, running or unrecorded (tests, ``worker --once``)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            progressed = await self.run_due()
            if not (progressed or self._running or self._queue or self._results):
                return
            if self._running:
                await asyncio.wait(self._running, return_when=asyncio.FIRST_COMPLETED)
        raise TimeoutError(f"the outbox still had due rows after {timeout} s")

    async def _run_periodic(self) -> None:
        now = time.monotonic()
        for index, (every, fn) in enumerate(self.periodic):
            if now >= self._next_periodic[index]:
                self._next_periodic[index] = now + every
                try:
                    await self._db_call(self._periodic_call, fn)
                except Exception as exc:
                    log.warning("periodic outbox check failed: %s: %s", type(exc).__name__, exc)

    def _periodic_call(self, fn: Callable[[Connection, int], Any]) -> None:
        with write_transaction(self.engine) as conn:
            fn(conn, self._now_ms())

    async def _run(self, row: OutboxRow) -> None:
        hook = self.hooks.handler(row.handler)
        error: str | None = None
        note: str | None = None
        try:
            if hook is None:
                error = (
                    f"no after-commit hook named {row.handler!r} is loaded in this worker "
                    "(check HOOKS, NOTIFY_RULES and CONVEX_URL where the worker runs)"
                )
            else:
                event, note = await self._event(row, hook)
                if event is not None:
                    await self._call(hook, event)
        except TimeoutError:
            error = f"timed out after {self.settings.handler_timeout:g} s"
        except asyncio.CancelledError:
            return  # stopping: the claim stays, and the row runs again after a restart
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"[:_ERROR_CHARS]
        self._record(row, error, note)

    async def _event(self, row: OutboxRow, hook: Hook) -> tuple[ChangeEvent | None, str | None]:
        """The event to run ``hook`` with, or ``(None, why it is skipped)``."""
        deletion = _is_deletion(row.event_type)
        if row.data is None and not deletion:
            return None, "skipped: the user was deleted and this row's data erased"
        if hook.mirror:
            later = await self._db_call(self._in_transaction, rows.superseded, row)
            if later is not None:
                return None, f"skipped: superseded by row {later}"
            if not deletion and await self._db_call(self._tombstoned, row):
                return None, "skipped: the object was deleted since"
        data = orjson.loads(row.data) if row.data is not None else {"id": row.subject_id}
        event = ChangeEvent(
            row.svix_id or "",
            row.event_type,
            row.subject_id or "",
            data,
            status=Status.PROCESSED,
            attempt=row.attempts,
            idempotency_key=row.key,
        )
        return event, None

    def _tombstoned(self, row: OutboxRow) -> bool:
        routed = route(row.event_type)
        if routed is None or row.subject_id is None:
            return False
        t = self.tables.tombstones
        with self.engine.connect() as conn:
            return bool(
                conn.execute(
                    select(
                        exists().where(and_(t.c.kind == routed[0].name, t.c.id == row.subject_id))
                    )
                ).scalar()
            )

    async def _call(self, hook: Hook, event: ChangeEvent) -> None:
        timeout = self.settings.handler_timeout
        if hook.is_async:
            await asyncio.wait_for(hook.fn(event), timeout)
            return
        result = await asyncio.wait_for(_in_thread(hook.fn, event), timeout)
        if asyncio.iscoroutine(result):  # a plain function that returned an awaitable
            await asyncio.wait_for(result, timeout)

    def _record(self, row: OutboxRow, error: str | None, note: str | None) -> None:
        now = self._now_ms()
        dead = error is not None and row.attempts >= self.settings.max_attempts
        retry_at = None
        if error is not None and not dead:
            retry_at = now + int(retry_delay(row.attempts) * 1000)
        if error is not None:
            level = logging.ERROR if dead else logging.WARNING
            then = "dead" if dead else f"retry in {retry_delay(row.attempts):g} s"
            log.log(
                level,
                "outbox row %d (%s for %s %s) failed on attempt %d: %s; %s",
                row.id,
                row.handler,
                row.event_type,
                row.svix_id,
                row.attempts,
                error,
                then,
            )
        self._results.append(_Result(rows.Ending(row.id, now, error, note, retry_at, dead)))
        if self.on_run is not None:
            result = "dead" if dead else "failed" if error is not None else "done"
            self.on_run(row.handler, "skipped" if note is not None and error is None else result)


@dataclass(frozen=True, slots=True)
class _Result:
    """How one run ended, until it is recorded."""

    ending: rows.Ending
    since: float = field(default_factory=time.monotonic)


def _is_deletion(event_type: str) -> bool:
    routed = route(event_type)
    return routed is not None and routed[1] in routed[0].deletes


def _in_thread(fn: Callable[[ChangeEvent], T], event: ChangeEvent) -> Awaitable[T]:
    """Run a sync hook on a thread of its own: one that hangs past its timeout is abandoned
    (Python cannot stop a thread) without taking a pool's thread from the other hooks."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(outcome: Callable[[], None]) -> None:
        if not future.done():
            outcome()

    def deliver(outcome: Callable[[], None]) -> None:
        # An abandoned run may end after its worker (and loop) stopped: nobody waits for it.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(settle, outcome)

    def target() -> None:
        try:
            result = fn(event)
        except BaseException as exc:  # delivered to the awaiting run
            failure = exc
            deliver(lambda: future.set_exception(failure))
        else:
            deliver(lambda: future.set_result(result))

    threading.Thread(target=target, name="clerk-sync hook", daemon=True).start()
    return future
