"""``POST /api/webhooks/clerk``: guard, verify, hand to the receiver, answer after the commit.

The route stays thin: cheap rejections first (size announced, headers, timestamp window), then
the body is read up to the limit, the signature checked over those exact bytes, and the verified
delivery handed to the group committer. Only an outcome that has committed is answered 2xx.

It is a plain ASGI handler rather than a Starlette endpoint: this is the one hot path, and
Starlette's request object, routing and middleware cost as much as verifying the signature
(``bench/README.md``). The rest of the app stays Starlette.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from ..committer import Committer
from ..errors import ClerkSyncError, InvalidPayload, PayloadTooLarge, Refused, SignatureMismatch
from ..observe.metrics import Metrics
from ..receiver import Delivery, Outcome
from ..verify import Verifier
from .responses import Receive, Scope, Send, refuse, send_json

log = logging.getLogger("clerk_sync.delivery")
Gate = Callable[[], Awaitable[Refused | None]]
"""Asked before a failing request is refused: None to refuse it as usual, or the refusal to
send instead."""


def failed_verification(status: int) -> bool:
    """Whether a webhook answer means the request was refused before it verified: a 4xx
    other than 422 (a verified delivery whose content can never be applied)."""
    return 400 <= status < 500 and status != 422


ABORT_HEADERS = {"webhook-delivery": "abort-message"}
"""Tells Svix to stop retrying a message that can never succeed."""
_WANTED = frozenset(
    {
        b"svix-id",
        b"svix-timestamp",
        b"svix-signature",
        b"webhook-id",
        b"webhook-timestamp",
        b"webhook-signature",
        b"content-length",
    }
)


class ClientGone(Exception):
    """The client disconnected before the body was read: there is no one to answer."""


class FailureLog(Protocol):
    """Where signature failures are counted (the ``signature_failures`` alert)."""

    def record(self, now_ms: int) -> None: ...


class WebhookEndpoint:
    """The webhook route: an ASGI handler holding its collaborators."""

    def __init__(
        self,
        verifier: Verifier,
        committer: Committer,
        max_body: int,
        signature_failures: FailureLog | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.verifier = verifier
        self.committer = committer
        self.max_body = max_body
        self.signature_failures = signature_failures
        self.metrics = metrics

    async def __call__(
        self, scope: Scope, receive: Receive, send: Send, *, gate: Gate | None = None
    ) -> int:
        """Handle one delivery; returns the HTTP status sent (0 when the client left).

        ``gate`` is asked before a request that failed verification is refused (or when its
        client left): it may answer with a refusal of its own instead (the guard's 429 once
        the budget of failures is spent), which is then sent without this request's log line.
        A request that verifies never meets it."""
        started = time.perf_counter()
        headers = {
            name.decode("latin-1"): value.decode("latin-1")
            for name, value in scope["headers"]
            if name in _WANTED
        }
        svix_id = headers.get("svix-id") or headers.get("webhook-id") or "-"
        try:
            received_at, outcome = await self._receive(headers, receive)
        except ClientGone:
            if gate is not None:
                await gate()
            return 0
        except ClerkSyncError as exc:
            if self.signature_failures is not None and isinstance(exc, SignatureMismatch):
                self.signature_failures.record(int(time.time() * 1000))
            if gate is not None and failed_verification(exc.http_status):
                instead = await gate()
                if instead is not None:
                    if self.metrics is not None:
                        self.metrics.refused(instead.code)
                    await refuse(send, instead)
                    return instead.http_status
            if self.metrics is not None:
                self.metrics.refused(exc.code)
            _log_line(svix_id, None, None, f"rejected:{exc.code}", started, exc.detail)
            extra = ABORT_HEADERS if isinstance(exc, InvalidPayload) else None
            await send_json(send, exc.http_status, exc.to_dict(), extra)
            return exc.http_status
        _log_line(
            outcome.svix_id,
            outcome.event_type,
            outcome.subject_id,
            outcome.status + (" (duplicate)" if outcome.duplicate else ""),
            started,
            outcome.reason if outcome.status in ("failed", "stale") else None,
        )
        status = await _answer(send, outcome)
        if self.metrics is not None:
            self.metrics.delivered(outcome, received_at, time.perf_counter() - started)
        return status

    async def _receive(self, headers: dict[str, str], receive: Receive) -> tuple[int, Outcome]:
        """``(received_at, outcome)`` of a verified, committed delivery."""
        announced = headers.get("content-length")
        if (
            announced
            and announced.isascii()
            and announced.isdigit()
            and int(announced) > self.max_body
        ):
            raise _too_large(self.max_body)
        signed = self.verifier.check_headers(headers)
        body = await _read_limited(receive, self.max_body)
        self.verifier.verify(signed, body)
        received_at = int(time.time() * 1000)
        outcome = await self.committer.submit(Delivery(signed.msg_id, body, received_at))
        return received_at, outcome


async def _answer(send: Send, outcome: Outcome) -> int:
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
        await send_json(send, 200, body)
        return 200
    body = {"error": outcome.error_code or "payload_invalid", "detail": outcome.reason, **body}
    await send_json(send, 422, body, ABORT_HEADERS)
    return 422


async def _read_limited(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


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
    """Log one delivery, with its fields as ``record.delivery`` for the formatters.

    The record is made and handled here rather than through ``Logger.log``: this runs once per
    delivery on the event loop, and the caller lookup ``Logger.log`` does (walking the stack)
    is the frame at hand. The message stays lazy; only JSON and other handlers render it."""
    ms = (time.perf_counter() - started) * 1000
    level = logging.WARNING if outcome.startswith(("rejected", "failed")) else logging.INFO
    if log.isEnabledFor(level):
        fields = {
            "svix_id": svix_id,
            "type": event_type,
            "subject_id": subject,
            "outcome": outcome,
            "ms": round(ms, 2),
            "reason": reason,
        }
        # Held only for these three values: a frame kept in its own local is a reference
        # cycle, which made every line garbage for the collector (3× the gen-1 collections).
        frame = sys._getframe()
        filename, lineno, function = frame.f_code.co_filename, frame.f_lineno, frame.f_code.co_name
        del frame
        record = log.makeRecord(
            log.name,
            level,
            filename,
            lineno,
            "%s %s %s %s %.1fms%s",
            (
                svix_id,
                event_type or "-",
                subject or "-",
                outcome,
                ms,
                f" — {reason}" if reason else "",
            ),
            None,
            function,
            {"delivery": fields},
        )
        log.handle(record)
