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

**Deadlines.** Svix gives up on an answer after 15 seconds, and a delivery it gave up on is
retried whatever we answer later. So ``submit`` waits for its commit at most ``timeout`` seconds
(``DELIVERY_TIMEOUT_SECONDS``) and then raises :class:`StoreUnavailable` (503). The delivery
stays queued: if it commits after all, Svix's retry of the same svix id is answered 200
``duplicate``; if it never does, the retry applies it. A writer that makes no progress for
``timeout`` seconds is treated as dead and replaced (a new thread here; a new child process for
the writer process), and :meth:`Committer.health` says so to ``/healthz`` as soon as one batch
has taken :data:`STALL_SECONDS`.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from .errors import StoreUnavailable
from .receiver import Delivery, Outcome, Receiver

log = logging.getLogger("clerk_sync.committer")
T = TypeVar("T")
Result = Outcome | StoreUnavailable
BatchObserver = Callable[[int], None]
"""Told the size of every batch a writer took, on the server's event loop (metrics)."""

DEFAULT_TIMEOUT = 10.0
"""Seconds a delivery waits for its commit (``DELIVERY_TIMEOUT_SECONDS``)."""
STALL_SECONDS = 2.0
"""A writer on one batch for longer than this (or than the deadline, if shorter) is reported
unhealthy: a healthy batch takes milliseconds."""
_MAX_ABANDONED = 4
"""Stuck writer threads left behind (a thread cannot be killed) before no more are started."""


class Committer(Protocol):
    """What the webhook route needs of a writer: open, submit until closed, close; and
    whether it is making progress, for ``/healthz``. ``on_batch``, when set, is called on the
    server's event loop with the size of each batch the writer took."""

    on_batch: BatchObserver | None

    async def open(self) -> None:
        """Start; returns once deliveries can be taken."""

    async def submit(self, delivery: Delivery) -> Outcome:
        """Record and apply ``delivery``; returns once committed, or raises
        :class:`StoreUnavailable` (also when the commit is not confirmed within the deadline)."""

    async def close(self) -> None:
        """Commit and answer what was submitted, then stop."""

    async def health(self) -> str | None:
        """``None`` while the writer makes progress, else why not (one sentence)."""


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


def deadline_passed(timeout: float) -> StoreUnavailable:
    """The answer to a delivery whose commit was not confirmed within ``timeout`` seconds."""
    return StoreUnavailable(
        f"The database did not confirm this delivery within DELIVERY_TIMEOUT_SECONDS "
        f"({timeout:g} s); a retry will succeed, answered as a duplicate if it committed later."
    )


def expire_later(
    loop: asyncio.AbstractEventLoop, future: asyncio.Future[Any], timeout: float
) -> asyncio.TimerHandle:
    """Fail ``future`` with :func:`deadline_passed` unless it is settled within ``timeout``
    seconds (cancel the handle once it is). A timer, not ``wait_for``: no task is cancelled,
    and an answer that comes later finds the future done and is dropped."""
    return loop.call_later(timeout, _expire, future, timeout)


def _expire(future: asyncio.Future[Any], timeout: float) -> None:
    if not future.done():
        future.set_exception(deadline_passed(timeout))


def watch_interval(timeout: float) -> float:
    """How often a writer's progress is looked at: a few times per deadline."""
    return max(0.02, min(0.25, timeout / 4))


@dataclass(slots=True)
class _Job:
    delivery: Delivery
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Outcome]


@dataclass(eq=False)
class _Worker:
    """One writer thread and what the watchdog reads of it."""

    thread: threading.Thread | None = None
    busy_since: float | None = None
    """``time.monotonic()`` when its current batch started; ``None`` between batches."""
    abandoned: bool = False
    """Stuck past the deadline and replaced: it exits after its batch, taking no other."""


