"""Why one captured delivery fails verification: the first problem, in the endpoint's words.

The checks run in the endpoint's order (headers, timestamp window, UTF-8, signature) through the
same :class:`~clerk_sync.Verifier`, so the problem named is the error the endpoint answers, with
the same ``code`` and ``detail``. Then it says what the endpoint cannot know:

* when the timestamp is out of the window, whether the signature itself matches (a capture or
  a replay, rather than a wrong secret);
* when no signature matches, whether the body *as modified* would: without a trailing newline,
  or re-serialized the ways frameworks and JSON libraries write JSON. If one matches, the body
  was changed before verification — the most common failure with Clerk webhooks (a JSON body
  parser running before the raw body is read).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import RejectedDelivery, SignatureMismatch, TimestampOutOfTolerance
from ..verify import SignedHeaders, Verifier, parse_headers

_SERIALIZATIONS: tuple[tuple[str, dict[str, Any]], ...] = (
    (
        "compact JSON (as JSON.stringify or json.dumps(…, separators=(',', ':')) write it)",
        {"separators": (",", ":"), "ensure_ascii": False},
    ),
    ("compact JSON with non-ASCII escaped", {"separators": (",", ":"), "ensure_ascii": True}),
    ("JSON with spaces after ',' and ':' (as Python's json.dumps writes it)", {}),
    ("JSON with spaces, non-ASCII kept", {"ensure_ascii": False}),
    ("JSON indented by 2 spaces", {"indent": 2, "ensure_ascii": False}),
    ("JSON indented by 4 spaces", {"indent": 4, "ensure_ascii": False}),
    ("compact JSON with sorted keys", {"separators": (",", ":"), "sort_keys": True}),
    ("JSON with spaces and sorted keys", {"sort_keys": True}),
)


@dataclass(frozen=True, slots=True)
class Diagnosis:
    """The first problem (None when the delivery verifies) and what else was found."""

    problem: RejectedDelivery | None
    signed: SignedHeaders | None = None
    secret_index: int | None = None
    """Which configured secret matched, when one did (even if the timestamp did not pass)."""
    body_modified: str | None = None
    """How the body was changed before verification, when a changed body matches."""

    @property
    def ok(self) -> bool:
        return self.problem is None


def diagnose(
    verifier: Verifier, headers: Mapping[str, str], body: bytes, *, now: float | None = None
) -> Diagnosis:
    """Check one delivery as the endpoint would, and explain a signature that does not match."""
    try:
        signed = verifier.check_headers(headers, now=now)
    except TimestampOutOfTolerance as exc:
        signed = parse_headers(headers)
        index = verifier.matching_secret(signed, body)
        modified = None if index is not None else body_modification(verifier, signed, body)
        return Diagnosis(exc, signed, index, modified)
    except RejectedDelivery as exc:
        return Diagnosis(exc)
    try:
        verifier.verify(signed, body)
    except SignatureMismatch as exc:
        return Diagnosis(exc, signed, None, body_modification(verifier, signed, body))
    except RejectedDelivery as exc:
        return Diagnosis(exc, signed)
    return Diagnosis(None, signed, verifier.matching_secret(signed, body))


def body_modification(verifier: Verifier, signed: SignedHeaders, body: bytes) -> str | None:
    """How ``body`` differs from the bytes that were signed, if a usual change explains it."""
    for how, candidate in _variants(body):
        if candidate != body and verifier.matches(signed, candidate):
            return how
    return None


def _variants(body: bytes) -> Iterator[tuple[str, bytes]]:
    for newline in (b"\r\n", b"\n"):
        if body.endswith(newline):
            yield (
                "the signature matches once the trailing newline is removed",
                body[: -len(newline)],
            )
            break
    yield "the signature matches once the trailing whitespace is removed", body.rstrip()
    try:
        parsed = json.loads(body)
    except ValueError:
        return
    for label, options in _SERIALIZATIONS:
        text = json.dumps(parsed, **options)
        for tail in ("", "\n"):
            yield (
                f"the signature matches the same JSON written as {label}, so the body was "
                "parsed and re-serialized",
                (text + tail).encode("utf-8"),
            )
