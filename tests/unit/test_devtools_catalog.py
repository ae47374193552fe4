"""The fixture catalog behind ``clerk-sync trigger``: every handled type has a fixture, every
fixture has the shape Clerk sends, and is something the real decoders accept."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from clerk_sync import handled_types
from clerk_sync.devtools import Subject, all_fixtures, fixture, fixture_for, fixture_types
from clerk_sync.devtools.catalog import DELIVERY_LAG_MS, persona
from clerk_sync.entities import route
from clerk_sync.entities.kind import plan as decide
from clerk_sync.events import PING_TYPE, decode_envelope

REFERENCE = Path(__file__).resolve().parents[1] / "fixtures"
SUBJECT = Subject("user_2vX11zP8kQm3TbR6wYcN0dLe5Hs", 0, 1_744_276_393_608, 1_744_362_011_337)
ENVELOPE_KEYS = {"data", "event_attributes", "instance_id", "object", "timestamp", "type"}
IGNORED = {PING_TYPE, "email.created", "sms.created", "subscription.created"}


def subject_for(event_type: str) -> Subject:
    """SUBJECT with an id of the fixture's prefix, as the 4th of a run (not the default persona)."""
    spec = fixture_for(event_type)
    assert spec is not None
    return Subject(
        f"{spec.id_prefix}_2vX11zP8kQm3TbR6wYcN0dLe5Hs", 3, SUBJECT.created_ms, SUBJECT.at_ms
    )


def data_of(event_type: str) -> dict[str, Any]:
    spec = fixture_for(event_type)
    assert spec is not None
    data: dict[str, Any] = spec.build(subject_for(event_type))["data"]
    return data


def test_every_handled_type_has_a_fixture() -> None:
    """A new handler must come with its fixture (register it in devtools/catalog.py)."""
    missing = sorted(set(handled_types()) - set(fixture_types()))
    assert not missing, f"handled event types without a trigger fixture: {missing}"


def test_the_ignored_types_are_the_ones_meant_to_be() -> None:
    assert set(fixture_types()) - set(handled_types()) == IGNORED


@pytest.mark.parametrize("event_type", fixture_types())
def test_fixture_is_an_envelope_the_receiver_decodes(event_type: str) -> None:
    spec = fixture_for(event_type)
    assert spec is not None
    subject = subject_for(event_type)
    event = spec.build(subject)
    assert set(event) == ENVELOPE_KEYS
    assert (event["type"], event["object"]) == (event_type, "event")
    assert event["instance_id"].startswith("ins_")
    assert set(event["event_attributes"]["http_request"]) == {"client_ip", "user_agent"}
    assert type(event["timestamp"]) is int
    assert event["timestamp"] >= 10**12  # milliseconds, as Clerk sends them
    assert subject.at_ms <= event["timestamp"] <= subject.at_ms + DELIVERY_LAG_MS
    data = event["data"]
    assert data["id"] == subject.id
    assert data["id"].startswith(f"{spec.id_prefix}_")
    assert len(data["id"]) == len(spec.id_prefix) + 1 + 27
    # versioned: ordered by data.updated_at, which a delete does not bump (or does not have)
    assert spec.versioned == ("updated_at" in data and not event_type.endswith(".deleted"))
    if spec.versioned:
        assert type(data["updated_at"]) is int
        assert data["updated_at"] == subject.at_ms
        assert data["created_at"] == subject.created_ms
    routed = route(event_type)
    if event_type in IGNORED:
        assert routed is None  # recorded as ignored: no kind claims it
        return
    assert routed is not None
    kind, action = routed
    writes = decide(kind, decode_envelope(json.dumps(event).encode()), action, SUBJECT.at_ms)
    assert writes.subject_id == subject.id


@pytest.mark.parametrize(
    ("event_type", "reference"),
    [
        ("user.created", "user.created.json"),
        ("user.updated", "user.updated.json"),
        ("user.deleted", "user.deleted.json"),
    ],
)
def test_fixture_has_the_keys_of_the_captured_payload(event_type: str, reference: str) -> None:
    """Shaped like Clerk's: every key of the captured delivery is there, at both levels."""
    captured: dict[str, Any] = json.loads((REFERENCE / reference).read_text())
    spec = fixture_for(event_type)
    assert spec is not None
    built = spec.build(SUBJECT)
    assert set(captured) <= set(built)
    assert set(captured["data"]) <= set(built["data"])
    if event_type != "user.deleted":
        assert built["data"]["updated_at"] == SUBJECT.at_ms
        assert built["data"]["created_at"] == SUBJECT.created_ms
        assert built["timestamp"] > SUBJECT.at_ms  # stamped a few ms after the change
        primary = built["data"]["primary_email_address_id"]
        emails = {e["id"]: e["email_address"] for e in built["data"]["email_addresses"]}
        assert emails[primary] == "ada.lovelace@example.com"
    else:
        assert built["data"] == {"deleted": True, "id": SUBJECT.id, "object": "user"}


