"""The ``clerk-sync`` command: one group per file.

Every command's module is imported, and each command built by typer, for any one command
(``--help`` included), so a module holds at its top only what its options need (typer, rich,
constants): what a command's run needs — the settings (pydantic), SQLAlchemy, Alembic, the
web layer — it imports inside the command. ``tests/cli/test_startup.py`` pins which modules
``--help`` and ``users list`` load.
"""

from __future__ import annotations

import gc

import typer

from . import db, events, members, orgs, outbox, sessions, users
from .backfill import backfill
from .dev import dev
from .doctor import doctor
from .notify import app as notify_app
from .reconcile import reconcile
from .send import send
from .serve import serve
from .trigger import trigger
from .verify_cmd import verify
from .worker import worker

app = typer.Typer(
    name="clerk-sync",
    help="Receive Clerk webhooks and keep a SQL database of users and organizations in sync.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        from .. import __version__

        typer.echo(f"clerk-sync {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False,
        "--version",
        callback=_print_version,
        is_eager=True,
        help="Print clerk-sync's version and exit.",
    ),
) -> None:
    """Receive Clerk webhooks and keep a SQL database of users and organizations in sync."""


app.command("serve")(serve)
app.command("dev")(dev)
app.command("trigger")(trigger)
app.command("send")(send)
app.command("doctor")(doctor)
app.command("verify")(verify)
app.command("reconcile")(reconcile)
app.command("worker")(worker)
app.command("backfill")(backfill)
app.add_typer(db.app, name="db")
app.add_typer(users.app, name="users")
app.add_typer(orgs.app, name="orgs")
app.add_typer(members.app, name="members")
app.add_typer(sessions.app, name="sessions")
app.add_typer(events.app, name="events")
app.add_typer(notify_app, name="notify")
app.add_typer(outbox.app, name="outbox")


def main() -> None:
    """The ``clerk-sync`` script (and ``python -m clerk_sync``)."""
    try:
        app(prog_name="clerk-sync")
    finally:
        # typer ends the process here. Frozen, what the command built (SQLAlchemy's, pydantic's,
        # typer's objects) is left alone on the way out instead of collected: 0.05-0.1 s less
        # per command. What exit must do still happens: stdout and stderr are flushed and the
        # atexit handlers (logging's among them) run.
        gc.freeze()
