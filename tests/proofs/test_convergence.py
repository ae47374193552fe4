"""Convergence: any delivery of a history ends in the state the model computes from it.

Svix neither orders nor de-duplicates, and Clerk may send one event again as a new message. So
for any history of a few users, organizations, memberships between them, an invitation and
sessions (created, updated with increasing ``updated_at``, deleted — either side of a
membership too), every permutation of its deliveries, with redeliveries of one svix id and
re-sends under a new one, must leave every table and the tombstones exactly as the model says
(:mod:`tests.proofs.model`), the event log with one row per svix id, and each body stored or
erased as its user's deletion requires. Checked on SQLite and PostgreSQL through the real
:class:`Receiver`, one delivery at a time, in batches (``receive_batch``, as group commit
calls it), and through the :class:`GroupCommitter` itself.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine, delete, select

from clerk_sync.committer import GroupCommitter
from clerk_sync.devtools import (
    deleted_object,
    deleted_user_event,
    encode,
    envelope,
    invitation_object,
    membership_object,
    organization_object,
    session_object,
    user_event,
    user_object,
)
from clerk_sync.receiver import Delivery, Outcome, Receiver
from clerk_sync.store.engine import is_sqlite
from tests.helpers.tables import events_table, metadata

from .hypothesis_settings import proof_settings
from .model import (
    INVITATION,
    MEMBERSHIP,
    ORGANIZATION,
    SESSION,
    USER,
    actual_state,
    differences,
    empty_state,
    expected_state,
    named_user,
)
from .stories import BASE_MS, USER_IDS, describe, histories

PROOF = proof_settings(60)


@dataclass(frozen=True)
class Scenario:
    """A history and one way Svix might deliver it."""

    history: list[dict[str, Any]]
    deliveries: list[Delivery]

    def __repr__(self) -> str:
        """A falsifying example in a few lines: what happened, and the delivery order."""
        lines = [f"{i:02d} {describe(e)}" for i, e in enumerate(self.history)]
        order = " ".join(d.svix_id.removeprefix("msg_") for d in self.deliveries)
        return "Scenario(\n  " + "\n  ".join(lines) + f"\n  delivered: {order})"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        """Hypothesis prints dataclasses field by field (kilobytes of JSON) unless told."""
        printer.text(repr(self))

    def counts(self) -> Counter[str]:
        """How many times each svix id was delivered."""
        return Counter(d.svix_id for d in self.deliveries)


@st.composite
def scenarios(draw: st.DrawFn, *, concurrent: bool = False) -> Scenario:
    """A mixed history, delivered shuffled, with redeliveries and re-sends."""
    history = draw(histories(concurrent=concurrent))
    deliveries: list[Delivery] = []
    for i, event in enumerate(history):
        body = encode(event)
        copies = draw(st.sampled_from([1, 1, 2, 3]))  # the same svix id redelivered
        deliveries += [Delivery(f"msg_{i:02d}", body)] * copies
        if draw(st.integers(0, 5)) == 0:  # the same event sent again as a new message
            deliveries.append(Delivery(f"msg_{i:02d}_resent", body))
    return Scenario(history, draw(st.permutations(deliveries)))


def reset(engine: Engine) -> None:
    """Empty every table: one database serves all of a test's examples."""
    with engine.begin() as conn:
        for table in reversed(metadata.sorted_tables):
            conn.execute(delete(table))


def check(scenario: Scenario, outcomes: Sequence[object], observer: Engine) -> None:
    """The end state is the model's, the log holds each svix id once, counted right, each
    svix id was applied once (every other delivery of it was answered ``duplicate``), and a
    body is erased exactly when the user it names is deleted."""
    assert all(isinstance(o, Outcome) and o.accepted for o in outcomes), outcomes
    statuses = {o.status.value for o in outcomes if isinstance(o, Outcome)}
    assert statuses <= {"processed", "stale"}, statuses
    fresh = Counter(o.svix_id for o in outcomes if isinstance(o, Outcome) and not o.duplicate)
    assert fresh == Counter(dict.fromkeys(scenario.counts(), 1)), "a svix id was applied twice"
    expected = expected_state(scenario.history)
    actual = actual_state(observer)
    assert actual == expected, "\n".join(differences(expected, actual))
    with observer.connect() as conn:
        log = conn.execute(
            select(events_table.c.svix_id, events_table.c.delivery_count, events_table.c.payload)
        ).all()
    assert Counter({row.svix_id: row.delivery_count for row in log}) == scenario.counts()
    assert len(log) == len(scenario.counts())
    bodies = {d.svix_id: d.body for d in scenario.deliveries}
    for row in log:
        user = named_user(orjson.loads(bodies[row.svix_id]))
        erased = user is not None and user in expected.deleted_users
        assert row.payload == (None if erased else bodies[row.svix_id].decode()), (
            f"{row.svix_id}: body {'kept' if row.payload else 'erased'}, names {user}"
        )


