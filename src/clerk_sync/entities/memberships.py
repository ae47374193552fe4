"""Organization memberships: who belongs to which organization, with which role.

``organizationMembership.deleted`` carries the *full* membership with an ``updated_at`` that is
not bumped, so comparing versions would let a late ``.updated`` win: the delete is a delete,
it leaves a tombstone, and a later-delivered ``.created`` / ``.updated`` is ``stale``. A
membership may arrive before its organization or user: it is stored, and goes when either is
deleted. The organization embedded in the payload refreshes ``organizations``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from . import columns as c
from .kind import ClerkObject, Embedded, Kind
from .registry import register


class _Ref(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    id: str | None = None
    user_id: str | None = None


class MembershipData(ClerkObject):
    role: str | None = None
    role_name: str | None = None
    permissions: list[str] = Field(default_factory=list)
    public_metadata: dict[str, Any] = Field(default_factory=dict)
    organization: _Ref | None = None
    public_user_data: _Ref | None = None


def _columns() -> list[Any]:
    return [
        c.ident("organization_id", index=True),
        c.ident("user_id", index=True),
        c.ident("role"),
        c.text("role_name"),
        c.json("permissions"),
        c.json("public_metadata"),
        c.ms("created_at"),
        c.ms("updated_at"),
    ]


def _row(m: MembershipData) -> dict[str, Any]:
    return {
        "organization_id": m.organization.id if m.organization else None,
        "user_id": m.public_user_data.user_id if m.public_user_data else None,
        "role": m.role,
        "role_name": m.role_name,
        "permissions": m.permissions,
        "public_metadata": m.public_metadata,
        "created_at": m.created_at,
        "updated_at": m.updated_at,
    }


def _embedded(data: dict[str, Any]) -> Iterable[Embedded]:
    organization = data.get("organization")
    if isinstance(organization, dict):
        yield ("organization", organization)


MEMBERSHIP = register(
    Kind(
        name="organization_membership",
        table="organization_memberships",
        events="organizationMembership",
        model=MembershipData,
        columns=_columns,
        row=_row,
        parents={"organization_id": "organization", "user_id": "user"},
        embedded=_embedded,
        fields=(
            "id",
            "organization_id",
            "user_id",
            "role",
            "role_name",
            "permissions",
            "public_metadata",
            "created_at",
            "updated_at",
            "synced_at",
        ),
    )
)
