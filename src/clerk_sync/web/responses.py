"""JSON responses and the generic rendering of :class:`ClerkSyncError`."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from ..errors import ClerkSyncError, InvalidPayload

ABORT_HEADERS = {"webhook-delivery": "abort-message"}
"""Tells Svix to stop retrying a message that can never succeed."""


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def error_response(exc: ClerkSyncError, extra_headers: dict[str, str] | None = None) -> Response:
    headers = dict(ABORT_HEADERS) if isinstance(exc, InvalidPayload) else {}
    if extra_headers:
        headers.update(extra_headers)
    return JSONResponse(exc.to_dict(), status_code=exc.http_status, headers=headers)


async def handle_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ClerkSyncError)
    return error_response(exc)
