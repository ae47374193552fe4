"""The dashboard's sign-in: a signed session cookie and the CSRF tokens that go with it.

Nothing is stored on the server. The cookie is ``<expires>.<nonce>.<signature>``, signed with a
key derived from ``ADMIN_TOKEN``, so every replica accepts the sessions of the others, a changed
token signs everybody out, and the token itself never leaves the sign-in request. A state-changing
request carries a CSRF token derived from its session's nonce (a form field, or the
``X-CSRF-Token`` header htmx sends); the sign-in form, which has no session yet, is bound the same
way to a short-lived nonce cookie of its own (double submit). The cookies are ``HttpOnly`` and
``SameSite=Strict``, and ``Secure`` when the request came over HTTPS.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from enum import StrEnum

SESSION_COOKIE = "clerk_sync_admin"
SIGN_IN_COOKIE = "clerk_sync_admin_sign_in"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
SIGN_IN_TTL_MS = 30 * 60 * 1000
"""How long a sign-in form stays good for: its nonce cookie's lifetime."""
_MAX_COOKIE_CHARS = 200


class SessionProblem(StrEnum):
    """Why a request has no session: shown on the sign-in page, without saying more."""

    NONE = "none"
    EXPIRED = "expired"
    INVALID = "invalid"


@dataclass(frozen=True, slots=True)
class Session:
    nonce: str
    expires_ms: int


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


class Sessions:
    """Issues and checks the dashboard's cookies and CSRF tokens for one ``ADMIN_TOKEN``."""

    def __init__(self, admin_token: str, ttl_ms: int) -> None:
        self._token = admin_token.encode()
        self._key = hmac.new(self._token, b"clerk-sync admin session v1", hashlib.sha256).digest()
        self.ttl_ms = ttl_ms

    def token_matches(self, given: str) -> bool:
        """Constant-time comparison with ``ADMIN_TOKEN`` (of digests, so the length of the
        token does not show either)."""
        expected = hashlib.sha256(self._token).digest()
        return hmac.compare_digest(hashlib.sha256(given.strip().encode()).digest(), expected)

    def _sign(self, purpose: str, text: str) -> str:
        mac = hmac.new(self._key, f"{purpose}:{text}".encode(), hashlib.sha256).digest()
        return _b64(mac)

    def issue(self, now_ms: int | None = None) -> tuple[str, Session]:
        """A new session: the cookie's value and what it stands for."""
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        session = Session(secrets.token_urlsafe(18), now_ms + self.ttl_ms)
        body = f"{session.expires_ms}.{session.nonce}"
        return f"{body}.{self._sign('session', body)}", session

    def check(
        self, cookie: str | None, now_ms: int | None = None
    ) -> tuple[Session | None, SessionProblem]:
        """The session a cookie stands for, or why there is none (forged, malformed and
        signed-under-another-token cookies are all just ``invalid``)."""
        if not cookie:
            return None, SessionProblem.NONE
        if len(cookie) > _MAX_COOKIE_CHARS or cookie.count(".") != 2:
            return None, SessionProblem.INVALID
        expires, nonce, signature = cookie.split(".")
        body = f"{expires}.{nonce}"
        if not hmac.compare_digest(signature, self._sign("session", body)):
            return None, SessionProblem.INVALID
        if not (expires.isascii() and expires.isdigit()):
            return None, SessionProblem.INVALID
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        if int(expires) <= now_ms:
            return None, SessionProblem.EXPIRED
        return Session(nonce, int(expires)), SessionProblem.NONE

    def csrf(self, session: Session) -> str:
        """The CSRF token of a session's state-changing requests."""
        return self._sign("csrf", session.nonce)

    def csrf_ok(self, session: Session, given: str | None) -> bool:
        return bool(given) and hmac.compare_digest(str(given), self.csrf(session))

    @staticmethod
    def sign_in_nonce() -> str:
        return secrets.token_urlsafe(18)

    def sign_in_csrf(self, nonce: str) -> str:
        return self._sign("sign-in", nonce)

    def sign_in_csrf_ok(self, nonce: str | None, given: str | None) -> bool:
        if not nonce or not given or len(nonce) > _MAX_COOKIE_CHARS:
            return False
        return hmac.compare_digest(str(given), self.sign_in_csrf(nonce))
