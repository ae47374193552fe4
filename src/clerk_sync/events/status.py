"""Delivery statuses: what became of a delivery, spelled once."""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    """The status of a delivery in the event log (and of its :class:`Outcome`)."""

    PROCESSED = "processed"
    """Applied: its change is in the database."""
    STALE = "stale"
    """Authentic and understood, but older than what is stored (or about a deleted object)."""
    IGNORED = "ignored"
    """Recorded only: clerk-sync does not sync this event type."""
    FAILED = "failed"
    """Authentic but unusable (not JSON, wrong shape); Svix is told to stop retrying."""


STATUSES: tuple[str, ...] = tuple(s.value for s in Status)
