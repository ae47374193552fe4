"""The entity registry and the pure half of the core: which event types are synced, how a
delivery becomes a :class:`Plan` of writes, and the ordering key (``kind.version``)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from clerk_sync.devtools import (
    deleted_object,
    envelope,
    membership_object,
    organization_object,
    session_object,
    user_object,
)
from clerk_sync.entities import Delete, Kind, Plan, Upsert, handled_types, kinds, register, route
from clerk_sync.entities import registry as reg
from clerk_sync.entities.kind import ClerkObject, version
from clerk_sync.entities.kind import plan as decide
from clerk_sync.errors import InvalidPayload
from clerk_sync.events import decode_envelope
from tests.conftest import load_fixture

RECEIVED = 1_800_000_000_000
"""A receive time far from every payload's own times, so a plan that used it shows."""

SYNCED = {
    "user": ("users", "user", ["created", "updated", "deleted"]),
    "organization": ("organizations", "organization", ["created", "updated", "deleted"]),
    "organization_membership": (
        "organization_memberships",
        "organizationMembership",
        ["created", "updated", "deleted"],
    ),
    "organization_invitation": (
        "organization_invitations",
        "organizationInvitation",
        ["created", "accepted", "revoked"],
    ),
    "organization_domain": (
        "organization_domains",
        "organizationDomain",
        ["created", "updated", "deleted"],
    ),
    "role": ("roles", "role", ["created", "updated", "deleted"]),
    "permission": ("permissions", "permission", ["created", "updated", "deleted"]),
    "session": ("sessions", "session", ["created", "pending", "ended", "removed", "revoked"]),
    "waitlist_entry": ("waitlist_entries", "waitlistEntry", ["created", "updated"]),
}
"""Kind name → (table, event prefix, actions): Clerk's catalogue, section 1.1."""
HANDLED = sorted(f"{prefix}.{a}" for _t, prefix, actions in SYNCED.values() for a in actions)
DELETES = {t for t in HANDLED if t.endswith(".deleted")}


def plan_of(event: dict[str, Any] | bytes, received: int = RECEIVED) -> Plan:
    body = event if isinstance(event, bytes) else json.dumps(event).encode()
    env = decode_envelope(body)
    routed = route(env.type)
    assert routed is not None, env.type
    kind, action = routed
    return decide(kind, env, action, received)


# --- register() ------------------------------------------------------------------------------


def probe(**changes: Any) -> Kind:
    """A kind no real module declares."""
    fields: dict[str, Any] = {
        "name": "clerk_sync_probe",
        "table": "clerk_sync_probes",
        "events": "clerkSyncProbe",
        "model": ClerkObject,
        "columns": list,
    }
    return Kind(**(fields | changes))


@pytest.fixture
def registering() -> Iterator[Callable[[Kind], Kind]]:
    """``register`` for throwaway kinds; whatever it added is removed afterwards, and the
    registry is left exactly as it was."""
    kinds_before, routes_before = dict(reg._KINDS), dict(reg._ROUTES)
    added: list[Kind] = []

    def _register(kind: Kind) -> Kind:
        added.append(kind)
        return register(kind)

    try:
        yield _register
    finally:
        for kind in added:
            if reg._KINDS.get(kind.name) is kind:
                del reg._KINDS[kind.name]
            for event_type in kind.event_types():
                if reg._ROUTES.get(event_type, (None,))[0] is kind:
                    del reg._ROUTES[event_type]
        assert (kinds_before, routes_before) == (reg._KINDS, reg._ROUTES)


def test_a_new_kind_registers_and_routes(registering: Callable[[Kind], Kind]) -> None:
    kind = probe(upserts=("created", "merged"), deletes=("deleted",))
    assert registering(kind) is kind
    assert reg.kind_named("clerk_sync_probe") is kind
    assert route("clerkSyncProbe.merged") == (kind, "merged")
    assert route("clerkSyncProbe.deleted") == (kind, "deleted")
    assert {"clerkSyncProbe.created", "clerkSyncProbe.merged"} <= set(handled_types())


