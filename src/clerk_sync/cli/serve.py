"""``clerk-sync serve``: the webhook receiver and read API under uvicorn."""

from __future__ import annotations

import typer
import uvicorn

from ..store import ensure_schema
from ..store.engine import redacted
from ..web import WEBHOOK_PATH, create_app
from .common import configure_logging, load_settings, open_engine, reports_errors, stderr


@reports_errors
def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on (0.0.0.0 for all)."),
    port: int = typer.Option(8000, help="TCP port."),
) -> None:
    """Receive Clerk webhooks at POST /api/webhooks/clerk and keep the database in sync."""
    settings = load_settings()
    settings.webhook_secrets()  # refuse to start without a usable secret
    configure_logging(settings.log_level)
    with open_engine(settings, require_current=False) as engine:
        ensure_schema(engine)
        app = create_app(settings, engine=engine)
        stderr.print(
            f"clerk-sync on http://{host}:{port}{WEBHOOK_PATH} → "
            f"{redacted(settings.sqlalchemy_url())}",
            highlight=False,
        )
        uvicorn.run(
            app,
            host=host,
            port=port,
            log_config=None,
            access_log=False,
            log_level=settings.log_level.lower(),
        )
