"""The read API (behind ``ADMIN_TOKEN``); the health check is :mod:`.health`.

Without a configured token every read route answers 404, as if it did not exist: an instance
nobody set a token for exposes nothing.

Object routes are one table (:data:`COLLECTIONS`, :data:`NESTED`) over the entity kinds, so a
new kind is a line here. Ids are read from the raw path, one URL-decoded segment each, so an id
with a ``/`` in it (``user%2Fx``) is still one id. Query parameters are checked strictly: an
unknown or repeated one, or a bad value (a number in anything but ASCII digits, out of range, a
NUL character, longer than :data:`MAX_VALUE_CHARS`), is 400 ``invalid_parameter`` naming it,
before any query runs; an id no database can hold (with a NUL) is simply not found. No input is
a 500 (``tests/web/test_api.py`` fuzzes every route).

One route writes: ``POST /api/events/{svix_id}/replay`` hands the event's stored body to the
server's committer, so a replay is applied by the writer exactly like a webhook delivery (and
answered once committed): a ``failed`` delivery is decoded again, any other is a duplicate.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Iterable
from typing import ParamSpec, TypeVar
from urllib.parse import unquote

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from ..entities import kind_named
from ..errors import InvalidParameter, NotFound, StoreUnavailable, Unauthorized
from ..events import OUTBOX_STATUSES, STATUSES, OutboxStatus, Source
from ..receiver import Delivery, Outcome
from ..retention import payload_gone
from ..store import Tables, reads
from ..store import outbox as outbox_rows
from .responses import JSONResponse

P = ParamSpec("P")
R = TypeVar("R")
MAX_LIMIT = 500
DEFAULT_LIMIT = 50
MAX_CURSOR_CHARS = 255
MAX_VALUE_CHARS = 1000
"""Longest value of a filter (``email``, ``query``, ``type``): longer matches nothing stored."""
MAX_LIMIT_DIGITS = 3
MAX_SEQ_DIGITS = 18
"""An event cursor is a ``seq``: at most 18 digits fit a signed 64-bit column."""
MAX_SVIX_ID_CHARS = 255
"""The log's ``svix_id`` column: a longer id was never recorded."""
Submit = Callable[[Delivery], Awaitable[Outcome]]
"""How the server applies a delivery: its committer's ``submit`` (through the writer)."""
Endpoint = Callable[[Request], Awaitable[Response]]

COLLECTIONS = {"users": "user", "organizations": "organization", "sessions": "session"}
"""``/api/<collection>/{id}`` → the kind it shows."""
LISTED = {"users", "organizations"}
"""Collections that can be listed whole (``GET /api/<collection>``)."""
NESTED = {
    ("users", "memberships"): ("organization_membership", "user_id"),
    ("users", "sessions"): ("session", "user_id"),
    ("organizations", "memberships"): ("organization_membership", "organization_id"),
    ("organizations", "invitations"): ("organization_invitation", "organization_id"),
}
"""``/api/<collection>/{id}/<sub>`` → (kind listed, its column equal to the id)."""
_LIST_PARAMS = {"limit", "cursor"}


