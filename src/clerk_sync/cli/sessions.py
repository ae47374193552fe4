"""``clerk-sync sessions …``: a user's sessions."""

from __future__ import annotations

import typer

from ..entities import kind_named
from ..store import reads
from .common import deployment, load_settings, open_engine, print_rows, reports_errors

app = typer.Typer(help="Inspect synced sessions.", no_args_is_help=True)
COLUMNS = [
    ("id", "id"),
    ("user_id", "user"),
    ("status", "status"),
    ("last_active_at", "last active (UTC)"),
    ("expire_at", "expires (UTC)"),
]


@app.command("list")
@reports_errors
def list_cmd(
    user: str = typer.Option(..., "--user", help="The sessions of this user (user_…)."),
    limit: int = typer.Option(100, min=1, max=10_000, help="Most sessions to show."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON only."),
) -> None:
    """List a user's sessions by id."""
    settings = load_settings()
    kind = kind_named("session")
    with open_engine(settings) as engine:
        rows, _ = reads.list_rows(
            engine,
            deployment(settings),
            kind.name,
            kind.read_fields(),
            limit=limit,
            where={"user_id": user},
        )
    print_rows(rows, COLUMNS, "session", as_json=as_json)