def test_the_model_is_delivery_order_free() -> None:
    """The model itself: fixed histories, reversed, give the same state; the rules hold."""
    user = user_object(user_id=USER_IDS[0], updated_at=BASE_MS)
    newer = {**user, "first_name": "Augusta", "updated_at": BASE_MS + 1}
    history = [user_event("user.created", user), user_event("user.updated", newer)]
    state = expected_state(history)
    assert state == expected_state(list(reversed(history)))
    assert state.users[USER_IDS[0]]["first_name"] == "Augusta"
    gone = expected_state([deleted_user_event(USER_IDS[0]), *history])
    assert gone.rows == empty_state().rows
    assert gone.tombstones[USER] == {USER_IDS[0]}


def test_the_model_cascades_embeds_and_ranks() -> None:
    """A membership goes with either parent; an embedded organization refreshes its row unless
    it is partial; ``session.ended`` beats ``session.created`` of the same instant."""
    user = user_object(user_id=USER_IDS[0], updated_at=BASE_MS)
    org = organization_object(org_id="org_1", updated_at=BASE_MS)
    newer_org = {**org, "name": "Renamed", "updated_at": BASE_MS + 5}
    m = membership_object(organization=newer_org, user=user, membership_id="orgmem_1")
    joined = [envelope("organization.created", org), envelope("organizationMembership.created", m)]
    state = expected_state(joined)
    assert state.rows[ORGANIZATION]["org_1"]["data"]["name"] == "Renamed"
    assert state.rows[MEMBERSHIP]["orgmem_1"]["user_id"] == USER_IDS[0]
    partial = {**m, "organization": {"id": "org_1", "name": "Stub"}}
    unrefreshed = expected_state([joined[0], envelope("organizationMembership.created", partial)])
    assert unrefreshed.rows[ORGANIZATION]["org_1"]["data"]["name"] == org["name"]
    for deleted in (
        deleted_user_event(USER_IDS[0]),
        envelope("organization.deleted", deleted_object("organization", "org_1")),
        envelope("organizationMembership.deleted", m),
    ):
        assert expected_state([*joined, deleted]).rows[MEMBERSHIP] == {}
    s = session_object(user=user, session_id="sess_1", created_at=BASE_MS, updated_at=BASE_MS)
    ended = {**s, "status": "ended"}
    both = [envelope("session.ended", ended), envelope("session.created", s)]
    assert expected_state(both).rows[SESSION]["sess_1"]["status"] == "ended"
    assert expected_state(both[::-1]) == expected_state(both)


def test_the_model_drops_an_invitation_whose_accepter_is_deleted() -> None:
    history = invitation_history()
    assert expected_state(history).rows == empty_state().rows
    assert expected_state(history[:2]).rows[INVITATION]["orginv_1"]["status"] == "accepted"


def invitation_history() -> list[dict[str, Any]]:
    """An invitation created (pending, no ``user_id``), accepted by a user, who is deleted."""
    org = organization_object(org_id="org_1", updated_at=BASE_MS)
    common = {"organization": org, "email_address": "grace@example.com"}
    pending = invitation_object(
        **common, invitation_id="orginv_1", created_at=BASE_MS, updated_at=BASE_MS
    )
    accepted = invitation_object(
        **common,
        invitation_id="orginv_1",
        status="accepted",
        user_id=USER_IDS[0],
        created_at=BASE_MS,
        updated_at=BASE_MS + 10,
    )
    return [
        envelope("organizationInvitation.created", pending),
        envelope("organizationInvitation.accepted", accepted),
        deleted_user_event(USER_IDS[0]),
    ]


@pytest.mark.parametrize("order", [(2, 0, 1), (1, 2, 0)], ids=["delete-first", "create-last"])
def test_invitation_accepted_by_a_deleted_user_converges(
    order: tuple[int, ...], receiver: Receiver, observer: Engine
) -> None:
    """The minimal history the proofs find with ``known_bugs.ACCEPTED_BY_A_DELETED_USER`` on:
    the model says the invitation goes with its accepter; clerk-sync keeps it ``pending``."""
    history = invitation_history()
    deliveries = [Delivery(f"msg_{i:02d}", encode(history[i])) for i in order]
    check(Scenario(history, deliveries), [receiver.receive(d) for d in deliveries], observer)