class ReadApi:
    def __init__(self, engine: Engine, admin_token: str, tables: Tables) -> None:
        self.engine = engine
        self.tables = tables
        self._token = admin_token.encode()

    def _authorize(self, request: Request) -> None:
        if not self._token:
            raise NotFound("Not found: the read API is off until ADMIN_TOKEN is set.")
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            token.strip().encode(), self._token
        ):
            raise Unauthorized("Send 'Authorization: Bearer <ADMIN_TOKEN>'.")

    async def objects(self, request: Request) -> Response:
        """Every ``/api/<collection>…`` route but the event log."""
        self._authorize(request)
        segments = _segments(request)
        collection = segments[0]
        if collection not in COLLECTIONS or len(segments) > 3:
            raise NotFound("Not found: no such route in the read API (see the README).")
        kind = kind_named(COLLECTIONS[collection])
        if len(segments) == 1:
            if collection not in LISTED:
                raise NotFound(f"Not found: /api/{collection} is not listed; ask for one by id.")
            return await self._list(request, collection)
        object_id = segments[1]
        if "\x00" in object_id:  # no database holds it, and PostgreSQL refuses to compare it
            raise NotFound(f"No {kind.name} {object_id!r}: never synced, or deleted.")
        if len(segments) == 2:
            _allow(request, ())
            found = await _db(
                reads.get_row, self.engine, self.tables, kind.name, kind.read_fields(), object_id
            )
            if found is None:
                raise NotFound(f"No {kind.name} {object_id!r}: never synced, or deleted.")
            return JSONResponse(found)
        nested = NESTED.get((collection, segments[2]))
        if nested is None:
            raise NotFound("Not found: no such route in the read API (see the README).")
        child = kind_named(nested[0])
        limit, cursor = _paging(request, ())
        rows, next_cursor = await _db(
            reads.list_rows,
            self.engine,
            self.tables,
            child.name,
            child.read_fields(),
            limit=limit,
            cursor=cursor,
            where={nested[1]: object_id},
        )
        if not rows and not cursor:
            known = await _db(reads.exists, self.engine, self.tables, kind.name, object_id)
            if not known:
                raise NotFound(f"No {kind.name} {object_id!r}: never synced, or deleted.")
        return JSONResponse({"data": rows, "next_cursor": next_cursor})

    async def _list(self, request: Request, collection: str) -> Response:
        kind = kind_named(COLLECTIONS[collection])
        filters = ("email", "query") if collection == "users" else ()
        limit, cursor = _paging(request, filters)
        params = request.query_params
        where = {"email": params["email"]} if params.get("email") else None
        query = params.get("query") or None
        rows, next_cursor = await _db(
            reads.list_rows,
            self.engine,
            self.tables,
            kind.name,
            kind.read_fields(),
            limit=limit,
            cursor=cursor,
            where=where,
            search=(kind.searched, query) if query else None,
        )
        return JSONResponse({"data": rows, "next_cursor": next_cursor})

    async def events(self, request: Request) -> Response:
        self._authorize(request)
        limit, _ = _paging(request, ("status", "type"), cursor=False)
        params = request.query_params
        status = params.get("status") or None
        if status is not None and status not in STATUSES:
            raise InvalidParameter(f"status must be one of {', '.join(STATUSES)}.")
        raw_cursor = params.get("cursor") or None
        if raw_cursor is not None and not (
            raw_cursor.isascii() and raw_cursor.isdigit() and len(raw_cursor) <= MAX_SEQ_DIGITS
        ):
            raise InvalidParameter("cursor must be the next_cursor of a previous page.")
        rows, next_cursor = await _db(
            reads.list_events,
            self.engine,
            self.tables,
            limit=limit,
            cursor=int(raw_cursor) if raw_cursor else None,
            status=status,
            event_type=params.get("type") or None,
        )
        return JSONResponse(
            {"data": rows, "next_cursor": str(next_cursor) if next_cursor is not None else None}
        )

    def replayer(self, submit: Submit) -> Endpoint:
        """``POST /api/events/{svix_id}/replay``, applied through ``submit`` — the committer —
        so a replay goes through the writer like a webhook delivery."""

        async def replay(request: Request) -> Response:
            return await self._replay(request, submit)

        return replay

    async def _replay(self, request: Request, submit: Submit) -> Response:
        """Run one event's stored body through the receiver again, as ``events replay`` does:
        a ``failed`` delivery is decoded again, any other is answered as a duplicate. 404 for
        an unknown id (or one no log can hold), 409 ``payload_gone`` when its body was erased
        or pruned."""
        self._authorize(request)
        segments = _segments(request)
        if len(segments) != 3 or segments[0] != "events" or segments[2] != "replay":
            raise NotFound("Not found: no such route in the read API (see the README).")
        _allow(request, ())
        svix_id = segments[1]
        if not svix_id or "\x00" in svix_id or len(svix_id) > MAX_SVIX_ID_CHARS:
            shown = svix_id if len(svix_id) <= 40 else svix_id[:40] + "…"
            raise NotFound(
                f"No event with svix id {shown!r}: svix ids hold no NUL and are at most "
                f"{MAX_SVIX_ID_CHARS} characters."
            )
        event = await _db(reads.get_event, self.engine, self.tables, svix_id)
        if event is None:
            raise NotFound(f"No event with svix id {svix_id!r} in the log.")
        if event["payload"] is None:
            raise payload_gone(svix_id, event["payload_gone"])
        outcome = await submit(
            Delivery(svix_id, event["payload"].encode("utf-8"), source=Source(event["source"]))
        )
        body: dict[str, object] = {
            "svix_id": outcome.svix_id,
            "status": outcome.status.value,
            "duplicate": outcome.duplicate,
            "type": outcome.event_type,
            "subject_id": outcome.subject_id,
        }
        if outcome.reason:
            body["reason"] = outcome.reason
        return JSONResponse(body)

    async def outbox(self, request: Request) -> Response:
        """``GET /api/outbox?status=&limit=&cursor=``: newest rows first, with counts."""
        self._authorize(request)
        limit, _ = _paging(request, ("status",), cursor=False)
        params = request.query_params
        status = params.get("status") or None
        if status is not None and status not in OUTBOX_STATUSES:
            raise InvalidParameter(f"status must be one of {', '.join(OUTBOX_STATUSES)}.")
        raw_cursor = params.get("cursor") or None
        if raw_cursor is not None and not (
            raw_cursor.isascii() and raw_cursor.isdigit() and len(raw_cursor) <= MAX_SEQ_DIGITS
        ):
            raise InvalidParameter("cursor must be the next_cursor of a previous page.")
        rows, counts = await _db(
            self._outbox_page,
            OutboxStatus(status) if status else None,
            limit,
            int(raw_cursor) if raw_cursor else None,
        )
        next_cursor = str(rows[-1].id) if len(rows) == limit else None
        return JSONResponse(
            {"data": [r.as_json() for r in rows], "counts": counts, "next_cursor": next_cursor}
        )

    def _outbox_page(
        self, status: OutboxStatus | None, limit: int, before: int | None
    ) -> tuple[list[outbox_rows.OutboxRow], dict[str, int]]:
        with self.engine.connect() as conn:
            rows = outbox_rows.list_rows(
                conn, self.tables, status=status, limit=limit, before=before
            )
            return rows, outbox_rows.counts(conn, self.tables)


