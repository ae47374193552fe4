"""The envelope every Clerk event shares, decoded from the raw (already verified) body.

The tag (``type``) is read first; ``data`` is kept as a plain dict and decoded as the model for
that type only by the handler that wants it, so unknown types cost nothing and are never
rejected for their shape.
"""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, ValidationError

from ..errors import InvalidPayload


class Envelope(BaseModel):
    """``{"type", "object", "timestamp", "instance_id", "data", ...}``; unknown keys ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    type: str
    data: dict[str, Any]
    object: str | None = None
    timestamp: int | None = None
    """Milliseconds since the epoch when the event occurred (Clerk sends ms)."""
    instance_id: str | None = None

    @property
    def subject_id(self) -> str | None:
        """The id of the object the event is about, when it has a usable one."""
        value = self.data.get("id")
        return value if isinstance(value, str) and value else None


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
