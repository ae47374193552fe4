"""The ``clerk-sync`` command: one group per file."""

from __future__ import annotations

import typer

from . import db, events, users
from .serve import serve

app = typer.Typer(
    name="clerk-sync",
    help="Receive Clerk webhooks and keep a SQL database of users in sync.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("serve")(serve)
app.add_typer(db.app, name="db")
app.add_typer(users.app, name="users")
app.add_typer(events.app, name="events")


def main() -> None:
    app()
