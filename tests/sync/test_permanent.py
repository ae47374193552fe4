"""Permanent is permanent, and alone: a delivery whose content can never be stored is ``failed``
with its reason, and its batch neighbours commit exactly as if it had not been sent.

Each example is a batch of valid user events (creates, updates and deletes over a few users, in
any order) with poisoned deliveries mixed in — some about the same users. The same valid events
are also received alone, as a batch of their own about a second set of ids: every neighbour must
end with the same status, and every user with the same row, in both worlds. On SQLite and
PostgreSQL, through :meth:`Receiver.receive_batch`, with nothing raising or answering 503.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine, select

from clerk_sync.devtools import encode, envelope, organization_object, user_event, user_object
from clerk_sync.errors import StoreUnavailable
from clerk_sync.events import Status
from clerk_sync.receiver import Delivery, Outcome, Receiver
from tests.helpers.tables import events_table, tombstones_table, users_table
from tests.proofs.hypothesis_settings import proof_settings

BASE_MS = 1_760_000_000_000
SLOTS = 3
MARK = "__POISON__"


@dataclass(frozen=True)
class Valid:
    slot: int
    action: str  # created | updated | deleted
    step: int  # updated_at = BASE_MS + step seconds


@dataclass(frozen=True)
class Poison:
    name: str
    slot: int
    value: Any


def _raw(event: dict[str, Any], raw: bytes) -> bytes:
    """``event`` encoded, with the string MARK replaced by raw JSON text (or bytes)."""
    body = encode(event)
    assert body.count(f'"{MARK}"'.encode()) == 1
    return body.replace(f'"{MARK}"'.encode(), raw)


_TEMPLATE = encode(user_object(user_id="user_template", created_at=BASE_MS))
"""One user object (its e-mail ids included) that every event copies, so two id spaces hold
the same data but for the id."""


def _user(user_id: str, step: int = 50, **fields: Any) -> dict[str, Any]:
    user: dict[str, Any] = orjson.loads(_TEMPLATE)
    user.update({"id": user_id, "updated_at": BASE_MS + step * 1000, **fields})
    return user


def _deep(depth: int) -> bytes:
    return b'{"a":' * depth + b"{}" + b"}" * depth


POISONS: dict[str, Callable[[str, Any], bytes]] = {
    # data nested deeper than orjson encodes (254): unsafe_metadata is set by the end user.
    "deep_metadata": lambda uid, depth: _raw(
        user_event("user.updated", _user(uid, unsafe_metadata=MARK)), _deep(depth)
    ),
    "deep_public_metadata_list": lambda uid, depth: _raw(
        user_event("user.updated", _user(uid, public_metadata={"x": MARK})),
        b"[" * depth + b"]" * depth,
    ),
    "huge_updated_at": lambda uid, n: _raw(
        user_event("user.updated", _user(uid, updated_at=MARK), timestamp=BASE_MS),
        str(n).encode(),
    ),
    "huge_created_at": lambda uid, n: _raw(
        user_event("user.created", _user(uid, created_at=MARK)), str(n).encode()
    ),
    "huge_timestamp": lambda uid, n: _raw(
        {**envelope("user.updated", _user(uid)), "timestamp": MARK}, str(n).encode()
    ),
    "huge_last_sign_in": lambda uid, n: _raw(
        user_event("user.updated", _user(uid, last_sign_in_at=MARK)), str(n).encode()
    ),
    "nul_in_name": lambda uid, text: encode(
        user_event("user.updated", _user(uid, first_name=f"Ada{text}\x00"))
    ),
    "nul_in_metadata_key": lambda uid, text: encode(
        user_event("user.updated", _user(uid, unsafe_metadata={f"k\x00{text}": 1}))
    ),
    "nul_in_id": lambda uid, _text: encode(user_event("user.updated", _user(uid + "\x00"))),
    "overlong_id": lambda uid, n: encode(user_event("user.updated", _user(uid + "x" * n))),
    "overlong_username": lambda uid, n: encode(
        user_event("user.updated", _user(uid, username="u" * (255 + n)))
    ),
    "not_utf8": lambda uid, _n: _raw(
        user_event("user.updated", _user(uid, first_name=MARK)), b'"Ad\xff\xfea"'
    ),
    "lone_surrogate": lambda uid, _n: _raw(
        user_event("user.updated", _user(uid, first_name=MARK)), b'"\\ud800"'
    ),
    "infinite_float": lambda uid, _n: _raw(
        user_event("user.updated", _user(uid, last_sign_in_at=MARK)), b"1e400"
    ),
    "members_count_past_32_bits": lambda uid, n: encode(
        envelope(
            "organization.updated",
            {**organization_object(org_id="org_" + uid), "members_count": 2**31 + n},
            BASE_MS,
        )
    ),
}
_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "deep_metadata": st.integers(254, 900),
    "deep_public_metadata_list": st.integers(253, 900),
    "huge_updated_at": st.one_of(st.integers(2**60, 2**70), st.integers(-(2**70), -1)),
    "huge_created_at": st.one_of(st.integers(2**63, 2**70), st.integers(-(2**70), -(2**63))),
    "huge_timestamp": st.integers(2**60, 2**70),
    "huge_last_sign_in": st.integers(2**60, 2**64 + 5),
    "nul_in_name": st.text(max_size=5),
    "nul_in_metadata_key": st.text(max_size=5),
    "nul_in_id": st.just(""),
    "overlong_id": st.integers(256, 600),
    "overlong_username": st.integers(1, 300),
    "not_utf8": st.just(0),
    "lone_surrogate": st.just(0),
    "infinite_float": st.just(0),
    "members_count_past_32_bits": st.integers(0, 2**40),
}

valid_events = st.builds(
    Valid,
    slot=st.integers(0, SLOTS - 1),
    action=st.sampled_from(["created", "updated", "updated", "deleted"]),
    step=st.integers(0, 4),
)
poisons = st.sampled_from(sorted(POISONS)).flatmap(
    lambda name: st.builds(
        Poison, name=st.just(name), slot=st.integers(0, SLOTS - 1), value=_VALUES[name]
    )
)
batches = st.lists(st.one_of(valid_events, valid_events, poisons), min_size=2, max_size=14).filter(
    lambda items: any(isinstance(i, Poison) for i in items)
)


def _valid_body(item: Valid, user_id: str) -> bytes:
    if item.action == "deleted":
        return encode(
            envelope(
                "user.deleted",
                {"id": user_id, "object": "user", "deleted": True},
                BASE_MS + item.step * 1000,
            )
        )
    return encode(user_event(f"user.{item.action}", _user(user_id, item.step)))


def _users(engine: Engine, ids: list[str]) -> list[tuple[Any, ...] | None]:
    """Each user's row as it can be compared across id spaces (``data`` without its id)."""
    found: dict[str, tuple[Any, ...]] = {}
    with engine.connect() as conn:
        rows = conn.execute(select(users_table).where(users_table.c.id.in_(ids))).mappings()
        for row in rows:
            data = {k: v for k, v in row["data"].items() if k != "id"}
            found[row["id"]] = (row["sync_version"], row["updated_at"], row["first_name"], data)
        tombstoned = set(
            conn.execute(
                select(tombstones_table.c.id).where(tombstones_table.c.id.in_(ids))
            ).scalars()
        )
    return [("tombstone",) if i in tombstoned else found.get(i) for i in ids]


