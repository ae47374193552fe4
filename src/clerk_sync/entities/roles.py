"""Roles of the instance (``role_…``): a key, a name and the permission keys it grants."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from . import columns as c
from .kind import ClerkObject, Kind
from .registry import register


class RoleData(ClerkObject):
    key: str | None = None
    name: str | None = None
    description: str | None = None
    permissions: list[Any] = Field(default_factory=list)
    is_creator_eligible: bool | None = None


def _columns() -> list[Any]:
    return [
        c.ident("key", index=True),
        c.text("name"),
        c.text("description"),
        c.json("permissions"),
        c.flag("is_creator_eligible"),
        c.ms("created_at"),
        c.ms("updated_at"),
    ]


ROLE = register(Kind(name="role", table="roles", events="role", model=RoleData, columns=_columns))