class GroupCommitter:
    """Feeds a :class:`Receiver` from an asyncio server through writer threads."""

    def __init__(
        self,
        receiver: Receiver,
        *,
        max_batch: int = 64,
        writers: int = 1,
        timeout: float = DEFAULT_TIMEOUT,
        on_batch: BatchObserver | None = None,
    ) -> None:
        self.receiver = receiver
        self.max_batch = max_batch
        self.writers = writers
        self.timeout = timeout
        self.on_batch = on_batch
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._workers: list[_Worker] = []
        self._started = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._watch: asyncio.TimerHandle | None = None

    def start(self) -> None:
        for _ in range(self.writers):
            self._add_worker()

    def _add_worker(self) -> None:
        worker = _Worker()
        worker.thread = threading.Thread(
            target=self._run, args=(worker,), name=f"clerk-sync-writer-{self._started}", daemon=True
        )
        self._started += 1
        self._workers.append(worker)
        worker.thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Finish what is queued, then stop the writers (a stuck one is left behind)."""
        live = [w for w in self._workers if not w.abandoned]
        for _ in live:
            self._queue.put(None)
        deadline = time.monotonic() + timeout
        for worker in live:
            assert worker.thread is not None
            worker.thread.join(max(0.0, deadline - time.monotonic()))
        self._workers.clear()

    async def open(self) -> None:
        self.start()
        self._loop = asyncio.get_running_loop()
        self._watch = self._loop.call_later(watch_interval(self.timeout), self._tick)

    async def close(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        await asyncio.to_thread(self.stop)

    async def submit(self, delivery: Delivery) -> Outcome:
        """Record and apply ``delivery``; returns once committed (or raises StoreUnavailable,
        at the latest after ``timeout`` seconds)."""
        if not self._workers:
            raise RuntimeError("GroupCommitter.start() was not called")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Outcome] = loop.create_future()
        self._queue.put(_Job(delivery, loop, future))
        expiry = expire_later(loop, future, self.timeout)
        try:
            return await future
        finally:
            expiry.cancel()

    async def health(self) -> str | None:
        return self._check()

    def _tick(self) -> None:
        self._check()
        assert self._loop is not None
        self._watch = self._loop.call_later(watch_interval(self.timeout), self._tick)

    def _check(self) -> str | None:
        """Replace a thread stuck on one batch past the deadline; say why the writers are not
        making progress (``None`` when they are)."""
        now = time.monotonic()
        longest = 0.0
        for worker in list(self._workers):
            if worker.abandoned:
                assert worker.thread is not None
                if not worker.thread.is_alive():
                    self._workers.remove(worker)
                continue
            since = worker.busy_since
            if since is None:
                continue
            busy = now - since
            longest = max(longest, busy)
            if busy > self.timeout and self._abandon(worker, busy):
                self._add_worker()
        if longest > min(STALL_SECONDS, self.timeout):
            return (
                f"The writer has been on one batch for {longest:.1f} s (a held lock or a stuck "
                "database?); deliveries get 503 after DELIVERY_TIMEOUT_SECONDS "
                f"({self.timeout:g} s)."
            )
        return None

    def _abandon(self, worker: _Worker, busy: float) -> bool:
        """Leave ``worker`` to finish its batch alone; whether another may take its place.
        Past :data:`_MAX_ABANDONED` still stuck, it is kept (and reported) instead."""
        left = sum(1 for w in self._workers if w.abandoned)
        if left >= _MAX_ABANDONED:
            return False
        worker.abandoned = True
        assert worker.thread is not None
        log.error(
            "writer thread %s made no progress for %.1f s (DELIVERY_TIMEOUT_SECONDS is %g); "
            "starting another",
            worker.thread.name,
            busy,
            self.timeout,
        )
        return True

    def _run(self, worker: _Worker) -> None:
        stopping = False

        def next_batch(limit: int) -> list[tuple[_Job, Delivery]] | None:
            nonlocal stopping
            if stopping or worker.abandoned:
                return None
            try:
                first = self._queue.get_nowait()
            except queue.Empty:
                try:
                    first = self._queue.get(timeout=self.receiver.idle())
                except queue.Empty:
                    return []  # the receiver's idle moment is due again
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

        def receive_batch(deliveries: list[Delivery]) -> Sequence[Result]:
            worker.busy_since = time.monotonic()
            try:
                return self.receiver.receive_batch(deliveries)
            finally:
                worker.busy_since = None

        def answer(batch: list[tuple[_Job, Delivery]], results: Sequence[Result]) -> None:
            _answer(batch, results, self.on_batch)

        run_batches(next_batch, receive_batch, answer, max_batch=self.max_batch)


def _answer(
    batch: list[tuple[_Job, Delivery]], results: Sequence[Result], on_batch: BatchObserver | None
) -> None:
    """Settle each job's future on its loop; the first answer also tells ``on_batch`` the
    batch's size there (no extra wake-up of the loop)."""
    size = len(batch)
    for (job, _), result in zip(batch, results, strict=True):
        try:
            job.loop.call_soon_threadsafe(_settle, job.future, result, on_batch, size)
        except RuntimeError:  # its event loop is closed: nobody waits for the answer
            log.debug("%s committed after its caller left", job.delivery.svix_id)
        on_batch = None


def _settle(
    future: asyncio.Future[Outcome],
    result: Result,
    on_batch: BatchObserver | None = None,
    size: int = 0,
) -> None:
    if future.done():  # the client went away or the deadline passed; committed all the same
        pass
    elif isinstance(result, Outcome):
        future.set_result(result)
    else:
        future.set_exception(result)
    if on_batch is not None:
        on_batch(size)
