"""``clerk-sync notify …``: try the rules of ``NOTIFY_RULES`` before relying on them."""

from __future__ import annotations

import time

import typer

from ..errors import ConfigError, NotFound
from .common import load_settings, reports_errors

app = typer.Typer(
    help="Try the notification rules and alerts of NOTIFY_RULES.", no_args_is_help=True
)


@app.command("test")
@reports_errors
def try_rule(
    rule: str = typer.Argument(
        ..., help="A rule's name (or rule-N, by position), or an alert's name or kind."
    ),
    rules: str = typer.Option(
        "", "--rules", metavar="PATH", help="The rules file (default: NOTIFY_RULES)."
    ),
) -> None:
    """Render RULE from an example payload (or sample alert facts) and send it once, now."""
    path = rules.strip() or load_settings().notify_rules.strip()
    if not path:
        raise ConfigError("No rules file: set NOTIFY_RULES or pass --rules PATH.")
    from ..notify import load_rules

    notifications = load_rules(path)
    target = notifications.find(rule)
    if target is None:
        known = ", ".join(notifications.names()) or "none"
        raise NotFound(f"{path} has no rule or alert {rule!r} (it has: {known}).")
    sent = notifications.send_test(target, int(time.time() * 1000))
    typer.echo(f"Sent {sent.what}, rendered from {sent.source}, to {', '.join(sent.schemes)}")
    typer.echo(f"  title: {sent.message.title}")
    typer.echo(f"  body:  {sent.message.body}")
    typer.echo(f"  level: {sent.message.level}")
