"""``clerk-sync events …``: the delivery log."""

from __future__ import annotations

import typer
from rich.table import Column, Table

from ..errors import InvalidParameter
from ..store import reads
from ..store.schema import EVENT_STATUSES
from .common import (
    deployment,
    load_settings,
    ms_to_text,
    open_engine,
    print_json,
    reports_errors,
    stdout,
)

app = typer.Typer(help="Inspect the delivery log.", no_args_is_help=True)
_STYLE = {"processed": "green", "stale": "yellow", "ignored": "dim", "failed": "red"}


@app.command("list")
@reports_errors
def list_cmd(
    status: str = typer.Option("", help=f"Only this status: {', '.join(EVENT_STATUSES)}."),
    event_type: str = typer.Option("", "--type", help="Only this event type, e.g. user.created."),
    limit: int = typer.Option(50, min=1, max=10_000, help="Most events to show."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON only."),
) -> None:
    """List deliveries, newest first (payloads are not shown)."""
    if status and status not in EVENT_STATUSES:
        raise InvalidParameter(f"--status must be one of {', '.join(EVENT_STATUSES)}.")
    settings = load_settings()
    with open_engine(settings) as engine:
        rows, _ = reads.list_events(
            engine,
            deployment(settings),
            limit=limit,
            status=status or None,
            event_type=event_type or None,
        )
    if as_json:
        print_json(rows)
        return
    table = Table(
        "received (UTC)",
        Column("svix id", no_wrap=True),  # ids are for copying: never cut
        "type",
        "subject",
        "status",
        "n",
        "error",
    )
    for row in rows:
        style = _STYLE.get(row["status"], "")
        table.add_row(
            ms_to_text(row["received_at"]),
            row["svix_id"],
            row["type"] or "-",
            row["subject_id"] or "-",
            f"[{style}]{row['status']}[/]",
            str(row["delivery_count"]),
            row["error"] or "",
        )
    stdout.print(table)
    stdout.print(f"{len(rows)} event(s)")
