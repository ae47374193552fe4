"""What about a delivery's content can never be stored, decided from its bytes before any I/O.

The receiver records such a delivery ``failed`` with the reason these functions give, so it is
that delivery's alone (see :mod:`clerk_sync.receiver` for the transient/permanent rule).
"""

from __future__ import annotations

from typing import Any

import orjson


def log_text(body: bytes) -> str:
    """The body as the log's text column holds it (a raw NUL only occurs in a body that is not
    JSON, and PostgreSQL cannot store it)."""
    text = body.decode("utf-8", errors="replace")
    return text.replace("\x00", "\ufffd") if "\x00" in text else text


MAX_JSON_DEPTH = 254
"""Deepest nesting of objects and arrays in ``data`` that can be stored: orjson, which writes
the JSON columns, refuses to encode deeper."""


def unstorable(body: bytes, data: dict[str, Any]) -> str | None:
    """Why ``data`` can never be stored, if it cannot: nested deeper than the JSON encoder
    goes, or holding a NUL character (PostgreSQL stores none, in text or in ``jsonb``). Both
    are checked on the bytes first, so an ordinary event costs two ``count`` and one ``in``."""
    if body.count(b"{") + body.count(b"[") > MAX_JSON_DEPTH:
        try:
            orjson.dumps(data)
        except orjson.JSONEncodeError:
            return (
                f"The event's data nests objects or arrays more than {MAX_JSON_DEPTH} levels "
                "deep, which clerk-sync cannot store; it can never be applied."
            )
    if b"\\u0000" in body and holds_nul(data):
        return (
            "The event holds a NUL character (\\u0000), which PostgreSQL cannot store; "
            "it can never be applied."
        )
    return None


def holds_nul(value: Any) -> bool:
    """Whether any key or string inside ``value`` holds NUL (a ``\\\\u0000`` in the body may be
    an escaped backslash instead). Iterative: decoded JSON may be deeper than Python recurses."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False
