"""The writer process: group commit on the other side of a pipe, so the database work never
competes with the HTTP event loop for one interpreter lock.

In one process, the event loop (parsing, verifying, answering) and the writer thread (decoding,
SQL, commit) take turns on the GIL: every SQLite or psycopg call releases it and must win it back
from a busy loop, so under load each side mostly waits for the other (measured in
``bench/README.md``). Here the loop hands each verified delivery to a child process over a pipe
and awaits its outcome; the child runs the same :class:`Receiver` batches as
:class:`~clerk_sync.committer.GroupCommitter` and answers each delivery only after its batch has
committed. A 2xx still means durable.

If the child dies, every delivery it had not answered gets :class:`StoreUnavailable` (503: Svix
retries; one that had in fact committed is then a duplicate) and a new child is started. When the
server process dies, the child reads end-of-file, finishes the batch it holds and exits.

A child that is alive but makes no progress (stopped, or waiting on a lock or a database that
does not answer) is the same as a dead one once it has answered nothing for
``delivery_timeout`` seconds while work was waiting for it: it is killed (``SIGKILL``), its
unanswered deliveries get 503 and another child is started. Each delivery is answered within
that deadline anyway (:func:`~clerk_sync.committer.expire_later`). ``/healthz`` asks
:meth:`WriterProcess.health`, which sends a *ping* the child answers as soon as it reads it,
between batches: so an idle stopped child is found too, not only one with deliveries waiting.

Frames in both directions are a 4-byte big-endian length and a pickle (the two ends are the same
program): ``(job, svix_id, body, received_at, source)`` going (``svix_id`` ``None``: a ping),
``(job, outcome fields | None, detail, batch)`` coming back, where ``batch`` is the size of the
batch on the first answer of each batch and 0 on the others (the server's metrics: no frame of
its own).
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import os
import pickle
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from .committer import (
    DEFAULT_TIMEOUT,
    STALL_SECONDS,
    BatchObserver,
    expire_later,
    run_batches,
    watch_interval,
)
from .errors import ClerkSyncError, StoreUnavailable
from .receiver import Delivery, Outcome

log = logging.getLogger("clerk_sync.writer")

CONFIG_ENV = "CLERK_SYNC_WRITER_CONFIG"
_HEADER = 4
_READ_SIZE = 1 << 20
_RESTART_DELAY = 0.5
_START_LIMIT = 60.0
"""Seconds a (re)started child may take to be ready before it is killed and started again."""
_READY = -1
"""The job number of the child's first frame: it has imported everything and opened the engine."""


@dataclass(frozen=True)
class WriterConfig:
    """What the child needs to open the database the way the server would (plain values)."""

    database_url: str
    sqlite_synchronous: str = "FULL"
    hook_paths: list[str] = field(default_factory=list)
    hook_modules: list[str] = field(default_factory=list)
    """Modules to import for the in-transaction hooks named in ``in_transaction``."""
    in_transaction: list[str] = field(default_factory=list)
    outbox_routes: list[tuple[str, list[str], bool]] = field(default_factory=list)
    """Each after-commit hook's name, patterns and ``backfill`` flag: which outbox rows a
    delivery gets."""
    table_prefix: str = ""
    database_schema: str | None = None
    max_batch: int = 64
    log_level: str = "INFO"
    log_format: str = "text"
    delivery_timeout: float = DEFAULT_TIMEOUT
    """``DELIVERY_TIMEOUT_SECONDS``: read by the server's side only (deadline, watchdog)."""


def _frame(payload: Any) -> bytes:
    data = pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)
    return len(data).to_bytes(_HEADER, "big") + data