def _segments(request: Request) -> list[str]:
    """The path after ``/api/``, split on ``/`` *before* decoding each segment."""
    raw = request.scope.get("raw_path") or request.url.path.encode()
    path = raw.decode("latin-1").split("?", 1)[0]
    root = request.scope.get("root_path", "")
    rest = path[len(root) :] if root and path.startswith(root) else path
    parts = rest.removeprefix("/api/").split("/")
    if parts and parts[-1] == "":
        parts.pop()
    return [unquote(p) for p in parts] or [""]


def _allow(request: Request, names: Iterable[str]) -> None:
    """Only the route's parameters, each at most once, none holding a value no query can use."""
    allowed = set(names)
    seen: set[str] = set()
    for name, value in request.query_params.multi_items():
        if name not in allowed:
            known = ", ".join(sorted(allowed)) or "none"
            raise InvalidParameter(f"Unknown query parameter {name!r} (this route takes {known}).")
        if name in seen:
            raise InvalidParameter(f"Query parameter {name!r} is given more than once.")
        seen.add(name)
        if "\x00" in value:
            raise InvalidParameter(f"Query parameter {name!r} holds a NUL character.")
        if len(value) > MAX_VALUE_CHARS:
            raise InvalidParameter(
                f"Query parameter {name!r} is longer than {MAX_VALUE_CHARS} characters."
            )


def _paging(
    request: Request, filters: Iterable[str], *, cursor: bool = True
) -> tuple[int, str | None]:
    """Check the query string (only known parameters) and return ``(limit, cursor)``."""
    _allow(request, {*_LIST_PARAMS, *filters})
    raw = request.query_params.get("limit")
    limit = DEFAULT_LIMIT
    if raw:
        if not (
            len(raw) <= MAX_LIMIT_DIGITS
            and raw.isascii()
            and raw.isdigit()
            and 1 <= int(raw) <= MAX_LIMIT
        ):
            raise InvalidParameter(f"limit must be a whole number from 1 to {MAX_LIMIT}.")
        limit = int(raw)
    value = request.query_params.get("cursor") or None
    if cursor and value is not None and len(value) > MAX_CURSOR_CHARS:
        raise InvalidParameter("cursor must be the next_cursor of a previous page.")
    return limit, value


async def _db(fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    try:
        return await run_in_threadpool(fn, *args, **kwargs)
    except SQLAlchemyError as exc:
        raise StoreUnavailable(
            f"The database did not answer ({type(exc).__name__}); check DATABASE_URL and that "
            "the database is running."
        ) from None


__all__ = ["COLLECTIONS", "NESTED", "ReadApi"]