@pytest.mark.parametrize(
    "changes",
    [
        {"name": "user"},
        {"table": "users"},
        {"name": "user", "table": "users", "events": "clerkSyncProbe"},
    ],
    ids=["kind-name", "table", "both"],
)
def test_a_second_kind_of_one_name_or_table_is_refused(
    registering: Callable[[Kind], Kind], changes: dict[str, Any]
) -> None:
    before = dict(reg._ROUTES)
    with pytest.raises(ValueError, match="is already registered"):
        registering(probe(**changes))
    assert before == reg._ROUTES
    assert reg.kind_named("user").table == "users"


def test_registering_the_same_kind_twice_is_refused(registering: Callable[[Kind], Kind]) -> None:
    kind = registering(probe())
    with pytest.raises(
        ValueError, match=re.escape("'clerk_sync_probe' (table 'clerk_sync_probes')")
    ):
        registering(kind)


@pytest.mark.parametrize(
    ("changes", "bad"),
    [
        ({"events": "ClerkSyncProbe"}, "ClerkSyncProbe.created"),
        ({"events": "clerk-sync-probe"}, "clerk-sync-probe.created"),
        ({"events": "clerkSyncProbe.x"}, "clerkSyncProbe.x.created"),
        ({"events": ""}, ".created"),
        ({"upserts": ("Created",)}, "clerkSyncProbe.Created"),
        ({"upserts": ("",)}, "clerkSyncProbe."),
        ({"upserts": ("created2",)}, "clerkSyncProbe.created2"),
        ({"upserts": ("created ",)}, "clerkSyncProbe.created "),
        ({"upserts": ("created\n",)}, "clerkSyncProbe.created\n"),
        ({"deletes": ("gone.now",)}, "clerkSyncProbe.gone.now"),
    ],
)
def test_a_bad_event_name_is_refused_and_nothing_is_registered(
    registering: Callable[[Kind], Kind], changes: dict[str, Any], bad: str
) -> None:
    message = f"{bad!r} is not a Clerk event name like 'user.created'"
    with pytest.raises(ValueError, match=re.escape(message)) as exc:
        registering(probe(**changes))
    assert str(exc.value) == message
    assert "clerk_sync_probe" not in reg._KINDS
    assert route("clerkSyncProbe.created") is None


@pytest.mark.parametrize(
    ("changes", "owner", "taken"),
    [
        ({"events": "user", "upserts": ("probed", "created"), "deletes": ()}, "user", "created"),
        ({"events": "session", "upserts": ("ended",), "deletes": ()}, "session", "ended"),
        ({"events": "organization", "upserts": ("probed",)}, "organization", "deleted"),
    ],
)
def test_an_event_type_of_another_kind_is_refused(
    registering: Callable[[Kind], Kind], changes: dict[str, Any], owner: str, taken: str
) -> None:
    prefix = changes["events"]
    message = f"'{prefix}.{taken}' already belongs to {owner!r}"
    with pytest.raises(ValueError, match=re.escape(message)) as exc:
        registering(probe(**changes))
    assert str(exc.value) == message
    assert route(f"{prefix}.{taken}") == (reg.kind_named(owner), taken)
    assert route(f"{prefix}.probed") is None  # refused whole: no type of it was routed
    assert "clerk_sync_probe" not in reg._KINDS


def test_a_second_kind_for_one_event_prefix_is_refused(
    registering: Callable[[Kind], Kind],
) -> None:
    with pytest.raises(ValueError, match="'user'"):
        registering(probe(events="user", upserts=("merged",), deletes=()))


def test_a_parent_that_is_not_a_kind_is_refused(registering: Callable[[Kind], Kind]) -> None:
    registering(probe(parents={"owner_id": "no_such_kind"}))
    message = "clerk_sync_probe.owner_id refers to unknown kind 'no_such_kind'"
    with pytest.raises(ValueError, match=re.escape(message)) as exc:
        reg.check_parents()
    assert str(exc.value) == message


def test_the_built_in_parents_are_kinds() -> None:
    reg.check_parents()
    parents = {k.name: dict(k.parents) for k in kinds() if k.parents}
    assert parents == {
        "organization_membership": {"organization_id": "organization", "user_id": "user"},
        "organization_invitation": {"organization_id": "organization", "user_id": "user"},
        "organization_domain": {"organization_id": "organization"},
        "session": {"user_id": "user"},
    }
    children = {k.name: sorted(c.name for c, _col in reg.children(k)) for k in kinds()}
    assert children["user"] == ["organization_invitation", "organization_membership", "session"]
    assert children["organization"] == [
        "organization_domain",
        "organization_invitation",
        "organization_membership",
    ]
    assert [k for k in children if children[k] and k not in ("user", "organization")] == []


