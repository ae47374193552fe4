"""Typed Clerk events: the envelope first, then ``data`` as the model for its kind."""

from .envelope import Envelope, decode_envelope, event_ms
from .status import STATUSES, Status

__all__ = ["STATUSES", "Envelope", "Status", "decode_envelope", "event_ms"]
