"""The admin dashboard at ``/admin``: overview, live activity, users, organizations, the event
log with Replay and the outbox with Retry — served by the same app when ``ADMIN_TOKEN`` is set
(and 404 otherwise, like the read API).

Server-rendered (Jinja2), with htmx and its SSE extension vendored in ``static/``: nothing is
fetched from another host (users' avatars only with ``ADMIN_SHOW_AVATARS``), and a strict
``Content-Security-Policy`` allows no inline script or style. Every response carries it.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ...errors import ClerkSyncError
from ...store import Tables
from ..responses import Receive, Scope, Send
from .auth import SignIn
from .base import HERE, Admin, IsHttps, Submit, csp, environment
from .live import Live
from .pages import Pages
from .people import People
from .session import Sessions

ADMIN_PATH = "/admin"


@dataclass(frozen=True, slots=True)
class DashboardSettings:
    admin_token: str
    session_ttl_ms: int
    quiet_after_ms: int
    show_avatars: bool


class Dashboard:
    """The ``/admin`` ASGI app. :meth:`close` ends the live streams when the server stops."""

    def __init__(
        self,
        engine: Engine,
        tables: Tables,
        settings: DashboardSettings,
        *,
        submit: Submit,
        is_https: IsHttps,
    ) -> None:
        self.enabled = bool(settings.admin_token)
        self.admin = Admin(
            engine=engine,
            tables=tables,
            sessions=Sessions(settings.admin_token, settings.session_ttl_ms),
            submit=submit,
            is_https=is_https,
            quiet_after_ms=settings.quiet_after_ms,
            show_avatars=settings.show_avatars,
            templates=environment(),
        )
        self._headers = [
            (b"content-security-policy", csp(settings.show_avatars).encode()),
            (b"x-content-type-options", b"nosniff"),
            (b"x-frame-options", b"DENY"),
            (b"referrer-policy", b"same-origin"),
            (b"cross-origin-opener-policy", b"same-origin"),
        ]
        admin = self.admin
        sign_in, pages, people = SignIn(admin), Pages(admin), People(admin)
        self.live = Live(admin)
        live = self.live
        signed_in = admin.signed_in
        self.app = Starlette(
            routes=[
                Route("/", signed_in(pages.overview), methods=["GET"]),
                Route("/sign-in", sign_in.page, methods=["GET"]),
                Route("/sign-in", sign_in.submit, methods=["POST"]),
                Route("/sign-out", signed_in(sign_in.sign_out), methods=["POST"]),
                Route("/live", signed_in(live.page), methods=["GET"]),
                Route("/live/rows", signed_in(live.rows), methods=["GET"]),
                Route("/live/stream", signed_in(live.stream), methods=["GET"]),
                Route("/users", signed_in(people.users), methods=["GET"]),
                Route("/users/{user_id:path}", signed_in(people.user), methods=["GET"]),
                Route("/organizations", signed_in(people.organizations), methods=["GET"]),
                Route(
                    "/organizations/{organization_id:path}",
                    signed_in(people.organization),
                    methods=["GET"],
                ),
                Route("/events", signed_in(pages.events), methods=["GET"]),
                Route("/events/{svix_id:path}/replay", signed_in(pages.replay), methods=["POST"]),
                Route("/events/{svix_id:path}", signed_in(pages.event), methods=["GET"]),
                Route("/outbox", signed_in(pages.outbox), methods=["GET"]),
                Route("/outbox/retry", signed_in(pages.retry), methods=["POST"]),
                Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
            ],
            exception_handlers={ClerkSyncError: self._problem, 404: self._not_found},
        )

    async def _problem(self, request: object, exc: Exception) -> Response:
        assert isinstance(exc, ClerkSyncError)
        return Response(exc.detail, status_code=exc.http_status, media_type="text/plain")

    async def _not_found(self, request: object, exc: Exception) -> Response:
        return Response("Not found.", status_code=404, media_type="text/plain")

    async def close(self) -> None:
        await self.live.feed.close()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if not self.enabled:
            body = b"Not found: the dashboard is off until ADMIN_TOKEN is set."
            await send(
                {
                    "type": "http.response.start",
                    "status": 404,
                    "headers": [
                        (b"content-type", b"text/plain; charset=utf-8"),
                        (b"content-length", str(len(body)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        path, root = str(scope["path"]), str(scope.get("root_path", ""))
        static = path[len(root) :].startswith("/static/") if path.startswith(root) else False
        caching = [(b"cache-control", b"public, max-age=3600" if static else b"no-store")]
        headers = self._headers

        async def with_headers(message: dict[str, object]) -> None:
            if message["type"] == "http.response.start":
                sent = list(message.get("headers", []))  # type: ignore[call-overload]
                names = {name.lower() for name, _ in sent}
                message["headers"] = sent + headers + ([] if b"cache-control" in names else caching)
            await send(message)

        await self.app(scope, receive, with_headers)  # type: ignore[arg-type]


__all__ = ["ADMIN_PATH", "Dashboard", "DashboardSettings"]
