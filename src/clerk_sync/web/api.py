"""The read API (behind ``ADMIN_TOKEN``) and the health check.

Without a configured token every read route answers 404, as if it did not exist: an instance
nobody set a token for exposes nothing.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from ..errors import InvalidParameter, NotFound, StoreUnavailable, Unauthorized
from ..store import reads
from ..store.schema import EVENT_STATUSES
from .responses import JSONResponse, error_response

P = ParamSpec("P")
R = TypeVar("R")
MAX_LIMIT = 500
DEFAULT_LIMIT = 50


class ReadApi:
    def __init__(self, engine: Engine, admin_token: str) -> None:
        self.engine = engine
        self._token = admin_token.encode()

    def _authorize(self, request: Request) -> None:
        if not self._token:
            raise NotFound("Not found: the read API is off until ADMIN_TOKEN is set.")
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            token.strip().encode(), self._token
        ):
            raise Unauthorized("Send 'Authorization: Bearer <ADMIN_TOKEN>'.")

    async def user(self, request: Request) -> Response:
        self._authorize(request)
        user_id = request.path_params["user_id"]
        found = await _db(reads.get_user, self.engine, user_id)
        if found is None:
            raise NotFound(f"No user {user_id!r}: never synced, or deleted.")
        return JSONResponse(found)

    async def users(self, request: Request) -> Response:
        self._authorize(request)
        limit = _limit(request)
        cursor = request.query_params.get("cursor") or None
        rows, next_cursor = await _db(reads.list_users, self.engine, limit=limit, cursor=cursor)
        return JSONResponse({"data": rows, "next_cursor": next_cursor})

    async def events(self, request: Request) -> Response:
        self._authorize(request)
        params = request.query_params
        status = params.get("status") or None
        if status is not None and status not in EVENT_STATUSES:
            raise InvalidParameter(f"status must be one of {', '.join(EVENT_STATUSES)}.")
        raw_cursor = params.get("cursor") or None
        if raw_cursor is not None and not raw_cursor.isdigit():
            raise InvalidParameter("cursor must be the next_cursor of a previous page.")
        rows, next_cursor = await _db(
            reads.list_events,
            self.engine,
            limit=_limit(request),
            cursor=int(raw_cursor) if raw_cursor else None,
            status=status,
            event_type=params.get("type") or None,
        )
        return JSONResponse(
            {"data": rows, "next_cursor": str(next_cursor) if next_cursor is not None else None}
        )

    async def healthz(self, _request: Request) -> Response:
        try:
            await _db(reads.ping, self.engine)
        except StoreUnavailable as exc:
            return error_response(exc)
        return JSONResponse({"status": "ok"})


def _limit(request: Request) -> int:
    raw = request.query_params.get("limit")
    if raw is None or raw == "":
        return DEFAULT_LIMIT
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise InvalidParameter(f"limit must be a whole number from 1 to {MAX_LIMIT}.")
    return int(raw)


async def _db(fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    try:
        return await run_in_threadpool(fn, *args, **kwargs)
    except SQLAlchemyError as exc:
        raise StoreUnavailable(
            f"The database did not answer ({type(exc).__name__}); check DATABASE_URL and that "
            "the database is running."
        ) from None
