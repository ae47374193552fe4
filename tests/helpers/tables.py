"""clerk-sync's tables in the default deployment (no ``TABLE_PREFIX``), for tests to read."""

from __future__ import annotations

from clerk_sync import tables
from clerk_sync.events import STATUSES as EVENT_STATUSES

_T = tables()
metadata = _T.metadata
events_table = _T.events
tombstones_table = _T.tombstones
users_table = _T.entity("user")
organizations_table = _T.entity("organization")
memberships_table = _T.entity("organization_membership")
invitations_table = _T.entity("organization_invitation")
domains_table = _T.entity("organization_domain")
roles_table = _T.entity("role")
permissions_table = _T.entity("permission")
sessions_table = _T.entity("session")
waitlist_table = _T.entity("waitlist_entry")

__all__ = [
    "EVENT_STATUSES",
    "domains_table",
    "events_table",
    "invitations_table",
    "memberships_table",
    "metadata",
    "organizations_table",
    "permissions_table",
    "roles_table",
    "sessions_table",
    "tombstones_table",
    "users_table",
    "waitlist_table",
]