# --- route() and handled_types() ---------------------------------------------------------------


def test_the_nine_kinds_their_tables_and_prefixes() -> None:
    declared = {k.name: (k.table, k.events, [*k.upserts, *k.deletes]) for k in kinds()}
    assert declared == SYNCED
    assert [k.name for k in kinds() if k.personal] == ["user"]


def test_handled_types_are_exactly_the_synced_ones() -> None:
    assert handled_types() == HANDLED
    assert len(HANDLED) == 28


@pytest.mark.parametrize("event_type", HANDLED)
def test_every_handled_type_routes_to_its_kind_and_action(event_type: str) -> None:
    prefix, action = event_type.split(".")
    routed = route(event_type)
    assert routed is not None
    kind, routed_action = routed
    assert (kind.events, routed_action) == (prefix, action)
    assert kind.table == SYNCED[kind.name][0]
    assert (action in kind.deletes) == (event_type in DELETES)


@pytest.mark.parametrize(
    "event_type",
    [
        "email.created",
        "sms.created",
        "subscription.pastDue",
        "subscription.past_due",
        "subscriptionItem.pastDue",
        "paymentAttempt.created",
        "organizationInvitation.expired",
        "organizationInvitation.deleted",
        "session.deleted",
        "waitlistEntry.deleted",
        "user.merged",
        "User.created",
        "user.Created",
        "user",
        "",
        "clerkSync.ping",
    ],
)
def test_other_types_route_nowhere(event_type: str) -> None:
    assert route(event_type) is None
    assert event_type not in handled_types()


# --- version() -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "rank"),
    [
        ("created", 0),
        ("updated", 1),
        ("pending", 1),
        ("deleted", 2),
        ("accepted", 2),
        ("revoked", 2),
        ("ended", 2),
        ("removed", 2),
    ],
)
def test_version_is_ms_times_four_plus_the_rank(action: str, rank: int) -> None:
    ms = 1_744_400_000_123
    assert version(ms, 5, action) == ms * 4 + rank
    assert version(None, ms, action) == ms * 4 + rank  # no updated_at: the fallback time
    assert version(0, ms, action) == rank  # 0 is a time, not "missing"


def test_versions_order_by_time_first_then_by_rank() -> None:
    t = 1_744_400_000_000
    order = [
        version(t, 0, "created"),
        version(t, 0, "updated"),
        version(t, 0, "ended"),
        version(t + 1, 0, "created"),
    ]
    assert order == sorted(order)
    assert len(set(order)) == 4
    # The ordering key keeps within a signed 64-bit column for every accepted time.
    assert version(2**60 - 1, 0, "revoked") < 2**63


# --- plan() of the example payloads ----------------------------------------------------------

ORG = "org_2vX2bC4dE6fG8hI0jK2lM4nO6pQ"
ADA = "user_2vX11zP8kQm3TbR6wYcN0dLe5Hs"
MEMBERSHIP = "orgmem_2vX2bD5eF7gH9iJ1kL3mN5oP7qR"
SESSION = "sess_2vX13aB7cD9eF1gH3iJ5kL7mN9o"


