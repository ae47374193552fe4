"""The ASGI application: ``create_app(settings)`` builds any configuration (tests, embedding)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import Any, Protocol

from sqlalchemy import Connection, Engine
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.routing import Mount, Route

from .. import wiring
from ..committer import Committer, GroupCommitter
from ..config import Settings
from ..entities import tables
from ..errors import ClerkSyncError, ConfigError, Refused, StoreUnavailable
from ..hooks import UserDeletedHook, load_hooks
from ..logformat import LogFormat
from ..observe.metrics import Metrics
from ..receiver import Receiver
from ..retention import Pruner
from ..store import ensure_schema, make_engine
from ..verify import Verifier
from ..writer import WriterConfig, WriterProcess
from .admin import ADMIN_PATH, Dashboard, DashboardSettings
from .api import ReadApi
from .guard import Guard
from .health import Health
from .metrics import MetricsEndpoint
from .responses import Receive, Scope, Send, handle_error, refuse, send_json
from .webhook import WebhookEndpoint

WEBHOOK_PATH = "/api/webhooks/clerk"
METRICS_PATH = "/metrics"
NOT_STARTED = (
    "clerk-sync is mounted but its lifespan has not run, so its writer is not started: pass "
    "lifespan=clerk.lifespan to FastAPI() or Starlette() (clerk being the app create_app "
    "returned), or enter `async with clerk.lifespan(app):` in your own lifespan."
)
"""The detail of the 503 answered before :meth:`ClerkSyncApp.lifespan` has run."""
_ONLY_POST = {
    "error": "method_not_allowed",
    "detail": "This is clerk-sync's webhook endpoint: Clerk (through Svix) POSTs signed events "
    "here, so it answers POST only. Add this URL as an endpoint in Clerk Dashboard → Webhooks; "
    "to send it a test event, run `clerk-sync trigger user.created`.",
}
StartStop = Callable[[Starlette], contextlib.AbstractAsyncContextManager[None]]
"""``create_app``'s lifespan: what :meth:`ClerkSyncApp.lifespan` enters once."""
log = logging.getLogger("clerk_sync.web")


def route_path(scope: Scope) -> str:
    """The path below where the app is mounted: ``path`` without ``root_path``.

    Starlette's ``Mount`` (like uvicorn's ``--root-path``) keeps the whole path in ``path``
    and appends the prefix to ``root_path``; a path outside the prefix is taken as it is. The
    rule of ``starlette._utils.get_route_path``, without importing a private module.
    """
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root) and path[len(root) : len(root) + 1] in ("", "/"):
        return path[len(root) :]
    return path


