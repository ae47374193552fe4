"""Organizations: ``organization.created`` / ``.updated`` upsert, ``.deleted`` deletes.

``organization.deleted`` is a stub (``{object, id, slug, deleted}``) with no timestamps: the
delete wins, and takes the organization's memberships, invitations and domains with it (their
kinds name it as a parent). Membership events embed the full organization; that copy refreshes
this table under the same version guard.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from ..events.envelope import Millis
from . import columns as c
from .kind import ClerkObject, Kind
from .registry import register


class OrganizationData(ClerkObject):
    name: str | None = None
    slug: str | None = None
    image_url: str | None = None
    members_count: Millis | None = None
    public_metadata: dict[str, Any] = Field(default_factory=dict)
    created_by: str | None = None


def _columns() -> list[Any]:
    return [
        c.text("name"),
        c.ident("slug", index=True),
        c.text("image_url"),
        c.count("members_count"),
        c.json("public_metadata"),
        c.ident("created_by"),
        c.ms("created_at"),
        c.ms("updated_at"),
    ]


ORGANIZATION = register(
    Kind(
        name="organization",
        table="organizations",
        events="organization",
        model=OrganizationData,
        columns=_columns,
        searched=("id", "name", "slug"),
        fields=(
            "id",
            "name",
            "slug",
            "image_url",
            "members_count",
            "public_metadata",
            "created_by",
            "created_at",
            "updated_at",
            "synced_at",
        ),
    )
)