def test_updated_fixture_differs_from_created() -> None:
    created, updated = (fixture_for(t) for t in ("user.created", "user.updated"))
    assert created is not None
    assert updated is not None
    a, b = created.build(SUBJECT)["data"], updated.build(SUBJECT)["data"]
    assert (a["username"], b["username"]) == (None, "adal")
    assert b["public_metadata"] == {"plan": "pro"}


def test_personas_are_distinct() -> None:
    emails = {persona(i)[2] for i in range(20)}
    assert len(emails) == 20
    assert persona(0) == ("Ada", "Lovelace", "ada.lovelace@example.com")
    assert persona(8)[2] == "ada.lovelace+1@example.com"


def test_a_type_gets_one_fixture() -> None:
    with pytest.raises(ValueError, match="already has a fixture"):
        fixture("user.created", summary="again")(lambda s: {})


def test_catalog_lists_in_order() -> None:
    assert [f.event_type for f in all_fixtures()] == fixture_types() == sorted(fixture_types())


ORGANIZATION = {
    "object", "id", "name", "slug", "image_url", "has_image", "members_count",
    "missing_member_with_elevated_permissions", "pending_invitations_count",
    "max_allowed_memberships", "admin_delete_enabled", "public_metadata", "private_metadata",
    "created_by", "created_at", "updated_at",
}  # fmt: skip
MEMBERSHIP = {
    "object", "id", "role", "role_name", "permissions", "public_metadata", "private_metadata",
    "organization", "public_user_data", "created_at", "updated_at",
}  # fmt: skip
PUBLIC_USER_DATA = {
    "user_id", "first_name", "last_name", "profile_image_url", "image_url", "has_image",
    "identifier",
}  # fmt: skip
INVITATION = {
    "object", "id", "email_address", "role", "role_name", "organization_id", "inviter_id",
    "public_inviter_data", "status", "public_metadata", "private_metadata", "url", "expires_at",
    "created_at", "updated_at",
}  # fmt: skip
SESSION = {
    "object", "id", "user_id", "user", "client_id", "actor", "status",
    "last_active_organization_id", "last_active_at", "latest_activity", "expire_at",
    "abandon_at", "updated_at", "created_at",
}  # fmt: skip
DOMAIN = {
    "object", "id", "organization_id", "name", "enrollment_mode", "affiliation_email_address",
    "affiliation_verification", "ownership_verification", "verification",
    "total_pending_invitations", "total_pending_suggestions", "created_at", "updated_at",
}  # fmt: skip
PERMISSION = {"object", "id", "name", "key", "description", "type", "created_at", "updated_at"}
ROLE = {
    "object", "id", "name", "key", "description", "is_creator_eligible", "permissions",
    "created_at", "updated_at",
}  # fmt: skip
WAITLIST_ENTRY = {
    "object", "id", "email_address", "status", "is_locked", "created_at", "updated_at",
    "invitation",
}  # fmt: skip
"""The keys of ``data`` in the example payloads (shared/reference/payloads: organization.*,
organizationMembership.*, organizationInvitation.accepted, session.*, waitlistEntry.created) and,
for the kinds with none there, the required keys of Clerk's webhook OpenAPI spec."""
REFERS_TO = {"organization_id": "org_", "user_id": "user_", "client_id": "client_"}


