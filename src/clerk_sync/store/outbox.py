"""The outbox table's statements: claim, finish, retry, list — for any dialect.

Rows are written by the receiver, in the delivery's own transaction (``writes.Statements.enqueue``),
and by operational alerts (:func:`enqueue`). A worker *claims* rows with a lease
(``claimed_by``/``claimed_until``) in one ``UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP
LOCKED) RETURNING``, so replicas on PostgreSQL never claim the same row, then runs them outside
any transaction and records the result only if it still holds the claim.

A row is claimable when it is pending, due, not claimed by a live lease, and no earlier row of
the same hook and subject is still pending: that is what runs them in delivery order per
subject (a failing row holds back the later rows of its subject, and only those).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Connection,
    Text,
    and_,
    bindparam,
    case,
    exists,
    func,
    null,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from ..events import OutboxStatus
from .schema import Tables
from .writes import PERSONAL_KIND

PENDING, DONE, DEAD = OutboxStatus.PENDING.value, OutboxStatus.DONE.value, OutboxStatus.DEAD.value


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """One claimed or listed outbox row."""

    id: int
    key: str
    handler: str
    svix_id: str | None
    event_type: str
    subject_id: str | None
    user_id: str | None
    version: int | None
    data: str | None
    status: str
    attempts: int
    next_attempt_at: int
    claimed_by: str | None
    claimed_until: int | None
    last_error: str | None
    note: str | None
    created_at: int
    finished_at: int | None

    def as_json(self) -> dict[str, Any]:
        """The row as the CLI and the read API show it (without the event's data)."""
        shown = {name: getattr(self, name) for name in self.__slots__ if name != "data"}
        shown["running"] = self.claimed_by is not None and self.status == PENDING
        return shown


_FIELDS = tuple(OutboxRow.__slots__)


def worker_id() -> str:
    """``host:pid:…``: who holds a claim, so a restarted worker can release a dead one's."""
    return f"{socket.gethostname()}:{os.getpid()}:{os.urandom(3).hex()}"


def _row(values: Sequence[Any]) -> OutboxRow:
    return OutboxRow(*values)


def enqueue(conn: Connection, tables: Tables, rows: Iterable[Mapping[str, Any]]) -> int:
    """Insert rows (each with at least ``key``, ``handler``, ``event_type``, ``now``…), skipping
    any whose ``key`` is there already; returns how many were new. For alerts and tests — the
    receiver writes delivery rows with its own compiled statement."""
    t = tables.outbox
    new = 0
    for row in rows:
        now = int(row["now"])
        values = {
            "key": row["key"],
            "handler": row["handler"],
            "svix_id": row.get("svix_id"),
            "event_type": row["event_type"],
            "subject_id": row.get("subject_id"),
            "user_id": row.get("user_id"),
            "version": row.get("version"),
            "data": row.get("data"),
            "status": PENDING,
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
        }
        ins = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(t)
        inserted = conn.execute(
            ins.values(values).on_conflict_do_nothing(index_elements=[t.c.key]).returning(t.c.id)
        ).first()
        new += inserted is not None
    return new


def claim(
    conn: Connection, tables: Tables, *, worker: str, now_ms: int, lease_ms: int, limit: int
) -> list[OutboxRow]:
    """Claim up to ``limit`` runnable rows for ``worker`` until ``now_ms + lease_ms``."""
    t = tables.outbox
    earlier = t.alias("earlier")
    blocked = exists().where(
        and_(
            earlier.c.handler == t.c.handler,
            earlier.c.subject_id == t.c.subject_id,
            earlier.c.id < t.c.id,
            # "not finished" rather than "= 'pending'": the same rows (the status is one of
            # three), but a predicate the partial pending index does not match, so the planner
            # looks earlier rows up by subject — even before it has statistics, when it took
            # the pending index for a tiny table and joined every pending row to every other.
            earlier.c.status.not_in([DONE, DEAD]),
        )
    )
    runnable = (
        select(t.c.id)
        .where(
            t.c.status == PENDING,
            t.c.next_attempt_at <= now_ms,
            or_(t.c.claimed_until.is_(None), t.c.claimed_until < now_ms),
            ~blocked,
        )
        .order_by(t.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    # Two statements, not ``UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP LOCKED)``: on a
    # table PostgreSQL has no statistics for yet, that form was planned as a loop costing
    # ~100 ms a claim; the row locks taken here hold until the transaction ends either way.
    ids = list(conn.execute(runnable).scalars())
    if not ids:
        return []
    claimed = conn.execute(
        update(t)
        .where(t.c.id.in_(ids))
        .values(
            claimed_by=worker,
            claimed_until=now_ms + lease_ms,
            attempts=t.c.attempts + 1,
        )
        .returning(*[t.c[name] for name in _FIELDS])
    ).all()
    return sorted((_row(r) for r in claimed), key=lambda r: r.id)


@dataclass(frozen=True, slots=True)
class Ending:
    """How one claimed run ended: done (no ``error``), due again at ``retry_at``, or
    ``dead``."""

    id: int
    finished_at: int
    error: str | None = None
    note: str | None = None
    retry_at: int | None = None
    dead: bool = False

    def values(self) -> dict[str, Any]:
        ran = self.error is None or self.dead
        return {
            "b_id": self.id,
            "b_status": DONE if self.error is None else DEAD if self.dead else PENDING,
            "b_finished_at": self.finished_at if ran else None,
            "b_note": self.note,
            "b_error": self.error,
            "b_next": self.retry_at if not ran else None,
            "b_ran": ran,
        }


def finish(conn: Connection, tables: Tables, endings: Sequence[Ending], *, worker: str) -> int:
    """Record how claimed runs ended, in one statement run for each; returns how many were
    still claimed by ``worker`` (a claim lost to an expired lease is not overwritten)."""
    if not endings:
        return 0
    t = tables.outbox
    ran = bindparam("b_ran", type_=Boolean)
    statement = (
        update(t)
        .where(t.c.id == bindparam("b_id"), t.c.claimed_by == worker)
        .values(
            claimed_by=None,
            claimed_until=None,
            status=bindparam("b_status"),
            finished_at=bindparam("b_finished_at", type_=BigInteger),
            note=bindparam("b_note", type_=Text),
            last_error=func.coalesce(bindparam("b_error", type_=Text), t.c.last_error),
            next_attempt_at=func.coalesce(
                bindparam("b_next", type_=BigInteger), t.c.next_attempt_at
            ),
            # A row that ran keeps no data of a user deleted meanwhile (writes.erase_outbox).
            data=case((and_(ran, _user_deleted(tables)), null()), else_=t.c.data),
        )
    )
    result = conn.execute(statement, [e.values() for e in endings])
    return int(result.rowcount)


def release(conn: Connection, tables: Tables, ids: Sequence[int], *, worker: str) -> None:
    """Give back claims of rows that were not started (and do not count them as attempts)."""
    t = tables.outbox
    conn.execute(
        update(t)
        .where(t.c.id.in_(list(ids)), t.c.claimed_by == worker)
        .values(claimed_by=None, claimed_until=None, attempts=t.c.attempts - 1)
    )


def _user_deleted(tables: Tables) -> Any:
    tombstones, t = tables.tombstones, tables.outbox
    return exists().where(and_(tombstones.c.kind == PERSONAL_KIND, tombstones.c.id == t.c.user_id))


def superseded(conn: Connection, tables: Tables, row: OutboxRow) -> int | None:
    """The id of a later row of the same hook and subject that already ran, or None."""
    t = tables.outbox
    return conn.execute(
        select(func.min(t.c.id)).where(
            t.c.handler == row.handler,
            t.c.subject_id == row.subject_id,
            t.c.id > row.id,
            t.c.status == DONE,
            t.c.note.is_(None),
        )
    ).scalar()


def release_dead_claims(conn: Connection, tables: Tables, host: str) -> int:
    """Release the claims of workers on ``host`` whose process is gone (SIGKILL, OOM): their
    rows run again at once instead of waiting for the lease to run out."""
    t = tables.outbox
    holders = conn.execute(
        select(t.c.claimed_by).where(t.c.claimed_by.is_not(None)).distinct()
    ).scalars()
    released = 0
    for holder in holders:
        parts = holder.split(":")
        if len(parts) != 3 or parts[0] != host or not parts[1].isdigit():
            continue
        if _alive(int(parts[1])):
            continue
        result = conn.execute(
            update(t).where(t.c.claimed_by == holder).values(claimed_by=None, claimed_until=None)
        )
        released += result.rowcount or 0
    return released


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def list_rows(
    conn: Connection,
    tables: Tables,
    *,
    status: OutboxStatus | None = None,
    limit: int = 100,
    before: int | None = None,
) -> list[OutboxRow]:
    """Newest first; ``before`` pages backwards by id."""
    t = tables.outbox
    query = select(*[t.c[name] for name in _FIELDS]).order_by(t.c.id.desc()).limit(limit)
    if status is not None:
        query = query.where(t.c.status == status.value)
    if before is not None:
        query = query.where(t.c.id < before)
    return [_row(r) for r in conn.execute(query).all()]


def counts(conn: Connection, tables: Tables) -> dict[str, int]:
    """Rows per status (every status present, 0 when none)."""
    t = tables.outbox
    found: dict[str, int] = dict(
        conn.execute(select(t.c.status, func.count()).group_by(t.c.status)).all()
    )
    return {s.value: int(found.get(s.value, 0)) for s in OutboxStatus}


def retry(
    conn: Connection,
    tables: Tables,
    *,
    ids: Sequence[int] = (),
    dead: bool = False,
    now_ms: int,
) -> list[int]:
    """Make ``dead`` (or, by id, dead or done) rows pending again, due now, with a fresh count
    of attempts; returns the ids that changed. A pending row is left as it is."""
    t = tables.outbox
    where = [t.c.status != PENDING]
    if dead:
        where.append(t.c.status == DEAD)
    if ids:
        where.append(t.c.id.in_(list(ids)))
    elif not dead:
        return []
    changed = conn.execute(
        update(t)
        .where(*where)
        .values(
            status=PENDING,
            attempts=0,
            next_attempt_at=now_ms,
            finished_at=None,
            note=None,
            claimed_by=None,
            claimed_until=None,
        )
        .returning(t.c.id)
    ).scalars()
    return sorted(changed)


__all__ = [
    "DEAD",
    "DONE",
    "PENDING",
    "Ending",
    "OutboxRow",
    "claim",
    "counts",
    "enqueue",
    "finish",
    "list_rows",
    "release",
    "release_dead_claims",
    "retry",
    "superseded",
    "worker_id",
]
