"""The envelope every Clerk event shares, decoded from the raw (already verified) body.

The tag (``type``) is read first; ``data`` is kept as a plain dict and decoded as the model for
that type only by the handler that wants it, so unknown types cost nothing and are never
rejected for their shape.
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import InvalidPayload

MAX_MS = 2**60
"""Largest millisecond value accepted anywhere (about 36 million years): room for the ordering
key (:func:`clerk_sync.entities.kind.version`) inside a signed 64-bit column."""
Millis = Annotated[int, Field(ge=0, lt=MAX_MS)]
_SECONDS_BELOW = 10**12
"""Clerk documents ``timestamp`` in milliseconds, but its own spec examples are seconds: a value
below 10^12 (before 2001 in ms, after 33658 in s) is read as seconds."""


class Envelope(BaseModel):
    """``{"type", "object", "timestamp", "instance_id", "data", ...}``; unknown keys ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    type: str
    data: dict[str, Any]
    object: str | None = None
    timestamp: Millis | None = None
    """When the event occurred, as sent: milliseconds (or, from some senders, seconds)."""
    instance_id: str | None = None

    @property
    def subject_id(self) -> str | None:
        """The id of the object the event is about, when it has a usable one."""
        value = self.data.get("id")
        return value if isinstance(value, str) and value else None

    @property
    def timestamp_ms(self) -> int | None:
        """``timestamp`` in milliseconds whichever unit it was sent in."""
        return event_ms(self.timestamp)

    @property
    def named_user_id(self) -> str | None:
        """The user whose personal data this body holds (the user itself, a session's or a
        membership's user, the recipient of an e-mail or SMS, an organization's creator or an
        invitation's inviter — whose IP is in ``event_attributes``): erased with that user."""
        data = self.data
        if data.get("object") == "user" or self.type.startswith("user."):
            return self.subject_id
        for candidate in (
            data.get("user_id"),
            _get(data.get("public_user_data"), "user_id"),
            _get(data.get("user"), "id"),
            data.get("created_by"),
            data.get("inviter_id"),
        ):
            if isinstance(candidate, str) and candidate:
                return candidate
        return None


def _get(value: Any, key: str) -> Any:
    return value.get(key) if isinstance(value, dict) else None


def event_ms(value: int | None) -> int | None:
    """A Clerk time in milliseconds: values below 10^12 were sent in seconds."""
    if value is None:
        return None
    return value * 1000 if value < _SECONDS_BELOW else value


def decode_envelope(body: bytes) -> Envelope:
    """Parse the body as an event envelope or raise :class:`InvalidPayload` saying why."""
    try:
        raw = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidPayload(
            f"The body is not JSON ({exc}); it can never be applied.", code="payload_not_json"
        ) from None
    if not isinstance(raw, dict):
        raise InvalidPayload(
            f"The body is JSON but not an object (got {type(raw).__name__}); "
            'a Clerk event is {"type": ..., "data": {...}}.'
        )
    try:
        return Envelope.model_validate(raw)
    except ValidationError as exc:
        raise InvalidPayload(describe(exc, prefix="")) from None


def describe(exc: ValidationError, *, prefix: str) -> str:
    """One sentence naming the first bad field, e.g. ``data.updated_at: Field required``."""
    first = exc.errors()[0]
    where = ".".join(str(p) for p in (prefix, *first["loc"]) if p != "")
    more = exc.error_count() - 1
    tail = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    return f"The event does not have the shape Clerk sends: {where}: {first['msg']}{tail}."