class _Frames:
    """Reassembles frames from a byte stream read in arbitrary pieces."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[Any]:
        self._buffer += data
        out: list[Any] = []
        start = 0
        buffer = self._buffer
        while len(buffer) - start >= _HEADER:
            size = int.from_bytes(buffer[start : start + _HEADER], "big")
            end = start + _HEADER + size
            if end > len(buffer):
                break
            out.append(pickle.loads(buffer[start + _HEADER : end]))  # noqa: S301 (our own child)
            start = end
        del buffer[:start]
        return out


# -- the server's side ----------------------------------------------------------------------------


class WriterProcess:
    """The contract of :class:`~clerk_sync.committer.GroupCommitter` — ``await submit(delivery)``
    and ``stop()`` — but started with ``await start()`` on the running event loop, which returns
    once the child is ready (so a server does not accept deliveries it would make wait)."""

    def __init__(self, config: WriterConfig, *, on_batch: BatchObserver | None = None) -> None:
        self.config = config
        self.on_batch = on_batch
        self.proc: subprocess.Popen[bytes] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._out = -1
        self._in = -1
        self._frames = _Frames()
        self._pending: dict[int, asyncio.Future[Outcome]] = {}
        self._unsent = bytearray()
        self._flush_scheduled = False
        self._awaiting_writable = False
        self._next_job = 0
        self._stopping = False
        self._restart: asyncio.TimerHandle | None = None
        self._ready: asyncio.Future[None] | None = None
        self._ever_ready = False
        self.timeout = config.delivery_timeout
        self._inflight: dict[int, float] = {}
        """Jobs (deliveries and pings) the child has not answered → when each was sent."""
        self._progress_at = 0.0
        self._spawned_at = 0.0
        self._child_ready = False
        self._ping: tuple[int, asyncio.Future[None]] | None = None
        self._watch: asyncio.TimerHandle | None = None
        self._killed: int | None = None
        """The pid of a child killed for making no progress (its pipe's EOF is still due)."""

    async def start(self, timeout: float = 60.0) -> None:
        """Start the child and wait until it is ready; a child that dies first raises
        :class:`StoreUnavailable` (its own error is on stderr, above)."""
        self._loop = asyncio.get_running_loop()
        self._spawn()
        assert self._ready is not None
        await asyncio.wait_for(asyncio.shield(self._ready), timeout)
        self._watch = self._loop.call_later(watch_interval(self.timeout), self._tick)

    async def open(self) -> None:
        await self.start()

    async def close(self) -> None:
        self.stop()  # on the loop: it owns the pipes' readers

    def _spawn(self) -> None:
        assert self._loop is not None
        to_child, from_server = os.pipe()
        to_server, from_child = os.pipe()
        # The child imports the same hook modules: it sees the server's import path.
        path = os.pathsep.join(p for p in sys.path if p)
        env = {**os.environ, CONFIG_ENV: json.dumps(asdict(self.config)), "PYTHONPATH": path}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "clerk_sync.writer", str(to_child), str(from_child)],
            pass_fds=(to_child, from_child),
            env=env,
            stdin=subprocess.DEVNULL,
        )
        os.close(to_child)
        os.close(from_child)
        self._out, self._in = from_server, to_server
        os.set_blocking(self._out, False)
        os.set_blocking(self._in, False)
        self._frames = _Frames()
        self._unsent.clear()
        self._spawned_at = self._progress_at = self._loop.time()
        self._child_ready = False
        self._ready = self._loop.create_future()
        self._loop.add_reader(self._in, self._on_readable)
        log.debug("writer process %d started", self.proc.pid)

    async def submit(self, delivery: Delivery) -> Outcome:
        """Record and apply ``delivery``; returns once committed (or raises StoreUnavailable)."""
        if self._loop is None:
            raise RuntimeError("WriterProcess.start() was not called")
        if self._out < 0:
            raise StoreUnavailable("The writer process is restarting; a retry will succeed.")
        job = self._next_job
        self._next_job += 1
        future: asyncio.Future[Outcome] = self._loop.create_future()
        self._pending[job] = future
        self._inflight[job] = self._loop.time()
        self._send(
            _frame((job, delivery.svix_id, delivery.body, delivery.received_at, delivery.source))
        )
        expiry = expire_later(self._loop, future, self.timeout)
        try:
            return await future
        finally:
            expiry.cancel()
            self._pending.pop(job, None)

    def _send(self, data: bytes) -> None:
        """Queue a frame. Everything queued in one turn of the event loop goes to the child in
        one write: a write per delivery (a syscall and a wake-up of the child each) cost more
        than the rest of the hand-over."""
        self._unsent += data
        if not self._flush_scheduled and not self._awaiting_writable:
            self._flush_scheduled = True
            assert self._loop is not None
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self._out < 0 or not self._unsent:
            return
        try:
            written = os.write(self._out, self._unsent)
        except BlockingIOError:
            written = 0
        except OSError:  # the child is gone; _on_readable will see it and fail the jobs
            written = len(self._unsent)
        del self._unsent[:written]
        assert self._loop is not None
        if self._unsent and not self._awaiting_writable:
            self._awaiting_writable = True
            self._loop.add_writer(self._out, self._flush)
        elif not self._unsent and self._awaiting_writable:
            self._awaiting_writable = False
            self._loop.remove_writer(self._out)

    def _on_readable(self) -> None:
        try:
            data = os.read(self._in, _READ_SIZE)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._child_gone()
            return
        self._dispatch(data)

    def _dispatch(self, data: bytes) -> None:
        """Settle the futures of the answers in ``data`` (the child's ready frame and pings'
        answers included). Any answer is progress."""
        assert self._loop is not None
        self._progress_at = self._loop.time()
        for job, fields, detail, batch in self._frames.feed(data):
            if batch and self.on_batch is not None:
                self.on_batch(batch)
            if job == _READY:
                self._ever_ready = self._child_ready = True
                if self._ready is not None and not self._ready.done():
                    self._ready.set_result(None)
                continue
            self._inflight.pop(job, None)
            if self._ping is not None and self._ping[0] == job:
                if not self._ping[1].done():
                    self._ping[1].set_result(None)
                continue
            future = self._pending.get(job)
            if future is None or future.done():  # the client left; committed all the same
                continue
            if fields is not None:
                future.set_result(Outcome(*fields))
            else:
                future.set_exception(StoreUnavailable(detail))

    def _close_pipes(self) -> None:
        assert self._loop is not None
        if self._in >= 0:
            self._loop.remove_reader(self._in)
            os.close(self._in)
            self._in = -1
        if self._out >= 0:
            if self._awaiting_writable:
                self._loop.remove_writer(self._out)
                self._awaiting_writable = False
            self._unsent.clear()
            os.close(self._out)
            self._out = -1

    def _child_gone(self) -> None:
        """The child closed its end: fail what it had not answered; start another unless
        we are stopping."""
        self._close_pipes()
        code = self.proc.wait() if self.proc is not None else None
        stuck = self.proc is not None and self._killed == self.proc.pid
        failure = (
            (
                "The writer process made no progress for DELIVERY_TIMEOUT_SECONDS and was "
                "replaced; a retry will succeed, answered as a duplicate if this had committed."
            )
            if stuck
            else (
                "The writer process exited before answering; nothing is known to be applied "
                "and a retry will succeed."
            )
        )
        self._inflight.clear()
        self._child_ready = False
        for future in self._pending.values():
            if not future.done():
                future.set_exception(StoreUnavailable(failure))
        if self._ping is not None and not self._ping[1].done():
            self._ping[1].set_exception(StoreUnavailable(failure))
        self._ping = None
        if not self._ever_ready:  # start() is waiting: fail the server's start
            assert self._ready is not None
            self._ready.set_exception(
                StoreUnavailable(f"The writer process exited at start (status {code}).")
            )
            return
        if self._stopping:
            return
        if not stuck:
            log.error("writer process exited (status %s); starting another", code)
        assert self._loop is not None
        self._restart = self._loop.call_later(_RESTART_DELAY, self._spawn)

    def stalled_for(self) -> float:
        """Seconds the child has answered nothing while work was waiting for it (0 when none
        was)."""
        if not self._inflight:
            return 0.0
        assert self._loop is not None
        oldest = next(iter(self._inflight.values()))
        return self._loop.time() - max(oldest, self._progress_at)

    async def health(self) -> str | None:
        """``None`` while the child makes progress; else why not. With deliveries in flight
        their answers are the evidence (one within :data:`STALL_SECONDS`, or the deadline if
        shorter); with none, a ping must come back within that time. A ping waits behind
        nothing: the child answers it as soon as it reads it."""
        if self._loop is None or self._stopping:
            return "The writer process is not running."
        if self._out < 0 or not self._child_ready:
            return (
                "The writer process is restarting; deliveries wait for it, and get 503 past "
                "DELIVERY_TIMEOUT_SECONDS."
            )
        wait = min(STALL_SECONDS, self.timeout)
        stalled = self.stalled_for()
        if stalled > wait:
            return self._stalled_message(stalled)
        if self._ping is None or self._ping[1].done():
            if self._inflight:
                return None
            job = self._next_job
            self._next_job += 1
            ping: asyncio.Future[None] = self._loop.create_future()
            ping.add_done_callback(_retrieved)  # a ping no one awaits any more may still fail
            self._ping = (job, ping)
            self._inflight[job] = self._loop.time()
            self._send(_frame((job, None, None, None, None)))
        try:
            await asyncio.wait_for(asyncio.shield(self._ping[1]), wait)
        except TimeoutError:
            return self._stalled_message(max(wait, self.stalled_for()))
        except StoreUnavailable as exc:
            return exc.detail
        return None

    def _stalled_message(self, stalled: float) -> str:
        return (
            f"The writer process has answered nothing for {stalled:.1f} s (a held lock, a "
            "stopped process or a database that does not answer?); it is replaced after "
            f"DELIVERY_TIMEOUT_SECONDS ({self.timeout:g} s)."
        )

    def _tick(self) -> None:
        """The watchdog: kill a child that makes no progress, or does not start."""
        assert self._loop is not None
        self._watch = self._loop.call_later(watch_interval(self.timeout), self._tick)
        proc = self.proc
        if proc is None or self._in < 0 or self._stopping or self._killed == proc.pid:
            return
        if not self._child_ready:
            idle = self._loop.time() - self._spawned_at
            limit = max(_START_LIMIT, self.timeout)
        else:
            idle = self.stalled_for()
            limit = self.timeout
        if idle <= limit:
            return
        log.error(
            "writer process %d made no progress for %.1f s (DELIVERY_TIMEOUT_SECONDS is %g); "
            "killing it and starting another",
            proc.pid,
            idle,
            self.timeout,
        )
        self._killed = proc.pid
        proc.kill()  # its pipe's end-of-file follows: _child_gone fails its deliveries

    def stop(self, timeout: float = 30.0) -> None:
        """Let the child finish what it holds, answer it, and exit (called on the loop, which
        is shutting down: this waits here, for at most ``timeout`` seconds)."""
        self._stopping = True
        if self._restart is not None:
            self._restart.cancel()
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        assert self._loop is not None
        if self._awaiting_writable:
            self._loop.remove_writer(self._out)
            self._awaiting_writable = False
        if self._in >= 0:
            self._loop.remove_reader(self._in)
        unsent, self._unsent = bytes(self._unsent), bytearray()
        deadline = time.monotonic() + timeout
        # Push what is unsent while reading answers, both at once: the child may be blocked
        # writing answers to us while we would block writing to it.
        while self._in >= 0 and (remaining := deadline - time.monotonic()) > 0:
            if not unsent and self._out >= 0:
                os.close(self._out)  # end-of-file: the child finishes and exits
                self._out = -1
            writable = [self._out] if self._out >= 0 else []
            ready_in, ready_out, _ = select.select([self._in], writable, [], remaining)
            if not ready_in and not ready_out:
                break
            if ready_out:
                try:
                    unsent = unsent[os.write(self._out, unsent) :]
                except BlockingIOError:
                    pass
                except OSError:
                    unsent = b""
            if ready_in:
                data = os.read(self._in, _READ_SIZE)
                if not data:
                    break
                self._dispatch(data)
        for fd in (self._out, self._in):
            if fd >= 0:
                os.close(fd)
        self._out = self._in = -1
        if self.proc is not None:
            try:
                self.proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _retrieved(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()


# -- the child's side -----------------------------------------------------------------------------


def _outcome_fields(outcome: Outcome) -> tuple[Any, ...]:
    return (
        outcome.svix_id,
        outcome.status,
        outcome.duplicate,
        outcome.event_type,
        outcome.subject_id,
        outcome.reason,
        outcome.error_code,
        outcome.event_timestamp,
    )


def serve_pipe(
    receive_batch: Callable[[list[Delivery]], Sequence[Outcome | StoreUnavailable]],
    read_fd: int,
    write_fd: int,
    *,
    max_batch: int,
    idle: Callable[[], float | None] = lambda: None,
) -> None:
    """Read deliveries until end-of-file, commit them in batches, answer each after its commit.

    One thread does it all (:func:`~clerk_sync.committer.run_batches`): it blocks on the pipe
    only when it has nothing to do, and otherwise takes everything that arrived while it was
    committing as the next batch (up to ``max_batch``). So the server wakes this process once
    per idle spell, not once per write.
    """
    os.set_blocking(read_fd, False)
    frames = _Frames()
    pending: collections.deque[tuple[int, Delivery]] = collections.deque()
    pongs: list[bytes] = []
    open_ = True

    def next_batch(limit: int) -> list[tuple[int, Delivery]] | None:
        nonlocal open_
        if not open_ and not pending:
            return None
        if open_ and not pending:
            # Wait for deliveries, or until the receiver wants its idle moment again.
            select.select([read_fd], [], [], idle())
        while open_:
            try:
                data = os.read(read_fd, _READ_SIZE)
            except BlockingIOError:
                break
            if not data:
                open_ = False
                break
            for job, svix_id, body, received_at, source in frames.feed(data):
                if svix_id is None:  # a ping: answered now, ahead of the deliveries read with it
                    pongs.append(_frame((job, None, None, 0)))
                else:
                    pending.append((job, Delivery(svix_id, body, received_at, source)))
        if pongs:
            _answer(write_fd, b"".join(pongs))
            pongs.clear()
        return [pending.popleft() for _ in range(min(limit, len(pending)))]

    def answer(
        batch: list[tuple[int, Delivery]], results: Sequence[Outcome | StoreUnavailable]
    ) -> None:
        size = len(batch)
        _answer(
            write_fd,
            b"".join(
                _frame(
                    (job, _outcome_fields(r), None, 0 if n else size)
                    if isinstance(r, Outcome)
                    else (job, None, r.detail, 0 if n else size)
                )
                for n, ((job, _), r) in enumerate(zip(batch, results, strict=True))
            ),
        )

    run_batches(next_batch, receive_batch, answer, max_batch=max_batch)


def _answer(write_fd: int, payload: bytes) -> None:
    view = memoryview(payload)
    try:
        while view:
            written = os.write(write_fd, view)
            view = view[written:]
    except BrokenPipeError:  # the server is gone; what committed stays committed
        pass


def main(argv: list[str]) -> None:
    """Entry point of the child: ``python -m clerk_sync.writer READ_FD WRITE_FD``."""
    from . import hooks
    from .entities import tables
    from .logformat import configure_logging
    from .receiver import Receiver
    from .store import make_engine

    # Ctrl-C reaches the whole process group; the server decides when to stop, and tells this
    # process by closing the pipe, so a batch is never cut in half.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    read_fd, write_fd = int(argv[0]), int(argv[1])
    config = WriterConfig(**json.loads(os.environ[CONFIG_ENV]))
    configure_logging(config.log_level, "json" if config.log_format == "json" else "text")
    try:
        engine = make_engine(
            config.database_url,
            sqlite_synchronous=config.sqlite_synchronous,
        )
        receiver = Receiver(
            engine,
            tables=tables(config.table_prefix, config.database_schema),
            on_user_deleted=hooks.load_hooks(config.hook_paths),
            hooks=hooks.named(config.hook_modules, config.in_transaction),
            outbox=[(name, tuple(patterns), on) for name, patterns, on in config.outbox_routes],
        )
    except ClerkSyncError as exc:
        log.error("writer process cannot start: error [%s] %s", exc.code, exc.detail)
        sys.exit(exc.exit_code)
    os.write(write_fd, _frame((_READY, None, None, 0)))
    try:
        serve_pipe(
            receiver.receive_batch,
            read_fd,
            write_fd,
            max_batch=config.max_batch,
            idle=receiver.idle,
        )
    finally:
        engine.dispose()


if __name__ == "__main__":
    main(sys.argv[1:])
