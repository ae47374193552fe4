"""Histories of Clerk user events like a real app's, and the order Svix might deliver them in
(a helper, not a test module). Everything is reproducible from the ``random.Random`` given."""

from __future__ import annotations

import random
import string
from typing import Any

from clerk_sync.devtools import deleted_user_event, encode, user_event, user_object

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


def make_history(
    rng: random.Random, size: int, *, created: float = 0.6, updated: float = 0.3
) -> list[tuple[str, dict[str, Any]]]:
    """``size`` (svix id, event) pairs: by default about 60% ``user.created``, 30%
    ``user.updated`` of a live user with a strictly newer ``updated_at``, 10% ``user.deleted``
    of a live user (the mix of the performance issue). Fewer creations mean more versions of
    each user, which is what races need."""
    clock = 1_760_000_000_000
    live: list[str] = []
    versions: dict[str, tuple[int, int]] = {}  # user id → (created_at, number of versions)
    history: list[tuple[str, dict[str, Any]]] = []
    while len(history) < size:
        clock += rng.randint(1, 5)
        roll = rng.random()
        if roll < created or len(live) < 10:
            user_id = clerk_id(rng, "user")
            versions[user_id] = (clock, 1)
            live.append(user_id)
            event = user_event("user.created", user_version(rng, user_id, clock, clock, 0))
        elif roll < created + updated:
            user_id = rng.choice(live)
            created_at, n = versions[user_id]
            versions[user_id] = (created_at, n + 1)
            event = user_event("user.updated", user_version(rng, user_id, created_at, clock, n))
        else:
            user_id = live.pop(rng.randrange(len(live)))
            event = deleted_user_event(user_id, timestamp=clock)
        history.append((clerk_id(rng, "msg"), event))
    return history


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
