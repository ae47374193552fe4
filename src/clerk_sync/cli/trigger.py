"""``clerk-sync trigger``: realistic Clerk events, signed and sent, hard cases on purpose."""

from __future__ import annotations

from typing import Annotated

import typer

from ..devtools.catalog import all_fixtures
from ..devtools.overrides import parse_override
from ..devtools.scenarios import SCENARIOS, PlanOptions, plan
from .common import load_settings, reports_errors, stdout
from .sending import DEFAULT_URL, SIGNER_HELP, URL_HELP, print_answer, signing_secret


@reports_errors
def trigger(
    event_type: str | None = typer.Argument(
        None, metavar="EVENT_TYPE", help="e.g. user.created; --list shows them all."
    ),
    url: str = typer.Option(DEFAULT_URL, help=URL_HELP),
    secret: str | None = typer.Option(None, help=SIGNER_HELP),
    user_id: str | None = typer.Option(
        None, "--user-id", help="The user the events are about (default: a new id)."
    ),
    sets: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            metavar="PATH=VALUE",
            help="Change a field before signing, e.g. data.first_name=Ada (VALUE is JSON if it "
            "parses as JSON, else a string). Repeatable; applies to every event sent.",
        ),
    ] = None,
    count: int = typer.Option(1, min=1, max=1000, help="How many distinct users."),
    list_: bool = typer.Option(False, "--list", help="List the event types and scenarios."),
    scenario: str | None = typer.Option(
        None,
        help=f"A story instead of one event: {', '.join(sorted(SCENARIOS))} (--list says what "
        "each sends). org-lifecycle is about a new organization and its users: with it "
        "--count N makes N organizations, and --user-id and --stale do not apply.",
    ),
    duplicate: bool = typer.Option(False, help="Send each delivery twice (same svix id)."),
    shuffle: bool = typer.Option(False, help="Send the deliveries out of order."),
    stale: bool = typer.Option(False, help="Also send an update older than the newest one."),
    bad_signature: bool = typer.Option(False, help="Sign with a wrong secret (expect 401)."),
    expired: bool = typer.Option(
        False, help="Sign with a timestamp past the tolerance (expect 401)."
    ),
) -> None:
    """Send realistic Clerk events, signed like Svix signs them, to a clerk-sync endpoint.

    Prints one line per delivery: ✓ when the answer is the one aimed at (a 2xx, or the 401
    --bad-signature/--expired provoke), the status code, type, user, svix id and the answer.
    """
    if list_:
        _print_catalog()
        return
    options = PlanOptions(
        event_type=event_type,
        scenario=scenario,
        user_id=user_id,
        count=count,
        overrides=tuple(parse_override(s) for s in sets or ()),
        duplicate=duplicate,
        shuffle=shuffle,
        stale=stale,
        bad_signature=bad_signature,
        expired=expired,
    )
    from ..devtools.sender import Sender

    deliveries = plan(options)
    settings = load_settings()
    signing = signing_secret(secret, settings)
    met = 0
    with Sender(url, signing, tolerance_seconds=settings.webhook_tolerance_seconds) as sender:
        for n, planned in enumerate(deliveries):
            answer = sender.send(planned.body, planned.msg_id, planned.signing)
            if n == 0:  # after the first answer: an unreachable URL is one line on stderr
                stdout.print(f"POST {url}", highlight=False, markup=False)
            met += print_answer(planned, answer)
    total = len(deliveries)
    if met == total:
        stdout.print(f"{total} sent, every answer as intended.", markup=False)
        return
    stdout.print(f"{total} sent, {total - met} not answered as intended.", markup=False)
    raise typer.Exit(1)


def _print_catalog() -> None:
    from ..entities import handled_types

    handled = set(handled_types())
    fixtures = all_fixtures()
    width = max(len(f.event_type) for f in fixtures)
    for f in fixtures:
        kind = "handled" if f.event_type in handled else "ignored"
        stdout.print(f"{f.event_type:<{width}}  {kind:<7}  {f.summary}", markup=False)
    for name, scenario in sorted(SCENARIOS.items()):
        stdout.print(f"--scenario {name}: {scenario.summary}", markup=False)
