"""One declaration per synced Clerk kind for the sync tests: how to build its object at a given
``updated_at``, which events create, update and delete it, and a column that shows which
version is stored. Built on :mod:`clerk_sync.devtools.fixtures`; ids are the caller's, so a
test can give every object a name that says what it is.

Also what the tests read back: a row of any table through a (second) engine, the log row of a
delivery, the tombstones, and a snapshot of everything a history leaves behind.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, Table, select

from clerk_sync.devtools import (
    deleted_object,
    domain_object,
    envelope,
    invitation_object,
    membership_object,
    organization_object,
    permission_object,
    role_object,
    session_object,
    user_object,
    waitlist_entry_object,
)
from tests.helpers import tables as t

T0 = 1_744_400_000_000
"""A realistic Clerk time (April 2025) in ms; every history in the tests starts here."""
LAG_MS = 20
"""How long after its change an event is stamped (the envelope ``timestamp``)."""

Build = Callable[[str, int, str], dict[str, Any]]


def event(event_type: str, data: dict[str, Any], timestamp: int | None = None) -> dict[str, Any]:
    """The envelope of ``data``, stamped just after its ``updated_at`` unless told."""
    if timestamp is None:
        timestamp = int(data.get("updated_at") or T0) + LAG_MS
    return envelope(event_type, data, timestamp)


def organization_for(object_id: str) -> dict[str, Any]:
    """The organization an object of id ``object_id`` belongs to (a fixed id derived from it)."""
    return organization_object(org_id=f"org_of_{object_id}", created_at=T0, updated_at=T0)


def user_for(object_id: str) -> dict[str, Any]:
    return user_object(user_id=f"user_of_{object_id}", created_at=T0, updated_at=T0)


def _user(object_id: str, at: int, variant: str) -> dict[str, Any]:
    return user_object(user_id=object_id, first_name=variant, created_at=T0, updated_at=at)


def _organization(object_id: str, at: int, variant: str) -> dict[str, Any]:
    return organization_object(
        org_id=object_id, name=variant, slug="acme", created_at=T0, updated_at=at
    )


def _membership(object_id: str, at: int, variant: str) -> dict[str, Any]:
    return membership_object(
        organization=organization_for(object_id),
        user=user_for(object_id),
        membership_id=object_id,
        role=f"org:{variant}",
        created_at=T0,
        updated_at=at,
    )


def _invitation(object_id: str, at: int, variant: str) -> dict[str, Any]:
    return invitation_object(
        organization=organization_for(object_id),
        email_address="invitee@example.com",
        invitation_id=object_id,
        role=f"org:{variant}",
        created_at=T0,
        updated_at=at,
    )


def _domain(object_id: str, at: int, variant: str) -> dict[str, Any]:
    return domain_object(
        organization=organization_for(object_id),
        domain_id=object_id,
        enrollment_mode=variant,
        created_at=T0,
        updated_at=at,
    )


def _role(object_id: str, at: int, variant: str) -> dict[str, Any]:
    return role_object(role_id=object_id, name=variant, created_at=T0, updated_at=at)


def _permission(object_id: str, at: int, variant: str) -> dict[str, Any]:
    return permission_object(permission_id=object_id, name=variant, created_at=T0, updated_at=at)


def _session(object_id: str, at: int, variant: str) -> dict[str, Any]:
    return session_object(
        user=user_for(object_id),
        session_id=object_id,
        client_id=f"client_{variant}",
        created_at=T0,
        updated_at=at,
    )


def _waitlist_entry(object_id: str, at: int, variant: str) -> dict[str, Any]:
    return waitlist_entry_object(
        entry_id=object_id, email_address=f"{variant}@example.com", created_at=T0, updated_at=at
    )


@dataclass(frozen=True)
class Case:
    """One synced kind, as the tests drive it."""

    kind: str
    table: Table
    prefix: str
    """Clerk's id prefix (``orgmem``): ids in the tests start with it."""
    build: Build
    """``(id, updated_at, variant) -> data``: the variant shows in :attr:`column`."""
    column: str
    shown: Callable[[str], Any]
    """The value :attr:`column` holds for a variant."""
    created: str
    updated: str
    """An event that upserts a later state of an existing object."""
    deleted: str | None = None

    def delete_data(self, data: dict[str, Any]) -> dict[str, Any]:
        """What Clerk sends to delete the object ``data``: a stub, except for a membership,
        whose ``.deleted`` carries the full object with ``updated_at`` not bumped."""
        if self.kind == "organization_membership":
            return data
        extra = {"slug": data["slug"]} if self.kind == "organization" else {}
        return deleted_object(data["object"], data["id"], **extra)


