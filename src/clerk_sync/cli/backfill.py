"""``clerk-sync backfill``: copy what Clerk already holds into the database (see
:mod:`clerk_sync.backfill`), with a progress bar per kind on a terminal."""

from __future__ import annotations

import contextlib
import gc
import logging
import sys
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from .common import deployment, load_settings, open_engine, print_json, reports_errors, stderr
from .common import stdout as console

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from ..backfill import Counts
    from ..clerk_api import ClerkApi
    from ..config import Settings
    from ..receiver import Receiver

KindName = Literal["users", "organizations", "memberships", "all"]
_LABELS = (
    ("inserted", "inserted"),
    ("updated", "updated"),
    ("unchanged", "unchanged"),
    ("skipped_stale", "skipped (stale)"),
    ("skipped_deleted", "skipped (deleted)"),
    ("failed", "failed"),
)


@contextlib.contextmanager
def backend_api(settings: Settings) -> Iterator[tuple[Receiver, ClerkApi]]:
    """The receiver ``serve`` would build (tables, in-transaction hooks, outbox routes) on a
    migrated database, and the Backend API client of ``CLERK_SECRET_KEY``: the key is checked
    before the database is opened."""
    from .. import wiring
    from ..clerk_api import ClerkApi
    from ..hooks import load_hooks
    from ..receiver import Receiver
    from ..store import ensure_schema

    client = ClerkApi.from_settings(settings)
    try:
        hooks = wiring.deployment(settings).hooks
        cleanups = load_hooks(settings.hook_paths())
        with open_engine(settings, require_current=False) as engine:
            tables = deployment(settings)
            ensure_schema(engine, naming=tables.naming)
            yield (
                Receiver(
                    engine,
                    tables=tables,
                    on_user_deleted=cleanups,
                    hooks=hooks.in_transaction,
                    outbox=hooks.routes(),
                ),
                client,
            )
    finally:
        client.close()


def quiet_logging(settings: Settings) -> None:
    """Our log lines (a 429 waited out, a retry) on stderr; not httpx's line per request."""
    from ..logformat import configure_logging

    configure_logging(settings.log_level)
    logging.getLogger("httpx").setLevel(logging.WARNING)


@reports_errors
def backfill(
    kind: Annotated[
        KindName,
        typer.Argument(help="What to copy: users, organizations, memberships, or all (in order)."),
    ] = "all",
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Fetch and compare with the database; write nothing."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object of counts only."),
) -> None:
    """Copy every user, organization and membership Clerk has (fetched from the Backend API
    with CLERK_SECRET_KEY) under the webhook rules: a newer stored version or a deletion
    wins. Interrupted, it continues from its checkpoint when run again."""
    from ..backfill import WALKS, Backfill

    settings = load_settings()
    quiet_logging(settings)
    names = list(WALKS) if kind == "all" else [kind]
    bar = not as_json and sys.stdout.isatty()
    with backend_api(settings) as (receiver, client):
        job = Backfill(receiver, client)
        if "users" in names:
            client.sdk  # noqa: B018 - import it now (users are counted through it), then:
        # what start-up built (the SDK's and SQLAlchemy's objects) lives until exit: frozen,
        # the collector stops walking it every few pages (~15% of a backfill's CPU).
        gc.collect()
        gc.freeze()
        results: dict[str, Counts] = {}
        try:
            with _bars(bar) as progress:
                for name in names:
                    task = progress.add_task(name, total=None, rate="") if progress else None
                    results[name] = job.run_kind(
                        name, dry_run=dry_run, progress=_updater(progress, task)
                    )
                    if not as_json:
                        console.print(summary(name, results[name], dry_run), highlight=False)
        except KeyboardInterrupt:
            again = "clerk-sync backfill" + ("" if kind == "all" else f" {kind}")
            stderr.print(
                "interrupted (a dry run writes nothing, checkpoints included)"
                if dry_run
                else f"interrupted: run `{again}` again to continue from its checkpoint",
                highlight=False,
            )
            raise typer.Exit(130) from None
    failed = sum(c.as_dict()["failed"] for c in results.values())
    if as_json:
        print_json({"dry_run": dry_run, "kinds": {n: c.as_dict() for n, c in results.items()}})
    elif failed:
        stderr.print(
            f"{failed} object(s) could not be stored: `clerk-sync events list --status failed` "
            "says why",
            highlight=False,
        )
    if failed:
        raise typer.Exit(1)


def summary(name: str, counts: Counts, dry_run: bool) -> str:
    """One line: what was walked and what became of it."""
    values = counts.as_dict()
    parts = ", ".join(f"{values[key]:,} {label}" for key, label in _LABELS)
    of = f" of {counts.total:,}" if counts.total is not None else ""
    resumed = f" (resumed at {counts.resumed_from:,})" if counts.resumed_from else ""
    rate = counts.fetched / counts.seconds if counts.seconds > 0 else 0.0
    head = f"{name} (dry run, nothing written)" if dry_run else name
    would = "would be " if dry_run else ""
    return (
        f"{head}: {counts.fetched:,}{of} fetched{resumed} — {would}{parts} "
        f"({counts.seconds:.1f} s, {rate:,.0f}/s)"
    )


@contextlib.contextmanager
def _bars(enabled: bool) -> Iterator[Progress | None]:
    if not enabled:
        yield None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    with Progress(
        TextColumn("[bold]{task.description:<13}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    ) as progress:
        yield progress


def _updater(progress: Progress | None, task: TaskID | None) -> Callable[[str, Counts], None]:
    def update(_name: str, counts: Counts) -> None:
        if progress is None or task is None:
            return
        rate = counts.fetched / counts.seconds if counts.seconds > 0 else 0.0
        progress.update(task, total=counts.total, completed=counts.done, rate=f"{rate:,.0f}/s")

    return update
