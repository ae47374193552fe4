"""Log rows written straight into the event log: as an older clerk-sync left them, or inside a
transaction a test holds open."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import Connection, Engine, insert

from tests.helpers.tables import events_table


def insert_log_row(
    conn: Connection, svix_id: str, status: str, received_at: int | None = None, **more: Any
) -> None:
    """One ``user.created`` log row, received once, in ``conn``'s transaction."""
    now = received_at or int(time.time() * 1000)
    conn.execute(
        insert(events_table).values(
            svix_id=svix_id,
            type="user.created",
            received_at=now,
            last_received_at=now,
            delivery_count=1,
            status=status,
            **more,
        )
    )


def record_failed(
    engine: Engine, svix_id: str, body: bytes, received_at: int | None = None
) -> None:
    """A log row as an older clerk-sync left it: ``failed``, with a body this one applies."""
    with engine.begin() as conn:
        insert_log_row(
            conn,
            svix_id,
            "failed",
            received_at,
            error="an older clerk-sync could not decode this event",
            payload=body.decode(),
        )
