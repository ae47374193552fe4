"""How the dashboard shows things: times, what a delivery did, what changed between two
versions of an object, payloads as the logs show them, and the bars of its charts (plain SVG
drawn on the server, so the pages need no chart library and work without JavaScript)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ...events import Status
from ...logformat import escape_unsafe, redact

MAX_SHOWN_CHARS = 120
"""A changed value longer than this is cut, with an ellipsis."""
_IGNORED_CHANGES = frozenset({"updated_at"})


def when(ms: int | None) -> str:
    """``2026-12-02 06:10:05 UTC``"""
    if ms is None:
        return "—"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def ago(ms: int | None, now_ms: int) -> str:
    """``3 min ago``: the age of a moment, in its largest unit."""
    if ms is None:
        return "never"
    seconds = max(0, (now_ms - ms) // 1000)
    for size, unit in ((86_400, "d"), (3_600, "h"), (60, "min")):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{seconds} s ago"


def body(payload: str | None) -> dict[str, Any] | None:
    """A stored body as JSON, or None when it is gone or not JSON."""
    if payload is None:
        return None
    try:
        parsed = json.loads(payload)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


def pretty(payload: str) -> str:
    """A stored body pretty-printed, e-mails and secrets masked as in the logs; a body that is
    not JSON is shown as it is (masked too)."""
    parsed: Any
    try:
        parsed = json.loads(payload)
    except ValueError:
        return escape_unsafe(redact(payload))
    return escape_unsafe(redact(json.dumps(parsed, indent=2, ensure_ascii=False, sort_keys=True)))


def as_json(value: Any, indent: int | None = None) -> str:
    """A value as JSON text, for the page to escape like any other text."""
    return json.dumps(value, indent=indent, ensure_ascii=False, sort_keys=True, default=str)


def label(event: Mapping[str, Any]) -> str:
    """Who or what a delivery was about, for people: a name, an e-mail (masked), a slug."""
    data = (body(event.get("payload")) or {}).get("data")
    if not isinstance(data, dict):
        return ""
    parts: list[str] = []
    name = " ".join(str(data[k]) for k in ("first_name", "last_name") if data.get(k))
    for candidate in (name, data.get("name"), data.get("username")):
        if candidate:
            parts.append(str(candidate))
            break
    emails = data.get("email_addresses")
    if isinstance(emails, list) and emails and isinstance(emails[0], dict):
        address = emails[0].get("email_address")
        if address:
            parts.append(redact(str(address)))
    elif data.get("email_address"):
        parts.append(redact(str(data["email_address"])))
    organization = data.get("organization")
    if isinstance(organization, dict) and organization.get("name"):
        parts.append(f"in {organization['name']}")
    return escape_unsafe(" · ".join(parts))


def did(event: Mapping[str, Any]) -> str:
    """What a delivery did, in a few words."""
    status = event.get("status")
    action = str(event.get("type") or "").rpartition(".")[2]
    if status == Status.PROCESSED:
        done = action or "applied"
        return (
            done
            if event.get("delivery_count", 1) <= 1
            else f"{done} (sent {event['delivery_count']}×)"
        )
    if status == Status.STALE:
        return "not applied: older than what is stored, or about a deleted object"
    if status == Status.IGNORED:
        return "recorded only: this type is not synced"
    if status == Status.FAILED:
        return "failed: " + redact(str(event.get("error") or "unusable body"))
    return str(status)


@dataclass(frozen=True, slots=True)
class Change:
    path: str
    before: str
    after: str


def _shown(value: Any) -> str:
    if value is None:
        return "—"
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    text = escape_unsafe(redact(text))
    return text if len(text) <= MAX_SHOWN_CHARS else text[: MAX_SHOWN_CHARS - 1] + "…"


def changes(before: Mapping[str, Any] | None, after: Mapping[str, Any] | None) -> list[Change]:
    """Fields of ``data`` that differ between two bodies, one level into nested objects
    (``public_metadata.plan``); ``updated_at`` aside, since it always moves."""
    old = (before or {}).get("data")
    new = (after or {}).get("data")
    if not isinstance(old, dict) or not isinstance(new, dict):
        return []
    found: list[Change] = []
    for key in sorted(set(old) | set(new)):
        if key in _IGNORED_CHANGES or old.get(key) == new.get(key):
            continue
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            for sub in sorted(set(a) | set(b)):
                if a.get(sub) != b.get(sub):
                    found.append(Change(f"{key}.{sub}", _shown(a.get(sub)), _shown(b.get(sub))))
        else:
            found.append(Change(key, _shown(a), _shown(b)))
    return found


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    width: float
    segments: list[tuple[float, float, str]]
    """(y, height, class) from the bottom up."""
    title: str
    label: str


@dataclass(frozen=True, slots=True)
class Chart:
    width: int
    height: int
    bars: list[Bar]
    top: int
    """The value of the chart's top line."""
    total: int


def chart(
    columns: Sequence[tuple[str, str, Sequence[tuple[int, str]]]],
    *,
    width: int = 720,
    height: int = 160,
    every: int = 1,
) -> Chart:
    """Stacked bars: ``columns`` = (axis label, tooltip, [(value, css class), …]); every
    ``every``-th column is labelled."""
    top = max([sum(v for v, _ in parts) for _, _, parts in columns] + [1])
    plot = height - 20
    step = width / max(1, len(columns))
    bars: list[Bar] = []
    for i, (axis, title, parts) in enumerate(columns):
        segments: list[tuple[float, float, str]] = []
        y = float(plot)
        for value, css in parts:
            if value <= 0:
                continue
            h = plot * value / top
            y -= h
            segments.append((round(y, 1), round(h, 1), css))
        total = sum(v for v, _ in parts)
        bars.append(
            Bar(
                x=round(i * step + step * 0.1, 1),
                width=round(step * 0.8, 1),
                segments=segments,
                title=f"{title}: {total}",
                label=axis if i % every == 0 else "",
            )
        )
    return Chart(width, height, bars, top, sum(sum(v for v, _ in p) for _, _, p in columns))
