"""What every dashboard page shares: its collaborators, the templates, the session check, the
form reader and the security headers.

Pages are plain HTML forms and links, so the dashboard works with JavaScript off; htmx (vendored
in ``static/``) only makes search and filters update in place, and streams the live feed.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ParamSpec, TypeVar
from urllib.parse import parse_qs, quote, urlencode

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from ...errors import PayloadTooLarge
from ...logformat import escape_unsafe
from ...receiver import Delivery, Outcome
from ...store import Tables
from . import present
from .session import CSRF_FIELD, CSRF_HEADER, SESSION_COOKIE, Session, SessionProblem, Sessions

HERE = Path(__file__).resolve().parent
MAX_FORM_BYTES = 16 * 1024
CLERK_IMAGES = "https://img.clerk.com"
"""Where Clerk serves users' avatars: the one outside host the dashboard may load, and only
with ``ADMIN_SHOW_AVATARS``."""
P = ParamSpec("P")
R = TypeVar("R")
Submit = Callable[[Delivery], Awaitable[Outcome]]
Page = Callable[[Request], Awaitable[Response]]
SessionPage = Callable[[Request, Session], Awaitable[Response]]
IsHttps = Callable[[Request], bool]


def csp(show_avatars: bool) -> str:
    """Nothing but this server's own scripts, styles and connections; no inline code, no
    framing, forms post only here."""
    images = "'self' data:" + (f" {CLERK_IMAGES}" if show_avatars else "")
    return (
        "default-src 'none'; script-src 'self'; style-src 'self'; "
        f"img-src {images}; connect-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    )


def _finalize(value: Any) -> Any:
    """Every ``{{ }}`` string has bidirectional overrides and control characters escaped (a
    name cannot reorder the page), on top of Jinja's HTML escaping."""
    if isinstance(value, Markup):  # already escaped (a macro's output): keep it markup
        return Markup(escape_unsafe(str(value)))  # noqa: S704 (escaped, and only \uXXXX added)
    return escape_unsafe(value) if isinstance(value, str) else value


def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        finalize=_finalize,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = present.when
    env.filters["did"] = present.did
    env.filters["label"] = present.label
    env.filters["json"] = present.as_json
    env.globals["quote"] = lambda v: quote(str(v), safe="")
    return env


@dataclass
class Admin:
    """The dashboard's collaborators, given to every page."""

    engine: Engine
    tables: Tables
    sessions: Sessions
    submit: Submit
    is_https: IsHttps
    quiet_after_ms: int
    show_avatars: bool
    templates: Environment

    async def db(self, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        return await run_in_threadpool(fn, *args, **kwargs)

    def render(
        self,
        request: Request,
        name: str,
        status_code: int = 200,
        /,
        *,
        session: Session | None = None,
        **context: Any,
    ) -> HTMLResponse:
        template = self.templates.get_template(name)
        html = template.render(
            base=base(request),
            csrf=self.sessions.csrf(session) if session else "",
            csrf_field=CSRF_FIELD,
            session=session,
            now_ms=int(time.time() * 1000),
            show_avatars=self.show_avatars,
            **context,
        )
        return HTMLResponse(html, status_code=status_code)

    def signed_in(self, page: SessionPage) -> Page:
        """``page`` for a signed-in admin; others are sent to sign in (and come back). A POST
        must carry the session's CSRF token, as a form field or the ``X-CSRF-Token`` header."""

        async def check(request: Request) -> Response:
            session, problem = self.sessions.check(request.cookies.get(SESSION_COOKIE))
            if session is None:
                return self._sign_in_first(request, problem)
            if request.method == "POST":
                given = request.headers.get(CSRF_HEADER)
                if given is None:
                    given = (await form(request)).get(CSRF_FIELD)
                if not self.sessions.csrf_ok(session, given):
                    return self.render(
                        request,
                        "problem.html",
                        403,
                        session=session,
                        title="Refused",
                        message="This request did not carry this session's CSRF token, so it "
                        "was refused. Reload the page and try again.",
                    )
            return await page(request, session)

        return check

    def _sign_in_first(self, request: Request, problem: SessionProblem) -> Response:
        here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        query = {"next": here} if request.method == "GET" else {}
        if problem is not SessionProblem.NONE:
            query["why"] = problem.value
        target = f"{base(request)}/sign-in" + (f"?{urlencode(query)}" if query else "")
        if request.headers.get("hx-request"):
            return Response(status_code=204, headers={"HX-Redirect": target})
        if request.headers.get("accept", "").startswith("text/event-stream"):
            return Response("sign in first", status_code=401, media_type="text/plain")
        return RedirectResponse(target, status_code=303)


def base(request: Request) -> str:
    """Where the dashboard is mounted (``/admin``, or ``/clerk/admin`` inside another app)."""
    return str(request.scope.get("root_path", "")).rstrip("/")


def safe_next(request: Request, target: str | None) -> str:
    """Where to go after signing in: a path of this dashboard only, never another site."""
    home = base(request) + "/"
    if not target or not target.startswith(home) or target.startswith("//") or "\\" in target:
        return home
    return target


async def form(request: Request) -> dict[str, str]:
    """A small url-encoded form (the first value of each field); cached on the request."""
    cached = request.scope.get("clerk_sync.form")
    if cached is not None:
        return dict(cached)
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_FORM_BYTES:
            raise PayloadTooLarge(f"A dashboard form is at most {MAX_FORM_BYTES} bytes.")
    fields = {k: v[0] for k, v in parse_qs(raw.decode("utf-8", "replace")).items() if v}
    request.scope["clerk_sync.form"] = fields
    return dict(fields)
