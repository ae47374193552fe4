"""``clerk-sync orgs …``: the organizations the database holds."""

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
    settings = load_settings()
    kind = kind_named("organization")
    with open_engine(settings) as engine:
        rows, _ = reads.list_rows(
            engine,
            deployment(settings),
            kind.name,
            kind.read_fields(),
            limit=limit,
            cursor=cursor or None,
        )
    print_rows(rows, COLUMNS, "organization", as_json=as_json)


@app.command("show")
@reports_errors
def show_cmd(
    org_id: str = typer.Argument(..., metavar="ID", help="Clerk organization id (org_…)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON only."),
) -> None:
    """Show one organization."""
    settings = load_settings()
    kind = kind_named("organization")
    with open_engine(settings) as engine:
        row = reads.get_row(engine, deployment(settings), kind.name, kind.read_fields(), org_id)
    if row is None:
        raise NotFound(f"No organization {org_id!r}: never synced, or deleted.")
    print_object(row, as_json=as_json)
