"""Every synced Clerk kind through the real :class:`Receiver`, on a SQLite file and PostgreSQL,
checked through a second engine: versions, tombstones, parents, embedded copies, erasure, and
batches that end where one-at-a-time delivery ends."""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from clerk_sync.devtools import (
    deleted_object,
    deleted_user_event,
    domain_object,
    encode,
    invitation_object,
    membership_object,
    organization_object,
    session_object,
    user_object,
)
from clerk_sync.entities import handled_types, kinds, tables
from clerk_sync.receiver import Delivery, Outcome, Receiver
from clerk_sync.store import reads
from tests.helpers import tables as t
from tests.helpers.entity_cases import (
    CASES,
    DELETABLE,
    T0,
    Case,
    event,
    log_row,
    organization_for,
    row,
    rows,
    snapshot,
    tombstones,
)

Receive = Callable[..., Outcome]


def ids(case: Case) -> str:
    return case.kind


def test_the_cases_cover_every_synced_kind() -> None:
    assert sorted(c.kind for c in CASES) == sorted(k.name for k in kinds())
    assert sorted(c.kind for c in DELETABLE) == sorted(k.name for k in kinds() if k.deletes)


# --- every kind: versions, redeliveries, deletes ---------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=ids)
def test_create_then_newer_update_wins_older_is_stale_duplicate_applies_once(
    case: Case, receive: Receive, observer: Engine
) -> None:
    oid = f"{case.prefix}_2vHistory0000000000000000001"
    first = case.build(oid, T0 + 1_000, "first")
    created = receive(event(case.created, first), "msg_create")
    assert (created.status, created.duplicate, created.event_type, created.subject_id) == (
        "processed",
        False,
        case.created,
        oid,
    )
    stored = row(observer, case.table, oid)
    assert stored is not None
    assert stored[case.column] == case.shown("first")
    assert stored["data"] == first
    assert stored["sync_version"] == (T0 + 1_000) * 4
    assert stored["updated_at"] == T0 + 1_000

    second = case.build(oid, T0 + 2_000, "second")
    assert receive(event(case.updated, second), "msg_update").status == "processed"
    assert row(observer, case.table, oid)[case.column] == case.shown("second")  # type: ignore[index]

    # Delivered out of order: an update older than the stored one, then the first create again.
    older = case.build(oid, T0 + 1_500, "older")
    late = receive(event(case.updated, older), "msg_older")
    assert (late.status, late.duplicate) == ("stale", False)
    assert late.reason == f"updated_at {T0 + 1_500} is not newer than the stored {T0 + 2_000}"
    assert log_row(observer, "msg_older")["status"] == "stale"
    assert log_row(observer, "msg_older")["error"] == late.reason
    retried = receive(event(case.created, first), "msg_create_again")
    assert retried.status == "stale"
    assert "not newer" in (retried.reason or "")

    # A redelivery (same svix id) is applied once, even with another body.
    third = case.build(oid, T0 + 3_000, "third")
    dup = receive(event(case.updated, third), "msg_update")
    assert (dup.status, dup.duplicate) == ("processed", True)
    again = receive(event(case.updated, older), "msg_older")
    assert (again.status, again.duplicate) == ("stale", True)

    stored = row(observer, case.table, oid)
    assert stored is not None
    assert stored[case.column] == case.shown("second")
    assert stored["data"] == second
    assert stored["updated_at"] == T0 + 2_000
    assert len(rows(observer, case.table, id=oid)) == 1
    assert log_row(observer, "msg_update")["delivery_count"] == 2
    assert len(rows(observer, t.events_table)) == 4
    assert tombstones(observer) == set()


@pytest.mark.parametrize("case", DELETABLE, ids=ids)
def test_delete_leaves_a_tombstone_and_wins_over_later_upserts(
    case: Case, receive: Receive, observer: Engine
) -> None:
    oid = f"{case.prefix}_2vDeleted00000000000000000001"
    data = case.build(oid, T0 + 1_000, "first")
    receive(event(case.created, data))
    assert case.deleted is not None
    gone = receive(event(case.deleted, case.delete_data(data), T0 + 5_000), "msg_delete")
    assert (gone.status, gone.subject_id, gone.event_type) == ("processed", oid, case.deleted)
    assert row(observer, case.table, oid) is None
    assert tombstones(observer) == {(case.kind, oid, T0 + 5_000)}
    assert log_row(observer, "msg_delete")["status"] == "processed"

    # Whatever its updated_at — unbumped, or newer than the delete — nothing brings it back.
    for at in (T0 + 1_000, T0 + 9_000):
        for event_type in (case.created, case.updated):
            late = receive(event(event_type, case.build(oid, at, "late")))
            assert late.status == "stale", (event_type, at)
            assert late.reason == f"{case.kind} {oid} was deleted; deletes win"
    assert row(observer, case.table, oid) is None

    # Deleting again is harmless; the first deletion time stays.
    assert receive(event(case.deleted, case.delete_data(data), T0 + 6_000)).status == "processed"
    assert tombstones(observer) == {(case.kind, oid, T0 + 5_000)}


@pytest.mark.parametrize("case", DELETABLE, ids=ids)
def test_delete_of_a_never_seen_object_blocks_its_create(
    case: Case, receive: Receive, observer: Engine
) -> None:
    oid = f"{case.prefix}_2vNeverSeen000000000000000001"
    data = case.build(oid, T0 + 1_000, "first")
    assert case.deleted is not None
    assert receive(event(case.deleted, case.delete_data(data), T0 + 500)).status == "processed"
    created = receive(event(case.created, data))
    assert created.status == "stale"
    assert "was deleted" in (created.reason or "")
    assert row(observer, case.table, oid) is None


