"""Typed Clerk events: the envelope first, then ``data`` as the model for its kind."""

from .envelope import Envelope, decode_envelope, event_ms
from .status import OUTBOX_STATUSES, SOURCES, STATUSES, OutboxStatus, Source, Status

__all__ = [
    "OUTBOX_STATUSES",
    "SOURCES",
    "STATUSES",
    "Envelope",
    "OutboxStatus",
    "Source",
    "Status",
    "decode_envelope",
    "event_ms",
]
