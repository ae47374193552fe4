"""Typed Clerk events: the envelope first, then ``data`` as the model for its kind."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .status import OUTBOX_STATUSES, PING_TYPE, SOURCES, STATUSES, OutboxStatus, Source, Status

if TYPE_CHECKING:
    from .envelope import Envelope, decode_envelope, event_ms

_ENVELOPE = ("Envelope", "decode_envelope", "event_ms")


def __getattr__(name: str) -> Any:
    """The envelope's names load pydantic: only when first asked for, so that the statuses
    (which the CLI's help texts list) cost nothing."""
    if name in _ENVELOPE:
        from . import envelope

        return getattr(envelope, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "OUTBOX_STATUSES",
    "PING_TYPE",
    "SOURCES",
    "STATUSES",
    "Envelope",
    "OutboxStatus",
    "Source",
    "Status",
    "decode_envelope",
    "event_ms",
]