def test_a_delete_stub_stamped_in_seconds_is_tombstoned_in_ms(
    receive: Receive, observer: Engine
) -> None:
    for event_type, data in [
        ("user.deleted", deleted_object("user", "user_2vSeconds00000000000000000001")),
        ("organization.deleted", deleted_object("organization", "org_2vSeconds0001", slug="s")),
        ("role.deleted", deleted_object("role", "role_2vSeconds000000000000000001")),
    ]:
        assert receive(event(event_type, data, 1_716_883_200)).status == "processed"
    assert tombstones(observer) == {
        ("user", "user_2vSeconds00000000000000000001", 1_716_883_200_000),
        ("organization", "org_2vSeconds0001", 1_716_883_200_000),
        ("role", "role_2vSeconds000000000000000001", 1_716_883_200_000),
    }
    log = log_row(observer, rows(observer, t.events_table, type="role.deleted")[0]["svix_id"])
    assert log["event_timestamp"] == 1_716_883_200_000


def test_a_payload_without_data_id_fails_for_every_synced_type(
    receive: Receive, observer: Engine
) -> None:
    for n, event_type in enumerate(handled_types()):
        data = {"object": "x", "updated_at": T0, "deleted": True, "user_id": "user_1"}
        outcome = receive(event(event_type, data), f"msg_noid_{n}")
        assert (outcome.status, outcome.accepted, outcome.error_code) == (
            "failed",
            False,
            "payload_invalid",
        ), event_type
        assert outcome.reason == (
            "The event does not have the shape Clerk sends: data.id: Field required."
        )
        log = log_row(observer, f"msg_noid_{n}")
        assert (log["status"], log["error"], log["type"]) == ("failed", outcome.reason, event_type)
    for case in CASES:
        assert rows(observer, case.table) == []
    assert tombstones(observer) == set()


def test_ids_with_slashes_and_unicode_are_stored_and_readable(
    receive: Receive, observer: Engine
) -> None:
    for case in CASES:
        oid = f"{case.prefix}_a/b/../Zoë-名前-😀"
        data = case.build(oid, T0 + 1_000, "uni")
        outcome = receive(event(case.created, data))
        assert (outcome.status, outcome.subject_id) == ("processed", oid), case.kind
        stored = row(observer, case.table, oid)
        assert stored is not None
        assert stored["id"] == oid
        assert stored["data"]["id"] == oid
        kind = next(k for k in kinds() if k.name == case.kind)
        shown = reads.get_row(observer, tables(), case.kind, kind.read_fields(), oid)
        assert shown is not None
        assert shown["id"] == oid
        if case.deleted:
            receive(event(case.deleted, case.delete_data(data), T0 + 2_000))
            assert row(observer, case.table, oid) is None
            assert (case.kind, oid, T0 + 2_000) in tombstones(observer)


@pytest.mark.parametrize("event_type", ["subscription.past_due", "subscription.pastDue"])
def test_billing_events_are_ignored_in_both_spellings(
    receive: Receive, observer: Engine, event_type: str
) -> None:
    data = {"object": "commerce_subscription", "id": "csub_1", "status": "past_due"}
    outcome = receive(event(event_type, data, T0), "msg_billing")
    assert (outcome.status, outcome.accepted) == ("ignored", True)
    assert outcome.reason == f"clerk-sync does not sync {event_type!r}"
    log = log_row(observer, "msg_billing")
    assert (log["status"], log["type"], log["subject_id"]) == ("ignored", event_type, "csub_1")
    for case in CASES:
        assert rows(observer, case.table) == []


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"type": "user.created", "data": {"id": "u" * 256, "updated_at": T0}}, "failed"),
        ({"type": "email.created", "data": {"id": "ema_" + "e" * 300}}, "ignored"),
        ({"type": "email.created", "data": {"id": "ema_1", "user_id": "u" * 300}}, "ignored"),
        ({"type": "x" * 120 + ".created", "data": {"id": "x_1"}}, "ignored"),
        (
            {
                "type": "user.created",
                "data": {"id": "user_1", "updated_at": T0, "username": "n" * 300},
            },
            "failed",
        ),
    ],
    ids=["synced-id", "ignored-id", "named-user", "type", "username"],
)
def test_an_over_long_value_is_recorded_not_retried_forever(
    backend: str,
    request: pytest.FixtureRequest,
    receive: Receive,
    observer: Engine,
    data: dict[str, Any],
    expected: str,
) -> None:
    """Both databases record the same outcome: a body that can never fit is permanent
    (failed, or ignored with its log fields cut to fit), not a 503 that Svix retries for days."""
    outcome = receive(data, "msg_long")
    assert outcome.status == expected
    assert log_row(observer, "msg_long")["status"] == expected


# --- memberships and their organization ------------------------------------------------------


def test_a_membership_of_an_unknown_organization_and_user_is_stored(
    receive: Receive, observer: Engine
) -> None:
    org = organization_object(org_id="org_2vUnknown", created_at=T0, updated_at=T0)
    user = user_object(user_id="user_2vUnknown", updated_at=T0)
    membership = membership_object(organization=org, user=user, updated_at=T0 + 100)
    outcome = receive(event("organizationMembership.created", membership))
    assert outcome.status == "processed"
    stored = row(observer, t.memberships_table, membership["id"])
    assert stored is not None
    assert (stored["organization_id"], stored["user_id"], stored["role"]) == (
        "org_2vUnknown",
        "user_2vUnknown",
        "org:member",
    )
    assert row(observer, t.users_table, "user_2vUnknown") is None
    # The organization embedded whole creates its row.
    assert row(observer, t.organizations_table, "org_2vUnknown")["data"] == org  # type: ignore[index]


