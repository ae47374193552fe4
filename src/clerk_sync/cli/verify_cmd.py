"""``clerk-sync verify``: why one captured delivery fails, in the endpoint's own words."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import orjson
import typer
from rich.markup import escape

from ..errors import InvalidParameter
from .common import load_settings, reports_errors, stdout
from .send import read_payload
from .sending import configured_secrets

if TYPE_CHECKING:
    from ..devtools.diagnose import Diagnosis

_CURL_PREFIX = re.compile(r"^[<>]\s?")


def header_pairs(values: list[str], *, strict: bool) -> dict[str, str]:
    """``name: value`` lines as a dict. ``-H`` values must all be headers; a headers file may
    hold other lines too (a request line, ``curl -v``'s ``>`` prefixes, blank lines)."""
    headers: dict[str, str] = {}
    for raw in values:
        line = _CURL_PREFIX.sub("", raw.strip())
        name, sep, value = line.partition(":")
        if not sep or not name.strip() or " " in name.strip():
            if strict:
                raise InvalidParameter(f"-H {raw!r} must look like 'svix-id: msg_…'.")
            continue
        headers[name.strip().lower()] = value.strip()
    return headers


def read_headers_file(path: Path) -> dict[str, str]:
    """A JSON object of headers, or ``Name: value`` lines (as copied from a request log)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) else "not UTF-8"
        raise InvalidParameter(f"Cannot read --headers {path}: {why}.") from None
    if text.lstrip().startswith("{"):
        try:
            loaded = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise InvalidParameter(f"--headers {path} is not valid JSON: {exc}.") from None
        if not isinstance(loaded, dict):
            raise InvalidParameter(f"--headers {path} must hold a JSON object of headers.")
        return {str(k).lower(): str(v) for k, v in loaded.items()}
    return header_pairs(text.splitlines(), strict=False)


@reports_errors
def verify(
    header: Annotated[
        list[str] | None,
        typer.Option(
            "-H", "--header", metavar="'NAME: VALUE'", help="A request header; repeatable."
        ),
    ] = None,
    headers_file: Annotated[
        Path | None,
        typer.Option(
            "--headers", metavar="FILE", help="Headers as 'Name: value' lines or a JSON object."
        ),
    ] = None,
    body: str = typer.Option(
        ..., "--body", metavar="FILE", help="The raw body as received; - reads stdin."
    ),
    secret: str | None = typer.Option(
        None, help="Check against this whsec_ secret instead of CLERK_WEBHOOK_SECRET."
    ),
) -> None:
    """Explain why a captured delivery fails verification (exit 0 when it passes).

    Names the first problem as the endpoint's 4xx detail does — a missing header, the
    timestamp's skew against the tolerance, no signature matching any configured secret — and
    says when the body was modified before verification.
    """
    from ..devtools.diagnose import diagnose
    from ..verify import Verifier

    settings = load_settings()
    secrets = configured_secrets(secret, settings)
    headers = read_headers_file(headers_file) if headers_file else {}
    headers.update(header_pairs(header or [], strict=True))
    _, raw = read_payload(body)
    verifier = Verifier(secrets, tolerance_seconds=settings.webhook_tolerance_seconds)
    found = diagnose(verifier, headers, raw)
    if found.ok:
        _print_valid(found, len(secrets), verifier.tolerance_seconds)
        return
    _print_problem(found, secrets)
    assert found.problem is not None
    raise typer.Exit(found.problem.exit_code)


def _which(index: int | None, total: int) -> str:
    return "" if index is None or total == 1 else f" (secret #{index + 1} of {total})"


def _print_valid(found: Diagnosis, total: int, tolerance: int) -> None:
    assert found.signed is not None
    age = int(time.time()) - found.signed.timestamp
    stdout.print(
        f"[green]✓ valid[/]: {escape(found.signed.msg_id)} is signed by the configured "
        f"secret{_which(found.secret_index, total)}, {age} s ago (tolerance ±{tolerance} s).",
        highlight=False,
    )


def _print_problem(found: Diagnosis, secrets: list[str]) -> None:
    from ..devtools.keys import clerk_secret_key, instance_hint, secret_note

    problem = found.problem
    assert problem is not None
    stdout.print(f"[red]✗ {escape(problem.code)}[/]: {escape(problem.detail)}", highlight=False)
    notes: list[str] = []
    if found.body_modified:
        notes.append(
            f"The body was modified before verification: {found.body_modified}. Verify the "
            "raw request body, exactly as received, before any JSON parsing."
        )
    elif problem.code == "timestamp_out_of_tolerance" and found.secret_index is not None:
        notes.append(
            "The signature itself matches the configured secret"
            f"{_which(found.secret_index, len(secrets))}: only the timestamp is refused."
        )
    elif problem.code in ("signature_mismatch", "timestamp_out_of_tolerance"):
        if problem.code == "timestamp_out_of_tolerance":
            notes.append("The signature does not match the configured secret either.")
        notes.extend(n[0].upper() + n[1:] + "." for n in map(secret_note, secrets) if n)
        hint = instance_hint(clerk_secret_key())
        if hint:
            notes.append(hint[0].upper() + hint[1:] + ".")
    for note in notes:
        stdout.print(f"  {escape(note)}", highlight=False)