def create_app(
    settings: Settings,
    *,
    engine: Engine | None = None,
    hooks: Iterable[Any] | None = None,
    on_user_deleted: Sequence[UserDeletedHook] | None = None,
    log_format: LogFormat = "text",
) -> ClerkSyncApp:
    """Build the app. Settings are checked now (a bad secret, hook module or rules file
    raises :class:`ConfigError`); the schema is checked, and an empty database migrated, when
    the app starts — and then the writer and the outbox worker start too.

    ``hooks``: functions decorated with ``@clerk_sync.after_commit`` / ``@in_transaction``,
    in addition to those of ``HOOKS``. With ``settings.writer == "process"`` the database work
    runs in a child process (:mod:`clerk_sync.writer`), which logs in ``log_format`` and
    imports the in-transaction hooks' modules; hooks it cannot import (defined in
    ``__main__``, or the callables of ``on_user_deleted``) run on an in-process writer thread
    instead.
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
    cleanups = (
        list(on_user_deleted) if on_user_deleted is not None else load_hooks(settings.hook_paths())
    )
    assembled = wiring.deployment(settings, hooks)
    hook_set = assembled.hooks
    deployment = tables(settings.table_prefix, settings.schema_name())
    metrics = Metrics()
    metrics.watch(engine, deployment)
    receiver = Receiver(
        engine,
        tables=deployment,
        on_user_deleted=cleanups,
        hooks=hook_set.in_transaction,
        outbox=hook_set.routes(),
    )
    # One writer on either database: four threads on PostgreSQL made smaller batches and more
    # commits (about 1,300 against 1,900 deliveries/s on 2 cores). Replicas add parallelism.
    writers = 1
    committer: Committer
    if settings.writer == "process" and on_user_deleted is None and hook_set.crosses_processes():
        committer = WriterProcess(
            WriterConfig(
                database_url=engine.url.render_as_string(hide_password=False),
                sqlite_synchronous=settings.sqlite_synchronous,
                hook_paths=settings.hook_paths(),
                hook_modules=hook_set.modules(),
                in_transaction=[h.name for h in hook_set.in_transaction],
                outbox_routes=[(n, list(p), on) for n, p, on in hook_set.routes()],
                table_prefix=settings.table_prefix,
                database_schema=settings.schema_name(),
                max_batch=settings.batch_max,
                log_level=settings.log_level,
                log_format=log_format,
                delivery_timeout=settings.delivery_timeout_seconds,
            ),
            on_batch=metrics.batch,
        )
    else:
        committer = GroupCommitter(
            receiver,
            max_batch=settings.batch_max,
            writers=writers,
            timeout=settings.delivery_timeout_seconds,
            on_batch=metrics.batch,
        )
    api = ReadApi(engine, settings.admin_token, deployment)
    # Without after-commit hooks there is nothing to run (rows left by an earlier
    # configuration wait, listed by `clerk-sync outbox list`).
    worker = (
        assembled.worker(engine, deployment, settings)
        if settings.outbox_worker == "on" and hook_set.after_commit
        else None
    )
    if worker is not None:
        worker.on_run = metrics.outbox_run

    dashboard = Dashboard(
        engine,
        deployment,
        _dashboard_settings(settings),
        submit=committer.submit,
        is_https=lambda request: guard.resolve.https(request.scope),
    )
    services: list[Service] = [Pruner(engine, deployment, settings.event_retention_days)]
    if worker is not None:
        services.insert(0, worker)
    if settings.reconcile_every.strip():
        services.append(_reconciler(settings, receiver, assembled))

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        await run_in_threadpool(ensure_schema, engine, naming=deployment.naming)
        await run_in_threadpool(metrics.load_last_delivery)
        await committer.open()
        started: list[Service] = []
        try:
            for service in services:
                await service.start()
                started.append(service)
            yield
        finally:
            await dashboard.close()  # its live streams end, so the server can stop
            for service in reversed(started):
                await service.stop()
            await guard.limiter.close()
            await committer.close()
            if owns_engine:
                engine.dispose()

    routes = Starlette(
        routes=[
            Route("/api/events", api.events, methods=["GET"]),
            Route(
                "/api/events/{svix_id:path}/replay",
                api.replayer(committer.submit),
                methods=["POST"],
            ),
            Route("/api/outbox", api.outbox, methods=["GET"]),
            Mount(ADMIN_PATH, app=dashboard),
            Route("/api/{rest:path}", api.objects, methods=["GET"]),
            Route(
                "/healthz",
                Health(committer, engine, settings.delivery_timeout_seconds).healthz,
                methods=["GET"],
            ),
            Route(
                METRICS_PATH,
                MetricsEndpoint(metrics, settings.metrics_token, settings.admin_token).metrics_text,
                methods=["GET"],
            ),
        ],
        exception_handlers={ClerkSyncError: handle_error},
        lifespan=lifespan,
    )
    routes.state.receiver = receiver
    routes.state.engine = engine
    routes.state.tables = deployment
    routes.state.outbox_worker = worker
    routes.state.deployment = assembled
    routes.state.metrics = metrics
    webhook = WebhookEndpoint(
        verifier, committer, settings.max_body_bytes, assembled.signature_failures, metrics
    )
    return ClerkSyncApp(webhook, routes, guard, lifespan)


def _dashboard_settings(settings: Settings) -> DashboardSettings:
    """The dashboard's settings, checked now: a bad duration fails at startup."""
    from ..notify.alerts import parse_duration

    durations: dict[str, int] = {}
    for name, raw in (
        ("ADMIN_SESSION_TTL", settings.admin_session_ttl),
        ("ADMIN_QUIET_AFTER", settings.admin_quiet_after),
    ):
        ms = parse_duration(raw)
        if ms is None or ms <= 0:
            raise ConfigError(f"{name} {raw!r} is not a duration: write e.g. '30m', '12h' or '2d'.")
        durations[name] = ms
    return DashboardSettings(
        admin_token=settings.admin_token,
        session_ttl_ms=durations["ADMIN_SESSION_TTL"],
        quiet_after_ms=durations["ADMIN_QUIET_AFTER"],
        show_avatars=settings.admin_show_avatars,
    )


class Service(Protocol):
    """A background part of the server started after the writer and stopped before it: the
    outbox worker, retention, the scheduled reconcile."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


def _reconciler(settings: Settings, receiver: Receiver, assembled: wiring.Deployment) -> Service:
    """``RECONCILE_EVERY``: checked now, with the Backend API key it needs. A run that found
    drift checks the alerts at once (``reconcile_drift``), not at the worker's next check."""
    from ..clerk_api import ClerkApi
    from ..notify.alerts import parse_duration
    from ..reconcile import Reconciler

    every = parse_duration(settings.reconcile_every)
    if every is None:
        raise ConfigError(
            f"RECONCILE_EVERY {settings.reconcile_every!r} is not a duration: write e.g. "
            "'24h', '30m' or '2d'."
        )
    notifications = assembled.notifications

    def alert(conn: Connection, now_ms: int) -> None:
        if notifications is not None:
            notifications.check_alerts(conn, receiver.tables, now_ms, assembled.signature_failures)

    return Reconciler(receiver, ClerkApi.from_settings(settings), every / 1000, alert)


