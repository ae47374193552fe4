"""Permissions of the instance (``perm_…``): a key such as ``org:invoices:read`` and a name."""

from __future__ import annotations

from typing import Any

from . import columns as c
from .kind import ClerkObject, Kind
from .registry import register


class PermissionData(ClerkObject):
    key: str | None = None
    name: str | None = None
    description: str | None = None
    type: str | None = None


def _columns() -> list[Any]:
    return [
        c.ident("key", index=True),
        c.text("name"),
        c.text("description"),
        c.ident("type"),
        c.ms("created_at"),
        c.ms("updated_at"),
    ]


PERMISSION = register(
    Kind(
        name="permission",
        table="permissions",
        events="permission",
        model=PermissionData,
        columns=_columns,
    )
)
