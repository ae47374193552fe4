"""``clerk-sync doctor``: is this setup able to receive Clerk's webhooks? One line per check."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

import typer
from rich.markup import escape

from .common import load_settings, reports_errors, stdout
from .sending import DEFAULT_URL, WEBHOOK_PATH

if TYPE_CHECKING:
    from ..devtools.doctor import CheckResult, Target


def target_for(url: str) -> Target:
    """The webhook URL and the health check beside it (``/healthz`` at the same prefix)."""
    from ..devtools.doctor import Target
    from ..devtools.sender import check_url

    parts = urlsplit(check_url(url))
    path = parts.path.rstrip("/")
    prefix = path[: -len(WEBHOOK_PATH)] if path.endswith(WEBHOOK_PATH) else ""
    health = urlunsplit((parts.scheme, parts.netloc, prefix + "/healthz", "", ""))
    return Target(url, health, WEBHOOK_PATH)


def _print(result: CheckResult) -> None:
    mark = "[green]✓[/]" if result.ok else "[dim]–[/]" if result.skipped else "[red]✗[/]"
    stdout.print(f"{mark} {result.id:<10} {escape(result.summary)}", highlight=False)
    if result.fix and not result.ok:
        stdout.print(f"  {'':<10} fix: {escape(result.fix)}", highlight=False)


@reports_errors
def doctor(
    url: str = typer.Option(DEFAULT_URL, help="The webhook endpoint to check."),
) -> None:
    """Check the secret, the database, the server and a signed round trip through the endpoint.

    Exits 0 only when every check passes; otherwise with the first failure's exit code (2
    configuration, 3 schema, 4 database unavailable, 1 otherwise).
    """
    from ..devtools.doctor import run_checks
    from ..devtools.keys import clerk_secret_key

    target = target_for(url)
    settings = load_settings()
    first_failure = 0
    passed = total = 0
    for result in run_checks(settings, target, clerk_secret_key=clerk_secret_key()):
        _print(result)
        total += 1
        passed += result.ok
        if not result.ok and not result.skipped and first_failure == 0:
            first_failure = result.exit_code or 1
    if first_failure == 0 and passed == total:
        stdout.print(f"All {total} checks passed.", highlight=False)
        return
    stdout.print(f"{passed} of {total} checks passed.", highlight=False)
    raise typer.Exit(first_failure or 1)
