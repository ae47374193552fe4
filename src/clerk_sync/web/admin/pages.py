"""The overview, the event log (with Replay) and the outbox (with Retry)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from ...errors import ClerkSyncError
from ...events import OUTBOX_STATUSES, STATUSES, OutboxStatus, Source, Status
from ...notify.alerts import format_duration
from ...receiver import Delivery
from ...store import activity, reads
from ...store import outbox as outbox_rows
from ..api import MAX_SVIX_ID_CHARS
from . import present
from .base import Admin, base, form
from .session import Session

PAGE = 50
HOURS = 24
DAYS = 30
MAX_FILTER_CHARS = 255
_REPLAYED = {s.value for s in Status}


def _ms(text: str) -> int | None:
    """A ``datetime-local`` value (``2026-12-02T06:10``), taken as UTC, in ms."""
    for layout in ("%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d"):
        try:
            moment = datetime.strptime(text, layout).replace(tzinfo=UTC)
        except ValueError:
            continue
        return int(moment.timestamp() * 1000)
    return None


class Pages:
    def __init__(self, admin: Admin) -> None:
        self.admin = admin

    # -- overview ------------------------------------------------------------------------------

    async def overview(self, request: Request, session: Session) -> Response:
        now_ms = int(time.time() * 1000)
        figures = await self.admin.db(self._overview, now_ms)
        newest = figures["last_delivery"]
        return self.admin.render(
            request,
            "overview.html",
            session=session,
            title="Overview",
            nav="overview",
            quiet=newest is None or now_ms - newest > self.admin.quiet_after_ms,
            quiet_after=format_duration(self.admin.quiet_after_ms),
            ago=present.ago(newest, now_ms),
            **figures,
        )

    def _overview(self, now_ms: int) -> dict[str, Any]:
        t = self.admin.tables
        hour_now = now_ms // activity.HOUR_MS
        day_now = now_ms // activity.DAY_MS
        with self.admin.engine.connect() as conn:
            counts = {
                "users": activity.count(conn, t.entity("user")),
                "organizations": activity.count(conn, t.entity("organization")),
                "memberships": activity.count(conn, t.entity("organization_membership")),
                "active sessions": activity.count(conn, t.entity("session"), status="active"),
            }
            by_hour = activity.deliveries_by_hour(
                conn, t, (hour_now - HOURS + 1) * activity.HOUR_MS
            )
            signups = activity.created_by_day(
                conn, t.entity("user"), (day_now - DAYS + 1) * activity.DAY_MS
            )
            failed = activity.failed_deliveries(conn, t)
            dead = activity.dead_outbox_rows(conn, t)
            newest = activity.newest_delivery(conn, t)
        by_status = {s: 0 for s in STATUSES}
        for (_hour, status), n in by_hour.items():
            by_status[status] = by_status.get(status, 0) + n
        hourly = present.chart(
            [
                (
                    f"{h % 24:02d}h",
                    present.when(h * activity.HOUR_MS)[:-7] + " UTC",
                    [
                        (
                            sum(n for (hh, s), n in by_hour.items() if hh == h and s != "failed"),
                            "ok",
                        ),
                        (by_hour.get((h, "failed"), 0), "bad"),
                    ],
                )
                for h in range(hour_now - HOURS + 1, hour_now + 1)
            ],
            every=3,
        )
        daily = present.chart(
            [
                (
                    present.when(d * activity.DAY_MS)[5:10],
                    present.when(d * activity.DAY_MS)[:10],
                    [(signups.get(d, 0), "ok")],
                )
                for d in range(day_now - DAYS + 1, day_now + 1)
            ],
            every=5,
        )
        return {
            "counts": counts,
            "by_status": by_status,
            "hourly": hourly,
            "daily": daily,
            "failed": failed,
            "dead": dead,
            "last_delivery": newest,
        }

    # -- events --------------------------------------------------------------------------------

    async def events(self, request: Request, session: Session) -> Response:
        """``GET /admin/events?status=&type=&subject=&since=&until=&cursor=``; ``type`` is an
        exact type or a prefix ending in ``*`` (``user.*``); times are UTC."""
        params = request.query_params
        filters = {k: params.get(k, "").strip()[:MAX_FILTER_CHARS] for k in _EVENT_FILTERS}
        problems: list[str] = []
        status = filters["status"] or None
        if status is not None and status not in STATUSES:
            problems.append(f"status must be one of {', '.join(STATUSES)}.")
            status = None
        since = until = None
        for name in ("since", "until"):
            if filters[name]:
                value = _ms(filters[name])
                if value is None:
                    problems.append(f"{name} must be a date and time such as 2026-12-01T09:30.")
                elif name == "since":
                    since = value
                else:
                    until = value
        cursor_text = params.get("cursor", "")
        cursor = int(cursor_text) if cursor_text.isascii() and cursor_text.isdigit() else None
        if cursor is not None and cursor >= 2**63:
            cursor = None
        kind = filters["type"]
        exact, prefix = (None, kind[:-1]) if kind.endswith("*") else (kind or None, None)
        rows: list[dict[str, Any]] = []
        next_cursor = None
        if not problems:
            rows, next_cursor = await self.admin.db(
                reads.list_events,
                self.admin.engine,
                self.admin.tables,
                limit=PAGE,
                cursor=cursor,
                status=status,
                event_type=exact,
                type_prefix=prefix,
                subject_id=filters["subject"] or None,
                since=since,
                until=until,
            )
        kept = {k: v for k, v in filters.items() if v}
        return self.admin.render(
            request,
            "events.html",
            400 if problems else 200,
            session=session,
            title="Events",
            nav="events",
            rows=rows,
            filters=filters,
            statuses=STATUSES,
            problems=problems,
            next_page=(urlencode({**kept, "cursor": next_cursor}) if next_cursor else None),
            paged=cursor is not None,
            filtered=urlencode(kept),
        )

    async def event(self, request: Request, session: Session) -> Response:
        """``GET /admin/events/{svix_id}``: the delivery, its body as the logs show it, what it
        changed, and Replay while the body is stored."""
        svix_id = request.path_params["svix_id"]
        found = await self.admin.db(self._event, svix_id) if _valid_id(svix_id) else None
        if found is None:
            return self._no_event(request, session, svix_id)
        replayed = request.query_params.get("replayed")
        return self.admin.render(
            request,
            "event.html",
            session=session,
            title="Event",
            nav="events",
            event=found,
            replayed=replayed if replayed in _REPLAYED else None,
            duplicate=request.query_params.get("duplicate") == "1",
            pretty=present.pretty(found["payload"]) if found["payload"] is not None else None,
        )

    def _event(self, svix_id: str) -> dict[str, Any] | None:
        event = reads.get_event(self.admin.engine, self.admin.tables, svix_id)
        if event is None:
            return None
        changes: list[present.Change] = []
        if event["payload"] is not None and event["status"] == Status.PROCESSED:
            with self.admin.engine.connect() as conn:
                before = activity.previous_body(conn, self.admin.tables, event)
            if before is not None:
                changes = present.changes(present.body(before), present.body(event["payload"]))
        return {**event, "changes": changes}

    def _no_event(self, request: Request, session: Session, svix_id: str) -> Response:
        shown = svix_id if len(svix_id) <= 60 else svix_id[:60] + "…"
        return self.admin.render(
            request,
            "problem.html",
            404,
            session=session,
            title="Not found",
            message=f"No event with svix id {shown!r} in the log.",
        )

    async def replay(self, request: Request, session: Session) -> Response:
        """``POST /admin/events/{svix_id}/replay``: the stored body through the server's
        writer, like a delivery; then back to the event's page, which says what became of it."""
        svix_id = request.path_params["svix_id"]
        event = (
            await self.admin.db(reads.get_event, self.admin.engine, self.admin.tables, svix_id)
            if _valid_id(svix_id)
            else None
        )
        if event is None:
            return self._no_event(request, session, svix_id)
        if event["payload"] is None:
            why = (
                "erased when its user was deleted"
                if event["payload_gone"] == reads.ERASED
                else "pruned after EVENT_RETENTION_DAYS"
            )
            return self.admin.render(
                request,
                "problem.html",
                409,
                session=session,
                title="Cannot replay",
                message=f"The body of {svix_id} is no longer stored ({why}), so it cannot be "
                "replayed here. Replay it from Clerk Dashboard → Webhooks → Message Attempts.",
            )
        try:
            outcome = await self.admin.submit(
                Delivery(svix_id, event["payload"].encode("utf-8"), source=Source(event["source"]))
            )
        except ClerkSyncError as exc:
            return self.admin.render(
                request,
                "problem.html",
                exc.http_status,
                session=session,
                title="Replay failed",
                message=exc.detail,
            )
        query = {"replayed": outcome.status.value}
        if outcome.duplicate:
            query["duplicate"] = "1"
        return RedirectResponse(
            f"{base(request)}/events/{quote(svix_id, safe='')}?{urlencode(query)}", status_code=303
        )

    # -- outbox --------------------------------------------------------------------------------

    async def outbox(self, request: Request, session: Session) -> Response:
        """``GET /admin/outbox?status=`` (dead by default), with a Retry per dead row."""
        status = request.query_params.get("status", OutboxStatus.DEAD.value)
        if status not in OUTBOX_STATUSES:
            status = OutboxStatus.DEAD.value
        rows, counts = await self.admin.db(self._outbox, OutboxStatus(status))
        retried = request.query_params.get("retried", "")
        return self.admin.render(
            request,
            "outbox.html",
            session=session,
            title="Outbox",
            nav="outbox",
            rows=rows,
            counts=counts,
            shown=status,
            statuses=OUTBOX_STATUSES,
            retried=int(retried) if retried.isascii() and retried.isdigit() else None,
        )

    def _outbox(self, status: OutboxStatus) -> tuple[list[outbox_rows.OutboxRow], dict[str, int]]:
        with self.admin.engine.connect() as conn:
            rows = outbox_rows.list_rows(conn, self.admin.tables, status=status, limit=PAGE * 2)
            return rows, outbox_rows.counts(conn, self.admin.tables)

    async def retry(self, request: Request, session: Session) -> Response:
        """``POST /admin/outbox/retry``: ``id`` (one row) or ``all=dead``."""
        fields = await form(request)
        raw = fields.get("id", "")
        ids = [int(raw)] if raw.isascii() and raw.isdigit() and len(raw) <= 18 else []
        every_dead = fields.get("all") == "dead"
        changed = await self.admin.db(self._retry, ids, every_dead)
        return RedirectResponse(f"{base(request)}/outbox?retried={changed}", status_code=303)

    def _retry(self, ids: list[int], every_dead: bool) -> int:
        if not ids and not every_dead:
            return 0
        with self.admin.engine.begin() as conn:
            return len(
                outbox_rows.retry(
                    conn,
                    self.admin.tables,
                    ids=ids,
                    dead=every_dead,
                    now_ms=int(time.time() * 1000),
                )
            )


_EVENT_FILTERS = ("status", "type", "subject", "since", "until")


def _valid_id(svix_id: str) -> bool:
    """An id the log could hold (no NUL, which PostgreSQL refuses to compare, and not longer
    than its column)."""
    return bool(svix_id) and "\x00" not in svix_id and len(svix_id) <= MAX_SVIX_ID_CHARS
