"""Convergence: any delivery of a history ends in the state the model computes from it.

Svix neither orders nor de-duplicates, and Clerk may send one event again as a new message. So
for any history of a few users (created, updated with increasing ``updated_at``, deleted), every
permutation of its deliveries, with redeliveries of one svix id and re-sends under a new one,
must leave the database exactly as in-order delivery does — the model's state — and the event
log with one row per svix id. Checked on SQLite and PostgreSQL through the real
:class:`Receiver`, one delivery at a time, in batches (``receive_batch``, as group commit
calls it), and through the :class:`GroupCommitter` itself.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine, delete, select

from clerk_sync.committer import GroupCommitter
from clerk_sync.devtools import deleted_user_event, encode, user_event, user_object
from clerk_sync.receiver import Delivery, Outcome, Receiver
from clerk_sync.store.engine import is_sqlite
from tests.helpers.tables import events_table, metadata

from .hypothesis_settings import proof_settings
from .model import UPSERT_TYPES, State, actual_state, expected_state

USER_IDS = (
    "user_2vQ8c0VNv4M0bXkWcBnWmzY1xGa",
    "user_2vQ8c0VNv4M0bXkWcBnWmzY1xGb",
    "user_2vQ8c0VNv4M0bXkWcBnWmzY1xGc",
    "user_2vQ8c0VNv4M0bXkWcBnWmzY1xGd",
)
BASE_MS = 1_750_000_000_000
PROOF = proof_settings(60)

texts = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=6)
names = st.one_of(st.none(), st.sampled_from(["Ada", "Zoë 👩🏽‍💻", "שָׁלוֹם", "O'Brien", ""]), texts)


@dataclass(frozen=True)
class Scenario:
    """A history and one way Svix might deliver it."""

    history: list[dict[str, Any]]
    deliveries: list[Delivery]

    def __repr__(self) -> str:
        """A falsifying example in a few lines: what happened, and the delivery order."""
        lines = [
            f"{i:02d} {e['type']} {e['data']['id'][-1]} updated_at="
            f"{e['data'].get('updated_at', '-')} first_name={e['data'].get('first_name', '-')!r}"
            for i, e in enumerate(self.history)
        ]
        order = " ".join(d.svix_id.removeprefix("msg_") for d in self.deliveries)
        return "Scenario(\n  " + "\n  ".join(lines) + f"\n  delivered: {order})"

    def counts(self) -> Counter[str]:
        """How many times each svix id was delivered."""
        return Counter(d.svix_id for d in self.deliveries)


@st.composite
def user_history(draw: st.DrawFn, user_id: str) -> list[dict[str, Any]]:
    """One user's events in the order Clerk emitted them."""
    versions = draw(st.integers(0, 4))
    deleted = versions == 0 or draw(st.booleans())
    created = draw(st.booleans()) or versions == 0
    events: list[dict[str, Any]] = []
    at = BASE_MS + draw(st.integers(0, 10_000))
    created_at = at
    for n in range(versions):
        at += draw(st.integers(1, 5_000))
        user = user_object(
            user_id=user_id,
            email=draw(st.sampled_from([None, f"v{n}@example.com", "ada@example.com"])),
            first_name=draw(names),
            last_name=draw(names),
            username=draw(st.one_of(st.none(), st.just(f"u{n}"))),
            created_at=created_at,
            updated_at=at,
            public_metadata={"version": n},
        )
        kind = "user.created" if n == 0 and created else "user.updated"
        events.append(user_event(kind, user))
    if deleted:
        events.append(deleted_user_event(user_id, timestamp=at + draw(st.integers(1, 5_000))))
    return events


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    """A history of 1–4 users, delivered shuffled, with redeliveries and re-sends."""
    count = draw(st.integers(1, len(USER_IDS)))
    history = [e for uid in USER_IDS[:count] for e in draw(user_history(uid))]
    deliveries: list[Delivery] = []
    for i, event in enumerate(history):
        body = encode(event)
        copies = 1 + draw(st.integers(0, 2))  # the same svix id redelivered
        deliveries += [Delivery(f"msg_{i:02d}", body)] * copies
        if draw(st.integers(0, 3)) == 0:  # the same event sent again as a new message
            deliveries.append(Delivery(f"msg_{i:02d}_resent", body))
    return Scenario(history, draw(st.permutations(deliveries)))


