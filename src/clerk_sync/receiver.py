"""The one path from verified bytes to the database.

Every way in — the HTTP route, tests, benchmarks, later replay and backfill — calls
:meth:`Receiver.receive` or :meth:`Receiver.receive_batch`. A delivery is decoded and decided
first (pure, no I/O: :func:`clerk_sync.entities.kind.plan`), then recorded in the event log
*and* applied in one transaction; the caller may answer 2xx only once that transaction has
committed.

Transient or permanent is decided here, and only here:

* **Permanent** — the body is authentic but can never be applied: not UTF-8 or not JSON, not
  shaped like a Clerk event, no ``data.id``, a time or count out of its column's range, an id or
  value longer than its column, a NUL character, ``data`` nested deeper than can be encoded —
  or anything else that makes deciding it raise, since deciding is pure and would raise again.
  It is decided before any I/O (:meth:`Receiver._prepare`), so it is that delivery's alone: it
  is recorded with status ``failed`` and its reason while its batch neighbours commit as if it
  were not there, and the web layer answers 422 with ``webhook-delivery: abort-message``. A
  redelivery of a ``failed`` svix id is decoded again (a newer clerk-sync may handle it).
* **Transient** — anything that goes wrong while talking to the database, including an
  exception from an application's in-transaction hook or a foreign key that does not cascade.
  The transaction rolls back, nothing is applied, and the caller gets :class:`StoreUnavailable`
  (503), so Svix retries. Losing an event is worse than retrying one that cannot succeed, and
  the log line names the cause. Deadlocks and serialization failures are retried here first
  (there should be none: each transaction first locks every object and svix id it touches in
  one global order, see :func:`writes.lock_steps`).

Batches (group commit) share one transaction. A run of deliveries (as long as no two are about
one object in a way that needs Python between them, :func:`plan_sql.starts_run`) goes as one
statement for all its log rows and one per table for its upserts (:func:`plan_sql.run_steps`),
run in order — on PostgreSQL in one round trip with the transaction's locks
(:func:`writes.run`). If a batch fails, each delivery is retried
in its own transaction, so one poisoned delivery cannot fail its neighbours. Nothing here asks
which entity kind a delivery is about: the plan's writes carry their kind's declarations.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, String
from sqlalchemy.exc import DBAPIError

from .classify import log_text, unstorable
from .entities import Delete, Plan, Upsert, route, tables
from .entities import kind as kinds
from .errors import ClerkSyncError, InvalidPayload, StoreUnavailable
from .events import OutboxStatus, Source, Status, decode_envelope
from .hooks import (
    ChangeEvent,
    Hook,
    InTransactionHook,
    InTransactionHooks,
    OutboxRoutes,
    Route,
    UserDeletedHook,
    idempotency_key,
)
from .plan_sql import OwnWrite, answered, erases, run_steps, stale_reason, starts_run, steps_of
from .store import Tables, writes
from .store.engine import WRITE_OPTIONS, checkpoint, is_sqlite

log = logging.getLogger("clerk_sync.receiver")

_RETRYABLE_SQLSTATES = {"40001", "40P01"}  # serialization failure, deadlock
_RETRIES = 3
_CHECKPOINT_EVERY = 1.0


@dataclass(frozen=True, slots=True)
class Delivery:
    """A verified delivery: the Svix message id and the exact bytes that were signed."""

    svix_id: str
    body: bytes
    received_at: int | None = None
    """When it arrived, ms since the epoch; defaults to when it is received."""
    source: Source = Source.WEBHOOK
    """``backfill`` for an object fetched from the Backend API (a synthetic delivery): it
    goes through the same rules, and runs only the hooks registered with ``backfill=True``."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one delivery, once committed."""

    svix_id: str
    status: Status
    duplicate: bool
    """True when this svix id had already been recorded (nothing was applied again)."""
    event_type: str | None
    subject_id: str | None
    reason: str | None = None
    error_code: str | None = None
    """For ``failed``: the code of the :class:`InvalidPayload` that made it fail."""
    event_timestamp: int | None = None
    """The envelope's ``timestamp`` in ms (when the event happened), if the body had one: the
    server's delivery lag is its arrival minus this."""

    @property
    def accepted(self) -> bool:
        """Whether the sender should stop retrying because of success (2xx)."""
        return self.status != Status.FAILED


