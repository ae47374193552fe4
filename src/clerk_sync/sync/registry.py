"""Which event types clerk-sync acts on, and the shape of an action.

A handler is registered per event type with :func:`handles`. It is a *pure* decoder: it turns a
verified envelope into an :class:`Action` (raising :class:`~clerk_sync.errors.InvalidPayload`
when the data can never apply) without touching the database. The receiver then runs
``action.apply`` inside the delivery's transaction. Keeping the two apart is what lets a bad
payload be classified as permanent before any write, and a database error as transient.

Names are checked when a handler is registered (at import): a typo like ``user.update`` or a
second handler for one type fails loudly instead of silently never matching.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from sqlalchemy import Connection

from ..events import Envelope

EVENT_NAME = re.compile(r"[a-z][A-Za-z]*\.[a-z][A-Za-z]*")

UserDeletedHook = Callable[[Connection, str], None]
"""Cleanup run inside a user's delete transaction, before the row goes: ``fn(conn, user_id)``."""


@dataclass(frozen=True, slots=True)
class Applied:
    """What applying an action did: ``processed``, or ``stale`` with the reason it was not."""

    status: Literal["processed", "stale"]
    reason: str | None = None
    erase_payload: bool = False
    """True when the delivery's own body must not be kept (it describes a deleted user)."""


@dataclass(frozen=True, slots=True)
class ApplyContext:
    """What an action may need beyond its own data, supplied by the receiver."""

    now_ms: int
    seq: int
    """The delivery's row in the event log."""
    on_user_deleted: Sequence[UserDeletedHook] = field(default_factory=tuple)


class Action(Protocol):
    """A decided change, ready to run inside the delivery's transaction."""

    @property
    def subject_id(self) -> str: ...

    def apply(self, conn: Connection, ctx: ApplyContext) -> Applied: ...


Decoder = Callable[[Envelope], Action]
_DECODERS: dict[str, Decoder] = {}


def handles(*event_types: str) -> Callable[[Decoder], Decoder]:
    """Register the decorated decoder for ``event_types``."""

    def register(decoder: Decoder) -> Decoder:
        for name in event_types:  # all checked before any is registered
            if not EVENT_NAME.fullmatch(name):
                raise ValueError(f"{name!r} is not a Clerk event name like 'user.created'")
            if name in _DECODERS:
                raise ValueError(f"{name!r} already has a handler: {_DECODERS[name].__qualname__}")
        for name in event_types:
            _DECODERS[name] = decoder
        return decoder

    return register


def decoder_for(event_type: str) -> Decoder | None:
    return _DECODERS.get(event_type)


def handled_types() -> list[str]:
    return sorted(_DECODERS)
