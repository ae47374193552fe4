"""``clerk-sync users …``: what the database holds."""

from __future__ import annotations

import typer
from rich.table import Column, Table

from ..errors import NotFound
from ..store import reads
from .common import load_settings, ms_to_text, open_engine, print_json, reports_errors, stdout

app = typer.Typer(help="Inspect synced users.", no_args_is_help=True)


@app.command("list")
@reports_errors
def list_cmd(
    limit: int = typer.Option(100, min=1, max=10_000, help="Most users to show."),
    cursor: str = typer.Option("", help="Start after this user id."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON only."),
) -> None:
    """List users by id."""
    with open_engine(load_settings()) as engine:
        rows, _ = reads.list_users(engine, limit=limit, cursor=cursor or None)
    if as_json:
        print_json(rows)
        return
    table = Table("email", "name", "username", "updated (UTC)")
    table.columns.insert(0, Column("id", no_wrap=True))  # ids are for copying: never cut
    for row in rows:
        name = " ".join(p for p in (row["first_name"], row["last_name"]) if p)
        table.add_row(
            row["id"],
            row["email"] or "-",
            name or "-",
            row["username"] or "-",
            ms_to_text(row["updated_at"]),
        )
    stdout.print(table)
    stdout.print(f"{len(rows)} user(s)")


@app.command("show")
@reports_errors
def show_cmd(
    user_id: str = typer.Argument(..., metavar="ID", help="Clerk user id (user_…)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON only."),
) -> None:
    """Show one user."""
    with open_engine(load_settings()) as engine:
        row = reads.get_user(engine, user_id)
    if row is None:
        raise NotFound(f"No user {user_id!r}: never synced, or deleted.")
    if as_json:
        print_json(row)
        return
    table = Table("field", "value", show_header=False)
    for key, value in row.items():
        shown = ms_to_text(value) if key.endswith("_at") and value is not None else str(value)
        table.add_row(key, shown)
    stdout.print(table)
