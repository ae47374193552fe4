"""``clerk-sync serve``: the webhook receiver and read API under uvicorn."""

from __future__ import annotations

import logging
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ..errors import ConfigError
from ..logformat import LogFormat
from .common import (
    check_port_free,
    configure_logging,
    deployment,
    load_settings,
    open_engine,
    reports_errors,
    stderr,
)

if TYPE_CHECKING:
    import ssl

    from ..config import Settings

LOG_FORMAT_HELP = "text: one readable line per delivery (coloured on a terminal); json: one object."


def refuse_dev_secret(settings: Settings) -> None:
    """The secret ``clerk-sync dev`` generates is for ``dev`` alone: Clerk never signs with it."""
    from ..devtools.keys import is_dev_secret

    if any(is_dev_secret(s) for s in settings.webhook_secrets()):
        raise ConfigError(
            "CLERK_WEBHOOK_SECRET is the development secret `clerk-sync dev` generated (in "
            ".env.local), which Clerk never signs with: for `serve`, copy your endpoint's "
            "Signing Secret from Clerk Dashboard → Webhooks → your endpoint; for local testing "
            "run `clerk-sync dev`."
        )


def announce(url: str, database_url: str, log_format: LogFormat) -> None:
    """Say where the endpoint is: a log record in JSON mode (stderr stays JSON), else a line."""
    from ..store.engine import redacted

    line = f"clerk-sync on {url} → {redacted(database_url)}"
    if log_format == "json":
        logging.getLogger("clerk_sync.cli").info(line)
    else:
        stderr.print(line, highlight=False, markup=False)


def check_tls(certfile: Path | None, keyfile: Path | None) -> ssl.SSLContext | None:
    """Load the certificate and key now, so a wrong path or a mismatched pair is a one-line
    error at startup rather than a traceback from inside uvicorn."""
    if certfile is None:
        if keyfile is not None:
            raise ConfigError("--ssl-keyfile needs --ssl-certfile (the certificate chain).")
        return None
    import ssl

    for option, path in (("--ssl-certfile", certfile), ("--ssl-keyfile", keyfile)):
        if path is not None and not path.is_file():
            raise ConfigError(f"{option} {path}: no such file.")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(certfile, keyfile)
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(
            f"--ssl-certfile/--ssl-keyfile cannot be loaded ({exc}): the files must be PEM, "
            "and the key must belong to the certificate (or be in the certificate file)."
        ) from None
    return context


@reports_errors
def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on (0.0.0.0 for all)."),
    port: int = typer.Option(8000, help="TCP port."),
    log_format: Annotated[LogFormat, typer.Option("--log-format", help=LOG_FORMAT_HELP)] = "text",
    ssl_certfile: Annotated[
        Path | None,
        typer.Option("--ssl-certfile", help="PEM certificate chain: serve HTTPS directly."),
    ] = None,
    ssl_keyfile: Annotated[
        Path | None,
        typer.Option("--ssl-keyfile", help="PEM private key of --ssl-certfile."),
    ] = None,
) -> None:
    """Receive Clerk webhooks at POST /api/webhooks/clerk and keep the database in sync."""
    import uvicorn

    from ..store import ensure_schema
    from ..web import WEBHOOK_PATH, create_app
    from ..web.edge import EdgeLimits

    settings = load_settings()
    settings.webhook_secrets()  # refuse to start without a usable secret
    refuse_dev_secret(settings)
    check_tls(ssl_certfile, ssl_keyfile)
    check_port_free(host, port)
    configure_logging(settings.log_level, log_format)
    limits = EdgeLimits.from_settings(settings)  # after logging: it may warn
    with open_engine(settings, require_current=False) as engine:
        ensure_schema(engine, naming=deployment(settings).naming)
        app = create_app(settings, engine=engine, log_format=log_format)
        scheme = "https" if ssl_certfile else "http"
        announce(f"{scheme}://{host}:{port}{WEBHOOK_PATH}", settings.sqlalchemy_url(), log_format)
        logging.getLogger("clerk_sync.edge").info(limits.describe())
        # uvicorn shuts down gracefully on SIGTERM, then re-raises the signal; a graceful stop
        # is a success, so let that re-raised signal end the process with status 0.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        uvicorn.run(
            app,
            host=host,
            port=port,
            log_config=None,
            access_log=False,
            log_level=settings.log_level.lower(),
            proxy_headers=False,  # the guard decides whom to believe (TRUSTED_PROXIES)
            ssl_certfile=str(ssl_certfile) if ssl_certfile else None,
            ssl_keyfile=str(ssl_keyfile) if ssl_keyfile else None,
            **limits.uvicorn_options(),  # connection limits: web/edge.py
        )