@pytest.mark.parametrize(
    ("name", "kind", "object_id", "updated_at", "rank"),
    [
        ("user.created.json", "user", ADA, 1744276393626, 0),
        ("user.updated.json", "user", ADA, 1744362011337, 1),
        ("user.created.oauth_google.json", "user", "user_38MqVc3Fexample0Q7PewRxW0b", None, 0),
        (
            "user.created.clerk-docs-example.json",
            "user",
            "user_29w83sxmDNGwOuEthce5gg56FcC",
            1654012591835,
            0,
        ),
        ("organization.created.json", "organization", ORG, 1744400000000, 0),
        ("organization.updated.json", "organization", ORG, 1744403600000, 1),
        (
            "organizationInvitation.accepted.json",
            "organization_invitation",
            "orginv_2vX3cE6fG8hI0jK2lM4nO6pQ8r",
            1744406000000,
            2,
        ),
        (
            "waitlistEntry.created.json",
            "waitlist_entry",
            "wle_2vX4dF7gH9iJ1kL3mN5oP7qR9sT",
            None,
            0,
        ),
    ],
)
def test_plan_of_a_single_object_payload(
    name: str, kind: str, object_id: str, updated_at: int | None, rank: int
) -> None:
    raw = json.loads(load_fixture(name))
    plan = plan_of(load_fixture(name))
    assert len(plan.writes) == 1
    (own,) = plan.writes
    assert isinstance(own, Upsert)
    assert (own.kind.name, own.id, own.primary, plan.subject_id) == (
        kind,
        object_id,
        True,
        object_id,
    )
    expected_ms = raw["data"]["updated_at"] if updated_at is None else updated_at
    assert own.version == expected_ms * 4 + rank
    assert own.updated_at == expected_ms
    assert own.row["id"] == object_id
    assert own.row["data"] == raw["data"]
    assert own.row["sync_version"] == own.version
    assert set(own.row) == {"id", "data", "sync_version", *own.kind.column_names()}


def test_plan_of_user_created_has_the_queried_columns() -> None:
    (own,) = plan_of(load_fixture("user.created.json")).writes
    assert isinstance(own, Upsert)
    assert own.row["email"] == "ada.lovelace@example.com"
    assert (own.row["banned"], own.row["locked"]) == (False, False)
    assert own.row["public_metadata"] == {}


def test_plan_of_organization_created_names_its_creator_but_no_parent() -> None:
    plan = plan_of(load_fixture("organization.created.json"))
    (own,) = plan.writes
    assert isinstance(own, Upsert)
    assert (own.row["name"], own.row["slug"], own.row["created_by"]) == (
        "Acme Corp",
        "acme-corp",
        ADA,
    )
    assert own.row["members_count"] == 1
    assert plan.lock_keys() == {f"organization:{ORG}"}


def test_plan_of_invitation_accepted_sets_status_and_user_and_locks_both_parents() -> None:
    plan = plan_of(load_fixture("organizationInvitation.accepted.json"))
    (own,) = plan.writes
    assert isinstance(own, Upsert)
    assert own.row["status"] == "accepted"
    assert own.row["user_id"] == "user_38MqVc3Fexample0Q7PewRxW0b"
    assert own.row["organization_id"] == ORG
    assert plan.lock_keys() == {
        "organization_invitation:orginv_2vX3cE6fG8hI0jK2lM4nO6pQ8r",
        f"organization:{ORG}",
        "user:user_38MqVc3Fexample0Q7PewRxW0b",
    }


def test_invitation_revoked_implies_its_status_whatever_data_says() -> None:
    org = organization_object(updated_at=1_744_400_000_000)
    data = {
        "object": "organization_invitation",
        "id": "orginv_probe",
        "organization_id": org["id"],
        "email_address": "x@example.com",
        "status": "pending",
        "updated_at": 1_744_400_000_500,
    }
    (own,) = plan_of(envelope("organizationInvitation.revoked", data)).writes
    assert isinstance(own, Upsert)
    assert own.row["status"] == "revoked"
    assert own.row["user_id"] is None
    (created,) = plan_of(envelope("organizationInvitation.created", data)).writes
    assert isinstance(created, Upsert)
    assert created.row["status"] == "pending"  # no implied status: data's own