def test_the_embedded_organization_refreshes_only_when_newer(
    receive: Receive, observer: Engine
) -> None:
    org_id = "org_2vEmbedded"
    newer = organization_object(org_id=org_id, name="Newer", created_at=T0, updated_at=T0 + 5_000)
    assert receive(event("organization.updated", newer)).status == "processed"

    older = {**newer, "name": "Older", "updated_at": T0 + 1_000}
    user = user_object(updated_at=T0)
    membership = membership_object(organization=older, user=user, updated_at=T0 + 6_000)
    # The membership is applied; its older copy of the organization is not.
    assert receive(event("organizationMembership.created", membership)).status == "processed"
    stored = row(observer, t.organizations_table, org_id)
    assert stored is not None
    assert (stored["name"], stored["updated_at"]) == ("Newer", T0 + 5_000)

    newest = {**newer, "name": "Newest", "updated_at": T0 + 9_000}
    updated = {**membership, "organization": newest, "updated_at": T0 + 9_500}
    assert receive(event("organizationMembership.updated", updated)).status == "processed"
    stored = row(observer, t.organizations_table, org_id)
    assert stored is not None
    assert (stored["name"], stored["updated_at"]) == ("Newest", T0 + 9_000)
    assert stored["sync_version"] == (T0 + 9_000) * 4 + 1
    # The organization's own event for that same change is then not newer.
    late = receive(event("organization.updated", newest))
    assert late.status == "stale"
    assert late.reason == f"updated_at {T0 + 9_000} is not newer than the stored {T0 + 9_000}"
    # Nor is an older organization.updated, delivered late.
    assert receive(event("organization.updated", older)).status == "stale"
    assert row(observer, t.organizations_table, org_id)["name"] == "Newest"  # type: ignore[index]


def test_membership_deleted_with_unbumped_updated_at_beats_a_late_update(
    receive: Receive, observer: Engine
) -> None:
    org = organization_object(created_at=T0, updated_at=T0)
    user = user_object(updated_at=T0)
    membership = membership_object(organization=org, user=user, updated_at=T0 + 2_000)
    receive(event("organizationMembership.created", membership))
    # Clerk sends the full membership, updated_at not bumped past the last .updated.
    promoted = {**membership, "role": "org:admin", "updated_at": T0 + 3_000}
    receive(event("organizationMembership.updated", promoted))
    gone = receive(event("organizationMembership.deleted", promoted, T0 + 3_500))
    assert gone.status == "processed"
    late = receive(event("organizationMembership.updated", promoted, T0 + 3_020))
    assert late.status == "stale"
    assert late.reason == f"organization_membership {membership['id']} was deleted; deletes win"
    assert row(observer, t.memberships_table, membership["id"]) is None
    assert ("organization_membership", membership["id"], T0 + 3_500) in tombstones(observer)
    # The organization and the user are untouched by a membership's delete.
    assert row(observer, t.organizations_table, org["id"]) is not None


def test_organization_deleted_before_its_created_refuses_it_and_its_children(
    receive: Receive, observer: Engine
) -> None:
    org = organization_object(org_id="org_2vEarlyDelete", created_at=T0, updated_at=T0 + 1_000)
    stub = deleted_object("organization", org["id"], slug=org["slug"])
    assert receive(event("organization.deleted", stub, T0 + 5_000)).status == "processed"

    created = receive(event("organization.created", org))
    assert created.status == "stale"
    assert created.reason == "organization org_2vEarlyDelete was deleted; deletes win"
    # Even an embedded copy newer than the delete does not bring it back.
    user = user_object(updated_at=T0)
    copy = {**org, "updated_at": T0 + 8_000}
    membership = membership_object(organization=copy, user=user, updated_at=T0 + 8_000)
    late = receive(event("organizationMembership.created", membership))
    assert late.status == "stale"
    assert late.reason == "its organization org_2vEarlyDelete was deleted; deletes win"
    orphans = {("organization_membership", membership["id"])}
    for event_type, kind, child in [
        (
            "organizationInvitation.created",
            "organization_invitation",
            invitation_object(organization=org, email_address="x@example.com", updated_at=T0),
        ),
        (
            "organizationDomain.created",
            "organization_domain",
            domain_object(organization=org, updated_at=T0),
        ),
    ]:
        refused = receive(event(event_type, child))
        assert refused.status == "stale", event_type
        assert refused.reason == "its organization org_2vEarlyDelete was deleted; deletes win"
        orphans.add((kind, child["id"]))
    assert row(observer, t.organizations_table, org["id"]) is None
    for table in (t.memberships_table, t.invitations_table, t.domains_table):
        assert rows(observer, table) == []
    # Each child went with the organization for good: tombstoned, so no copy comes back.
    found = tombstones(observer)
    assert ("organization", org["id"], T0 + 5_000) in found
    assert {(kind, object_id) for kind, object_id, _ in found} == {
        ("organization", org["id"]),
        *orphans,
    }