@dataclass(frozen=True, slots=True)
class _Prepared:
    delivery: Delivery
    received_at: int
    event_type: str | None
    subject_id: str | None
    user_id: str | None
    event_timestamp: int | None
    status: Status
    reason: str | None = None
    error_code: str | None = None
    plan: Plan | None = None
    data: dict[str, Any] | None = None


@dataclass(slots=True)
class _Recorded:
    """A delivery after its log row and writes ran: what the database answered."""

    item: _Prepared
    seq: int
    count: int
    prior: str
    refused: Sequence[Any] | None
    """Why its own write changed nothing (see :func:`plan_sql.stale_reason`); None if it
    did, as a delete always does."""

    @property
    def duplicate(self) -> bool:
        """A svix id already recorded, and not as ``failed`` (a failed one is decoded again)."""
        return self.count > 1 and self.prior != Status.FAILED


class _Queue:
    """Statements waiting to be sent, and the runs whose answers they hold: every run of a
    batch goes in one :func:`writes.run` (one round trip on PostgreSQL), unless an
    in-transaction hook needs answers first."""

    def __init__(self, lead: list[writes.Step]) -> None:
        self.steps: list[writes.Step] = list(lead)
        self.runs: list[tuple[Sequence[_Prepared], list[OwnWrite | None], int, int]] = []

    def add(self, stmts: writes.Statements, run: Sequence[_Prepared], now_ms: int) -> None:
        if not run:
            return
        steps, own = run_steps(stmts, [(p.plan, p.delivery.svix_id) for p in run], now_ms)
        start = len(self.steps)
        self.steps.append(_record_step(stmts, run))
        self.steps += steps
        self.runs.append((run, own, start, len(self.steps)))

    def send(self, conn: Connection) -> list[_Recorded]:
        if not self.steps:
            return []
        answers = writes.run(conn, self.steps)
        recorded: list[_Recorded] = []
        for run, own, start, end in self.runs:
            logged = writes.recorded(answers[start])
            reasons = answered(own, answers[start + 1 : end])
            recorded += (
                _Recorded(p, *logged[p.delivery.svix_id], why)
                for p, why in zip(run, reasons, strict=True)
            )
        self.steps, self.runs = [], []
        return recorded