def inviter_history() -> list[dict[str, Any]]:
    """An invitation sent by a user, who is then deleted."""
    inviter = user_object(user_id=USER_IDS[1], updated_at=BASE_MS)
    org = organization_object(org_id="org_1", updated_at=BASE_MS)
    invitation = invitation_object(
        organization=org,
        email_address="grace@example.com",
        invitation_id="orginv_1",
        inviter=inviter,
        created_at=BASE_MS,
        updated_at=BASE_MS,
    )
    return [
        envelope("organizationInvitation.created", invitation),
        deleted_user_event(USER_IDS[1]),
    ]


def test_the_model_scrubs_a_deleted_inviter() -> None:
    row = expected_state(inviter_history()).rows[INVITATION]["orginv_1"]
    assert "public_inviter_data" not in row["data"]
    assert row["data"]["inviter_id"] == USER_IDS[1]


def test_invitation_of_a_deleted_inviter_is_scrubbed(receiver: Receiver, observer: Engine) -> None:
    """With ``known_bugs.INVITED_BY_A_DELETED_USER`` on, the proofs find this: delivered after
    the inviter's ``user.deleted``, the invitation keeps the inviter's name and e-mail."""
    history = inviter_history()
    deliveries = [Delivery(f"msg_{i:02d}", encode(history[i])) for i in (1, 0)]
    check(Scenario(history, deliveries), [receiver.receive(d) for d in deliveries], observer)


@pytest.mark.parametrize("backend", ["postgresql"])  # SQLite runs one writer at a time
@pytest.mark.parametrize(
    "named", ["organization.created", "organizationMembership.deleted", "email.created"]
)
def test_erasure_waits_for_a_delivery_naming_the_user(
    named: str, backend: str, engine: Engine, observer: Engine
) -> None:
    """What the group-commit proof found, made deterministic: while a ``user.deleted``'s
    transaction is open, after its erase, another writer delivers a body naming that user (an
    organization it created, its deleted membership, an e-mail sent to it). The body must end
    erased."""
    user_id = USER_IDS[0]
    user = user_object(user_id=user_id, updated_at=BASE_MS)
    org = organization_object(org_id="org_1", created_by=user_id, updated_at=BASE_MS)
    bodies = {
        "organization.created": org,
        "organizationMembership.deleted": membership_object(organization=org, user=user),
        "email.created": {"object": "email", "id": "ema_1", "user_id": user_id},
    }
    concurrent = Delivery("msg_named", encode(envelope(named, bodies[named])))
    writer = threading.Thread(target=Receiver(engine).receive, args=(concurrent,), daemon=True)

    def meanwhile(_conn: object, _event: object) -> None:
        writer.start()
        writer.join(3)  # a writer that waits for the delete's locks, as it should, times out

    hooked = Receiver(engine, in_transaction=[("organization.updated", meanwhile)])
    other = organization_object(org_id="org_2", updated_at=BASE_MS)
    hooked.receive_batch(
        [
            Delivery("msg_delete", encode(deleted_user_event(user_id))),
            Delivery("msg_hooked", encode(envelope("organization.updated", other))),
        ]
    )
    writer.join(30)
    with observer.connect() as conn:
        payload = conn.execute(
            select(events_table.c.payload).where(events_table.c.svix_id == "msg_named")
        ).scalar_one()
    assert payload is None, f"{named} naming deleted {user_id} kept its body"


@PROOF
@given(scenario=scenarios())
def test_one_delivery_at_a_time_converges(
    scenario: Scenario, receiver: Receiver, engine: Engine, observer: Engine
) -> None:
    """``Receiver.receive``: each delivery in its own transaction, in any order."""
    reset(engine)
    check(scenario, [receiver.receive(d) for d in scenario.deliveries], observer)


@PROOF
@given(scenario=scenarios(), cuts=st.lists(st.booleans(), min_size=1, max_size=40))
def test_batches_converge(
    scenario: Scenario, cuts: list[bool], receiver: Receiver, engine: Engine, observer: Engine
) -> None:
    """``Receiver.receive_batch``: any split into batches (a svix id may repeat in one)."""
    reset(engine)
    outcomes: list[object] = []
    batch: list[Delivery] = []
    for delivery, cut in zip(scenario.deliveries, itertools.cycle(cuts)):
        batch.append(delivery)
        if cut:
            outcomes += receiver.receive_batch(batch)
            batch = []
    outcomes += receiver.receive_batch(batch) if batch else []
    check(scenario, outcomes, observer)


async def _submit_all(committer: GroupCommitter, deliveries: Sequence[Delivery]) -> list[Outcome]:
    return list(await asyncio.gather(*(committer.submit(d) for d in deliveries)))


@PROOF
@given(scenario=scenarios(concurrent=True), max_batch=st.integers(1, 8))
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
