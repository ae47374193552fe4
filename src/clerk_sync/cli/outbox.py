"""``clerk-sync outbox …``: the after-commit hooks' rows — what ran, what waits, what died."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from ..errors import InvalidParameter
from ..events import OUTBOX_STATUSES, OutboxStatus
from .common import (
    deployment,
    load_settings,
    ms_to_text,
    open_engine,
    print_json,
    reports_errors,
    stdout,
)

app = typer.Typer(help="Inspect and retry the outbox of after-commit hooks.", no_args_is_help=True)
_STYLE = {"pending": "yellow", "done": "green", "dead": "red"}


@app.command("list")
@reports_errors
def list_cmd(
    status: str = typer.Option("", help=f"Only this status: {', '.join(OUTBOX_STATUSES)}."),
    limit: int = typer.Option(50, min=1, max=10_000, help="Most rows to show."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON only."),
) -> None:
    """List outbox rows, newest first, with the count of each status."""
    if status and status not in OUTBOX_STATUSES:
        raise InvalidParameter(f"--status must be one of {', '.join(OUTBOX_STATUSES)}.")
    from rich.table import Column, Table

    from ..store import outbox as rows

    settings = load_settings()
    with open_engine(settings) as engine, engine.connect() as conn:
        tables = deployment(settings)
        found = rows.list_rows(
            conn, tables, status=OutboxStatus(status) if status else None, limit=limit
        )
        counts = rows.counts(conn, tables)
    if as_json:
        print_json({"data": [r.as_json() for r in found], "counts": counts})
        return
    table = Table(
        Column("id", justify="right"),
        "created (UTC)",
        Column("hook", no_wrap=True),
        "event",
        Column("svix id", no_wrap=True),
        "subject",
        "status",
        "n",
        "last error / note",
    )
    for row in found:
        style = _STYLE.get(row.status, "")
        shown = f"{row.status} (running)" if row.as_json()["running"] else row.status
        table.add_row(
            str(row.id),
            ms_to_text(row.created_at),
            row.handler,
            row.event_type,
            row.svix_id or "-",
            row.subject_id or "-",
            f"[{style}]{shown}[/]",
            str(row.attempts),
            row.last_error or row.note or "",
        )
    stdout.print(table)
    summary = ", ".join(f"{counts[s]} {s}" for s in OUTBOX_STATUSES)
    stdout.print(f"{len(found)} row(s) shown; {summary}")


@app.command("retry")
@reports_errors
def retry_cmd(
    ids: Annotated[
        list[int] | None,
        typer.Argument(metavar="ID…", help="Ids of dead (or done) rows to run again."),
    ] = None,
    dead: bool = typer.Option(False, "--dead", help="Run every dead row again."),
) -> None:
    """Make rows pending again, due now, with a fresh count of attempts."""
    if bool(ids) == dead:
        raise InvalidParameter("Give row ids, or --dead for every dead row (not both).")
    from ..store import outbox as rows
    from ..store.engine import write_transaction

    settings = load_settings()
    with open_engine(settings) as engine, write_transaction(engine) as conn:
        changed = rows.retry(
            conn, deployment(settings), ids=ids or (), dead=dead, now_ms=int(time.time() * 1000)
        )
    missing = sorted(set(ids or ()) - set(changed))
    stdout.print(f"{len(changed)} row(s) pending again" + (f": {changed}" if changed else ""))
    if missing:
        raise InvalidParameter(
            f"No dead or done row with id {', '.join(map(str, missing))} "
            "(see `clerk-sync outbox list`)."
        )
