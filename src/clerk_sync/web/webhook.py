"""``POST /api/webhooks/clerk``: guard, verify, hand to the receiver, answer after the commit.

The route stays thin: cheap rejections first (size announced, headers, timestamp window), then
the body is read up to the limit, the signature checked over those exact bytes, and the verified
delivery handed to the group committer. Only an outcome that has committed is answered 2xx.
"""

from __future__ import annotations

import logging
import time

from starlette.requests import Request
from starlette.responses import Response

from ..committer import GroupCommitter
from ..errors import ClerkSyncError, PayloadTooLarge
from ..receiver import Delivery, Outcome
from ..verify import Verifier
from .responses import ABORT_HEADERS, JSONResponse, error_response

log = logging.getLogger("clerk_sync.delivery")


class WebhookEndpoint:
    """The webhook route as a callable holding its collaborators."""

    def __init__(self, verifier: Verifier, committer: GroupCommitter, max_body: int) -> None:
        self.verifier = verifier
        self.committer = committer
        self.max_body = max_body

    async def handle(self, request: Request) -> Response:
        started = time.perf_counter()
        svix_id = request.headers.get("svix-id") or request.headers.get("webhook-id") or "-"
        try:
            outcome = await self._receive(request)
        except ClerkSyncError as exc:
            _log_line(svix_id, None, None, f"rejected:{exc.code}", started, exc.detail)
            return error_response(exc)
        _log_line(
            outcome.svix_id,
            outcome.event_type,
            outcome.subject_id,
            outcome.status + (" (duplicate)" if outcome.duplicate else ""),
            started,
            outcome.reason if outcome.status in ("failed", "stale") else None,
        )
        return _answer(outcome)

    async def _receive(self, request: Request) -> Outcome:
        announced = request.headers.get("content-length")
        if announced and announced.isdigit() and int(announced) > self.max_body:
            raise _too_large(self.max_body)
        signed = self.verifier.check_headers(request.headers)
        body = await _read_limited(request, self.max_body)
        self.verifier.verify(signed, body)
        return await self.committer.submit(
            Delivery(signed.msg_id, body, received_at=int(time.time() * 1000))
        )


def _answer(outcome: Outcome) -> Response:
    body = {
        "svix_id": outcome.svix_id,
        "status": outcome.status,
        "duplicate": outcome.duplicate,
        "type": outcome.event_type,
        "subject_id": outcome.subject_id,
    }
    if outcome.accepted:
        if outcome.reason:
            body["reason"] = outcome.reason
        return JSONResponse(body, status_code=200)
    body = {"error": outcome.error_code or "payload_invalid", "detail": outcome.reason, **body}
    return JSONResponse(body, status_code=422, headers=ABORT_HEADERS)


async def _read_limited(request: Request, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"The body is larger than MAX_BODY_BYTES ({limit} bytes); Clerk events are a few KB, "
        "so check what is being sent, or raise the limit."
    )


def _log_line(
    svix_id: str,
    event_type: str | None,
    subject: str | None,
    outcome: str,
    started: float,
    reason: str | None,
) -> None:
    ms = (time.perf_counter() - started) * 1000
    level = logging.WARNING if outcome.startswith(("rejected", "failed")) else logging.INFO
    if log.isEnabledFor(level):
        tail = f" — {reason}" if reason else ""
        fields = {
            "svix_id": svix_id,
            "type": event_type,
            "subject_id": subject,
            "outcome": outcome,
            "ms": round(ms, 2),
            "reason": reason,
        }
        log.log(
            level,
            "%s %s %s %s %.1fms%s",
            svix_id,
            event_type or "-",
            subject or "-",
            outcome,
            ms,
            tail,
            extra={"delivery": fields},
        )
