"""``clerk-sync reconcile``: what differs between the local copy and Clerk, and ``--fix``."""

from __future__ import annotations

from typing import Annotated

import typer

from ..errors import InvalidParameter
from .backfill import backend_api, quiet_logging
from .common import load_settings, print_json, reports_errors, stdout


@reports_errors
def reconcile(
    kinds: Annotated[
        list[str] | None,
        typer.Option(
            "--kind", help="users, organizations or memberships (repeatable); default: all."
        ),
    ] = None,
    fix: bool = typer.Option(False, "--fix", help="Repair the drift through the receiver."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON only."),
) -> None:
    """Compare the database with Clerk's Backend API: missing (in Clerk, not here), extra (here,
    gone from Clerk), stale (Clerk's is newer). Exit 1 when anything differed (also with --fix,
    which repairs it), 0 when nothing did."""
    from rich.table import Table

    from ..reconcile import RECONCILED
    from ..reconcile import reconcile as run

    unknown = [k for k in kinds or () if k not in RECONCILED]
    if unknown:
        raise InvalidParameter(f"--kind {unknown[0]!r} is not one of {', '.join(RECONCILED)}.")
    settings = load_settings()
    quiet_logging(settings)
    names = list(dict.fromkeys(kinds or RECONCILED))
    with backend_api(settings) as (receiver, client):
        drifts = run(receiver, client, names, fix_drift=fix)
    total = sum(d.total for d in drifts)
    if as_json:
        print_json({"drift": [d.as_json() for d in drifts], "total": total, "fixed": fix})
    else:
        table = Table("kind", "missing", "extra", "stale", "ids (first of each)")
        for d in drifts:
            shown = d.as_json(shown=3)
            ids = "; ".join(
                f"{what}: {', '.join(shown[what]['ids'])}"
                for what in ("missing", "extra", "stale")
                if shown[what]["ids"]
            )
            table.add_row(d.kind, str(len(d.missing)), str(len(d.extra)), str(len(d.stale)), ids)
        stdout.print(table)
        if not total:
            stdout.print("no drift: the database matches Clerk")
        elif fix:
            stdout.print(f"{total} difference(s) repaired")
        else:
            stdout.print(f"{total} difference(s); run with --fix to repair them")
    if total:
        raise typer.Exit(1)