def reset(engine: Engine) -> None:
    """Empty every table: one database serves all of a test's examples."""
    with engine.begin() as conn:
        for table in reversed(metadata.sorted_tables):
            conn.execute(delete(table))


def check(scenario: Scenario, outcomes: Sequence[object], observer: Engine) -> None:
    """The end state is the model's, the log holds each svix id once, counted right, and each
    svix id was applied once: every other delivery of it was answered ``duplicate``."""
    assert all(isinstance(o, Outcome) and o.accepted for o in outcomes), outcomes
    fresh = Counter(o.svix_id for o in outcomes if isinstance(o, Outcome) and not o.duplicate)
    assert fresh == Counter(dict.fromkeys(scenario.counts(), 1)), "a svix id was applied twice"
    expected = expected_state(scenario.history)
    assert actual_state(observer) == expected
    with observer.connect() as conn:
        log = conn.execute(
            select(
                events_table.c.svix_id,
                events_table.c.delivery_count,
                events_table.c.type,
                events_table.c.subject_id,
                events_table.c.payload,
            )
        ).all()
    assert Counter({row.svix_id: row.delivery_count for row in log}) == scenario.counts()
    assert len(log) == len(scenario.counts())
    # A deleted user's bodies are erased, whichever came first, except the delete's own stub.
    kept = {(r.subject_id, r.type) for r in log if r.payload is not None}
    assert not {(uid, t) for uid in expected.deleted for t in UPSERT_TYPES} & kept


def test_the_model_is_delivery_order_free() -> None:
    """The model itself: one fixed history, reversed, gives the same state."""
    user = user_object(user_id=USER_IDS[0], updated_at=BASE_MS)
    newer = {**user, "first_name": "Augusta", "updated_at": BASE_MS + 1}
    history = [user_event("user.created", user), user_event("user.updated", newer)]
    state = expected_state(history)
    assert state == expected_state(list(reversed(history)))
    assert state.users[USER_IDS[0]]["first_name"] == "Augusta"
    gone = expected_state([deleted_user_event(USER_IDS[0]), *history])
    assert gone == State(users={}, deleted=frozenset({USER_IDS[0]}))


@PROOF
@given(scenario=scenarios())
def test_one_delivery_at_a_time_converges(
    scenario: Scenario, receiver: Receiver, engine: Engine, observer: Engine
) -> None:
    """``Receiver.receive``: each delivery in its own transaction, in any order."""
    reset(engine)
    check(scenario, [receiver.receive(d) for d in scenario.deliveries], observer)


@PROOF
@given(scenario=scenarios(), cuts=st.lists(st.booleans(), min_size=80, max_size=80))
def test_batches_converge(
    scenario: Scenario, cuts: list[bool], receiver: Receiver, engine: Engine, observer: Engine
) -> None:
    """``Receiver.receive_batch``: any split into batches (a svix id may repeat in one)."""
    reset(engine)
    outcomes: list[object] = []
    batch: list[Delivery] = []
    for delivery, cut in zip(scenario.deliveries, cuts, strict=False):  # at most 80 deliveries
        batch.append(delivery)
        if cut:
            outcomes += receiver.receive_batch(batch)
            batch = []
    outcomes += receiver.receive_batch(batch) if batch else []
    check(scenario, outcomes, observer)


async def _submit_all(committer: GroupCommitter, deliveries: Sequence[Delivery]) -> list[Outcome]:
    return list(await asyncio.gather(*(committer.submit(d) for d in deliveries)))


@PROOF
@given(scenario=scenarios(), max_batch=st.integers(1, 8))
def test_group_commit_converges(
    scenario: Scenario, max_batch: int, receiver: Receiver, engine: Engine, observer: Engine
) -> None:
    """The :class:`GroupCommitter` as the app builds it: concurrent writers on PostgreSQL."""
    reset(engine)
    committer = GroupCommitter(receiver, max_batch=max_batch, writers=1 if is_sqlite(engine) else 4)
    committer.start()
    try:
        outcomes = asyncio.run(_submit_all(committer, scenario.deliveries))
    finally:
        committer.stop()
    check(scenario, outcomes, observer)