@pytest.mark.parametrize(
    ("name", "action_rank", "updated_at", "embedded_org_updated_at"),
    [
        ("organizationMembership.created.json", 0, 1744400000120, 1744400000000),
        ("organizationMembership.updated.json", 1, 1744410000000, 1744403600000),
    ],
)
def test_plan_of_a_membership_refreshes_its_embedded_organization(
    name: str, action_rank: int, updated_at: int, embedded_org_updated_at: int
) -> None:
    raw = json.loads(load_fixture(name))
    plan = plan_of(load_fixture(name))
    own, org = plan.writes
    assert isinstance(own, Upsert)
    assert (own.kind.name, own.id, own.primary) == ("organization_membership", MEMBERSHIP, True)
    assert own.version == updated_at * 4 + action_rank
    assert (own.row["organization_id"], own.row["user_id"]) == (ORG, ADA)
    assert own.row["role"] == raw["data"]["role"]
    assert own.row["permissions"] == raw["data"]["permissions"]
    assert isinstance(org, Upsert)
    assert (org.kind.name, org.id, org.primary) == ("organization", ORG, False)
    # An embedded copy is ordered as an update of its own updated_at.
    assert org.version == embedded_org_updated_at * 4 + 1
    assert org.row["data"] == raw["data"]["organization"]
    assert plan.lock_keys() == {
        f"organization_membership:{MEMBERSHIP}",
        f"organization:{ORG}",
        f"user:{ADA}",
    }


def test_plan_of_membership_deleted_is_a_delete_at_the_envelope_time() -> None:
    plan = plan_of(load_fixture("organizationMembership.deleted.json"))
    own = plan.writes[0]
    assert own == Delete(own.kind, MEMBERSHIP, 1744420000033)
    assert own.kind.name == "organization_membership"
    # The full membership it carries still refreshes the organization (guarded as ever).
    assert [(w.kind.name, w.id, type(w)) for w in plan.writes[1:]] == [
        ("organization", ORG, Upsert)
    ]
    assert f"organization_membership:{MEMBERSHIP}" in plan.lock_keys()


@pytest.mark.parametrize(
    ("name", "status", "rank", "updated_at"),
    [
        ("session.created.json", "active", 0, 1744329600412),
        ("session.ended.json", "ended", 2, 1744333200000),
    ],
)
def test_plan_of_a_session_refreshes_its_embedded_user(
    name: str, status: str, rank: int, updated_at: int
) -> None:
    raw = json.loads(load_fixture(name))
    plan = plan_of(load_fixture(name))
    own, user = plan.writes
    assert isinstance(own, Upsert)
    assert (own.kind.name, own.id, own.row["user_id"], own.row["status"]) == (
        "session",
        SESSION,
        ADA,
        status,
    )
    assert own.version == updated_at * 4 + rank
    assert own.row["client_id"] == "client_2vX0yR5tU7vW9xY1zA3bC5dE7fG"
    assert isinstance(user, Upsert)
    assert (user.kind.name, user.id, user.primary) == ("user", ADA, False)
    assert user.version == raw["data"]["user"]["updated_at"] * 4 + 1
    assert user.row["email"] == "ada.lovelace@example.com"
    assert user.row["data"] == raw["data"]["user"]
    assert plan.lock_keys() == {f"session:{SESSION}", f"user:{ADA}"}


@pytest.mark.parametrize(
    ("name", "kind", "object_id", "deleted_at"),
    [
        ("user.deleted.json", "user", ADA, 1744448400000),
        ("user.deleted.with_external_id.json", "user", "user_2vZ7pQ1sLk0Xb9RcM4nW8tY3uJd", None),
        ("organization.deleted.json", "organization", ORG, 1744490000000),
    ],
)
def test_plan_of_a_delete_stub(
    name: str, kind: str, object_id: str, deleted_at: int | None
) -> None:
    raw = json.loads(load_fixture(name))
    plan = plan_of(load_fixture(name))
    (own,) = plan.writes
    assert isinstance(own, Delete)
    assert (own.kind.name, own.id) == (kind, object_id)
    assert own.deleted_at == (raw["timestamp"] if deleted_at is None else deleted_at)
    assert plan.lock_keys() == {f"{kind}:{object_id}"}


@pytest.mark.parametrize(
    ("timestamp", "deleted_at"),
    [
        (1_716_883_200, 1_716_883_200_000),  # seconds, as in Clerk's OpenAPI examples
        (999_999_999_999, 999_999_999_999_000),
        (1_000_000_000_000, 1_000_000_000_000),  # from 10^12 on: milliseconds
        (1_744_490_000_123, 1_744_490_000_123),
    ],
)
@pytest.mark.parametrize(
    "event_type",
    ["user.deleted", "organization.deleted", "organizationDomain.deleted", "role.deleted"],
)
def test_a_delete_stub_is_tombstoned_at_the_envelope_time_in_ms(
    event_type: str, timestamp: int, deleted_at: int
) -> None:
    data = deleted_object(event_type.split(".")[0], "obj_2vX4dF7gH9iJ1kL3mN5oP7qR9sT")
    (own,) = plan_of(envelope(event_type, data, timestamp)).writes
    assert isinstance(own, Delete)
    assert (own.id, own.deleted_at) == ("obj_2vX4dF7gH9iJ1kL3mN5oP7qR9sT", deleted_at)


