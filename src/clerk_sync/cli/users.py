"""``clerk-sync users …``: the users the database holds."""

from __future__ import annotations

import typer

from ..entities import kind_named
from ..errors import NotFound
from ..store import reads
from .common import (
    deployment,
    load_settings,
    open_engine,
    print_object,
    print_rows,
    reports_errors,
)

app = typer.Typer(help="Inspect synced users.", no_args_is_help=True)
SEARCHED = ("id", "email", "first_name", "last_name", "username")
COLUMNS = [
    ("id", "id"),
    ("email", "email"),
    ("first_name", "first name"),
    ("last_name", "last name"),
    ("username", "username"),
    ("updated_at", "updated (UTC)"),
]


@app.command("list")
@reports_errors
def list_cmd(
    email: str = typer.Option("", help="Only the user with this primary e-mail (exact)."),
    query: str = typer.Option(
        "", help="Only users whose id, e-mail, names or username contain this (any case)."
    ),
    limit: int = typer.Option(100, min=1, max=10_000, help="Most users to show."),
    cursor: str = typer.Option("", help="Start after this user id."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON only."),
) -> None:
    """List users by id."""
    settings = load_settings()
    kind = kind_named("user")
    with open_engine(settings) as engine:
        rows, _ = reads.list_rows(
            engine,
            deployment(settings),
            kind.name,
            kind.read_fields(),
            limit=limit,
            cursor=cursor or None,
            where={"email": email} if email else None,
            search=(SEARCHED, query) if query else None,
        )
    print_rows(rows, COLUMNS, "user", as_json=as_json)


@app.command("show")
@reports_errors
def show_cmd(
    user_id: str = typer.Argument(..., metavar="ID", help="Clerk user id (user_…)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON only."),
) -> None:
    """Show one user."""
    settings = load_settings()
    kind = kind_named("user")
    with open_engine(settings) as engine:
        row = reads.get_row(engine, deployment(settings), kind.name, kind.read_fields(), user_id)
    if row is None:
        raise NotFound(f"No user {user_id!r}: never synced, or deleted.")
    print_object(row, as_json=as_json)
