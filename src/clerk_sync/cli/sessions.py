"""``clerk-sync sessions …``: a user's sessions."""

from __future__ import annotations

import typer

from .common import list_objects, reports_errors

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
    list_objects(
        "session", COLUMNS, "session", limit=limit, as_json=as_json, where={"user_id": user}
    )