def _logged(engine: Engine, svix_ids: list[str]) -> dict[str, tuple[str, str | None]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(events_table.c.svix_id, events_table.c.status, events_table.c.error).where(
                events_table.c.svix_id.in_(svix_ids)
            )
        )
        return {r.svix_id: (r.status, r.error) for r in rows}


@proof_settings(max_examples=30)
@given(batch=batches)
def test_poisoned_deliveries_fail_alone(
    batch: list[Valid | Poison], receiver: Receiver, observer: Engine
) -> None:
    run = secrets.token_hex(4)
    poisoned_ids = [f"user_p{run}{slot}" for slot in range(SLOTS)]
    alone_ids = [f"user_a{run}{slot}" for slot in range(SLOTS)]

    mixed: list[Delivery] = []
    alone: list[Delivery] = []
    for n, item in enumerate(batch):
        if isinstance(item, Poison):
            body = POISONS[item.name](poisoned_ids[item.slot], item.value)
            mixed.append(Delivery(f"msg_p{run}_{n}_bad", body))
        else:
            mixed.append(Delivery(f"msg_p{run}_{n}", _valid_body(item, poisoned_ids[item.slot])))
            alone.append(Delivery(f"msg_a{run}_{n}", _valid_body(item, alone_ids[item.slot])))

    results = receiver.receive_batch(mixed)
    expected = receiver.receive_batch(alone) if alone else []

    assert not [r for r in [*results, *expected] if isinstance(r, StoreUnavailable)]
    outcomes = [r for r in results if isinstance(r, Outcome)]
    bad = [o for o in outcomes if o.svix_id.endswith("_bad")]
    neighbours = [o for o in outcomes if not o.svix_id.endswith("_bad")]
    for outcome in bad:
        assert outcome.status == Status.FAILED, outcome
        assert outcome.reason, outcome
        assert not outcome.accepted
    assert [o.status for o in neighbours] == [
        o.status for o in expected if isinstance(o, Outcome)
    ], batch

    logged = _logged(observer, [d.svix_id for d in mixed])
    assert len(logged) == len(mixed)
    for outcome in bad:
        status, error = logged[outcome.svix_id]
        assert status == Status.FAILED.value
        assert error
    assert _users(observer, poisoned_ids) == _users(observer, alone_ids), batch