class Receiver:
    """Records and applies deliveries against one engine and one deployment's tables."""

    def __init__(
        self,
        engine: Engine,
        *,
        tables: Tables | None = None,
        on_user_deleted: Sequence[UserDeletedHook] = (),
        in_transaction: Iterable[tuple[str, InTransactionHook]] = (),
        hooks: Iterable[Hook] = (),
        outbox: Iterable[Route] = (),
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``hooks``: decorated hooks, of which the in-transaction ones run here; ``outbox``:
        each after-commit hook's ``(name, patterns[, on_backfill])``, for which a processed
        delivery gets an outbox row in its own transaction (the worker that runs them has the
        functions)."""
        self.engine = engine
        self.tables = tables if tables is not None else default_tables()
        self.hooks = InTransactionHooks.build(on_user_deleted, in_transaction, hooks)
        self.outbox = OutboxRoutes(outbox)
        self._clock = clock
        self._log_lengths = {
            c.name: c.type.length
            for c in self.tables.events.columns
            if isinstance(c.type, String) and c.type.length is not None
        }
        self._erased_at: float | None = None
        self._checkpointed_at = float("-inf")

    def receive(self, delivery: Delivery) -> Outcome:
        """Record and apply one delivery; raises :class:`StoreUnavailable` when it could not."""
        result = self.receive_batch([delivery])[0]
        if isinstance(result, ClerkSyncError):
            raise result
        return result

    def receive_batch(self, deliveries: Sequence[Delivery]) -> list[Outcome | StoreUnavailable]:
        """Record and apply several deliveries, committing them together when possible.

        The result has one entry per delivery, in order: its :class:`Outcome` once committed,
        or the :class:`StoreUnavailable` that kept it from being committed.
        """
        now_ms = int(self._clock() * 1000)
        prepared = [self._prepare(d, now_ms) for d in deliveries]
        results = self._commit_all(prepared)
        if any(erases(p.plan) for p in prepared):
            self._erased_at = time.monotonic()
            self.idle()
        return results

    def idle(self) -> float | None:
        """Copy SQLite's write-ahead log into the database file after a batch that erased: until
        a checkpoint the WAL file still holds the page images a deleted user's data was in.

        Runs at most once a second, so a stream of deletes does not checkpoint every batch
        (a checkpoint took a quarter of the writer's time when it ran on every idle moment).
        Writers call it when their queue is empty; it returns how long they may wait for the
        next delivery before calling it again (None: no checkpoint is owed)."""
        if self._erased_at is None or not is_sqlite(self.engine):
            return None
        now = time.monotonic()
        due = self._checkpointed_at + _CHECKPOINT_EVERY - now
        if due > 0:
            return due
        self._checkpointed_at = now
        if checkpoint(self.engine):
            self._erased_at = None
            return None
        return _CHECKPOINT_EVERY  # readers held it back: again in a second

    def _commit_all(self, prepared: Sequence[_Prepared]) -> list[Outcome | StoreUnavailable]:
        if len(prepared) > 1:
            try:
                return list(self._commit(prepared))
            except Exception as exc:
                log.warning(
                    "batch of %d failed (%s); retrying one by one", len(prepared), _cause(exc)
                )
        results: list[Outcome | StoreUnavailable] = []
        for item in prepared:
            try:
                results.extend(self._commit([item]))
            except Exception as exc:
                log.error("%s not committed: %s", item.delivery.svix_id, _cause(exc), exc_info=exc)
                results.append(
                    StoreUnavailable(
                        "The database could not record this delivery; nothing was applied and "
                        "a retry may succeed."
                    )
                )
        return results

    def _prepare(self, delivery: Delivery, now_ms: int) -> _Prepared:
        """Decode and decide one delivery; never raises. Deciding is pure, so an exception here
        would happen again on every retry: it is this delivery's permanent failure (logged
        with its traceback, as a bug to report), never its batch neighbours'."""
        try:
            return self._decide(delivery, now_ms)
        except MemoryError:
            raise
        except Exception as exc:
            log.error("%s could not be decoded: %s", delivery.svix_id, _cause(exc), exc_info=exc)
            return _Prepared(
                delivery,
                delivery.received_at or now_ms,
                None,
                None,
                None,
                None,
                Status.FAILED,
                f"clerk-sync could not decode this event ({type(exc).__name__}); it can never "
                "be applied by this version.",
                InvalidPayload.code,
            )

    def _decide(self, delivery: Delivery, now_ms: int) -> _Prepared:
        received = delivery.received_at or now_ms
        try:
            envelope = decode_envelope(delivery.body)
        except InvalidPayload as exc:
            return _Prepared(
                delivery, received, None, None, None, None, Status.FAILED, exc.detail, exc.code
            )
        fit = self._fit
        common = (
            delivery,
            received,
            fit("type", envelope.type),
            fit("subject_id", envelope.subject_id),
            fit("user_id", envelope.named_user_id),
            envelope.timestamp_ms,
        )
        routed = route(envelope.type)
        if routed is None:
            return _Prepared(*common, Status.IGNORED, f"clerk-sync does not sync {common[2]!r}")
        kind, action = routed
        problem = unstorable(delivery.body, envelope.data)
        if problem is not None:
            return _Prepared(*common, Status.FAILED, problem, InvalidPayload.code)
        try:
            plan = kinds.plan(kind, envelope, action, received)
        except InvalidPayload as exc:
            return _Prepared(*common, Status.FAILED, exc.detail, exc.code)
        return _Prepared(*common, Status.PROCESSED, plan=plan, data=envelope.data)

    def _fit(self, column: str, value: str | None) -> str | None:
        """A value as the log can hold it: NUL (PostgreSQL refuses it in text) replaced, cut to
        the column's length. The log row is the record of what came; the object's own table
        gets nothing that does not fit (see :func:`kinds.upsert`)."""
        if value is None:
            return None
        if "\x00" in value:
            value = value.replace("\x00", "\ufffd")
        limit = self._log_lengths.get(column)
        return value[:limit] if limit is not None and len(value) > limit else value

    def _commit(self, prepared: Sequence[_Prepared]) -> list[Outcome]:
        for attempt in range(_RETRIES + 1):
            try:
                with self.engine.connect() as conn:
                    conn = conn.execution_options(**WRITE_OPTIONS)
                    with conn.begin():
                        lead = writes.lock_steps(conn, self.tables, _lock_keys(prepared))
                        return self._apply(conn, prepared, int(self._clock() * 1000), lead)
            except Exception as exc:
                if attempt < _RETRIES and _retryable(exc):
                    log.info("retrying after %s (attempt %d)", _cause(exc), attempt + 1)
                    continue
                raise
        raise AssertionError("unreachable")

    def _apply(
        self,
        conn: Connection,
        prepared: Sequence[_Prepared],
        now_ms: int,
        lead: list[writes.Step],
    ) -> list[Outcome]:
        """Record and apply ``prepared`` in order, in as few round trips as the hooks allow:
        every run's statements (its log rows, then its writes), after ``lead`` (the
        transaction's locks), then one list of final statuses, orphans and outbox rows, if any.
        A delivery with in-transaction hooks waits for its log row to say whether it is a
        duplicate, since Python runs between its statements."""
        stmts = writes.statements(self.tables, conn.dialect)
        queue = _Queue(lead)
        recorded: list[_Recorded] = []
        run: list[_Prepared] = []
        held: set[str] = set()  # the run's svix ids
        for p in prepared:
            hooks = self.hooks.matching(p.event_type) if p.plan and p.event_type else ()
            if not hooks:
                if starts_run(p.plan, p.delivery.svix_id, held):
                    queue.add(stmts, run, now_ms)
                    run, held = [], set()
                run.append(p)
                held.add(p.delivery.svix_id)
                continue
            queue.add(stmts, run, now_ms)
            run, held = [], set()
            recorded += queue.send(conn)
            recorded.append(self._apply_hooked(conn, stmts, p, hooks, now_ms))
        queue.add(stmts, run, now_ms)
        recorded += queue.send(conn)
        return self._conclude(conn, stmts, recorded, now_ms)

    def _apply_hooked(
        self,
        conn: Connection,
        stmts: writes.Statements,
        p: _Prepared,
        hooks: Sequence[InTransactionHook],
        now_ms: int,
    ) -> _Recorded:
        assert p.plan is not None
        assert p.event_type is not None
        logged = writes.recorded(writes.run(conn, [_record_step(stmts, [p])])[0])
        r = _Recorded(p, *logged[p.delivery.svix_id], None)
        if not r.duplicate:
            event = ChangeEvent(
                p.delivery.svix_id, p.event_type, p.plan.subject_id, p.data or {}, attempt=r.count
            )
            for hook in hooks:
                name = f"{hook.__module__}:{getattr(hook, '__qualname__', '')}"
                hook(
                    conn,
                    dataclasses.replace(
                        event, idempotency_key=idempotency_key(name, event.svix_id)
                    ),
                )
            steps, own = run_steps(stmts, [(p.plan, p.delivery.svix_id)], now_ms)
            r.refused = answered(own, writes.run(conn, steps))[0]
        return r

    def _conclude(
        self,
        conn: Connection,
        stmts: writes.Statements,
        recorded: Sequence[_Recorded],
        now_ms: int,
    ) -> list[Outcome]:
        """Say why refused upserts were refused, set final statuses, build outcomes."""
        final: dict[str, Status] = {}  # svix id → status, for a duplicate within the batch
        reasons: dict[int, str] = {}
        orphans: list[writes.Step] = []
        for r in recorded:
            if r.duplicate or r.item.plan is None or r.refused is None:
                continue
            upsert = r.item.plan.writes[0]
            assert isinstance(upsert, Upsert)
            why, orphaned_at = stale_reason(upsert, r.refused)
            reasons[id(r)] = why
            if orphaned_at is not None:
                # Its newest version belongs to a deleted parent: it goes as if the parent's
                # cascade had found it (at the parent's deletion time), and older copies of it
                # stay out.
                gone = Delete(upsert.kind, upsert.id, orphaned_at)
                orphans += steps_of(stmts, gone, now_ms, r.item.delivery.svix_id)

        outcomes: list[Outcome] = []
        finishes: list[writes.Step] = []
        enqueued: list[dict[str, Any]] = []
        for r in recorded:
            p, d = r.item, r.item.delivery
            if r.duplicate:
                status = final.get(d.svix_id, Status(r.prior))
                outcomes.append(
                    Outcome(
                        d.svix_id,
                        status,
                        True,
                        p.event_type,
                        p.subject_id,
                        event_timestamp=p.event_timestamp,
                    )
                )
                continue
            status, reason = p.status, p.reason
            if id(r) in reasons:
                status, reason = Status.STALE, reasons[id(r)]
            if r.count > 1 or status != p.status:
                finishes.append(
                    (stmts.finish, {"b_seq": r.seq, "status": status.value, "error": reason})
                )
            final.setdefault(d.svix_id, status)
            outcomes.append(
                Outcome(
                    d.svix_id,
                    status,
                    False,
                    p.event_type,
                    p.subject_id,
                    reason,
                    p.error_code,
                    p.event_timestamp,
                )
            )
            if status == Status.PROCESSED and self.outbox and p.event_type:
                enqueued += self._enqueue(p, now_ms)
        if enqueued:
            finishes.append((stmts.enqueue, writes.rows_param(enqueued)))
        if orphans or finishes:
            writes.run(conn, [*orphans, *finishes])
        return outcomes

    def _enqueue(self, p: _Prepared, now_ms: int) -> list[dict[str, Any]]:
        """The outbox rows of a processed delivery: one per matching after-commit hook."""
        assert p.event_type is not None
        assert p.plan is not None
        names = self.outbox.matching(p.event_type, p.delivery.source == Source.BACKFILL)
        if not names:
            return []
        own = p.plan.writes[0]
        common = {
            "svix_id": p.delivery.svix_id,
            "event_type": p.event_type,
            "subject_id": p.plan.subject_id,
            "user_id": p.user_id,
            "version": own.version if isinstance(own, Upsert) else None,
            "data": writes.json_text(p.data or {}),
            "status": OutboxStatus.PENDING.value,
            "attempts": 0,
            "next_attempt_at": now_ms,
            "claimed_by": None,
            "claimed_until": None,
            "last_error": None,
            "note": None,
            "created_at": now_ms,
            "finished_at": None,
        }
        return [
            {**common, "key": idempotency_key(name, p.delivery.svix_id), "handler": name}
            for name in names
        ]


def _record_step(stmts: writes.Statements, run: Sequence[_Prepared]) -> writes.Step:
    """The log rows of ``run``, in its order."""
    return (
        stmts.record,
        writes.rows_param(
            [
                {
                    "svix_id": p.delivery.svix_id,
                    "type": p.event_type,
                    "subject_id": p.subject_id,
                    "user_id": p.user_id,
                    "event_timestamp": p.event_timestamp,
                    "received_at": p.received_at,
                    "last_received_at": p.received_at,
                    "delivery_count": 1,
                    "status": p.status.value,
                    "error": p.reason,
                    "payload": log_text(p.delivery.body),
                    "source": p.delivery.source.value,
                }
                for p in run
            ]
        ),
    )


def default_tables() -> Tables:
    """The tables of a deployment with no ``TABLE_PREFIX`` or ``DATABASE_SCHEMA``."""
    return tables()


def _lock_keys(prepared: Sequence[_Prepared]) -> list[str]:
    """Every svix id and object a transaction will write about (see :func:`writes.lock_steps`)."""
    keys = {p.delivery.svix_id for p in prepared}
    for p in prepared:
        if p.plan is not None:
            keys |= p.plan.lock_keys()
        if p.user_id is not None:
            # The user its body names: that user's erasure must see this body, or wait for it.
            keys.add(f"user:{p.user_id}")
    return list(keys)


def _retryable(exc: Exception) -> bool:
    """Deadlocks, serialization failures and lost connections: worth another try. The hot path
    runs statements on the driver itself (``store/writes.py``), so its errors arrive raw."""
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        return getattr(exc.orig, "sqlstate", None) in _RETRYABLE_SQLSTATES
    return getattr(exc, "sqlstate", None) in _RETRYABLE_SQLSTATES


def _cause(exc: BaseException) -> str:
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        return f"{type(exc.orig).__name__}: {str(exc.orig).strip().splitlines()[0]}"
    return f"{type(exc).__name__}: {exc}"
