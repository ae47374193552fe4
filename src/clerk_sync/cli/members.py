"""``clerk-sync members …``: organization memberships, by organization or by user."""

from __future__ import annotations

import typer

from ..errors import InvalidParameter
from .common import list_objects, reports_errors

app = typer.Typer(help="Inspect organization memberships.", no_args_is_help=True)
COLUMNS = [
    ("id", "id"),
    ("organization_id", "organization"),
    ("user_id", "user"),
    ("role", "role"),
    ("updated_at", "updated (UTC)"),
]


@app.command("list")
@reports_errors
def list_cmd(
    org: str = typer.Option("", "--org", help="The memberships of this organization (org_…)."),
    user: str = typer.Option("", "--user", help="The memberships of this user (user_…)."),
    limit: int = typer.Option(100, min=1, max=10_000, help="Most memberships to show."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON only."),
) -> None:
    """List the memberships of one organization (--org) or of one user (--user)."""
    if bool(org) == bool(user):
        raise InvalidParameter("Give exactly one of --org ID or --user ID.")
    where = {"organization_id": org} if org else {"user_id": user}
    list_objects(
        "organization_membership", COLUMNS, "membership", limit=limit, as_json=as_json, where=where
    )
