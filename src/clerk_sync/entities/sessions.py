"""Sessions: ``session.created``, ``.pending``, ``.ended``, ``.removed``, ``.revoked``.

Each event sets the session's ``status``; none deletes it (a session goes with its user). The
full ``user`` embedded in every session event refreshes ``users`` under the user version guard,
and never brings back a deleted user. A session of a deleted user is ``stale``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..events.envelope import Millis
from . import columns as c
from .kind import ClerkObject, Embedded, Kind
from .registry import register


class SessionData(ClerkObject):
    user_id: str | None = None
    client_id: str | None = None
    status: str | None = "active"
    last_active_organization_id: str | None = None
    last_active_at: Millis | None = None
    expire_at: Millis | None = None
    abandon_at: Millis | None = None


def _columns() -> list[Any]:
    return [
        c.ident("user_id", index=True),
        c.ident("client_id"),
        c.status(),
        c.ident("last_active_organization_id"),
        c.ms("last_active_at"),
        c.ms("expire_at"),
        c.ms("abandon_at"),
        c.ms("created_at"),
        c.ms("updated_at"),
    ]


def _embedded(data: dict[str, Any]) -> Iterable[Embedded]:
    user = data.get("user")
    if isinstance(user, dict):
        yield ("user", user)


SESSION = register(
    Kind(
        name="session",
        table="sessions",
        events="session",
        model=SessionData,
        columns=_columns,
        upserts=("created", "pending", "ended", "removed", "revoked"),
        deletes=(),
        implied_status={
            "pending": "pending",
            "ended": "ended",
            "removed": "removed",
            "revoked": "revoked",
        },
        parents={"user_id": "user"},
        embedded=_embedded,
        fields=(
            "id",
            "user_id",
            "client_id",
            "status",
            "last_active_organization_id",
            "last_active_at",
            "expire_at",
            "abandon_at",
            "created_at",
            "updated_at",
            "synced_at",
        ),
    )
)
