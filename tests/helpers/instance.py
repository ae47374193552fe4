"""A small Clerk instance as the events that build it, for the read API and CLI tests.

Three users (and one whose id holds a ``/``), three organizations (``initech`` has nobody in
it), memberships, a pending and an accepted invitation, and sessions — every object built by
the ``clerk_sync.devtools`` builders, so the events of the story agree with each other. Times
are fixed milliseconds, so a test can compare what it reads with what was sent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from clerk_sync.devtools import (
    envelope,
    invitation_object,
    membership_object,
    new_id,
    organization_object,
    session_object,
    user_object,
)

T0 = 1_744_400_000_000
"""When the instance's first object was created (ms)."""
ODD_USER_ID = "user/odd%id"
"""An id with a ``/`` (and a ``%``) in it: one path segment once URL-encoded."""
ODD_ORG_ID = "org/odd"
ODD_SESSION_ID = "sess/odd"


def event(event_type: str, data: dict[str, Any]) -> dict[str, Any]:
    """The envelope Clerk sends for ``data``, stamped with the object's ``updated_at``."""
    return envelope(event_type, data, data.get("updated_at"))


@dataclass
class Instance:
    """The objects by a short name (``alice``, ``acme``, ``alice@acme``, ``alice-1``…)."""

    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    organizations: dict[str, dict[str, Any]] = field(default_factory=dict)
    memberships: dict[str, dict[str, Any]] = field(default_factory=dict)
    invitations: dict[str, dict[str, Any]] = field(default_factory=dict)
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)

    def events(self) -> list[dict[str, Any]]:
        """Every ``*.created`` (and the invitation's ``.accepted``), parents first."""
        out = [event("user.created", u) for u in self.users.values()]
        out += [event("organization.created", o) for o in self.organizations.values()]
        out += [event("organizationMembership.created", m) for m in self.memberships.values()]
        for invitation in self.invitations.values():
            action = "accepted" if invitation["status"] == "accepted" else "created"
            out.append(event(f"organizationInvitation.{action}", invitation))
        out += [event("session.created", s) for s in self.sessions.values()]
        return out

    def memberships_of(self, *, org: str | None = None, user: str | None = None) -> list[str]:
        """The ids of the memberships of an organization or of a user (by short name), sorted."""
        found = []
        for m in self.memberships.values():
            if org is not None and m["organization"]["id"] != self.organizations[org]["id"]:
                continue
            if user is not None and m["public_user_data"]["user_id"] != self.users[user]["id"]:
                continue
            found.append(m["id"])
        return sorted(found)

    def sessions_of(self, user: str) -> list[str]:
        uid = self.users[user]["id"]
        return sorted(s["id"] for s in self.sessions.values() if s["user_id"] == uid)


def build_instance(t0: int = T0) -> Instance:
    """A fresh instance (new ids each call, but for the odd ones)."""
    i = Instance()

    def at(step: int) -> dict[str, int]:
        return {"created_at": t0 + step * 1_000, "updated_at": t0 + step * 1_000 + 7}

    i.users["alice"] = user_object(
        email="alice@example.com",
        first_name="Alice",
        last_name="Liddell",
        username="alice_l",
        **at(0),
    )
    i.users["bob"] = user_object(
        email="bob@example.com", first_name="Bob", last_name="Builder", username="bobb", **at(1)
    )
    i.users["carol"] = user_object(
        email="carol@example.org", first_name="Carol", last_name="Danvers", **at(2)
    )
    i.users["odd"] = user_object(
        user_id=ODD_USER_ID, email="odd@example.net", first_name="Odd", last_name="Id", **at(3)
    )
    alice, bob, odd = i.users["alice"], i.users["bob"], i.users["odd"]
    i.organizations["acme"] = organization_object(
        name="Acme Corp",
        created_by=alice["id"],
        members_count=3,
        public_metadata={"tier": "gold"},
        **at(4),
    )
    i.organizations["globex"] = organization_object(
        name="Globex", created_by=alice["id"], members_count=1, **at(5)
    )
    i.organizations["initech"] = organization_object(name="Initech", **at(6))
    i.organizations["odd"] = organization_object(org_id=ODD_ORG_ID, name="Odd Org", **at(7))
    acme, globex = i.organizations["acme"], i.organizations["globex"]
    i.memberships["alice@acme"] = membership_object(
        organization=acme, user=alice, role="org:admin", **at(8)
    )
    i.memberships["bob@acme"] = membership_object(organization=acme, user=bob, **at(9))
    i.memberships["odd@acme"] = membership_object(organization=acme, user=odd, **at(10))
    i.memberships["alice@globex"] = membership_object(organization=globex, user=alice, **at(11))
    i.memberships["bob@odd"] = membership_object(
        organization=i.organizations["odd"], user=bob, **at(12)
    )
    i.invitations["dave@acme"] = invitation_object(
        organization=acme, email_address="dave@example.com", inviter=alice, **at(13)
    )
    i.invitations["bob@globex"] = invitation_object(
        organization=globex,
        email_address="bob@example.com",
        status="accepted",
        user_id=bob["id"],
        role="org:admin",
        **at(14),
    )
    i.sessions["alice-1"] = session_object(user=alice, **at(15))
    i.sessions["alice-2"] = session_object(user=alice, client_id=new_id("client"), **at(16))
    i.sessions["bob-1"] = session_object(user=bob, **at(17))
    i.sessions["odd-1"] = session_object(user=odd, session_id=ODD_SESSION_ID, **at(18))
    return i


ORGANIZATION_KEYS = {
    "id",
    "name",
    "slug",
    "image_url",
    "members_count",
    "public_metadata",
    "created_by",
    "created_at",
    "updated_at",
}
MEMBERSHIP_KEYS = {
    "id",
    "organization_id",
    "user_id",
    "role",
    "permissions",
    "public_metadata",
    "created_at",
    "updated_at",
}
INVITATION_KEYS = {
    "id",
    "organization_id",
    "email_address",
    "role",
    "status",
    "user_id",
    "created_at",
    "updated_at",
}
SESSION_KEYS = {
    "id",
    "user_id",
    "client_id",
    "status",
    "last_active_at",
    "expire_at",
    "created_at",
    "updated_at",
}
"""The keys the issue promises in each kind's JSON (read API and ``--json``)."""


def expected_organization(o: dict[str, Any]) -> dict[str, Any]:
    """What the API must show of organization ``o``: its values as sent."""
    return {k: o[k] for k in ORGANIZATION_KEYS}


def expected_membership(m: dict[str, Any]) -> dict[str, Any]:
    flat = {k: m[k] for k in MEMBERSHIP_KEYS - {"organization_id", "user_id"}}
    flat["organization_id"] = m["organization"]["id"]
    flat["user_id"] = m["public_user_data"]["user_id"]
    return flat


def expected_invitation(v: dict[str, Any]) -> dict[str, Any]:
    return {k: v.get(k) for k in INVITATION_KEYS}


def expected_session(s: dict[str, Any]) -> dict[str, Any]:
    return {k: s[k] for k in SESSION_KEYS}


def shown(row: dict[str, Any], keys: set[str]) -> dict[str, Any]:
    """``row`` cut to ``keys`` (each must be there)."""
    missing = keys - set(row)
    assert not missing, f"missing keys {sorted(missing)} in {sorted(row)}"
    return {k: row[k] for k in keys}