def test_a_delete_without_timestamp_is_tombstoned_at_the_receive_time() -> None:
    event = envelope("permission.deleted", deleted_object("permission", "perm_1"))
    del event["timestamp"]
    (own,) = plan_of(event).writes
    assert isinstance(own, Delete)
    assert own.deleted_at == RECEIVED


def test_an_upsert_without_updated_at_is_ordered_by_the_envelope_then_receive_time() -> None:
    data = {"object": "waitlist_entry", "id": "wle_no_times", "email_address": "a@example.com"}
    (own,) = plan_of(envelope("waitlistEntry.updated", data, 1_716_883_200)).writes
    assert isinstance(own, Upsert)
    assert own.version == 1_716_883_200_000 * 4 + 1
    event = envelope("waitlistEntry.updated", data)
    del event["timestamp"]
    (own,) = plan_of(event).writes
    assert isinstance(own, Upsert)
    assert own.version == RECEIVED * 4 + 1


def test_an_embedded_copy_without_its_own_updated_at_refreshes_nothing() -> None:
    user = user_object(updated_at=1_744_400_000_000)
    session = session_object(user={**user, "updated_at": None}, updated_at=1_744_400_000_100)
    plan = plan_of(envelope("session.created", session))
    assert [w.kind.name for w in plan.writes] == ["session"]
    org = organization_object(updated_at=1_744_400_000_000)
    membership = membership_object(organization=org, user=user, updated_at=1_744_400_000_100)
    del membership["organization"]["updated_at"]
    plan = plan_of(envelope("organizationMembership.created", membership))
    assert [w.kind.name for w in plan.writes] == ["organization_membership"]


def test_a_partial_embedded_copy_refreshes_nothing_and_the_delivery_stands() -> None:
    user = user_object(updated_at=1_744_400_000_000)
    session = session_object(user=user, updated_at=1_744_400_000_100)
    session["user"] = {"object": "user", "updated_at": 1_744_400_000_000}  # no id
    plan = plan_of(envelope("session.created", session))
    assert [(w.kind.name, w.id) for w in plan.writes] == [("session", session["id"])]
    assert plan.lock_keys() == {f"session:{session['id']}", f"user:{user['id']}"}


def test_a_membership_of_unknown_parents_still_locks_them() -> None:
    org = organization_object(org_id="org_unknown", updated_at=1_744_400_000_000)
    user = user_object(user_id="user_unknown", updated_at=1_744_400_000_000)
    membership = membership_object(organization=org, user=user, updated_at=1_744_400_000_100)
    keys = plan_of(envelope("organizationMembership.created", membership)).lock_keys()
    assert {"organization:org_unknown", "user:user_unknown"} <= keys


@pytest.mark.parametrize(
    ("event_type", "data", "where"),
    [
        ("organization.created", {"name": "No id"}, "data.id: Field required"),
        ("session.ended", {"id": ""}, "data.id: String should have at least 1 character"),
        ("role.deleted", {"deleted": True}, "data.id: Field required"),
        ("user.created", {"id": "user_1"}, "data.updated_at: Field required"),
        ("permission.updated", {"id": "perm_1", "updated_at": -1}, "data.updated_at: "),
        ("organizationDomain.created", {"id": "d", "created_at": 2**60}, "data.created_at: "),
        ("waitlistEntry.created", {"id": "x" * 256}, "data.id: "),
    ],
)
def test_an_unusable_object_is_invalid_payload(
    event_type: str, data: dict[str, Any], where: str
) -> None:
    with pytest.raises(InvalidPayload) as exc:
        plan_of(envelope(event_type, data, 1_744_400_000_000))
    assert exc.value.code == "payload_invalid"
    assert exc.value.detail.startswith(f"The event does not have the shape Clerk sends: {where}")
