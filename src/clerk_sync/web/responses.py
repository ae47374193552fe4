"""JSON responses: the plain ASGI ones of the hot path, and Starlette's for the read API."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from ..errors import ClerkSyncError, RateLimited, Refused

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

log = logging.getLogger("clerk_sync.guard")
_REFUSAL_LOG_EVERY = 10.0
_last_logged: dict[str, float] = {}


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def error_response(exc: ClerkSyncError) -> Response:
    return JSONResponse(exc.to_dict(), status_code=exc.http_status)


async def handle_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ClerkSyncError)
    return error_response(exc)


async def send_json(
    send: Send, status: int, content: Any, extra_headers: dict[str, str] | None = None
) -> None:
    body = orjson.dumps(content)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if extra_headers:
        headers += [(k.encode(), v.encode()) for k, v in extra_headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def refuse(send: Send, exc: Refused) -> None:
    """Answer a refusal (403/429); logged once per reason and client every 10 s, so a flood
    does not flood the log too."""
    now = time.monotonic()
    if now - _last_logged.get(exc.detail, 0.0) > _REFUSAL_LOG_EVERY:
        if len(_last_logged) > 10_000:
            _last_logged.clear()
        _last_logged[exc.detail] = now
        log.warning("refused %s: %s", exc.code, exc.detail)
    extra = {"retry-after": str(exc.retry_after)} if isinstance(exc, RateLimited) else None
    await send_json(send, exc.http_status, exc.to_dict(), extra)
