"""``clerk-sync users …``: the users the database holds."""

from __future__ import annotations

import typer

from .common import list_objects, reports_errors, show_object

app = typer.Typer(help="Inspect synced users.", no_args_is_help=True)
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
    from ..entities import kind_named

    list_objects(
        "user",
        COLUMNS,
        "user",
        limit=limit,
        as_json=as_json,
        cursor=cursor or None,
        where={"email": email} if email else None,
        search=(kind_named("user").searched, query) if query else None,
    )


@app.command("show")
@reports_errors
def show_cmd(
    user_id: str = typer.Argument(..., metavar="ID", help="Clerk user id (user_…)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON only."),
) -> None:
    """Show one user."""
    show_object("user", user_id, "user", as_json=as_json)


@app.command("fetch")
@reports_errors
def fetch_cmd(
    user_id: str = typer.Argument(..., metavar="ID", help="Clerk user id (user_…)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON only."),
) -> None:
    """Fetch one user from Clerk's Backend API (CLERK_SECRET_KEY) and apply it under the
    webhook rules: a newer stored version or a deletion wins."""
    from ..backfill import ensure_user
    from ..events import Status
    from .backfill import backend_api, quiet_logging
    from .common import load_settings, print_json, stdout

    settings = load_settings()
    quiet_logging(settings)
    with backend_api(settings) as (receiver, client):
        outcome = ensure_user(user_id, receiver=receiver, client=client)
    if as_json:
        print_json(
            {
                "svix_id": outcome.svix_id,
                "status": outcome.status.value,
                "duplicate": outcome.duplicate,
                "type": outcome.event_type,
                "subject_id": outcome.subject_id,
                "reason": outcome.reason,
            }
        )
    else:
        if outcome.duplicate:
            what = "unchanged (this version was fetched before)"
        elif outcome.status == Status.PROCESSED:
            what = "inserted" if outcome.event_type == "user.created" else "updated"
        else:
            what = f"{outcome.status.value} — {outcome.reason}"
        stdout.print(f"{outcome.subject_id}: {what}", highlight=False, markup=False)
    if outcome.status == Status.FAILED:
        raise typer.Exit(1)
