"""Reconcile's core: drift found between the stored copy and Clerk's objects, and repaired
through the receiver (missing and stale upserted under the version guard, extra deleted with
tombstones and cascades), on both databases."""

from __future__ import annotations

import dataclasses
from typing import Any

from sqlalchemy import Engine

from clerk_sync import tables
from clerk_sync.devtools import (
    deleted_user_event,
    encode,
    membership_object,
    organization_object,
    user_event,
    user_object,
)
from clerk_sync.entities import kind_named
from clerk_sync.events import Status
from clerk_sync.receiver import Delivery, Receiver
from clerk_sync.reconcile import compare, fix, repairs, stored_versions, tombstoned
from tests.helpers.entity_cases import T0, envelope, row
from tests.helpers.outbox import Outbox, Recorder

USER = kind_named("user")
MEMBERSHIP = kind_named("organization_membership")


def _u(user_id: str, at: int, name: str = "Ada") -> dict[str, Any]:
    return user_object(user_id=user_id, created_at=T0, updated_at=at, first_name=name)


def _drift(engine: Engine, remote: dict[str, dict[str, Any]]) -> Any:
    with engine.connect() as conn:
        return compare(
            "users",
            stored_versions(conn, tables(), USER),
            tombstoned(conn, tables(), USER),
            remote,
        )


def test_drift_is_found_and_fixed(engine: Engine) -> None:
    receiver = Receiver(engine)
    for user in (_u("user_same", T0), _u("user_old", T0), _u("user_gone", T0)):
        receiver.receive(Delivery(f"msg_{user['id']}", encode(user_event("user.created", user))))
    remote = {
        "user_same": _u("user_same", T0),
        "user_old": _u("user_old", T0 + 50, "Newer"),
        "user_new": _u("user_new", T0 + 10, "Nova"),
    }
    drift = _drift(engine, remote)
    assert (drift.missing, drift.extra, drift.stale) == (["user_new"], ["user_gone"], ["user_old"])
    assert drift.as_json()["missing"] == {"count": 1, "ids": ["user_new"]}
    outcomes = fix(receiver, repairs(USER, drift, remote, T0 + 100))
    assert {o.status for o in outcomes} == {Status.PROCESSED}
    assert _drift(engine, remote).total == 0
    users = tables().entity("user")
    assert row(engine, users, "user_old")["first_name"] == "Newer"
    assert row(engine, users, "user_gone") is None
    with engine.connect() as conn:
        assert "user_gone" in tombstoned(conn, tables(), USER)
    assert fix(receiver, repairs(USER, _drift(engine, remote), remote, T0 + 200)) == []


def test_a_deleted_object_listed_by_clerk_is_not_missing(engine: Engine) -> None:
    receiver = Receiver(engine)
    receiver.receive(Delivery("msg_del", encode(deleted_user_event("user_del", timestamp=T0))))
    drift = _drift(engine, {"user_del": _u("user_del", T0 - 10)})
    assert drift.total == 0


def test_an_extra_membership_is_deleted_with_a_tombstone(engine: Engine) -> None:
    org = organization_object(org_id="org_r", created_at=T0, updated_at=T0)
    member = membership_object(
        membership_id="orgmem_r",
        organization=org,
        user=_u("user_r", T0),
        created_at=T0,
        updated_at=T0,
    )
    receiver = Receiver(engine)
    receiver.receive(Delivery("msg_m", encode(envelope("organizationMembership.created", member))))
    with engine.connect() as conn:
        drift = compare(
            "memberships",
            stored_versions(conn, tables(), MEMBERSHIP),
            tombstoned(conn, tables(), MEMBERSHIP),
            {},
        )
    assert drift.extra == ["orgmem_r"]
    [outcome] = fix(receiver, repairs(MEMBERSHIP, drift, {}, T0 + 100))
    assert outcome.status == Status.PROCESSED
    assert row(engine, tables().entity("organization_membership"), "orgmem_r") is None


def test_repairs_run_only_backfill_hooks(engine: Engine) -> None:
    app_hook, sink = Recorder(), Recorder()
    sink_hook = dataclasses.replace(sink.hook("user.*", name="tests:sink"), backfill=True)
    box = Outbox(engine, [app_hook.hook("user.*", name="tests:welcome"), sink_hook])
    remote = {"user_bf": _u("user_bf", T0)}
    drift = _drift(engine, remote)
    fix(box.receiver, repairs(USER, drift, remote, T0 + 100))
    box.drain()
    assert app_hook.calls == []
    assert [c.subject_id for c in sink.calls] == ["user_bf"]
