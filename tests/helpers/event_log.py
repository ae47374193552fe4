"""Log rows written straight into the event log, as an older clerk-sync left them."""

from __future__ import annotations

import time

from sqlalchemy import Engine, insert

from tests.helpers.tables import events_table


def record_failed(
    engine: Engine, svix_id: str, body: bytes, received_at: int | None = None
) -> None:
    """A log row as an older clerk-sync left it: ``failed``, with a body this one applies."""
    now = received_at or int(time.time() * 1000)
    with engine.begin() as conn:
        conn.execute(
            insert(events_table).values(
                svix_id=svix_id,
                type="user.created",
                received_at=now,
                last_received_at=now,
                delivery_count=1,
                status="failed",
                error="an older clerk-sync could not decode this event",
                payload=body.decode(),
            )
        )
