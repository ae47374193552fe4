"""The one path from verified bytes to the database.

Every way in — the HTTP route, tests, benchmarks, later replay and backfill — calls
:meth:`Receiver.receive` or :meth:`Receiver.receive_batch`. A delivery is decoded first (pure, no
I/O), then recorded in the event log *and* applied in one transaction; the caller may answer 2xx
only once that transaction has committed.

Transient or permanent is decided here, and only here:

* **Permanent** — the body is authentic but can never be applied (not JSON, not shaped like a
  Clerk event, no ``data.id``). It is recorded with status ``failed`` and its reason, and the
  outcome says so; the web layer answers 422 with ``webhook-delivery: abort-message``. A
  redelivery of a ``failed`` svix id is decoded again (a newer clerk-sync may handle it).
* **Transient** — anything that goes wrong while talking to the database, including an
  exception from an application's cleanup hook or a foreign key that does not cascade. The
  transaction rolls back, nothing is applied, and the caller gets :class:`StoreUnavailable`
  (503), so Svix retries. Losing an event is worse than retrying one that cannot succeed, and the
  log line names the cause. Deadlocks and serialization failures are retried here first
  (there should be none: each transaction first locks its subjects and svix ids in one global
  order, see :func:`writes.lock_keys`).

Batches (group commit) share one transaction. If a batch fails, each delivery is retried in its
own transaction, so one poisoned delivery cannot fail its neighbours.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, cast

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError

from .errors import ClerkSyncError, InvalidPayload, StoreUnavailable
from .events import decode_envelope
from .store import writes
from .store.engine import WRITE_OPTIONS
from .sync import Action, ApplyContext, UserDeletedHook
from .sync.registry import decoder_for
from .sync.users import UpsertUser

log = logging.getLogger("clerk_sync.receiver")

Status = Literal["processed", "stale", "ignored", "failed"]
_RETRYABLE_SQLSTATES = {"40001", "40P01"}  # serialization failure, deadlock
_RETRIES = 3


@dataclass(frozen=True, slots=True)
class Delivery:
    """A verified delivery: the Svix message id and the exact bytes that were signed."""

    svix_id: str
    body: bytes
    received_at: int | None = None
    """When it arrived, ms since the epoch; defaults to when it is received."""


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

    @property
    def accepted(self) -> bool:
        """Whether the sender should stop retrying because of success (2xx)."""
        return self.status != "failed"


@dataclass(frozen=True, slots=True)
class _Prepared:
    delivery: Delivery
    event_type: str | None
    subject_id: str | None
    event_timestamp: int | None
    status: Status
    reason: str | None = None
    error_code: str | None = None
    action: Action | None = None


class Receiver:
    """Records and applies deliveries against one engine."""

    def __init__(
        self,
        engine: Engine,
        *,
        on_user_deleted: Sequence[UserDeletedHook] = (),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self.on_user_deleted = tuple(on_user_deleted)
        self._clock = clock

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
        prepared = [self._prepare(d) for d in deliveries]
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

    def _prepare(self, delivery: Delivery) -> _Prepared:
        try:
            envelope = decode_envelope(delivery.body)
        except InvalidPayload as exc:
            return _Prepared(delivery, None, None, None, "failed", exc.detail, exc.code)
        decoder = decoder_for(envelope.type)
        common = (delivery, envelope.type, envelope.subject_id, envelope.timestamp)
        if decoder is None:
            return _Prepared(*common, "ignored", f"no handler for {envelope.type!r}")
        try:
            action = decoder(envelope)
        except InvalidPayload as exc:
            return _Prepared(*common, "failed", exc.detail, exc.code)
        return _Prepared(
            delivery,
            envelope.type,
            action.subject_id,
            envelope.timestamp,
            "processed",
            action=action,
        )

    def _commit(self, prepared: Sequence[_Prepared]) -> list[Outcome]:
        for attempt in range(_RETRIES + 1):
            try:
                with self.engine.connect() as conn:
                    conn = conn.execution_options(**WRITE_OPTIONS)
                    with conn.begin():
                        writes.lock_keys(conn, _lock_keys(prepared))
                        now_ms = int(self._clock() * 1000)
                        if conn.dialect.name == "postgresql" and len(prepared) > 1:
                            return self._apply_pipelined(conn, prepared, now_ms)
                        return [self._apply(conn, p, now_ms) for p in prepared]
            except Exception as exc:
                if attempt < _RETRIES and _retryable(exc):
                    log.info("retrying after %s (attempt %d)", _cause(exc), attempt + 1)
                    continue
                raise
        raise AssertionError("unreachable")

    def _apply(self, conn: Connection, p: _Prepared, now_ms: int) -> Outcome:
        d = p.delivery
        seq, count, prior = writes.record_delivery(conn, self._log_values(p, now_ms))
        if _duplicate(count, prior):
            return Outcome(d.svix_id, cast(Status, prior), True, p.event_type, p.subject_id)
        status, reason, erase = p.status, p.reason, False
        if p.action is not None:
            applied = p.action.apply(conn, ApplyContext(now_ms, seq, self.on_user_deleted))
            status, reason, erase = applied.status, applied.reason, applied.erase_payload
        if count > 1 or status != p.status or erase:
            writes.finish_delivery(conn, seq, status, reason, erase_payload=erase)
        return Outcome(d.svix_id, status, False, p.event_type, p.subject_id, reason, p.error_code)

    def _apply_pipelined(
        self, conn: Connection, prepared: Sequence[_Prepared], now_ms: int
    ) -> list[Outcome]:
        """:meth:`_apply` for a whole batch in a few round trips (PostgreSQL).

        The same statements run in the same order as one :meth:`_apply` after another, except
        that a run of upserts (and of deliveries with nothing to apply) is sent at once: each
        one's log row and upsert together, then the two questions a stale upsert needs
        answered, then the final statuses. Deletes run one by one in their place (cleanup
        hooks are Python). An upsert is sent before its log row says whether the svix id is
        a duplicate; for a duplicate it cannot change anything (the same ``updated_at`` is
        never newer), and its answer is ignored.
        """
        outcomes: list[Outcome] = []
        final: dict[str, Status] = {}  # svix id → status, for a duplicate within the batch
        run: list[_Prepared] = []

        def flush() -> None:
            outcomes.extend(self._apply_run(conn, run, now_ms, final))
            run.clear()

        for p in prepared:
            if _pipelinable(p):
                run.append(p)
                continue
            flush()
            outcome = self._apply(conn, p, now_ms)
            final.setdefault(outcome.svix_id, outcome.status)
            outcomes.append(outcome)
        flush()
        return outcomes

    def _apply_run(
        self,
        conn: Connection,
        run: Sequence[_Prepared],
        now_ms: int,
        final: dict[str, Status],
    ) -> list[Outcome]:
        if not run:
            return []
        steps: list[writes.Step] = []
        for p in run:
            steps.append(("record", self._log_values(p, now_ms)))
            if isinstance(p.action, UpsertUser):
                steps.append(("upsert_user", p.action.row(now_ms)))
        answers = iter(writes.run_pipelined(conn, steps))
        firsts: list[tuple[_Prepared, int, int, str, bool]] = []
        for p in run:
            seq, count, prior = writes.record_values(next(answers))
            changed = bool(next(answers)) if isinstance(p.action, UpsertUser) else False
            firsts.append((p, seq, count, prior, changed))

        refused = [
            (p, seq)
            for p, seq, count, prior, changed in firsts
            if isinstance(p.action, UpsertUser) and not changed and not _duplicate(count, prior)
        ]
        questions: list[writes.Step] = []
        for p, _ in refused:
            questions += [
                ("is_tombstoned", {"id": p.subject_id}),
                ("stored_version", {"id": p.subject_id}),
            ]
        replies = iter(writes.run_pipelined(conn, questions) if questions else [])
        why: dict[int, tuple[bool, int | None]] = {}
        for _, seq in refused:
            tombstoned = bool(next(replies)[0][0])
            stored_rows = next(replies)
            why[seq] = (tombstoned, int(stored_rows[0][0]) if stored_rows else None)

        outcomes: list[Outcome] = []
        finishes: list[writes.Step] = []
        for p, seq, count, prior, changed in firsts:
            d = p.delivery
            if _duplicate(count, prior):
                status = final.get(d.svix_id, cast(Status, prior))
                outcomes.append(Outcome(d.svix_id, status, True, p.event_type, p.subject_id))
                continue
            status, reason, erase = p.status, p.reason, False
            if isinstance(p.action, UpsertUser) and not changed:
                tombstoned, stored = why[seq]
                applied = p.action.refused(tombstoned=tombstoned, stored=stored)
                status, reason, erase = applied.status, applied.reason, applied.erase_payload
            if count > 1 or status != p.status or erase:
                name = "finish_erased" if erase else "finish"
                finishes.append((name, {"b_seq": seq, "status": status, "error": reason}))
            final.setdefault(d.svix_id, status)
            outcomes.append(
                Outcome(d.svix_id, status, False, p.event_type, p.subject_id, reason, p.error_code)
            )
        if finishes:
            writes.run_pipelined(conn, finishes)
        return outcomes

    def _log_values(self, p: _Prepared, now_ms: int) -> dict[str, object]:
        d = p.delivery
        received = d.received_at or now_ms
        return {
            "svix_id": d.svix_id,
            "type": p.event_type,
            "subject_id": p.subject_id,
            "event_timestamp": p.event_timestamp,
            "received_at": received,
            "last_received_at": received,
            "delivery_count": 1,
            "status": p.status,
            "error": p.reason,
            "payload": d.body.decode("utf-8", errors="replace"),
        }


def _duplicate(count: int, prior: str) -> bool:
    """A svix id already recorded, and not as ``failed`` (a failed one is decoded again)."""
    return count > 1 and prior != "failed"


def _pipelinable(p: _Prepared) -> bool:
    return p.action is None or isinstance(p.action, UpsertUser)


def _lock_keys(prepared: Sequence[_Prepared]) -> list[str]:
    """Every svix id and subject a transaction will write about (see :func:`writes.lock_keys`)."""
    keys = {p.delivery.svix_id for p in prepared}
    keys.update(p.subject_id for p in prepared if p.subject_id is not None)
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
