"""POST signed deliveries to a webhook endpoint and read back what it said.

Each attempt is signed when it is sent, with a fresh ``svix-timestamp``, as Svix does for a retry
(same ``svix-id`` and bytes). An answer is summed up as an *outcome* (``processed``, ``stale``,
``signature_mismatch``, ``HTTP 404``, …) and a *reason* (the endpoint's ``reason`` or ``detail``),
which is what ``trigger`` and ``send`` print. A server that cannot be reached is one
:class:`ServerUnreachable` naming the URL — never a traceback.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

import httpx

from ..errors import InvalidParameter, ServerUnreachable
from .scenarios import Signing
from .signing import random_secret, sign_headers

TIMEOUT_SECONDS = 15.0
"""What Svix waits for an answer before counting the attempt as failed."""
_EXPIRED_MARGIN_SECONDS = 300


@dataclass(frozen=True, slots=True)
class Answer:
    """What the endpoint answered to one delivery."""

    status_code: int
    outcome: str
    reason: str | None

    @property
    def ok(self) -> bool:
        return 200 <= self.status_code < 300

    def meets(self, expects: str) -> bool:
        """Whether this is the answer aimed at: any 2xx, or a given error code."""
        return self.ok if expects == "2xx" else self.outcome == expects


def check_url(url: str) -> str:
    """Refuse a URL httpx could not send to, before anything is signed."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidParameter(
            f"--url {url!r} is not an http:// or https:// URL, e.g. "
            "http://127.0.0.1:8000/api/webhooks/clerk."
        )
    return url


def unreachable(url: str, exc: httpx.TransportError) -> ServerUnreachable:
    """One line for a transport failure: what could not be done, and the OS's reason."""
    if isinstance(exc, httpx.TimeoutException):
        return ServerUnreachable(f"no answer from {url} within {TIMEOUT_SECONDS:g} s.")
    reason = re.sub(r"^\[Errno -?\d+\]\s*", "", str(exc).strip()) or type(exc).__name__
    if isinstance(exc, httpx.ConnectError):
        return ServerUnreachable(f"could not connect to {url}: {reason}.")
    return ServerUnreachable(f"could not talk to {url}: {reason}.")


def describe(response: httpx.Response) -> Answer:
    """Sum up an answer: clerk-sync's JSON when it is that, else what kind of thing answered."""
    code = response.status_code
    body: Any = None
    if response.headers.get("content-type", "").startswith("application/json"):
        try:
            body = response.json()
        except ValueError:
            body = None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return Answer(code, body["error"], body.get("detail"))
    if isinstance(body, dict) and isinstance(body.get("status"), str):
        outcome = body["status"] + (" (duplicate)" if body.get("duplicate") else "")
        return Answer(code, outcome, body.get("reason"))
    if 300 <= code < 400:
        where = response.headers.get("location", "?")
        return Answer(
            code,
            "redirect",
            f"redirects to {where}: Svix does not follow redirects, use the final URL",
        )
    text = " ".join(response.text.split())[:160]
    return Answer(code, f"HTTP {code}", f"not clerk-sync's answer: {text}" if text else None)


class Sender:
    """Signs and POSTs deliveries to one URL; use it as a context manager."""

    def __init__(self, url: str, secret: str, *, tolerance_seconds: int = 300) -> None:
        self.url = check_url(url)
        self.secret = secret
        self._wrong_secret = random_secret()
        self._expired_by = tolerance_seconds + _EXPIRED_MARGIN_SECONDS
        self._client = httpx.Client(timeout=TIMEOUT_SECONDS, follow_redirects=False)

    def headers(self, body: bytes, msg_id: str, signing: Signing = "valid") -> dict[str, str]:
        """The ``svix-*`` headers for one attempt, signed now (or long ago, for ``expired``)."""
        now = int(time.time())
        secret = self._wrong_secret if signing == "wrong-secret" else self.secret
        when = now - self._expired_by if signing == "expired" else now
        return sign_headers(secret, body, msg_id=msg_id, timestamp=when)

    def send(self, body: bytes, msg_id: str, signing: Signing = "valid") -> Answer:
        headers = {
            **self.headers(body, msg_id, signing),
            "content-type": "application/json",
            "user-agent": "clerk-sync-devtools",
        }
        try:
            response = self._client.post(self.url, content=body, headers=headers)
        except httpx.TransportError as exc:
            raise unreachable(self.url, exc) from None
        return describe(response)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