def test_organization_deleted_removes_its_memberships_invitations_and_domains(
    receive: Receive, observer: Engine
) -> None:
    org = organization_object(created_at=T0, updated_at=T0)
    other = organization_object(name="Globex", created_at=T0, updated_at=T0)
    ada, grace = user_object(updated_at=T0), user_object(updated_at=T0)
    for o in (org, other):
        receive(event("organization.created", o))
        for u in (ada, grace):
            receive(
                event(
                    "organizationMembership.created",
                    membership_object(organization=o, user=u, updated_at=T0 + 10),
                )
            )
        receive(
            event(
                "organizationInvitation.created",
                invitation_object(
                    organization=o, email_address="new@example.com", updated_at=T0 + 20
                ),
            )
        )
        receive(
            event(
                "organizationInvitation.accepted",
                invitation_object(
                    organization=o,
                    email_address="grace@example.com",
                    status="accepted",
                    user_id=grace["id"],
                    updated_at=T0 + 30,
                ),
            )
        )
        receive(
            event("organizationDomain.created", domain_object(organization=o, updated_at=T0 + 40))
        )
    receive(event("user.created", ada))

    stub = deleted_object("organization", org["id"], slug=org["slug"])
    assert receive(event("organization.deleted", stub, T0 + 1_000)).status == "processed"

    assert row(observer, t.organizations_table, org["id"]) is None
    for table, count in [
        (t.memberships_table, 2),
        (t.invitations_table, 2),
        (t.domains_table, 1),
    ]:
        assert rows(observer, table, organization_id=org["id"]) == []
        assert len(rows(observer, table, organization_id=other["id"])) == count
        assert len(rows(observer, table)) == count
    assert row(observer, t.organizations_table, other["id"]) is not None
    assert row(observer, t.users_table, ada["id"]) is not None


# --- users and what names them ---------------------------------------------------------------


def test_user_deleted_removes_memberships_sessions_and_accepted_invitations(
    receive: Receive, observer: Engine
) -> None:
    org = organization_object(created_at=T0, updated_at=T0)
    ada, grace = user_object(updated_at=T0), user_object(updated_at=T0)
    for u in (ada, grace):
        receive(event("user.created", u))
        receive(
            event(
                "organizationMembership.created",
                membership_object(organization=org, user=u, updated_at=T0 + 10),
            )
        )
        receive(event("session.created", session_object(user=u, updated_at=T0 + 20)))
        receive(
            event(
                "organizationInvitation.accepted",
                invitation_object(
                    organization=org,
                    email_address="x@example.com",
                    status="accepted",
                    user_id=u["id"],
                    updated_at=T0 + 30,
                ),
            )
        )
    pending = invitation_object(organization=org, email_address="p@example.com", updated_at=T0)
    receive(event("organizationInvitation.created", pending))

    ada_children = {
        table.name: [r["id"] for r in rows(observer, table, user_id=ada["id"])]
        for table in (t.memberships_table, t.sessions_table, t.invitations_table)
    }
    assert receive(deleted_user_event(ada["id"], timestamp=T0 + 1_000)).status == "processed"

    assert row(observer, t.users_table, ada["id"]) is None
    for table in (t.memberships_table, t.sessions_table, t.invitations_table):
        assert rows(observer, table, user_id=ada["id"]) == []
        assert len(rows(observer, table, user_id=grace["id"])) == 1
    assert row(observer, t.invitations_table, pending["id"]) is not None
    assert row(observer, t.organizations_table, org["id"]) is not None
    # What went with the user went for good: tombstoned beside it, at its deletion time.
    kinds = {
        t.memberships_table.name: "organization_membership",
        t.sessions_table.name: "session",
        t.invitations_table.name: "organization_invitation",
    }
    assert all(ada_children.values())
    assert tombstones(observer) == {
        ("user", ada["id"], T0 + 1_000),
        *(
            (kinds[name], object_id, T0 + 1_000)
            for name, ids in ada_children.items()
            for object_id in ids
        ),
    }


def test_a_session_of_a_deleted_user_is_stale_and_its_payload_not_kept(
    receive: Receive, observer: Engine
) -> None:
    user = user_object(updated_at=T0)
    receive(event("user.created", user))
    receive(deleted_user_event(user["id"], timestamp=T0 + 1_000))
    newer_copy = {**user, "first_name": "Back", "updated_at": T0 + 9_000}
    session = session_object(user=newer_copy, updated_at=T0 + 9_000)
    outcome = receive(event("session.created", session), "msg_session")
    assert outcome.status == "stale"
    assert outcome.reason == f"its user {user['id']} was deleted; deletes win"
    log = log_row(observer, "msg_session")
    assert (log["status"], log["user_id"], log["payload"]) == ("stale", user["id"], None)
    assert rows(observer, t.sessions_table) == []
    # The embedded user, newer than the delete, does not recreate it.
    assert row(observer, t.users_table, user["id"]) is None
    membership = membership_object(
        organization=organization_for("x"), user=newer_copy, updated_at=T0 + 9_000
    )
    late = receive(event("organizationMembership.created", membership))
    assert late.reason == f"its user {user['id']} was deleted; deletes win"


