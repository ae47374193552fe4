"""The events ``clerk-sync trigger`` can send: one fixture builder per event type.

Every type clerk-sync handles (:func:`clerk_sync.sync.handled_types`) must have a fixture here —
a test fails otherwise — so a new handler arrives with an event to try it with: register its
builder with :func:`fixture`. A builder returns the envelope exactly as Clerk POSTs it (shapes
from :mod:`clerk_sync.devtools.fixtures`) for one :class:`Subject` at one instant; the caller
serializes it once and signs those bytes.

``clerkSync.ping`` is clerk-sync's own probe, not a Clerk event: no handler will ever claim it,
so it is recorded as ``ignored`` and writes no user. ``clerk-sync doctor`` sends it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .fixtures import _envelope, deleted_user_event, user_event, user_object

PING_TYPE = "clerkSync.ping"
_PERSONAS = (
    ("Ada", "Lovelace"),
    ("Grace", "Hopper"),
    ("Alan", "Turing"),
    ("Katherine", "Johnson"),
    ("Edsger", "Dijkstra"),
    ("Barbara", "Liskov"),
    ("Margaret", "Hamilton"),
    ("Donald", "Knuth"),
)
_DELIVERY_LAG_MS = 14
"""Clerk stamps the envelope a few ms after the change (``timestamp`` vs ``data.updated_at``)."""


@dataclass(frozen=True, slots=True)
class Subject:
    """Who an event is about and when: what a builder needs to make it realistic."""

    id: str
    index: int
    """Position among the subjects of one ``trigger --count N`` run (picks a persona)."""
    created_ms: int
    at_ms: int
    """When this change happened: ``data.updated_at`` for versioned objects."""


Builder = Callable[[Subject], dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Fixture:
    """How to build one event type, and what ``trigger --list`` says about it."""

    event_type: str
    summary: str
    id_prefix: str
    versioned: bool
    """True when ``data.updated_at`` orders it (so an older copy is stale)."""
    build: Builder


_FIXTURES: dict[str, Fixture] = {}


def fixture(
    event_type: str, *, summary: str, id_prefix: str = "user", versioned: bool = False
) -> Callable[[Builder], Builder]:
    """Register the decorated builder for ``event_type``; a second one for a type is an error."""

    def register(build: Builder) -> Builder:
        if event_type in _FIXTURES:
            raise ValueError(f"{event_type!r} already has a fixture")
        _FIXTURES[event_type] = Fixture(event_type, summary, id_prefix, versioned, build)
        return build

    return register


def fixture_for(event_type: str) -> Fixture | None:
    return _FIXTURES.get(event_type)


def fixture_types() -> list[str]:
    return sorted(_FIXTURES)


def all_fixtures() -> list[Fixture]:
    return [_FIXTURES[name] for name in fixture_types()]


def persona(index: int) -> tuple[str, str, str]:
    """First name, last name and e-mail of the ``index``-th made-up user."""
    first, last = _PERSONAS[index % len(_PERSONAS)]
    round_ = index // len(_PERSONAS)
    suffix = f"+{round_}" if round_ else ""
    return first, last, f"{first}.{last}{suffix}@example.com".lower()


def _user(subject: Subject) -> dict[str, Any]:
    first, last, email = persona(subject.index)
    return user_object(
        user_id=subject.id,
        email=email,
        first_name=first,
        last_name=last,
        created_at=subject.created_ms,
        updated_at=subject.at_ms,
    )


@fixture(
    "user.created",
    summary="a sign-up: the full User object, primary e-mail verified by code",
    versioned=True,
)
def user_created(subject: Subject) -> dict[str, Any]:
    return user_event("user.created", _user(subject), subject.at_ms + _DELIVERY_LAG_MS)


@fixture(
    "user.updated",
    summary="the same user later: signed in, username and public metadata set",
    versioned=True,
)
def user_updated(subject: Subject) -> dict[str, Any]:
    user = _user(subject)
    first, last, _ = persona(subject.index)
    user["username"] = f"{first}{last[0]}".lower()
    user["public_metadata"] = {"plan": "pro"}
    user["last_sign_in_at"] = subject.created_ms + 1_512
    return user_event("user.updated", user, subject.at_ms + _DELIVERY_LAG_MS)


@fixture("user.deleted", summary="the deleted-object stub Clerk sends: {deleted, id, object}")
def user_deleted(subject: Subject) -> dict[str, Any]:
    return deleted_user_event(subject.id, timestamp=subject.at_ms)


@fixture(
    PING_TYPE,
    summary="clerk-sync's own probe (doctor sends it): recorded as ignored, writes no user",
    id_prefix="ping",
)
def ping(subject: Subject) -> dict[str, Any]:
    data = {"id": subject.id, "object": "ping", "message": "clerk-sync round trip"}
    return _envelope(PING_TYPE, data, subject.at_ms)
