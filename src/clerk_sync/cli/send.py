"""``clerk-sync send``: sign and send your own payload, e.g. one copied from Clerk's dashboard."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from ..errors import InvalidParameter, InvalidPayload
from .common import load_settings, reports_errors
from .sending import DEFAULT_URL, SIGNER_HELP, URL_HELP, print_answer, signing_secret


def read_payload(source: str) -> tuple[str, bytes]:
    """The bytes of ``source`` (a path, or ``-`` for stdin) and a name for messages."""
    if source == "-":
        return "stdin", sys.stdin.buffer.read()
    try:
        return source, Path(source).read_bytes()
    except OSError as exc:
        raise InvalidParameter(f"Cannot read {source}: {exc.strerror or exc}.") from None


def check_json(name: str, body: bytes) -> object:
    """Parse ``body`` to refuse what Clerk could never have sent, saying where it breaks."""
    if not body.strip():
        raise InvalidPayload(f"{name} is empty; nothing was sent.", code="payload_not_json")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidPayload(
            f"{name} is not UTF-8 (bad byte at offset {exc.start}); nothing was sent.",
            code="body_not_utf8",
        ) from None
    try:
        parsed: object = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidPayload(
            f"{name} is not valid JSON: line {exc.lineno}, column {exc.colno}: {exc.msg}; "
            "nothing was sent.",
            code="payload_not_json",
        ) from None
    return parsed


@reports_errors
def send(
    source: str = typer.Argument(..., metavar="FILE", help="A JSON payload; - reads stdin."),
    url: str = typer.Option(DEFAULT_URL, help=URL_HELP),
    secret: str | None = typer.Option(None, help=SIGNER_HELP),
) -> None:
    """Sign a payload exactly as it is (its bytes are not re-serialized) and send it.

    Each run is a new message (a fresh svix id and timestamp). Exits 0 when the answer is a 2xx.
    """
    from ..devtools.fixtures import new_id
    from ..devtools.scenarios import Planned
    from ..devtools.sender import Sender

    name, body = read_payload(source)
    event = check_json(name, body)
    settings = load_settings()
    signing = signing_secret(secret, settings)
    event_type, subject_id = "-", "-"
    if isinstance(event, dict):
        event_type = str(event.get("type") or "-")
        data = event.get("data")
        if isinstance(data, dict):
            subject_id = str(data.get("id") or "-")
    planned = Planned(event_type, subject_id, new_id("msg"), body)
    with Sender(url, signing, tolerance_seconds=settings.webhook_tolerance_seconds) as sender:
        answer = sender.send(planned.body, planned.msg_id)
    if not print_answer(planned, answer):
        raise typer.Exit(1)