def test_the_embedded_user_of_a_session_refreshes_users_only_when_newer(
    receive: Receive, observer: Engine
) -> None:
    user = user_object(first_name="Stored", updated_at=T0 + 1_000)
    receive(event("user.created", user))
    session = session_object(
        user={**user, "first_name": "Newer", "updated_at": T0 + 2_000}, updated_at=T0 + 2_000
    )
    assert receive(event("session.created", session)).status == "processed"
    stored = row(observer, t.users_table, user["id"])
    assert stored is not None
    assert (stored["first_name"], stored["updated_at"]) == ("Newer", T0 + 2_000)

    ended = {
        **session,
        "user": {**user, "first_name": "Older", "updated_at": T0 + 1_500},
        "updated_at": T0 + 3_000,
    }
    # The session changes; its older copy of the user does not overwrite the stored one.
    assert receive(event("session.ended", ended)).status == "processed"
    assert row(observer, t.sessions_table, session["id"])["status"] == "ended"  # type: ignore[index]
    stored = row(observer, t.users_table, user["id"])
    assert stored is not None
    assert (stored["first_name"], stored["updated_at"]) == ("Newer", T0 + 2_000)
    # A user.updated older than the session's copy is then stale.
    late = receive(event("user.updated", {**user, "first_name": "Late", "updated_at": T0 + 1_800}))
    assert late.status == "stale"


def test_invitation_created_then_accepted_or_revoked(receive: Receive, observer: Engine) -> None:
    org = organization_object(created_at=T0, updated_at=T0)
    grace = user_object(updated_at=T0)
    invited = invitation_object(organization=org, email_address="g@example.com", updated_at=T0)
    assert receive(event("organizationInvitation.created", invited)).status == "processed"
    stored = row(observer, t.invitations_table, invited["id"])
    assert stored is not None
    assert (stored["status"], stored["user_id"], stored["organization_id"]) == (
        "pending",
        None,
        org["id"],
    )
    accepted = {**invited, "status": "accepted", "user_id": grace["id"], "updated_at": T0 + 50}
    assert receive(event("organizationInvitation.accepted", accepted)).status == "processed"
    stored = row(observer, t.invitations_table, invited["id"])
    assert stored is not None
    assert (stored["status"], stored["user_id"]) == ("accepted", grace["id"])

    other = invitation_object(organization=org, email_address="o@example.com", updated_at=T0)
    receive(event("organizationInvitation.created", other))
    # The event says what happened, whatever status data still carries.
    revoked = {**other, "updated_at": T0 + 60}
    assert receive(event("organizationInvitation.revoked", revoked)).status == "processed"
    stored = row(observer, t.invitations_table, other["id"])
    assert stored is not None
    assert (stored["status"], stored["user_id"]) == ("revoked", None)


@pytest.mark.parametrize("action", ["pending", "ended", "removed", "revoked"])
def test_session_events_set_its_status(receive: Receive, observer: Engine, action: str) -> None:
    user = user_object(updated_at=T0)
    session = session_object(user=user, updated_at=T0 + 100)
    receive(event("session.created", session))
    assert row(observer, t.sessions_table, session["id"])["status"] == "active"  # type: ignore[index]
    later = {**session, "status": "active", "updated_at": T0 + 200}
    assert receive(event(f"session.{action}", later)).status == "processed"
    stored = row(observer, t.sessions_table, session["id"])
    assert stored is not None
    assert (stored["status"], stored["user_id"], stored["updated_at"]) == (
        action,
        user["id"],
        T0 + 200,
    )


def test_a_tie_between_session_created_and_ended_converges_to_ended(
    receive: Receive, observer: Engine
) -> None:
    user = user_object(updated_at=T0)
    for order in (("session.created", "session.ended"), ("session.ended", "session.created")):
        session = session_object(user=user, updated_at=T0 + 100)
        outcomes = [receive(event(event_type, session)) for event_type in order]
        assert row(observer, t.sessions_table, session["id"])["status"] == "ended", order  # type: ignore[index]
        expected = (
            ["processed", "processed"] if order[0] == "session.created" else ["processed", "stale"]
        )
        assert [o.status for o in outcomes] == expected


# --- erasure: a deleted user's personal data is nowhere --------------------------------------


def erasure_story(receive: Receive, ip: str, *, delete: bool) -> dict[str, Any]:
    """A user who signs up, creates an organization and joins it, signs in (from ``ip``), is
    e-mailed and has an invitation accepted — then, if ``delete``, is deleted and e-mailed once
    more. Returns what identifies them and the svix ids of their deliveries."""
    token = secrets.token_hex(4)
    person: dict[str, Any] = {
        "email": f"erase.{token}@example.com",
        "phone": f"+1555{int(token, 16) % 10_000_000:07d}",
        "first_name": f"Zephyrine{token}",
        "ip": ip,
        "metadata": f"secret-plan-{token}",
    }
    user = user_object(
        email=person["email"],
        phone=person["phone"],
        first_name=person["first_name"],
        public_metadata={"plan": person["metadata"]},
        updated_at=T0,
    )
    org = organization_object(created_by=user["id"], created_at=T0, updated_at=T0)
    session = session_object(user=user, updated_at=T0 + 300)
    session["latest_activity"]["ip_address"] = ip
    session_created = event("session.created", session)
    session_created["event_attributes"]["http_request"]["client_ip"] = ip
    email = {
        "object": "email",
        "id": f"ema_{token}",
        "user_id": user["id"],
        "to_email_address": person["email"],
        "subject": f"Welcome {person['first_name']}",
        "status": "queued",
    }
    accepted = invitation_object(
        organization=org,
        email_address=person["email"],
        status="accepted",
        user_id=user["id"],
        updated_at=T0 + 500,
    )
    deliveries = {
        "user": event("user.created", user),
        "user_updated": event("user.updated", {**user, "last_name": "X", "updated_at": T0 + 1}),
        "org": event("organization.created", org),
        "member": event(
            "organizationMembership.created",
            membership_object(organization=org, user=user, updated_at=T0 + 200),
        ),
        "session": session_created,
        "email": event("email.created", email, T0 + 400),
        "accepted": event("organizationInvitation.accepted", accepted),
    }
    if delete:
        deliveries["delete"] = deleted_user_event(user["id"], timestamp=T0 + 1_000)
        # Clerk's e-mail about the deletion, delivered after it.
        deliveries["after"] = event("email.created", {**email, "id": f"ema_{token}_2"}, T0 + 2_000)
    person["svix_ids"] = []
    for name, body in deliveries.items():
        svix_id = f"msg_{token}_{name}"
        outcome = receive(body, svix_id)
        assert outcome.status == ("ignored" if body["type"] == "email.created" else "processed")
        person["svix_ids"].append(svix_id)
    person["user_id"] = user["id"]
    person["org_id"] = org["id"]
    return person


