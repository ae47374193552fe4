"""``clerk-sync orgs …``: the organizations the database holds."""

from __future__ import annotations

import typer

from .common import list_objects, reports_errors, show_object

app = typer.Typer(help="Inspect synced organizations.", no_args_is_help=True)
COLUMNS = [
    ("id", "id"),
    ("name", "name"),
    ("slug", "slug"),
    ("members_count", "members"),
    ("updated_at", "updated (UTC)"),
]


@app.command("list")
@reports_errors
def list_cmd(
    limit: int = typer.Option(100, min=1, max=10_000, help="Most organizations to show."),
    cursor: str = typer.Option("", help="Start after this organization id."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON only."),
) -> None:
    """List organizations by id."""
    list_objects(
        "organization", COLUMNS, "organization", limit=limit, as_json=as_json, cursor=cursor or None
    )


@app.command("show")
@reports_errors
def show_cmd(
    org_id: str = typer.Argument(..., metavar="ID", help="Clerk organization id (org_…)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON only."),
) -> None:
    """Show one organization."""
    show_object("organization", org_id, "organization", as_json=as_json)
