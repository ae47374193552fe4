"""Hypothesis strategies for small Clerk histories that mix every kind the model knows (a helper,
not a test module): two organizations, three users, memberships between them, an invitation and
up to two sessions, each object's versions with strictly increasing ``updated_at`` — except a
session's terminal event, which may share its ``.created``'s instant (the rank decides).

Embedded copies are the object's own versions (the same dicts), so one ``updated_at`` of one
object always means one body; some are partial (no ``updated_at``) and must refresh nothing.
The cases of clerk-sync bugs the proofs found stay out while :mod:`.known_bugs` says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

from clerk_sync.devtools import (
    deleted_object,
    deleted_user_event,
    envelope,
    invitation_object,
    membership_object,
    organization_object,
    session_object,
    user_event,
    user_object,
)

from .known_bugs import (
    ACCEPTED_BY_A_DELETED_USER,
    INVITED_BY_A_DELETED_USER,
    UNLOCKED_NAMED_USER_DELETED,
)

_STEM = "2vQ8c0VNv4M0bXkWcBnWmzY1x"  # 25 characters: ids are this and a 2-character tag
USER_IDS = tuple(f"user_{_STEM}U{c}" for c in "abc")
ORG_IDS = tuple(f"org_{_STEM}O{c}" for c in "AB")
INVITATION_ID = f"orginv_{_STEM}IA"
SESSION_IDS = tuple(f"sess_{_STEM}S{n}" for n in "12")
BASE_MS = 1_750_000_000_000
ROLES = ("org:member", "org:admin", "org:billing")
TERMINAL = ("ended", "removed", "revoked")

texts = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=6)
names = st.one_of(st.none(), st.sampled_from(["Ada", "Zoë 👩🏽‍💻", "שָׁלוֹם", "O'Brien", ""]), texts)


def tag(object_id: str) -> str:
    """An id's last two characters: how a falsifying example names it."""
    return object_id[-2:]


@dataclass
class Story:
    """The events of one history in the order Clerk emitted them (per object), and the
    versions of each user and organization, which later payloads embed."""

    events: list[dict[str, Any]] = field(default_factory=list)
    concurrent: bool = False
    """Delivered by concurrent writers (see :data:`UNLOCKED_NAMED_USER_DELETED`)."""
    users: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    organizations: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    deleted: set[str] = field(default_factory=set)


def _steps(draw: st.DrawFn, start: int, count: int) -> list[int]:
    """``count`` strictly increasing times after ``start``."""
    times, at = [], start
    for _ in range(count):
        at += draw(st.integers(1, 5_000))
        times.append(at)
    return times


def _rarely(draw: st.DrawFn) -> bool:
    """True about a third of the time: how often an object is deleted."""
    return draw(st.sampled_from([False, False, True]))


def _created_then_updated(draw: st.DrawFn, prefix: str, n: int) -> str:
    """The first version's event is usually ``.created``, sometimes ``.updated`` (Clerk may send
    an update of an object whose creation was never delivered)."""
    return f"{prefix}.created" if n == 0 and draw(st.booleans()) else f"{prefix}.updated"


def _user(draw: st.DrawFn, story: Story, user_id: str) -> None:
    count = draw(st.sampled_from([1, 2, 3, 0]))
    start = BASE_MS + draw(st.integers(0, 10_000))
    versions = []
    for n, at in enumerate(_steps(draw, start, count)):
        user = user_object(
            user_id=user_id,
            email=draw(st.sampled_from([None, f"v{n}@example.com", "ada@example.com"])),
            first_name=draw(names),
            last_name=draw(names),
            username=draw(st.one_of(st.none(), st.just(f"u{n}"))),
            created_at=start,
            updated_at=at,
            public_metadata={"version": n},
        )
        versions.append(user)
        story.events.append(user_event(_created_then_updated(draw, "user", n), user))
    story.users[user_id] = versions
    if count == 0 or _rarely(draw):
        last = versions[-1]["updated_at"] if versions else start
        story.events.append(deleted_user_event(user_id, timestamp=last + 1))
        story.deleted.add(user_id)


def _organization(draw: st.DrawFn, story: Story, org_id: str) -> None:
    count = draw(st.sampled_from([1, 2, 3, 0]))
    start = BASE_MS + draw(st.integers(0, 10_000))
    creators = [
        u
        for u in USER_IDS
        if UNLOCKED_NAMED_USER_DELETED or not story.concurrent or u not in story.deleted
    ]
    versions = []
    for n, at in enumerate(_steps(draw, start, count)):
        org = organization_object(
            org_id=org_id,
            name=draw(st.sampled_from(["Acme", "Acme Corp", "Globex", "Ünïcode ☃"])),
            slug=f"org-{tag(org_id).lower()}-{n}",
            created_by=draw(st.sampled_from((None, *creators))),
            members_count=n,
            public_metadata={"version": n},
            created_at=start,
            updated_at=at,
        )
        versions.append(org)
        story.events.append(envelope(_created_then_updated(draw, "organization", n), org, at))
    story.organizations[org_id] = versions
    if _rarely(draw):
        slug = versions[-1]["slug"] if versions else f"org-{tag(org_id).lower()}"
        last = versions[-1]["updated_at"] if versions else start
        stub = deleted_object("organization", org_id, slug=slug)
        story.events.append(envelope("organization.deleted", stub, last + 1))
        story.deleted.add(org_id)


def _embedded(draw: st.DrawFn, versions: list[dict[str, Any]], fallback: dict[str, Any]) -> Any:
    """One of an object's versions, or a copy without ``updated_at`` (it refreshes nothing)."""
    partial = {k: v for k, v in fallback.items() if k != "updated_at"}
    return draw(st.sampled_from([*versions, partial]))