@pytest.mark.parametrize(
    ("event_type", "kind_object", "keys"),
    [
        ("organization.created", "organization", ORGANIZATION),
        ("organization.updated", "organization", ORGANIZATION),
        ("organizationMembership.created", "organization_membership", MEMBERSHIP),
        ("organizationMembership.updated", "organization_membership", MEMBERSHIP),
        ("organizationMembership.deleted", "organization_membership", MEMBERSHIP),
        ("organizationInvitation.created", "organization_invitation", INVITATION),
        ("organizationInvitation.accepted", "organization_invitation", INVITATION | {"user_id"}),
        ("organizationInvitation.revoked", "organization_invitation", INVITATION),
        ("organizationDomain.created", "organization_domain", DOMAIN),
        ("organizationDomain.updated", "organization_domain", DOMAIN),
        ("role.created", "role", ROLE),
        ("role.updated", "role", ROLE),
        ("permission.created", "permission", PERMISSION),
        ("permission.updated", "permission", PERMISSION),
        ("session.created", "session", SESSION),
        ("session.pending", "session", SESSION),
        ("session.ended", "session", SESSION),
        ("session.removed", "session", SESSION),
        ("session.revoked", "session", SESSION),
        ("waitlistEntry.created", "waitlist_entry", WAITLIST_ENTRY),
        ("waitlistEntry.updated", "waitlist_entry", WAITLIST_ENTRY),
    ],
)
def test_fixture_has_the_keys_clerk_sends(
    event_type: str, kind_object: str, keys: set[str]
) -> None:
    data = data_of(event_type)
    assert data["object"] == kind_object
    assert keys <= set(data)
    if "organization" in keys:  # a membership embeds the whole organization
        assert set(data["organization"]) >= ORGANIZATION
        assert set(data["public_user_data"]) >= PUBLIC_USER_DATA
        assert data["public_user_data"]["user_id"].startswith("user_")
    if "user" in keys:  # a session embeds the whole user
        assert set(data_of("user.created")) <= set(data["user"])
        assert data["user_id"] == data["user"]["id"]
    for name, prefix in REFERS_TO.items():
        if name in keys:
            assert data[name].startswith(prefix)


@pytest.mark.parametrize(
    ("event_type", "kind_object", "extra"),
    [
        ("user.deleted", "user", {}),
        ("organization.deleted", "organization", {"slug": "hooli"}),
        ("organizationDomain.deleted", "organization_domain", {}),
        ("role.deleted", "role", {}),
        ("permission.deleted", "permission", {}),
    ],
)
def test_deletes_are_the_deleted_object_stub(
    event_type: str, kind_object: str, extra: dict[str, Any]
) -> None:
    """No timestamps: only ``{object, id, deleted}`` (an organization's adds its slug)."""
    subject = subject_for(event_type)
    expected = {"object": kind_object, "id": subject.id, "deleted": True, **extra}
    assert data_of(event_type) == expected


def test_membership_deleted_is_the_full_membership_with_updated_at_not_bumped() -> None:
    subject = subject_for("organizationMembership.deleted")
    created, deleted = (
        data_of("organizationMembership.created"),
        data_of("organizationMembership.deleted"),
    )
    assert set(deleted) == set(created)  # not a stub
    assert deleted["updated_at"] == subject.created_ms  # its last version's: created, never updated
    assert deleted["updated_at"] != subject.at_ms
    assert (deleted["role"], deleted["permissions"]) == ("org:member", ["org:sys_memberships:read"])


def test_membership_updated_promotes_to_admin() -> None:
    created, updated = (
        data_of("organizationMembership.created"),
        data_of("organizationMembership.updated"),
    )
    assert (created["role"], created["role_name"]) == ("org:member", "Member")
    assert (updated["role"], updated["role_name"]) == ("org:admin", "Admin")
    assert "org:sys_memberships:manage" in updated["permissions"]
    assert created["public_user_data"]["identifier"] == persona(3)[2]
    assert created["organization"]["updated_at"] <= created["created_at"]


@pytest.mark.parametrize(
    ("event_type", "status"),
    [
        ("organizationInvitation.created", "pending"),
        ("organizationInvitation.accepted", "accepted"),
        ("organizationInvitation.revoked", "revoked"),
        ("session.created", "active"),
        ("session.pending", "pending"),
        ("session.ended", "ended"),
        ("session.removed", "removed"),
        ("session.revoked", "revoked"),
        ("waitlistEntry.created", "pending"),
        ("waitlistEntry.updated", "invited"),
    ],
)
def test_status_matches_the_event(event_type: str, status: str) -> None:
    data = data_of(event_type)
    assert data["status"] == status
    if event_type.startswith("organizationInvitation."):
        # only the accepted invitation names who accepted it
        assert ("user_id" in data) == (status == "accepted")
        assert data["email_address"] == persona(3)[2]
        assert data["expires_at"] > data["created_at"]
    if event_type.startswith("waitlistEntry."):
        assert (data["invitation"] is not None) == (status == "invited")


def test_role_carries_its_permission_objects() -> None:
    created, updated = data_of("role.created"), data_of("role.updated")
    assert [p["key"] for p in created["permissions"]] == ["org:invoices:read"]
    assert [p["key"] for p in updated["permissions"]] == ["org:invoices:read", "org:invoices:pay"]
    for permission in updated["permissions"]:
        assert set(permission) >= PERMISSION
        assert permission["id"].startswith("perm_")