def _same(variant: str) -> str:
    return variant


CASES = [
    Case("user", t.users_table, "user", _user, "first_name", _same, "user.created", "user.updated",
         "user.deleted"),
    Case("organization", t.organizations_table, "org", _organization, "name", _same,
         "organization.created", "organization.updated", "organization.deleted"),
    Case("organization_membership", t.memberships_table, "orgmem", _membership, "role",
         lambda v: f"org:{v}", "organizationMembership.created", "organizationMembership.updated",
         "organizationMembership.deleted"),
    Case("organization_invitation", t.invitations_table, "orginv", _invitation, "role",
         lambda v: f"org:{v}", "organizationInvitation.created",
         "organizationInvitation.revoked"),
    Case("organization_domain", t.domains_table, "orgdmn", _domain, "enrollment_mode", _same,
         "organizationDomain.created", "organizationDomain.updated", "organizationDomain.deleted"),
    Case("role", t.roles_table, "role", _role, "name", _same, "role.created", "role.updated",
         "role.deleted"),
    Case("permission", t.permissions_table, "perm", _permission, "name", _same,
         "permission.created", "permission.updated", "permission.deleted"),
    Case("session", t.sessions_table, "sess", _session, "client_id", lambda v: f"client_{v}",
         "session.created", "session.pending"),
    Case("waitlist_entry", t.waitlist_table, "wle", _waitlist_entry, "email_address",
         lambda v: f"{v}@example.com", "waitlistEntry.created", "waitlistEntry.updated"),
]  # fmt: skip
"""Every kind clerk-sync keeps a table of (a test checks this is all of them)."""
DELETABLE = [c for c in CASES if c.deleted]


# --- reading back ----------------------------------------------------------------------------


def row(engine: Engine, table: Table, object_id: str) -> dict[str, Any] | None:
    with engine.connect() as conn:
        found = conn.execute(select(table).where(table.c.id == object_id)).first()
    return dict(found._mapping) if found else None


def rows(engine: Engine, table: Table, **where: Any) -> list[dict[str, Any]]:
    stmt = select(table)
    for column, value in where.items():
        stmt = stmt.where(table.c[column] == value)
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(stmt)]


def log_row(engine: Engine, svix_id: str) -> dict[str, Any]:
    with engine.connect() as conn:
        found = conn.execute(
            select(t.events_table).where(t.events_table.c.svix_id == svix_id)
        ).one()
    return dict(found._mapping)


def tombstones(engine: Engine) -> set[tuple[str, str, int]]:
    with engine.connect() as conn:
        return {(r.kind, r.id, r.deleted_at) for r in conn.execute(select(t.tombstones_table))}


ENTITY_TABLES = [c.table for c in CASES]


def snapshot(engine: Engine) -> dict[str, Any]:
    """Everything a history leaves behind but write times and log sequence numbers."""
    state: dict[str, Any] = {}
    for table in ENTITY_TABLES:
        state[table.name] = sorted(
            ({k: v for k, v in r.items() if k != "synced_at"} for r in rows(engine, table)),
            key=lambda r: r["id"],
        )
    state["tombstones"] = sorted(tombstones(engine))
    keep = ("svix_id", "type", "subject_id", "user_id", "delivery_count", "status", "error")
    state["events"] = sorted(
        ((*(r[k] for k in keep), r["payload"] is None) for r in rows(engine, t.events_table)),
        key=lambda r: str(r[0]),
    )
    return state
