"""The live feed: the log rows committed since it last looked, for the dashboard's listeners.

It reads the database rather than listening inside the process, because deliveries are
committed by the writer — a child process by default — and, on PostgreSQL, by other replicas
too: the log is the one place that sees them all. One poller per process serves every listener,
and runs only while somebody listens: with nobody on the dashboard it costs nothing, and with
twenty browsers open it is still one small query every :data:`POLL_SECONDS`, whose rows are
prepared (rendered) once for all of them.

A number the poll saw skipped is asked for again for :data:`MISSING_SECONDS`: on PostgreSQL a
transaction that took a lower ``seq`` may commit after one that took a higher (a rolled-back one
never does, so it is forgotten then). A burst of more than :data:`BATCH` rows in one poll shows
the newest of them and says it is busy, rather than sending thousands of rows a second to every
browser. A listener that does not keep up loses its oldest updates and is told so, and the
browser reloads the list.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from ..store import Tables, activity

T = TypeVar("T")
POLL_SECONDS = 0.25
MISSING_SECONDS = 10.0
BATCH = 25
"""Rows at most per update: the newest, when more arrived within one poll (while it is busy the
feed also polls half as often: nobody reads a hundred rows a second)."""
MAX_MISSING = 1_000
QUEUE = 16
"""Updates a listener may fall behind by before it loses the oldest."""
log = logging.getLogger("clerk_sync.feed")


@dataclass(frozen=True, slots=True)
class Update(Generic[T]):
    """One poll's news for a listener: the rows (newest first), prepared."""

    rows: list[dict[str, Any]]
    prepared: T
    busy: bool = False
    """More rows arrived than :data:`BATCH`: only the newest are here."""
    lost: bool = False
    """The listener fell behind and earlier updates were dropped: reload the list."""


class Listener(Generic[T]):
    """One subscriber's queue of updates."""

    def __init__(self, after: int) -> None:
        self.after = after
        self.caught_up = False
        self._updates: deque[Update[T]] = deque(maxlen=QUEUE)
        self._ready = asyncio.Event()
        self._lost = False
        self.closed = False

    def push(self, update: Update[T]) -> None:
        if len(self._updates) == QUEUE:
            self._lost = True
        self._updates.append(update)
        self._ready.set()

    def close(self) -> None:
        self.closed = True
        self._ready.set()

    async def next(self) -> Update[T] | None:
        """The next update, or None once the feed closed."""
        while not self._updates:
            if self.closed:
                return None
            self._ready.clear()
            await self._ready.wait()
        update = self._updates.popleft()
        if self._lost:
            self._lost = False
            return Update(update.rows, update.prepared, update.busy, lost=True)
        return update


class Feed(Generic[T]):
    """The poller shared by a process's listeners; ``prepare`` turns a poll's rows into what
    listeners receive (the dashboard renders them), once per poll, off the event loop."""

    def __init__(
        self,
        engine: Engine,
        tables: Tables,
        prepare: Callable[[Sequence[dict[str, Any]]], T],
        *,
        interval: float = POLL_SECONDS,
    ) -> None:
        self.engine = engine
        self.tables = tables
        self.prepare = prepare
        self.interval = interval
        self._listeners: set[Listener[T]] = set()
        self._task: asyncio.Task[None] | None = None
        self._after: int | None = None
        self._missing: dict[int, float] = {}
        self._closed = False

    @property
    def listeners(self) -> int:
        return len(self._listeners)

    @contextlib.asynccontextmanager
    async def listen(self, after: int | None = None) -> AsyncIterator[Listener[T]]:
        """Updates from ``seq > after`` on (from now when None), until the feed closes."""
        if after is None:
            after = await asyncio.to_thread(self._newest)
        listener: Listener[T] = Listener(after)
        if self._closed:
            listener.close()
        self._listeners.add(listener)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="clerk-sync live feed")
        try:
            yield listener
        finally:
            self._listeners.discard(listener)

    async def close(self) -> None:
        """End every listener's stream (the server is stopping) and the poller."""
        self._closed = True
        for listener in list(self._listeners):
            listener.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def _newest(self) -> int:
        with self.engine.connect() as conn:
            return activity.newest_seq(conn, self.tables)

    async def _run(self) -> None:
        while self._listeners and not self._closed:
            try:
                news = await asyncio.to_thread(self._poll, list(self._listeners))
            except SQLAlchemyError as exc:  # the database is away: the feed waits for it
                log.warning("live feed: cannot read the log: %s", exc)
                news = []
            except Exception:  # a bug must not leave every listener waiting forever
                log.exception("live feed: a poll failed")
                news = []
            for listener, update in news:  # on the loop: a Listener is not thread-safe
                for one in self._listeners if listener is None else (listener,):
                    one.push(update)
            busy = any(update.busy for _, update in news)
            await asyncio.sleep(self.interval * (2 if busy else 1))
        self._after = None
        self._missing.clear()

    def _expect(self, numbers: range, found: Sequence[dict[str, Any]]) -> None:
        """Ask again for the numbers of ``numbers`` that ``found`` does not hold (a burst's
        worth at most: past that the feed says it is busy, not complete)."""
        if len(numbers) + len(self._missing) > MAX_MISSING:
            return
        skipped = set(numbers) - {r["seq"] for r in found}
        now = time.monotonic()
        for seq in skipped:
            self._missing.setdefault(seq, now)

    def _poll(self, listeners: list[Listener[T]]) -> list[tuple[Listener[T] | None, Update[T]]]:
        """Catch new listeners up, then read what is new since the last poll, for all (None)."""
        news: list[tuple[Listener[T] | None, Update[T]]] = []
        with self.engine.connect() as conn:
            if self._after is None:
                self._after = activity.newest_seq(conn, self.tables)
            for listener in listeners:
                if not listener.caught_up:
                    listener.caught_up = True
                    if listener.after < self._after:
                        rows = activity.rows_after(
                            conn, self.tables, listener.after, (), limit=BATCH
                        )
                        rows = [r for r in rows if r["seq"] <= self._after]
                        if rows:
                            news.append((listener, Update(rows, self.prepare(rows))))
                        if len(rows) < BATCH:  # else it was only shown the newest
                            self._expect(range(listener.after + 1, self._after + 1), rows)
            now = time.monotonic()
            self._missing = {s: t for s, t in self._missing.items() if now - t < MISSING_SECONDS}
            found = activity.rows_after(
                conn, self.tables, self._after, sorted(self._missing), limit=BATCH
            )
        if not found:
            return news
        after = self._after
        fresh = [r["seq"] for r in found if r["seq"] > after]
        busy = len(fresh) >= BATCH
        for row in found:
            self._missing.pop(row["seq"], None)
        if fresh and not busy:
            self._expect(range(after + 1, max(fresh)), found)
        if fresh:
            self._after = max(fresh)
        found.sort(key=lambda r: r["seq"], reverse=True)
        news.append((None, Update(found, self.prepare(found), busy=busy)))
        return news