def _membership(draw: st.DrawFn, story: Story, org_id: str, user_id: str) -> None:
    membership_id = f"orgmem_{_STEM}{tag(org_id)[1]}{tag(user_id)[1]}"
    user_versions = story.users[user_id]
    user = user_versions[-1] if user_versions else user_object(user_id=user_id)
    org_fallback = organization_object(org_id=org_id, name="Unknown", slug="unknown")
    start = BASE_MS + draw(st.integers(0, 10_000))
    membership: dict[str, Any] = {}
    for n, at in enumerate(_steps(draw, start, draw(st.integers(1, 3)))):
        organization = _embedded(draw, story.organizations[org_id], org_fallback)
        membership = membership_object(
            organization=organization,
            user=user,
            membership_id=membership_id,
            role=draw(st.sampled_from(ROLES)),
            created_at=start,
            updated_at=at,
        )
        event_type = _created_then_updated(draw, "organizationMembership", n)
        story.events.append(envelope(event_type, membership, at))
    unlocked = story.concurrent and user_id in story.deleted and not UNLOCKED_NAMED_USER_DELETED
    if not unlocked and _rarely(draw):  # the full membership, its updated_at not bumped
        deleted = envelope("organizationMembership.deleted", membership, membership["updated_at"])
        story.events.append(deleted)


def _invitation(draw: st.DrawFn, story: Story) -> None:
    org_id = draw(st.sampled_from(ORG_IDS))
    org = (story.organizations[org_id] or [organization_object(org_id=org_id)])[-1]
    created_at = BASE_MS + draw(st.integers(0, 10_000))
    inviters = [u for u in USER_IDS if INVITED_BY_A_DELETED_USER or u not in story.deleted]
    inviter_id = draw(st.sampled_from([*inviters, None]))
    inviter = None
    if inviter_id is not None:
        inviter = (story.users[inviter_id] or [user_object(user_id=inviter_id)])[-1]
    common = {
        "organization": org,
        "email_address": "grace@example.com",
        "invitation_id": INVITATION_ID,
        "role": draw(st.sampled_from(ROLES)),
        "inviter": inviter,
        "created_at": created_at,
    }
    pending = invitation_object(**common, updated_at=created_at)
    story.events.append(envelope("organizationInvitation.created", pending, created_at))
    acceptors = [u for u in USER_IDS if ACCEPTED_BY_A_DELETED_USER or u not in story.deleted]
    end = draw(st.sampled_from([*(["accepted"] if acceptors else []), "revoked", None]))
    if end is None:
        return
    at = created_at + draw(st.integers(1, 5_000))
    user_id = draw(st.sampled_from(acceptors)) if end == "accepted" else None
    final = invitation_object(**common, status=end, user_id=user_id, updated_at=at)
    story.events.append(envelope(f"organizationInvitation.{end}", final, at))


def _session(draw: st.DrawFn, story: Story, session_id: str) -> None:
    user_id = draw(st.sampled_from(USER_IDS))
    fallback = user_object(user_id=user_id, updated_at=BASE_MS)
    created_at = BASE_MS + draw(st.integers(0, 10_000))
    client_id = f"client_{_STEM}C{session_id[-1]}"

    def event(action: str, status: str, at: int) -> dict[str, Any]:
        user = _embedded(draw, story.users[user_id], fallback)
        session = session_object(
            user=user,
            session_id=session_id,
            status=status,
            client_id=client_id,
            created_at=created_at,
            updated_at=at,
        )
        return envelope(f"session.{action}", session, at)

    story.events.append(event("created", "active", created_at))
    at = created_at
    if draw(st.booleans()):
        at += draw(st.integers(1, 5_000))
        story.events.append(event("pending", "pending", at))
    if draw(st.booleans()):
        end = draw(st.sampled_from(TERMINAL))
        # A terminal event may share the instant of the .created (rank 2 beats rank 0).
        at += draw(st.integers(0 if at == created_at else 1, 5_000))
        story.events.append(event(end, end, at))


@st.composite
def histories(draw: st.DrawFn, *, concurrent: bool = False) -> list[dict[str, Any]]:
    """A history of users, organizations, memberships, an invitation and sessions, for
    ``concurrent`` writers or not."""
    story = Story(concurrent=concurrent)
    for user_id in USER_IDS:
        _user(draw, story, user_id)
    for org_id in ORG_IDS:
        _organization(draw, story, org_id)
    pairs = [(o, u) for o in ORG_IDS for u in USER_IDS]
    for org_id, user_id in draw(st.lists(st.sampled_from(pairs), max_size=3, unique=True)):
        _membership(draw, story, org_id, user_id)
    if not _rarely(draw):
        _invitation(draw, story)
    for session_id in SESSION_IDS[: draw(st.integers(0, len(SESSION_IDS)))]:
        _session(draw, story, session_id)
    return story.events


def describe(event: dict[str, Any]) -> str:
    """One event in one line, for a falsifying example."""
    data = event["data"]
    parts = [event["type"], tag(data["id"]), f"updated_at={data.get('updated_at', '-')}"]
    for key, value in (
        ("org", (data.get("organization") or {}).get("id") or data.get("organization_id")),
        ("user", (data.get("public_user_data") or {}).get("user_id") or data.get("user_id")),
    ):
        if isinstance(value, str):
            parts.append(f"{key}={tag(value)}")
    for key in ("organization", "user"):
        inner = data.get(key)
        if isinstance(inner, dict):
            parts.append(f"{key}@{inner.get('updated_at', 'partial')}")
    if "first_name" in data:
        parts.append(f"first_name={data['first_name']!r}")
    return " ".join(parts)
