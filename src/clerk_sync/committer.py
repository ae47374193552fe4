"""Group commit: many concurrent deliveries, one transaction and one fsync.

Request handlers ``await submit(delivery)``; a writer takes whatever is queued (up to
``max_batch``), hands it to :meth:`Receiver.receive_batch`, and settles each handler's future
only after the commit. Under load the cost of a commit is shared by the whole batch; with one
request in flight it is simply that request's own transaction. A 2xx still means durable: no
answer is given before its batch has committed.

Two writers keep this contract (:class:`Committer`): :class:`GroupCommitter`, threads of the
server process, and :class:`~clerk_sync.writer.WriterProcess`, a child fed over a pipe. Both run
the one batch loop, :func:`run_batches`; they differ only in where a batch comes from and how
its answers go back.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from .errors import StoreUnavailable
from .receiver import Delivery, Outcome, Receiver

log = logging.getLogger("clerk_sync.committer")
T = TypeVar("T")
Result = Outcome | StoreUnavailable


class Committer(Protocol):
    """What the webhook route needs of a writer: open, submit until closed, close."""

    async def open(self) -> None:
        """Start; returns once deliveries can be taken."""

    async def submit(self, delivery: Delivery) -> Outcome:
        """Record and apply ``delivery``; returns once committed (or raises
        :class:`StoreUnavailable`)."""

    async def close(self) -> None:
        """Commit and answer what was submitted, then stop."""


def run_batches(
    next_batch: Callable[[int], list[tuple[T, Delivery]] | None],
    receive_batch: Callable[[list[Delivery]], Sequence[Result]],
    answer: Callable[[list[tuple[T, Delivery]], Sequence[Result]], None],
    *,
    max_batch: int,
) -> None:
    """The batch loop of every writer: take a batch (``None`` when there will be no more),
    commit it, answer each delivery with its result. A writer failure answers the whole batch
    503 rather than leaving a request hanging."""
    while (batch := next_batch(max_batch)) is not None:
        if not batch:
            continue
        started = time.perf_counter()
        try:
            results = receive_batch([d for _, d in batch])
        except BaseException:
            log.exception("writer failed")
            results = [StoreUnavailable("The writer failed; a retry will succeed.")] * len(batch)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("batch of %d in %.1f ms", len(batch), (time.perf_counter() - started) * 1e3)
        answer(batch, results)


@dataclass(slots=True)
class _Job:
    delivery: Delivery
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Outcome]


class GroupCommitter:
    """Feeds a :class:`Receiver` from an asyncio server through writer threads."""

    def __init__(self, receiver: Receiver, *, max_batch: int = 64, writers: int = 1) -> None:
        self.receiver = receiver
        self.max_batch = max_batch
        self.writers = writers
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for n in range(self.writers):
            thread = threading.Thread(target=self._run, name=f"clerk-sync-writer-{n}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 30.0) -> None:
        """Finish what is queued, then stop the writers."""
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join(timeout)
        self._threads.clear()

    async def open(self) -> None:
        self.start()

    async def close(self) -> None:
        await asyncio.to_thread(self.stop)

    async def submit(self, delivery: Delivery) -> Outcome:
        """Record and apply ``delivery``; returns once committed (or raises StoreUnavailable)."""
        if not self._threads:
            raise RuntimeError("GroupCommitter.start() was not called")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Outcome] = loop.create_future()
        self._queue.put(_Job(delivery, loop, future))
        return await future

    def _run(self) -> None:
        stopping = False

        def next_batch(limit: int) -> list[tuple[_Job, Delivery]] | None:
            nonlocal stopping
            if stopping:
                return None
            try:
                first = self._queue.get_nowait()
            except queue.Empty:
                self.receiver.idle()
                first = self._queue.get()
            if first is None:
                return None
            jobs = [first]
            while len(jobs) < limit:
                try:
                    job = self._queue.get_nowait()
                except queue.Empty:
                    break
                if job is None:
                    stopping = True
                    break
                jobs.append(job)
            return [(j, j.delivery) for j in jobs]

        run_batches(next_batch, self.receiver.receive_batch, _answer, max_batch=self.max_batch)


def _answer(batch: list[tuple[_Job, Delivery]], results: Sequence[Result]) -> None:
    for (job, _), result in zip(batch, results, strict=True):
        try:
            job.loop.call_soon_threadsafe(_settle, job.future, result)
        except RuntimeError:  # its event loop is closed: nobody waits for the answer
            log.debug("%s committed after its caller left", job.delivery.svix_id)


def _settle(future: asyncio.Future[Outcome], result: Result) -> None:
    if future.done():  # the client went away; the result is committed all the same
        return
    if isinstance(result, Outcome):
        future.set_result(result)
    else:
        future.set_exception(result)
