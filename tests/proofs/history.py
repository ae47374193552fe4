"""Histories of Clerk user, organization and membership events like a real app's, and the order
Svix might deliver them in (a helper, not a test module). Everything is reproducible from the
``random.Random`` given."""

from __future__ import annotations

import random
import string
from dataclasses import dataclass, field
from typing import Any

from clerk_sync.devtools import (
    deleted_object,
    deleted_user_event,
    encode,
    envelope,
    membership_object,
    organization_object,
    user_event,
    user_object,
)

from .known_bugs import UNLOCKED_NAMED_USER_DELETED
from .svix_sender import Message

DUPLICATED = 0.05
"""Share of messages Svix sends a second time (same svix id and bytes) later on."""
WINDOW = 40
"""Delivery order is the history's, shuffled within windows of this many messages."""
ALPHABET = string.digits + string.ascii_uppercase + string.ascii_lowercase
PERSONAS = [
    ("Ada", "Lovelace"),
    ("Grace", "Hopper"),
    ("Alan", "Turing"),
    ("Barbara", "Liskov"),
    ("Edsger", "Dijkstra"),
    ("Frances", "Allen"),
    ("Donald", "Knuth"),
    ("Margaret", "Hamilton"),
    ("Ken", "Thompson"),
    ("Radia", "Perlman"),
]
PLANS = ["free", "pro", "team", "enterprise"]
COMPANIES = ["Acme", "Globex", "Initech", "Umbrella", "Hooli", "Stark", "Wayne", "Wonka"]
ROLES = ["org:member", "org:admin", "org:billing"]


def clerk_id(rng: random.Random, prefix: str) -> str:
    """A Clerk/Svix-shaped id (prefix + 27 base62 characters), reproducible from ``rng``."""
    return prefix + "_" + "".join(rng.choices(ALPHABET, k=27))


def user_version(
    rng: random.Random, user_id: str, created_at: int, updated_at: int, n: int
) -> dict[str, Any]:
    """The ``n``-th version of a user, as Clerk's User object: a new name, metadata, and
    sometimes a new primary e-mail, secondary addresses, a phone or an external id."""
    first, last = rng.choice(PERSONAS)
    user = user_object(
        user_id=user_id,
        email=f"{first}.{last}.{rng.randrange(10**6)}@example.com".lower(),
        phone=f"+1555{rng.randrange(10**7):07d}" if rng.random() < 0.3 else None,
        first_name=first if rng.random() < 0.95 else None,
        last_name=last,
        username=f"{first.lower()}{rng.randrange(10**4)}" if rng.random() < 0.5 else None,
        created_at=created_at,
        updated_at=updated_at,
        extra_emails=(f"old.{n}@example.org",) if rng.random() < 0.2 else (),
        public_metadata={"plan": rng.choice(PLANS), "seats": rng.randint(1, 50), "v": n},
        unsafe_metadata={"theme": rng.choice(["dark", "light"])} if rng.random() < 0.3 else None,
        verification_object=rng.random() < 0.5,
    )
    user["external_id"] = f"ext_{rng.randrange(10**6)}" if rng.random() < 0.2 else None
    user["last_sign_in_at"] = updated_at - rng.randrange(60_000) if n else None
    user["banned"] = rng.random() < 0.02
    return user


def organization_version(
    rng: random.Random, org_id: str, created_at: int, updated_at: int, n: int, creator: str | None
) -> dict[str, Any]:
    """The ``n``-th version of an organization: a new name, member count and metadata."""
    name = f"{rng.choice(COMPANIES)} {rng.randrange(10**4)}"
    return organization_object(
        org_id=org_id,
        name=name,
        created_by=creator,
        members_count=rng.randint(0, 40),
        public_metadata={"plan": rng.choice(PLANS), "v": n},
        created_at=created_at,
        updated_at=updated_at,
    )


@dataclass
class _Live:
    """What exists at one point of a history, and each object's newest version."""

    users: list[str] = field(default_factory=list)
    organizations: list[str] = field(default_factory=list)
    memberships: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    """(organization id, user id) → the newest membership object."""
    objects: dict[str, dict[str, Any]] = field(default_factory=dict)
    """User or organization id → its newest version."""
    versions: dict[str, int] = field(default_factory=dict)
    kept: set[str] = field(default_factory=set)
    """Users never to be deleted: a deleted membership names them (UNLOCKED_NAMED_USER_DELETED)."""

    def bump(self, object_id: str) -> int:
        self.versions[object_id] = n = self.versions.get(object_id, -1) + 1
        return n

    def drop_memberships(self, object_id: str) -> None:
        """A deleted user or organization takes its memberships along (by cascade)."""
        for pair in [p for p in self.memberships if object_id in p]:
            del self.memberships[pair]


