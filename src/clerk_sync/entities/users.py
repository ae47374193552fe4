"""Users: ``user.created`` / ``user.updated`` upsert, ``user.deleted`` deletes.

The one kind with personal data: deleting a user removes its memberships, sessions and accepted
invitations (they name it), and erases every stored body that names it (see
:attr:`~clerk_sync.entities.kind.Kind.personal`). A ``user.updated`` for an unknown user
creates it. Only ``id`` and ``updated_at`` are required: Clerk adds fields over time and real
deliveries omit some (a 2025 capture has verification objects without ``object``).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ..events.envelope import Millis
from . import columns as c
from .kind import ClerkObject, Kind
from .registry import register


class _Tolerant(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class EmailAddress(_Tolerant):
    id: str | None = None
    email_address: str | None = None


class PhoneNumber(_Tolerant):
    id: str | None = None
    phone_number: str | None = None


class UserData(ClerkObject):
    """``data`` of ``user.created`` / ``user.updated`` (and ``data.user`` of session events)."""

    updated_at: Millis
    external_id: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    username: str | None = None
    image_url: str | None = None
    primary_email_address_id: str | None = None
    primary_phone_number_id: str | None = None
    email_addresses: list[EmailAddress] = Field(default_factory=list)
    phone_numbers: list[PhoneNumber] = Field(default_factory=list)
    public_metadata: dict[str, Any] | None = None
    unsafe_metadata: dict[str, Any] | None = None
    last_sign_in_at: Millis | None = None
    banned: bool = False
    locked: bool = False

    @property
    def primary_email(self) -> str | None:
        """The primary address, found by id: it is not always ``email_addresses[0]``."""
        return _primary(self.primary_email_address_id, self.email_addresses, "email_address")

    @property
    def primary_phone(self) -> str | None:
        return _primary(self.primary_phone_number_id, self.phone_numbers, "phone_number")


def _primary(wanted: str | None, items: list[Any], attr: str) -> str | None:
    if wanted is None:
        return None
    for item in items:
        if item.id == wanted:
            value: str | None = getattr(item, attr)
            return value
    return None


def _columns() -> list[Any]:
    from sqlalchemy import BigInteger, Boolean, Column, String

    return [
        c.email("email"),
        Column("phone_number", String(64)),
        c.ident("external_id", index=True),
        c.text("first_name"),
        c.text("last_name"),
        c.ident("username", index=True),
        c.text("image_url"),
        c.json("public_metadata"),
        c.json("unsafe_metadata"),
        c.ms("created_at"),
        Column("updated_at", BigInteger, nullable=False),
        c.ms("last_sign_in_at"),
        Column("banned", Boolean, nullable=False),
        Column("locked", Boolean, nullable=False),
    ]


def _row(user: UserData) -> dict[str, Any]:
    return {
        "email": user.primary_email,
        "phone_number": user.primary_phone,
        "external_id": user.external_id,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "username": user.username,
        "image_url": user.image_url,
        "public_metadata": user.public_metadata or {},
        "unsafe_metadata": user.unsafe_metadata or {},
        "created_at": user.created_at,
        "updated_at": user.updated_at,
        "last_sign_in_at": user.last_sign_in_at,
        "banned": user.banned,
        "locked": user.locked,
    }


USER = register(
    Kind(
        name="user",
        table="users",
        events="user",
        model=UserData,
        columns=_columns,
        row=_row,
        personal=True,
        searched=("id", "email", "first_name", "last_name", "username"),
        fields=(
            "id",
            "email",
            "phone_number",
            "external_id",
            "first_name",
            "last_name",
            "username",
            "image_url",
            "public_metadata",
            "unsafe_metadata",
            "created_at",
            "updated_at",
            "last_sign_in_at",
            "banned",
            "locked",
            "synced_at",
        ),
    )
)
