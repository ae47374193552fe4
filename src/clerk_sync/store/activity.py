"""What the dashboard and the live feed read: counts, recent activity by hour and day, a user's
deliveries, the log rows committed since the feed last looked.

Recent activity is read from the end of the log. ``seq`` grows with ``received_at`` (a row is
numbered as it is recorded), so "the last 24 h" is the rows after the newest row older than
that, found by walking the primary key backwards: no index on ``received_at`` is needed, and
only the window's rows are read however long the log is.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Table, func, or_, select

from ..events import PING_TYPE, OutboxStatus, Source, Status
from .reads import EVENT_FIELDS, REPLAY_FIELDS
from .schema import Tables

HOUR_MS = 3_600_000
DAY_MS = 86_400_000
FEED_FIELDS = (*EVENT_FIELDS, "source", "payload")


def newest_delivery(conn: Connection, tables: Tables) -> int | None:
    """``received_at`` of the newest webhook delivery — backfilled rows and ``doctor``'s probes
    aside — by the log's primary key (no scan): the dashboard's last delivery, the
    ``no_deliveries`` alert and the last-delivery gauge."""
    e = tables.events
    found = conn.execute(
        select(e.c.received_at)
        .where(e.c.source == Source.WEBHOOK.value)
        .where(or_(e.c.type.is_(None), e.c.type != PING_TYPE))
        .order_by(e.c.seq.desc())
        .limit(1)
    ).scalar()
    return int(found) if found is not None else None


def count(conn: Connection, table: Table, **equal: str) -> int:
    stmt = select(func.count()).select_from(table)
    for column, value in equal.items():
        stmt = stmt.where(table.c[column] == value)
    return int(conn.execute(stmt).scalar() or 0)


def failed_deliveries(conn: Connection, tables: Tables) -> int:
    return count(conn, tables.events, status=Status.FAILED.value)


def dead_outbox_rows(conn: Connection, tables: Tables) -> int:
    return count(conn, tables.outbox, status=OutboxStatus.DEAD.value)


def window_start(conn: Connection, tables: Tables, since_ms: int) -> int:
    """The ``seq`` after which every row was received at or after ``since_ms`` (0: all)."""
    e = tables.events
    found = conn.execute(
        select(e.c.seq).where(e.c.received_at < since_ms).order_by(e.c.seq.desc()).limit(1)
    ).scalar()
    return int(found) if found is not None else 0


def deliveries_by_hour(
    conn: Connection, tables: Tables, since_ms: int
) -> dict[tuple[int, str], int]:
    """(hour bucket, status) → deliveries received since ``since_ms``; a bucket is
    ``received_at // HOUR_MS``."""
    e = tables.events
    after = window_start(conn, tables, since_ms)
    hour = e.c.received_at // HOUR_MS
    rows = conn.execute(
        select(hour.label("hour"), e.c.status, func.count())
        .where(e.c.seq > after)
        .where(e.c.received_at >= since_ms)
        .group_by(hour, e.c.status)
    )
    return {(int(h), str(status)): int(n) for h, status, n in rows}


def created_by_day(
    conn: Connection, table: Table, since_ms: int, *, column: str = "created_at"
) -> dict[int, int]:
    """Day bucket (``created_at // DAY_MS``) → objects of a table created since ``since_ms``
    (by Clerk's ``created_at``): sign-ups per day for the users table."""
    created = table.c[column]
    day = created // DAY_MS
    rows = conn.execute(
        select(day.label("day"), func.count()).where(created >= since_ms).group_by(day)
    )
    return {int(d): int(n) for d, n in rows}


def user_deliveries(
    conn: Connection, tables: Tables, user_id: str, *, limit: int
) -> list[dict[str, Any]]:
    """Every delivery about a user (``events.user_id``: the user events, their sessions and
    memberships), newest first, with the stored bodies (None once erased or pruned)."""
    e = tables.events
    rows = conn.execute(
        select(*[e.c[name] for name in REPLAY_FIELDS])
        .where(e.c.user_id == user_id)
        .order_by(e.c.seq.desc())
        .limit(limit)
    )
    return [dict(zip(REPLAY_FIELDS, row, strict=True)) for row in rows]


def previous_body(conn: Connection, tables: Tables, event: dict[str, Any]) -> str | None:
    """The stored body of the last delivery before ``event`` that changed the same object
    (``processed``, same subject, same kind of event): what ``event`` is compared with.
    Uses the ``user_id`` index when the subject is a user, else the log from ``event``
    backwards."""
    e = tables.events
    subject, kind = event.get("subject_id"), str(event.get("type") or "").partition(".")[0]
    if not subject or not kind:
        return None
    stmt = (
        select(e.c.payload)
        .where(e.c.subject_id == subject)
        .where(e.c.seq < event["seq"])
        .where(e.c.status == Status.PROCESSED.value)
        .where(e.c.type.like(kind + ".%"))
        .where(e.c.payload.is_not(None))
        .order_by(e.c.seq.desc())
        .limit(1)
    )
    if event.get("user_id") == subject:
        stmt = stmt.where(e.c.user_id == subject)
    found = conn.execute(stmt).scalar()
    return str(found) if found is not None else None


def rows_after(
    conn: Connection, tables: Tables, after: int, missing: Sequence[int], *, limit: int
) -> list[dict[str, Any]]:
    """Log rows with ``seq > after`` (the newest ``limit`` of them, newest first) and those of
    ``missing`` that exist now: the live feed's poll. ``missing`` are numbers the feed saw
    skipped, which a transaction still open elsewhere may commit later (PostgreSQL replicas)."""
    e = tables.events
    columns = [e.c[name] for name in FEED_FIELDS]
    rows = list(
        conn.execute(select(*columns).where(e.c.seq > after).order_by(e.c.seq.desc()).limit(limit))
    )
    if missing:
        rows += conn.execute(select(*columns).where(e.c.seq.in_(list(missing))))
    return [dict(zip(FEED_FIELDS, row, strict=True)) for row in rows]


def newest_seq(conn: Connection, tables: Tables) -> int:
    e = tables.events
    return int(conn.execute(select(func.max(e.c.seq))).scalar() or 0)
