"""JSON responses and the generic rendering of :class:`ClerkSyncError`."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from ..errors import ClerkSyncError


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def error_response(exc: ClerkSyncError) -> Response:
    return JSONResponse(exc.to_dict(), status_code=exc.http_status)


async def handle_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ClerkSyncError)
    return error_response(exc)
