"""Delivery statuses: what became of a delivery, spelled once."""

from __future__ import annotations

from enum import StrEnum

PING_TYPE = "clerkSync.ping"
"""The type of ``clerk-sync doctor``'s signed probe: recorded like any delivery, but not a sign
that Clerk delivers (the ``no_deliveries`` alert, the last-delivery figures leave it out)."""


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


class OutboxStatus(StrEnum):
    """The status of an outbox row: one after-commit handler's run for one delivery."""

    PENDING = "pending"
    """Not yet run successfully: waiting for its turn, its retry time, or a worker's claim."""
    DONE = "done"
    """Ran to the end (or was skipped on purpose: see its ``note``)."""
    DEAD = "dead"
    """Failed ``OUTBOX_MAX_ATTEMPTS`` times; kept with its last error until retried."""


OUTBOX_STATUSES: tuple[str, ...] = tuple(s.value for s in OutboxStatus)


class Source(StrEnum):
    """Where a delivery in the event log came from."""

    WEBHOOK = "webhook"
    """Signed by Svix and POSTed to the webhook endpoint (or replayed from the log)."""
    BACKFILL = "backfill"
    """Fetched from Clerk's Backend API by ``backfill``, ``reconcile`` or ``ensure_user``."""


SOURCES: tuple[str, ...] = tuple(s.value for s in Source)
