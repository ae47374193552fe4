"""Typed Clerk events: the envelope first, then ``data`` as the model for its kind."""

from .envelope import Envelope, decode_envelope, event_ms
from .status import OUTBOX_STATUSES, STATUSES, OutboxStatus, Status

__all__ = [
    "OUTBOX_STATUSES",
    "STATUSES",
    "Envelope",
    "OutboxStatus",
    "Status",
    "decode_envelope",
    "event_ms",
]