def _dashboard_page(path: str) -> bool:
    """A dashboard request that spends the read API's budget: all but its static files."""
    return (path == ADMIN_PATH or path.startswith(ADMIN_PATH + "/")) and not path.startswith(
        ADMIN_PATH + "/static/"
    )


class ClerkSyncApp:
    """The ASGI app: the guard first, then the webhook route straight to its handler and
    everything else to Starlette (read API, health check, 404/405).

    It routes on the path below where it is mounted (:func:`route_path`), so
    ``app.mount("/clerk", clerk)`` serves ``/clerk/api/webhooks/clerk``. What it runs — the
    schema check, the writer, the outbox worker — lives in :meth:`lifespan`, which a host must
    join, since Starlette and FastAPI do not run a mounted app's lifespan. Until it has run,
    every request is answered 503 with the line to add, and logged once: Svix retries a 503, so
    no delivery is lost. Starting lazily instead would migrate the schema inside a delivery's
    15 s and leave the writer and the worker with nobody to stop them.
    """

    def __init__(
        self, webhook: WebhookEndpoint, routes: Starlette, guard: Guard, lifespan: StartStop
    ) -> None:
        self.webhook = webhook
        self.routes = routes
        self.guard = guard
        self.state = routes.state
        self._start_stop = lifespan
        self._entered = 0
        self._running: contextlib.AsyncExitStack | None = None
        self._lock: asyncio.Lock | None = None
        self._lock_loop: asyncio.AbstractEventLoop | None = None
        self._warned = False
        # A server running this app itself (`clerk-sync serve`, `uvicorn module:clerk`) sends
        # the ASGI lifespan through Starlette: it takes the same counted way in.
        routes.router.lifespan_context = self.lifespan

    @property
    def started(self) -> bool:
        """Whether :meth:`lifespan` has started clerk-sync (and not stopped it yet)."""
        return self._running is not None

    @contextlib.asynccontextmanager
    async def lifespan(self, app: object = None) -> AsyncIterator[None]:
        """Start clerk-sync — check the schema (an empty database is migrated), start the
        writer and the outbox worker — and stop it on the way out.

        Give it to the app that mounts this one: ``FastAPI(lifespan=clerk.lifespan)`` or
        ``Starlette(lifespan=clerk.lifespan)``, or inside a lifespan of your own,
        ``async with clerk.lifespan(app): yield``. ``app`` is not used. Entries are counted:
        the first starts and the last stops, so the host's lifespan together with a server
        (or framework) that also sends this app the ASGI lifespan start it once.
        """
        async with self._serialized():
            if self._entered == 0:
                running = contextlib.AsyncExitStack()
                await running.enter_async_context(self._start_stop(self.routes))
                self._running = running
            self._entered += 1
        try:
            yield
        finally:
            async with self._serialized():
                self._entered -= 1
                if self._entered == 0 and self._running is not None:
                    running, self._running = self._running, None
                    await running.aclose()

    def _serialized(self) -> asyncio.Lock:
        """One start or stop at a time. The lock belongs to one event loop, and an app may be
        started again in another (a test client per test): a new loop gets a new lock."""
        loop = asyncio.get_running_loop()
        if self._lock is None or self._lock_loop is not loop:
            self._lock, self._lock_loop = asyncio.Lock(), loop
        return self._lock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            if self._running is None:
                await self._not_started(send)
                return
            path = route_path(scope)
            if path == WEBHOOK_PATH:
                if scope["method"] == "POST":
                    await self._webhook(scope, receive, send)
                else:  # someone opened the URL in a browser, or a probe: say what it is for
                    if self.webhook.metrics is not None:
                        self.webhook.metrics.refused(_ONLY_POST["error"])
                    await send_json(send, 405, _ONLY_POST, {"allow": "POST"})
                return
            if path.startswith("/api/") or path == METRICS_PATH or _dashboard_page(path):
                try:
                    await self.guard.admit_api(scope)
                except Refused as exc:
                    await refuse(send, exc)
                    return
        await self.routes(scope, receive, send)

    async def _not_started(self, send: Send) -> None:
        if not self._warned:
            self._warned = True
            log.warning("answering 503 to every request: %s", NOT_STARTED)
        body: dict[str, str] = StoreUnavailable(NOT_STARTED).to_dict()
        body["check"] = "lifespan"
        await send_json(send, 503, body)

    async def _webhook(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The allowlist and webhook budget may refuse before anything is read; the budget of
        failures never refuses a delivery that verifies (see :mod:`.guard`)."""
        try:
            key = await self.guard.admit_webhook(scope)
        except Refused as exc:
            if self.webhook.metrics is not None:
                self.webhook.metrics.refused(exc.code)
            await refuse(send, exc)
            return
        await self.guard.answer_webhook(key, self.webhook, scope, receive, send)


__all__ = ["NOT_STARTED", "WEBHOOK_PATH", "ClerkSyncApp", "create_app", "route_path"]
