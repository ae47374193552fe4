"""What ``trigger``, ``send`` and ``verify`` share: where to send, which secret, how answers
print."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.markup import escape

from ..errors import ConfigError
from .common import stdout

if TYPE_CHECKING:
    from ..config import Settings
    from ..devtools.scenarios import Planned
    from ..devtools.sender import Answer

WEBHOOK_PATH = "/api/webhooks/clerk"
"""The path :mod:`clerk_sync.web` serves the webhook at (``clerk_sync.web.WEBHOOK_PATH``, which
tests/cli/test_startup.py holds it equal to): spelled here too, since importing the web layer
for an option's default would cost every command, ``--help`` included, a tenth of a second."""
DEFAULT_URL = f"http://127.0.0.1:8000{WEBHOOK_PATH}"
"""Where ``clerk-sync dev`` listens by default."""
URL_HELP = "Webhook endpoint to POST to."
SIGNER_HELP = (
    "Sign with this whsec_ secret instead of CLERK_WEBHOOK_SECRET (it stays in your shell "
    "history: prefer the setting)."
)


def configured_secrets(option: str | None, settings: Settings) -> list[str]:
    """``--secret`` when given, else every configured secret; refused with the fix (and, when
    none is set, the hint that ``clerk-sync dev`` makes one)."""
    from ..config import secret_problem
    from ..devtools.keys import DEV_HINT

    if option is not None:
        problem = secret_problem(option.strip())
        if problem:
            raise ConfigError(f"--secret {problem}: pass the endpoint's whsec_ Signing Secret.")
        return [option.strip()]
    try:
        return settings.webhook_secrets()
    except ConfigError as exc:
        if "not set" in exc.detail:
            raise ConfigError(f"{exc.detail.rstrip('.')}; {DEV_HINT}.") from None
        raise


def signing_secret(option: str | None, settings: Settings) -> str:
    """The secret a delivery is signed with: ``--secret``, else the first configured one."""
    return configured_secrets(option, settings)[0]


def print_answer(planned: Planned, answer: Answer) -> bool:
    """One line per delivery: ✓/✗ (as aimed at or not), status, type, subject, svix id, outcome
    and reason. Returns whether the answer is the one aimed at."""
    met = answer.meets(planned.expects)
    mark = "[green]✓[/]" if met else "[red]✗[/]"
    colour = "green" if answer.ok else "red" if not met else "yellow"
    note = f" ({planned.note})" if planned.note else ""
    reason = f" — {escape(answer.reason)}" if answer.reason else ""
    stdout.print(
        f"{mark} [{colour}]{answer.status_code}[/] {escape(planned.event_type)} "
        f"{escape(planned.subject_id)} {escape(planned.msg_id)}{escape(note)} "
        f"[{colour}]{escape(answer.outcome)}[/]{reason}",
        highlight=False,
    )
    return met
