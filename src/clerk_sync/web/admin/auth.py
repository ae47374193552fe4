"""Signing in with ``ADMIN_TOKEN`` and out again (see :mod:`.session` for the cookies).

A wrong token gets the same page whatever was wrong with it. Every attempt spends the read
API's budget (``RATE_LIMIT_API``) like any other dashboard request, so guessing is as slow
as it is on ``/api``.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from .base import Admin, base, form, safe_next
from .session import CSRF_FIELD, SESSION_COOKIE, SIGN_IN_COOKIE, SIGN_IN_TTL_MS, Session

_WHY = {
    "expired": "Your session expired: sign in again.",
    "invalid": "Your session is not valid here (the token changed, or the cookie was altered): "
    "sign in again.",
    "signed-out": "You are signed out.",
}


class SignIn:
    def __init__(self, admin: Admin) -> None:
        self.admin = admin

    def _cookie_args(self, request: Request) -> dict[str, object]:
        return {
            "path": base(request) + "/",
            "httponly": True,
            "samesite": "strict",
            "secure": self.admin.is_https(request),
        }

    def _form(
        self, request: Request, status: int = 200, *, message: str = "", error: str = ""
    ) -> Response:
        sessions = self.admin.sessions
        nonce = sessions.sign_in_nonce()
        response = self.admin.render(
            request,
            "sign_in.html",
            status,
            title="Sign in",
            sign_in_csrf=sessions.sign_in_csrf(nonce),
            next=safe_next(request, request.query_params.get("next")),
            message=message,
            error=error,
        )
        response.set_cookie(
            SIGN_IN_COOKIE,
            nonce,
            max_age=SIGN_IN_TTL_MS // 1000,
            **self._cookie_args(request),  # type: ignore[arg-type]
        )
        return response

    async def page(self, request: Request) -> Response:
        """``GET /admin/sign-in``: the form (or home, when already signed in)."""
        session, _ = self.admin.sessions.check(request.cookies.get(SESSION_COOKIE))
        if session is not None:
            return RedirectResponse(safe_next(request, request.query_params.get("next")), 303)
        return self._form(request, message=_WHY.get(request.query_params.get("why", ""), ""))

    async def submit(self, request: Request) -> Response:
        """``POST /admin/sign-in``: token + the form's CSRF token → a session cookie."""
        fields = await form(request)
        sessions = self.admin.sessions
        if not sessions.sign_in_csrf_ok(
            request.cookies.get(SIGN_IN_COOKIE), fields.get(CSRF_FIELD)
        ):
            return self._form(
                request,
                403,
                error="This sign-in form has expired or did not come from this dashboard. "
                "Enter the token again.",
            )
        if not sessions.token_matches(fields.get("token", "")):
            return self._form(request, 401, error="That is not the admin token.")
        cookie, _session = sessions.issue()
        target = safe_next(request, fields.get("next"))
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(
            SESSION_COOKIE,
            cookie,
            max_age=sessions.ttl_ms // 1000,
            **self._cookie_args(request),  # type: ignore[arg-type]
        )
        response.delete_cookie(SIGN_IN_COOKIE, path=base(request) + "/")
        return response

    async def sign_out(self, request: Request, _session: Session) -> Response:
        """``POST /admin/sign-out`` (with the CSRF token): the cookie is cleared."""
        response = RedirectResponse(f"{base(request)}/sign-in?why=signed-out", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path=base(request) + "/")
        return response
