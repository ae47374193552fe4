"""The live activity page: the newest deliveries, then every one committed after, streamed by
Server-Sent Events from the process's one :class:`~clerk_sync.observe.feed.Feed`.

The stream's ``delivery`` events carry the rows' HTML, newest first, which htmx puts at the top
of the list; ``reset`` (the browser fell behind) makes it load the list again. The page
itself, without JavaScript, is the newest rows and a link to load it again.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Sequence
from typing import Any

import anyio
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.requests import Request
from starlette.responses import Response

from ...observe.feed import Feed, Listener
from ...store import activity
from .base import Admin, base
from .session import Session

PING_SECONDS = 15
_BETWEEN_TAGS = re.compile(r">\s+<")
SHUTDOWN_GRACE_SECONDS = 2.0
PAGE_ROWS = 50
"""Rows the page (and a reload of its list) shows."""


class Live:
    def __init__(self, admin: Admin) -> None:
        self.admin = admin
        self._rows = admin.templates.get_template("_feed_rows.html")
        self.base = ""
        """Where the dashboard is mounted, for the links in streamed rows (learnt from the
        first request: one app is mounted in one place)."""
        self.feed: Feed[bytes] = Feed(admin.engine, admin.tables, self._encoded)

    def render_rows(self, rows: Sequence[dict[str, Any]]) -> str:
        """The rows' ``<li>``s (once per poll, for every listener)."""
        return self._rows.render(rows=rows, base=self.base)

    def _encoded(self, rows: Sequence[dict[str, Any]]) -> bytes:
        """A poll's rows as one SSE ``delivery`` event, encoded once for every listener (each
        stream then sends the same bytes)."""
        html = _BETWEEN_TAGS.sub("><", self.render_rows(rows)).strip()
        return ServerSentEvent(html, event="delivery", id=str(rows[0]["seq"])).encode()

    def _newest(self) -> list[dict[str, Any]]:
        with self.admin.engine.connect() as conn:
            return activity.rows_after(conn, self.admin.tables, 0, (), limit=PAGE_ROWS)

    async def page(self, request: Request, session: Session) -> Response:
        """``GET /admin/live``"""
        rows = await self.admin.db(self._newest)
        return self.admin.render(
            request,
            "live.html",
            session=session,
            title="Live activity",
            nav="live",
            rows=rows,
            after=rows[0]["seq"] if rows else 0,
        )

    async def rows(self, request: Request, session: Session) -> Response:
        """``GET /admin/live/rows``: the newest rows alone, for a browser catching up."""
        rows = await self.admin.db(self._newest)
        return self.admin.render(request, "_feed_rows.html", session=session, rows=rows)

    async def stream(self, request: Request, _session: Session) -> Response:
        """``GET /admin/live/stream?after=SEQ``: what is committed after ``SEQ``."""
        self.base = base(request)
        after = None
        # A browser reconnecting says what it saw last, which is newer than the page's ``after``.
        for raw in (
            request.query_params.get("after", ""),
            request.headers.get("last-event-id", ""),
        ):
            if raw.isascii() and raw.isdigit() and len(raw) <= 18:
                after = max(after or 0, int(raw))
        stopping = anyio.Event()
        return EventSourceResponse(
            self._events(after, stopping),
            ping=PING_SECONDS,
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
            shutdown_event=stopping,
            shutdown_grace_period=SHUTDOWN_GRACE_SECONDS,
        )

    async def _events(
        self, after: int | None, stopping: anyio.Event
    ) -> AsyncIterator[dict[str, str] | bytes]:
        """The stream's events; it ends (cleanly, so the browser reconnects elsewhere) when
        the server stops."""
        async with self.feed.listen(after) as listener:

            async def end_when_stopping() -> None:
                await stopping.wait()
                listener.close()

            ending = asyncio.create_task(end_when_stopping())
            try:
                async for event in self._updates(listener):
                    yield event
            finally:
                ending.cancel()

    async def _updates(self, listener: Listener[bytes]) -> AsyncIterator[dict[str, str] | bytes]:
        yield {"event": "ready", "data": str(listener.after)}
        while True:
            update = await listener.next()
            if update is None:
                return
            if update.lost:
                yield {"event": "reset", "data": "lost"}
                continue
            yield update.prepared
            if update.busy:
                yield {"event": "busy", "data": str(len(update.rows))}
