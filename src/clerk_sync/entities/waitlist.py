"""Waitlist entries (``wle_…``): who asked to join, and whether they were invited."""

from __future__ import annotations

from typing import Any

from . import columns as c
from .kind import ClerkObject, Kind
from .registry import register


class WaitlistEntryData(ClerkObject):
    email_address: str | None = None
    status: str | None = None
    is_locked: bool | None = None


def _columns() -> list[Any]:
    return [
        c.email("email_address"),
        c.status(),
        c.flag("is_locked"),
        c.ms("created_at"),
        c.ms("updated_at"),
    ]


WAITLIST_ENTRY = register(
    Kind(
        name="waitlist_entry",
        table="waitlist_entries",
        events="waitlistEntry",
        model=WaitlistEntryData,
        columns=_columns,
        deletes=(),
    )
)
