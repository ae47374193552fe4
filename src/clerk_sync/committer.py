"""Group commit: many concurrent deliveries, one transaction and one fsync.

Request handlers ``await submit(delivery)``; writer threads take whatever is queued (up to
``max_batch``), hand it to :meth:`Receiver.receive_batch`, and resolve each handler's future only
after the commit. Under load the cost of a commit is shared by the whole batch; with one request
in flight it is simply that request's own transaction. A 2xx still means durable: no answer is
given before its batch has committed.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from dataclasses import dataclass

from .errors import StoreUnavailable
from .receiver import Delivery, Outcome, Receiver

log = logging.getLogger("clerk_sync.committer")


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

    async def submit(self, delivery: Delivery) -> Outcome:
        """Record and apply ``delivery``; returns once committed (or raises StoreUnavailable)."""
        if not self._threads:
            raise RuntimeError("GroupCommitter.start() was not called")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Outcome] = loop.create_future()
        self._queue.put(_Job(delivery, loop, future))
        return await future

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            jobs = [first]
            stop = False
            while len(jobs) < self.max_batch:
                try:
                    job = self._queue.get_nowait()
                except queue.Empty:
                    break
                if job is None:
                    stop = True
                    break
                jobs.append(job)
            started = time.perf_counter()
            try:
                results = self.receiver.receive_batch([j.delivery for j in jobs])
            except BaseException as exc:  # never leave a request hanging
                log.exception("writer failed")
                failure = StoreUnavailable(f"The writer failed: {type(exc).__name__}.")
                results = [failure] * len(jobs)
            if log.isEnabledFor(logging.DEBUG):
                log.debug(
                    "batch of %d in %.1f ms", len(jobs), (time.perf_counter() - started) * 1e3
                )
            for job, result in zip(jobs, results, strict=True):
                try:
                    job.loop.call_soon_threadsafe(_settle, job.future, result)
                except RuntimeError:  # its event loop is closed: nobody waits for the answer
                    log.debug("%s committed after its caller left", job.delivery.svix_id)
            if stop:
                return


def _settle(future: asyncio.Future[Outcome], result: Outcome | StoreUnavailable) -> None:
    if future.done():  # the client went away; the result is committed all the same
        return
    if isinstance(result, Outcome):
        future.set_result(result)
    else:
        future.set_exception(result)
