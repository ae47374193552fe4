"""A deployment's hooks and outbox worker, assembled from settings.

``create_app``, ``clerk-sync worker`` and ``clerk-sync dev`` build the same set here, so the
receiver writes rows for exactly the hooks the worker can run: the application's (``HOOKS`` or
``create_app(..., hooks=[...])``), the notification rules (``NOTIFY_RULES``) and the Convex sink
(``CONVEX_URL``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine

from . import hooks as registry
from .config import Settings
from .entities import handled_types
from .hooks import Hook, HookSet
from .outbox import OutboxSettings, OutboxWorker, Periodic
from .sinks.convex import ConvexSink
from .store import Tables

if TYPE_CHECKING:
    from .notify import Notifications, SignatureFailures

ALERT_CHECK_SECONDS = 30.0


@dataclass
class Deployment:
    """What one deployment runs besides the receiver: its hooks and notification rules."""

    hooks: HookSet
    notifications: Notifications | None = None
    signature_failures: SignatureFailures | None = field(default=None)

    def worker(self, engine: Engine, tables: Tables, settings: Settings) -> OutboxWorker:
        periodic: list[Periodic] = []
        notifications = self.notifications
        if notifications is not None:
            failures = self.signature_failures

            def check(conn: Connection, now_ms: int) -> Any:
                return notifications.check_alerts(conn, tables, now_ms, failures)

            periodic.append((ALERT_CHECK_SECONDS, check))
        return OutboxWorker(
            engine,
            tables,
            self.hooks,
            outbox_settings(settings),
            periodic=periodic,
        )


def outbox_settings(settings: Settings) -> OutboxSettings:
    return OutboxSettings(
        max_attempts=settings.outbox_max_attempts,
        handler_timeout=settings.outbox_handler_timeout_seconds,
        concurrency=settings.outbox_concurrency,
    )


def deployment(settings: Settings, objects: Iterable[Any] | None = None) -> Deployment:
    """Load ``HOOKS``, ``NOTIFY_RULES`` and the Convex sink; every problem is a one-line
    :class:`~clerk_sync.errors.ConfigError` now, at startup."""
    found: list[Hook] = registry.load(settings.hook_modules())
    if objects is not None:
        found += registry.from_objects(objects)
    notifications = None
    failures = None
    if settings.notify_rules.strip():
        from .notify import SignatureFailures, load_rules

        notifications = load_rules(settings.notify_rules.strip())
        found += notifications.hooks()
        failures = SignatureFailures()
    if settings.convex_url.strip():
        sink = ConvexSink(
            settings.convex_url.strip(),
            settings.convex_deploy_key,
            settings.convex_upsert_function,
            settings.convex_delete_function,
        )
        found.append(sink.hook())
    hooks = HookSet(tuple(found))
    hooks.check_patterns(handled_types())
    return Deployment(hooks, notifications, failures)
