"""Organization domains (``orgdmn_…``; Clerk's examples also show ``orgdm_…``, so prefixes are
not checked). They go with their organization."""

from __future__ import annotations

from typing import Any

from . import columns as c
from .kind import ClerkObject, Kind
from .registry import register


class DomainData(ClerkObject):
    organization_id: str | None = None
    name: str | None = None
    enrollment_mode: str | None = None
    affiliation_email_address: str | None = None


def _columns() -> list[Any]:
    return [
        c.ident("organization_id", index=True),
        c.ident("name"),
        c.ident("enrollment_mode"),
        c.email("affiliation_email_address", index=False),
        c.ms("created_at"),
        c.ms("updated_at"),
    ]


DOMAIN = register(
    Kind(
        name="organization_domain",
        table="organization_domains",
        events="organizationDomain",
        model=DomainData,
        columns=_columns,
        parents={"organization_id": "organization"},
    )
)
