"""The ASGI application: ``create_app(settings)`` builds any configuration (tests, embedding)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence

from sqlalchemy import Engine
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.routing import Route

from ..committer import Committer, GroupCommitter
from ..config import Settings, load_hooks
from ..entities import tables
from ..errors import ClerkSyncError, Refused
from ..hooks import UserDeletedHook
from ..logformat import LogFormat
from ..receiver import Receiver
from ..store import ensure_schema, make_engine
from ..verify import Verifier
from ..writer import WriterConfig, WriterProcess
from .api import ReadApi
from .guard import Guard
from .health import Health
from .responses import Receive, Scope, Send, handle_error, refuse, send_json
from .webhook import WebhookEndpoint

WEBHOOK_PATH = "/api/webhooks/clerk"
_ONLY_POST = {
    "error": "method_not_allowed",
    "detail": "This is clerk-sync's webhook endpoint: Clerk (through Svix) POSTs signed events "
    "here, so it answers POST only. Add this URL as an endpoint in Clerk Dashboard → Webhooks; "
    "to send it a test event, run `clerk-sync trigger user.created`.",
}


def create_app(
    settings: Settings,
    *,
    engine: Engine | None = None,
    on_user_deleted: Sequence[UserDeletedHook] | None = None,
    log_format: LogFormat = "text",
) -> ClerkSyncApp:
    """Build the app. Settings are checked now (a bad secret raises :class:`ConfigError`);
    the schema is checked, and an empty database migrated, when the app starts.

    With ``settings.writer == "process"`` the database work runs in a child process
    (:mod:`clerk_sync.writer`), which logs in ``log_format``; hooks given as callables in
    ``on_user_deleted`` cannot cross to it, so they run on the in-process writer thread.
    """
    verifier = Verifier(
        settings.webhook_secrets(), tolerance_seconds=settings.webhook_tolerance_seconds
    )
    guard = Guard.from_settings(settings)
    owns_engine = engine is None
    if engine is None:
        engine = make_engine(
            settings.sqlalchemy_url(), sqlite_synchronous=settings.sqlite_synchronous
        )
    hooks = (
        list(on_user_deleted) if on_user_deleted is not None else load_hooks(settings.hook_paths())
    )
    deployment = tables(settings.table_prefix, settings.schema_name())
    receiver = Receiver(engine, tables=deployment, on_user_deleted=hooks)
    # One writer on either database: four threads on PostgreSQL made smaller batches and more
    # commits (about 1,300 against 1,900 deliveries/s on 2 cores). Replicas add parallelism.
    writers = 1
    committer: Committer
    if settings.writer == "process" and on_user_deleted is None:
        committer = WriterProcess(
            WriterConfig(
                database_url=engine.url.render_as_string(hide_password=False),
                sqlite_synchronous=settings.sqlite_synchronous,
                hook_paths=settings.hook_paths(),
                table_prefix=settings.table_prefix,
                database_schema=settings.schema_name(),
                max_batch=settings.batch_max,
                log_level=settings.log_level,
                log_format=log_format,
                delivery_timeout=settings.delivery_timeout_seconds,
            )
        )
    else:
        committer = GroupCommitter(
            receiver,
            max_batch=settings.batch_max,
            writers=writers,
            timeout=settings.delivery_timeout_seconds,
        )
    api = ReadApi(engine, settings.admin_token, deployment)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        await run_in_threadpool(ensure_schema, engine, naming=deployment.naming)
        await committer.open()
        try:
            yield
        finally:
            await guard.limiter.close()
            await committer.close()
            if owns_engine:
                engine.dispose()

    routes = Starlette(
        routes=[
            Route("/api/events", api.events, methods=["GET"]),
            Route("/api/{rest:path}", api.objects, methods=["GET"]),
            Route(
                "/healthz",
                Health(committer, engine, settings.delivery_timeout_seconds).healthz,
                methods=["GET"],
            ),
        ],
        exception_handlers={ClerkSyncError: handle_error},
        lifespan=lifespan,
    )
    routes.state.receiver = receiver
    routes.state.engine = engine
    routes.state.tables = deployment
    webhook = WebhookEndpoint(verifier, committer, settings.max_body_bytes)
    return ClerkSyncApp(webhook, routes, guard)


class ClerkSyncApp:
    """The ASGI app: the guard first, then the webhook route straight to its handler and
    everything else to Starlette (read API, health check, lifespan, 404/405)."""

    def __init__(self, webhook: WebhookEndpoint, routes: Starlette, guard: Guard) -> None:
        self.webhook = webhook
        self.routes = routes
        self.guard = guard
        self.state = routes.state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path = scope["path"]
            if path == WEBHOOK_PATH:
                if scope["method"] == "POST":
                    await self._webhook(scope, receive, send)
                else:  # someone opened the URL in a browser, or a probe: say what it is for
                    await send_json(send, 405, _ONLY_POST, {"allow": "POST"})
                return
            if path.startswith("/api/"):
                try:
                    await self.guard.admit_api(scope)
                except Refused as exc:
                    await refuse(send, exc)
                    return
        await self.routes(scope, receive, send)

    async def _webhook(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The allowlist and webhook budget may refuse before anything is read; the budget of
        failures never refuses a delivery that verifies (see :mod:`.guard`)."""
        try:
            key = await self.guard.admit_webhook(scope)
        except Refused as exc:
            await refuse(send, exc)
            return
        await self.guard.answer_webhook(key, self.webhook, scope, receive, send)


__all__ = ["WEBHOOK_PATH", "ClerkSyncApp", "create_app"]
