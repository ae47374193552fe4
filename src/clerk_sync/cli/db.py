"""``clerk-sync db …``: the schema, owned by Alembic migrations shipped in the package."""

from __future__ import annotations

import typer

from .common import deployment, load_settings, open_engine, reports_errors, stdout

app = typer.Typer(help="Manage the database schema.", no_args_is_help=True)


@app.command("upgrade")
@reports_errors
def upgrade_cmd() -> None:
    """Create or migrate clerk-sync's tables to the current version."""
    from ..store import upgrade
    from ..store.engine import redacted

    settings = load_settings()
    with open_engine(settings, require_current=False) as engine:
        revision = upgrade(engine, naming=deployment(settings).naming)
    stdout.print(
        f"{redacted(settings.sqlalchemy_url())} is at revision {revision} (head).", highlight=False
    )


@app.command("status")
@reports_errors
def status_cmd() -> None:
    """Say whether the schema is current; exit 3 when it is not."""
    from ..store import schema_state
    from ..store.migrate import head_revision

    settings = load_settings()
    with open_engine(settings, require_current=False, create=False) as engine:
        state = schema_state(engine, deployment(settings).naming)
    stdout.print(f"schema: {state} (code expects revision {head_revision()})", highlight=False)
    if state != "current":
        raise typer.Exit(3)
