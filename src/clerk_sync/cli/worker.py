"""``clerk-sync worker``: the outbox worker alone, for deployments that run it apart from
``serve`` (``OUTBOX_WORKER=off`` there)."""

from __future__ import annotations

import logging
import signal
from typing import TYPE_CHECKING, Annotated

import typer

from ..errors import ConfigError
from ..logformat import LogFormat, configure_logging
from .common import deployment, load_settings, open_engine, reports_errors
from .serve import LOG_FORMAT_HELP

if TYPE_CHECKING:
    from ..outbox import OutboxWorker

log = logging.getLogger("clerk_sync.cli")


@reports_errors
def worker(
    log_format: Annotated[LogFormat, typer.Option("--log-format", help=LOG_FORMAT_HELP)] = "text",
    once: bool = typer.Option(
        False, "--once", help="Run the rows that are due now, then exit (cron, scripts)."
    ),
) -> None:
    """Run after-commit hooks, notifications and sinks from the outbox until stopped."""
    import asyncio

    from .. import wiring
    from ..store import ensure_schema

    settings = load_settings()
    configure_logging(settings.log_level, log_format)
    assembled = wiring.deployment(settings)
    if not assembled.hooks.after_commit:
        raise ConfigError(
            "No after-commit hooks to run: set HOOKS, NOTIFY_RULES or CONVEX_URL "
            "(the same as the receiver's)."
        )
    with open_engine(settings, require_current=False) as engine:
        tables = deployment(settings)
        ensure_schema(engine, naming=tables.naming)
        outbox = assembled.worker(engine, tables, settings)
        names = ", ".join(h.name for h in assembled.hooks.after_commit)
        log.info("outbox worker %s running %s", outbox.id, names)
        asyncio.run(_run(outbox, once))


async def _run(outbox: OutboxWorker, once: bool) -> None:
    import asyncio

    await outbox.start(background=not once)
    try:
        if once:
            await outbox.drain()
            return
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
    finally:
        await outbox.stop()