def make_history(
    rng: random.Random,
    size: int,
    *,
    created: float = 0.6,
    updated: float = 0.3,
    organizations: float = 0.08,
    memberships: float = 0.12,
) -> list[tuple[str, dict[str, Any]]]:
    """``size`` (svix id, event) pairs: an ``organizations`` share of organization events, a
    ``memberships`` share of membership events between a live user and a live organization,
    the rest user events. Within each family about ``created`` are ``.created``, ``updated``
    ``.updated`` of a live object with a strictly newer ``updated_at`` (a membership changes
    role; it embeds its organization's newest version), the rest ``.deleted`` of a live one
    (a membership's carries the full object, ``updated_at`` not bumped). By default 60/30/10,
    the mix of the performance issue; fewer creations mean more versions of each object,
    which is what races need. A deleted user or organization takes its memberships along, and
    none of its memberships' events come after its delete in the history (they may in the
    delivery order)."""
    clock = 1_760_000_000_000
    live = _Live()
    history: list[tuple[str, dict[str, Any]]] = []
    while len(history) < size:
        clock += rng.randint(1, 5)
        family, roll = rng.random(), rng.random()
        if family < organizations:
            event = _organization_event(rng, live, clock, roll, created, updated)
        elif family < organizations + memberships and live.users and live.organizations:
            event = _membership_event(rng, live, clock, roll, created, updated)
        else:
            event = _user_event(rng, live, clock, roll, created, updated)
        history.append((clerk_id(rng, "msg"), event))
    return history


def _user_event(
    rng: random.Random, live: _Live, clock: int, roll: float, created: float, updated: float
) -> dict[str, Any]:
    if roll < created or len(live.users) < 10:
        user_id = clerk_id(rng, "user")
        live.users.append(user_id)
        user = user_version(rng, user_id, clock, clock, live.bump(user_id))
        live.objects[user_id] = user
        return user_event("user.created", user)
    deletable = [i for i, u in enumerate(live.users) if u not in live.kept]
    if roll < created + updated or not deletable:
        user_id = rng.choice(live.users)
        created_at = live.objects[user_id]["created_at"]
        user = user_version(rng, user_id, created_at, clock, live.bump(user_id))
        live.objects[user_id] = user
        return user_event("user.updated", user)
    user_id = live.users.pop(rng.choice(deletable))
    live.drop_memberships(user_id)
    return deleted_user_event(user_id, timestamp=clock)


def _organization_event(
    rng: random.Random, live: _Live, clock: int, roll: float, created: float, updated: float
) -> dict[str, Any]:
    if roll < created or len(live.organizations) < 3:
        org_id = clerk_id(rng, "org")
        live.organizations.append(org_id)
        creator = None  # deliveries run concurrently: see UNLOCKED_NAMED_USER_DELETED
        if UNLOCKED_NAMED_USER_DELETED and live.users and rng.random() < 0.8:
            creator = rng.choice(live.users)
        org = organization_version(rng, org_id, clock, clock, live.bump(org_id), creator)
        live.objects[org_id] = org
        return envelope("organization.created", org, clock)
    if roll < created + updated:
        org_id = rng.choice(live.organizations)
        held = live.objects[org_id]
        n = live.bump(org_id)
        org = organization_version(rng, org_id, held["created_at"], clock, n, held["created_by"])
        live.objects[org_id] = org
        return envelope("organization.updated", org, clock)
    org_id = live.organizations.pop(rng.randrange(len(live.organizations)))
    live.drop_memberships(org_id)
    stub = deleted_object("organization", org_id, slug=live.objects[org_id]["slug"])
    return envelope("organization.deleted", stub, clock)


def _membership_event(
    rng: random.Random, live: _Live, clock: int, roll: float, created: float, updated: float
) -> dict[str, Any]:
    pair = (rng.choice(live.organizations), rng.choice(live.users))
    if not live.memberships or (roll < created and pair not in live.memberships):
        membership = membership_object(
            organization=live.objects[pair[0]],
            user=live.objects[pair[1]],
            membership_id=clerk_id(rng, "orgmem"),
            role=rng.choice(ROLES),
            created_at=clock,
            updated_at=clock,
        )
        live.memberships[pair] = membership
        return envelope("organizationMembership.created", membership, clock)
    if roll >= created:  # else the pair drawn is a member already: it changes role
        pair = rng.choice(sorted(live.memberships))
    held = live.memberships[pair]
    if roll < created + updated:
        membership = membership_object(
            organization=live.objects[pair[0]],
            user=live.objects[pair[1]],
            membership_id=held["id"],
            role=rng.choice(ROLES),
            created_at=held["created_at"],
            updated_at=clock,
        )
        live.memberships[pair] = membership
        return envelope("organizationMembership.updated", membership, clock)
    del live.memberships[pair]
    if not UNLOCKED_NAMED_USER_DELETED:
        live.kept.add(pair[1])
    # The full membership as it was, with the organization as it is now.
    current = {**held, "organization": live.objects[pair[0]]}
    return envelope("organizationMembership.deleted", current, clock)


def delivery_order(
    rng: random.Random,
    history: list[tuple[str, dict[str, Any]]],
    *,
    window: int = WINDOW,
    duplicated: float = DUPLICATED,
) -> list[Message]:
    """Svix's order: roughly the history's, shuffled within ``window``, with a ``duplicated``
    share of the messages sent a second time later on."""
    messages = [Message(svix_id, encode(event)) for svix_id, event in history]
    for start in range(0, len(messages), window):
        chunk = messages[start : start + window]
        rng.shuffle(chunk)
        messages[start : start + window] = chunk
    for message in rng.sample(messages, int(len(messages) * duplicated)):
        later = messages.index(message) + rng.randint(1, 400)
        messages.insert(min(later, len(messages)), message)
    return messages