def personal_values(person: dict[str, Any]) -> list[str]:
    return [person[k] for k in ("email", "phone", "first_name", "ip", "metadata")]


def test_a_deleted_users_data_is_nowhere_in_the_database(
    backend: str, db_url: str, engine: Engine, observer: Engine, receive: Receive
) -> None:
    gone = erasure_story(receive, "198.51.100.77", delete=True)
    kept = erasure_story(receive, "198.51.100.78", delete=False)  # shows the search finds data
    for svix_id in gone["svix_ids"]:
        log = log_row(observer, svix_id)
        assert (log["payload"], log["user_id"]) == (None, gone["user_id"]), svix_id
    assert log_row(observer, gone["svix_ids"][-1])["status"] == "ignored"  # the late e-mail
    assert all(log_row(observer, i)["payload"] is not None for i in kept["svix_ids"])
    # The organization the user created stays: it is not theirs alone.
    assert row(observer, t.organizations_table, gone["org_id"]) is not None

    if backend == "postgresql":
        with observer.connect() as conn:

            def holding(value: str) -> list[str]:
                return [
                    table.name
                    for table in t.metadata.sorted_tables
                    if conn.execute(
                        text(
                            f"SELECT count(*) FROM {table.name} AS t WHERE CAST(t AS text) LIKE :p"
                        ),
                        {"p": f"%{value}%"},
                    ).scalar_one()
                ]

            for value in personal_values(gone):
                assert holding(value) == [], value
            assert set(holding(kept["email"])) == {
                "users",
                "sessions",
                "organization_memberships",
                "organization_invitations",
                "events",
            }
            assert set(holding(kept["ip"])) == {"sessions", "events"}
        return

    # SQLite: the bytes on disk, once every connection is closed (the WAL checkpointed away).
    engine.dispose()
    observer.dispose()
    path = Path(make_url(db_url).database or "")
    files = [p for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")) if p.exists()]
    assert files == [path]
    raw = b"".join(p.read_bytes() for p in files)
    assert gone["user_id"].encode() in raw  # ids stay: in the log and the tombstone
    for value in personal_values(gone):
        assert value.encode() not in raw, value
    for value in personal_values(kept):
        assert value.encode() in raw, value


# --- the erasure promise's edges ---------------------------------------------------------------


def test_an_inviters_email_goes_with_the_inviter(receive: Receive, observer: Engine) -> None:
    inviter = user_object(email="inviter.unique@example.com", updated_at=T0)
    receive(event("user.created", inviter))
    org = organization_object(created_at=T0, updated_at=T0)
    invitation = invitation_object(
        organization=org, email_address="x@example.com", inviter=inviter, updated_at=T0 + 10
    )
    receive(event("organizationInvitation.created", invitation), "msg_invited")
    receive(deleted_user_event(inviter["id"], timestamp=T0 + 1_000))
    stored = row(observer, t.invitations_table, invitation["id"])
    assert stored is None or "inviter.unique@example.com" not in json.dumps(stored["data"])
    assert log_row(observer, "msg_invited")["payload"] is None


def test_a_user_body_without_object_is_erased_with_its_user(
    receive: Receive, observer: Engine
) -> None:
    user = user_object(email="no.object@example.com", updated_at=T0)
    del user["object"]
    assert receive(event("user.created", user), "msg_plain").status == "processed"
    receive(deleted_user_event(user["id"], timestamp=T0 + 1_000))
    assert log_row(observer, "msg_plain")["payload"] is None


# --- batches end where one-at-a-time delivery ends ---------------------------------------------


def history_template() -> str:
    """A history touching every kind, as JSON with ``TAG`` in every id: two copies with
    different tags are the same history about different objects (nested random ids agree)."""
    t1 = T0 + 1_000
    ada = user_object(user_id="user_TAG_ada", created_at=T0, updated_at=t1)
    grace = user_object(user_id="user_TAG_grace", first_name="Grace", created_at=T0, updated_at=t1)
    org = organization_object(org_id="org_TAG_acme", created_at=T0, updated_at=t1)
    globex = organization_object(
        org_id="org_TAG_globex", name="Globex", created_at=T0, updated_at=t1
    )
    m_ada = membership_object(
        organization=org, user=ada, membership_id="orgmem_TAG_ada", updated_at=t1 + 100
    )
    m_grace = membership_object(
        organization=org, user=grace, membership_id="orgmem_TAG_grace", updated_at=t1 + 100
    )
    m_globex = membership_object(
        organization=globex, user=grace, membership_id="orgmem_TAG_globex", updated_at=t1 + 100
    )
    s_ada = session_object(
        user=ada, session_id="sess_TAG_ada", client_id="client_TAG", updated_at=t1 + 200
    )
    s_grace = session_object(
        user=grace, session_id="sess_TAG_grace", client_id="client_TAG", updated_at=t1 + 200
    )
    inv = invitation_object(
        organization=org,
        email_address="ada@example.com",
        invitation_id="orginv_TAG_ada",
        updated_at=t1 + 300,
    )
    dom = domain_object(organization=org, domain_id="orgdmn_TAG", updated_at=t1 + 300)
    role = {
        "object": "role",
        "id": "role_TAG",
        "key": "org:billing",
        "name": "Billing",
        "permissions": [],
        "created_at": T0,
        "updated_at": t1,
    }
    perm = {
        "object": "permission",
        "id": "perm_TAG",
        "key": "org:x:read",
        "name": "X",
        "created_at": T0,
        "updated_at": t1,
    }
    wle = {
        "object": "waitlist_entry",
        "id": "wle_TAG",
        "email_address": "w@example.com",
        "status": "pending",
        "created_at": T0,
        "updated_at": t1,
    }

    def later(obj: dict[str, Any], ms: int, **changes: Any) -> dict[str, Any]:
        return {**obj, **changes, "updated_at": ms}

    history: list[tuple[str, dict[str, Any]]] = [
        ("msg_TAG_01", event("user.created", ada)),
        ("msg_TAG_02", event("user.created", grace)),
        ("msg_TAG_03", event("organization.created", org)),
        ("msg_TAG_04", event("organizationMembership.created", m_ada)),
        ("msg_TAG_05", event("organizationMembership.created", m_grace)),
        ("msg_TAG_06", event("user.updated", later(ada, t1 + 500, first_name="Augusta"))),
        ("msg_TAG_07", event("user.updated", later(ada, t1 + 400, first_name="Older"))),
        ("msg_TAG_07b", event("user.updated", later(ada, t1 + 550, first_name="Ada 2"))),
        ("msg_TAG_04", event("organizationMembership.created", m_ada)),  # a redelivery
        ("msg_TAG_08", event("session.created", s_ada)),
        ("msg_TAG_09", event("session.created", s_grace)),
        ("msg_TAG_10", event("session.ended", s_grace)),  # a tie: ended wins
        ("msg_TAG_11", event("organizationInvitation.created", inv)),
        (
            "msg_TAG_12",
            event(
                "organizationInvitation.accepted",
                later(inv, t1 + 600, status="accepted", user_id="user_TAG_ada"),
            ),
        ),
        ("msg_TAG_13", event("organizationDomain.created", dom)),
        ("msg_TAG_14", event("role.created", role)),
        ("msg_TAG_15", event("permission.created", perm)),
        ("msg_TAG_16", event("waitlistEntry.created", wle)),
        ("msg_TAG_17", event("user.created", later(ada, t1 + 450))),  # older than 06: stale
        ("msg_TAG_18", deleted_user_event("user_TAG_ada", timestamp=t1 + 700)),  # mid-batch
        ("msg_TAG_19", event("session.ended", later(s_ada, t1 + 800))),  # its user is gone
        ("msg_TAG_20", event("organizationMembership.updated", later(m_ada, t1 + 800))),
        (
            "msg_TAG_21",
            event(
                "email.created",
                {"object": "email", "id": "ema_TAG", "user_id": "user_TAG_ada"},
                t1 + 800,
            ),
        ),
        ("msg_TAG_22", event("user.updated", later(ada, t1 + 900))),
        ("msg_TAG_23", event("role.updated", later(role, t1 + 100, name="Billing 2"))),
        ("msg_TAG_24", event("role.deleted", deleted_object("role", "role_TAG"), t1 + 200)),
        ("msg_TAG_25", event("role.updated", later(role, t1 + 300))),
        ("msg_TAG_26", event("organization.created", globex)),
        ("msg_TAG_27", event("organizationMembership.created", m_globex)),
        ("msg_TAG_28", event("organization.updated", later(org, t1 + 1_000, name="Acme 2"))),
        (
            "msg_TAG_29",
            event(
                "organizationMembership.updated",
                later(
                    m_grace,
                    t1 + 1_100,
                    role="org:admin",
                    organization=later(org, t1 + 1_050, name="Acme 3"),
                ),
            ),
        ),
        (
            "msg_TAG_30",
            event(
                "organization.deleted",
                deleted_object("organization", "org_TAG_acme", slug="acme"),
                t1 + 1_200,
            ),
        ),
        ("msg_TAG_31", event("organizationDomain.updated", later(dom, t1 + 1_300))),
        ("msg_TAG_32", event("permission.updated", later(perm, t1 + 100, name="Y"))),
        ("msg_TAG_33", event("waitlistEntry.updated", later(wle, t1 + 100, status="invited"))),
        ("msg_TAG_34", event("waitlistEntry.updated", later(wle, t1 + 50, status="pending"))),
        ("msg_TAG_35", event("subscription.past_due", {"id": "csub_TAG"})),
        ("msg_TAG_36", event("session.revoked", {"object": "session", "user_id": "user_TAG"})),
        ("msg_TAG_18", deleted_user_event("user_TAG_ada", timestamp=t1 + 700)),  # a redelivery
        ("msg_TAG_37", event("user.updated", later(grace, t1 + 1_400, first_name="G."))),
    ]
    return json.dumps(history)


ONE, MANY = "~one~", "~many~"
"""Tags no other text of a history contains."""


def tagged(template: str, tag: str) -> list[Delivery]:
    return [
        Delivery(svix_id, encode(body), received_at=T0 + 10_000)
        for svix_id, body in json.loads(template.replace("TAG", tag))
    ]


def untagged(value: Any, tag: str) -> Any:
    """``value`` with ``tag`` written back as ``TAG``. A stale reason names the version stored
    when it was refused — in a batch too, though later deliveries write the same object."""
    return json.loads(json.dumps(value).replace(tag, "TAG"))


def outcomes_of(results: list[Any], tag: str) -> list[Any]:
    assert all(isinstance(r, Outcome) for r in results), results
    return untagged([(r.status, r.duplicate, r.reason, r.error_code) for r in results], tag)


def state_of(engine: Engine, tag: str) -> dict[str, Any]:
    """The part of the database about one copy of the history."""
    state = snapshot(engine)
    mine = {
        name: [r for r in value if tag in json.dumps(r, default=str)]
        for name, value in state.items()
    }
    return untagged(json.loads(json.dumps(mine, default=str)), tag)


@pytest.mark.parametrize("size", [None, 5], ids=["one-batch", "batches-of-5"])
def test_a_batch_ends_where_one_at_a_time_ends(
    receiver: Receiver, observer: Engine, caplog: pytest.LogCaptureFixture, size: int | None
) -> None:
    template = history_template()
    single = [receiver.receive(d) for d in tagged(template, ONE)]
    expected = state_of(observer, ONE)

    batch = tagged(template, MANY)
    step = size or len(batch)
    results: list[Any] = []
    with caplog.at_level(logging.WARNING, logger="clerk_sync.receiver"):
        for start in range(0, len(batch), step):
            results += receiver.receive_batch(batch[start : start + step])
    assert [r.message for r in caplog.records] == []  # committed as batches, not one by one

    assert outcomes_of(results, MANY) == outcomes_of(single, ONE)
    assert state_of(observer, MANY) == expected


def test_a_stale_reason_in_a_batch_names_the_version_that_refused_it(
    receiver: Receiver, observer: Engine
) -> None:
    user = user_object(updated_at=T0 + 500)
    receiver.receive(Delivery("msg_stored", encode(event("user.created", user))))
    results = receiver.receive_batch(
        [
            Delivery("msg_older", encode(event("user.updated", {**user, "updated_at": T0 + 400}))),
            Delivery("msg_newer", encode(event("user.updated", {**user, "updated_at": T0 + 550}))),
        ]
    )
    older = results[0]
    assert isinstance(older, Outcome)
    assert older.status == "stale"
    expected = f"updated_at {T0 + 400} is not newer than the stored {T0 + 500}"
    assert (older.reason, log_row(observer, "msg_older")["error"]) == (expected, expected)


def test_the_history_covers_what_batches_must_get_right(
    receiver: Receiver, observer: Engine
) -> None:
    """The history above, checked against the rules directly (sent as one batch)."""
    results = receiver.receive_batch(tagged(history_template(), "b"))
    by_id: dict[str, Outcome] = {}
    for r in results:
        assert isinstance(r, Outcome)
        by_id.setdefault(r.svix_id, r)
    status = {k.removeprefix("msg_b_"): v.status for k, v in by_id.items()}
    assert status["07"] == status["17"] == "stale"  # older than what is stored
    assert [r.duplicate for r in results if r.svix_id == "msg_b_04"] == [False, True]  # type: ignore[union-attr]
    assert [r.duplicate for r in results if r.svix_id == "msg_b_18"] == [False, True]  # type: ignore[union-attr]
    assert status["18"] == "processed"
    assert [status[n] for n in ("19", "20", "22", "25", "31")] == ["stale"] * 5
    assert (status["21"], status["35"], status["36"]) == ("ignored", "ignored", "failed")
    assert status["34"] == "stale"

    assert row(observer, t.users_table, "user_b_ada") is None
    assert row(observer, t.users_table, "user_b_grace")["first_name"] == "G."  # type: ignore[index]
    assert row(observer, t.sessions_table, "sess_b_grace")["status"] == "ended"  # type: ignore[index]
    assert row(observer, t.sessions_table, "sess_b_ada") is None
    assert row(observer, t.organizations_table, "org_b_acme") is None
    assert row(observer, t.organizations_table, "org_b_globex") is not None
    assert [m["id"] for m in rows(observer, t.memberships_table)] == ["orgmem_b_globex"]
    assert rows(observer, t.invitations_table) == []
    assert rows(observer, t.domains_table) == []
    assert rows(observer, t.roles_table) == []
    assert row(observer, t.permissions_table, "perm_b")["name"] == "Y"  # type: ignore[index]
    assert row(observer, t.waitlist_table, "wle_b")["status"] == "invited"  # type: ignore[index]
    for svix_id in ("msg_b_01", "msg_b_04", "msg_b_08", "msg_b_19", "msg_b_21", "msg_b_22"):
        assert log_row(observer, svix_id)["payload"] is None, svix_id
    assert log_row(observer, "msg_b_02")["payload"] is not None
    assert {(k, i) for k, i, _ in tombstones(observer)} == {
        ("user", "user_b_ada"),
        ("role", "role_b"),
        ("organization", "org_b_acme"),
        # what went with them, for good:
        ("organization_invitation", "orginv_b_ada"),
        ("organization_domain", "orgdmn_b"),
        ("session", "sess_b_ada"),
        ("organization_membership", "orgmem_b_ada"),
        ("organization_membership", "orgmem_b_grace"),
    }
