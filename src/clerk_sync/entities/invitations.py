"""Organization invitations: ``.created`` → ``.accepted`` (sets ``user_id``) or ``.revoked``.

There is no ``.deleted`` (nor ``.expired``) event: an invitation's status is kept, set by the
event that reports it. It goes with its organization, and an accepted one with its user (it
holds that user's e-mail address).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from ..events.envelope import Millis
from . import columns as c
from .kind import ClerkObject, Kind
from .registry import register


class InvitationData(ClerkObject):
    organization_id: str | None = None
    email_address: str | None = None
    role: str | None = None
    status: str | None = "pending"
    user_id: str | None = None
    inviter_id: str | None = None
    public_metadata: dict[str, Any] = Field(default_factory=dict)
    expires_at: Millis | None = None


def _columns() -> list[Any]:
    return [
        c.ident("organization_id", index=True),
        c.email("email_address"),
        c.ident("role"),
        c.status(),
        c.ident("user_id", index=True),
        c.ident("inviter_id"),
        c.json("public_metadata"),
        c.ms("expires_at"),
        c.ms("created_at"),
        c.ms("updated_at"),
    ]


INVITATION = register(
    Kind(
        name="organization_invitation",
        table="organization_invitations",
        events="organizationInvitation",
        model=InvitationData,
        columns=_columns,
        upserts=("created", "accepted", "revoked"),
        deletes=(),
        implied_status={"accepted": "accepted", "revoked": "revoked"},
        parents={"organization_id": "organization", "user_id": "user"},
        scrubs={"inviter_id": ("user", "public_inviter_data")},
        fields=(
            "id",
            "organization_id",
            "email_address",
            "role",
            "status",
            "user_id",
            "inviter_id",
            "public_metadata",
            "expires_at",
            "created_at",
            "updated_at",
            "synced_at",
        ),
    )
)
