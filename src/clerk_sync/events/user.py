"""Clerk's User object, decoded tolerantly: only the fields we store are typed.

Clerk adds fields over time and real deliveries omit some (a 2025 capture has verification
objects without ``object``), so unknown keys are ignored, optional ones default, and nested
objects we do not query (verifications, external accounts, …) are not modelled at all: the full
object is stored beside the typed columns. Required here is only what ordering and identity need:
``id`` and ``updated_at``.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import InvalidPayload
from .envelope import describe


class _Tolerant(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class EmailAddress(_Tolerant):
    id: str | None = None
    email_address: str | None = None


class PhoneNumber(_Tolerant):
    id: str | None = None
    phone_number: str | None = None


class UserData(_Tolerant):
    """``data`` of ``user.created`` / ``user.updated`` (and ``data.user`` of session events)."""

    id: str = Field(min_length=1)
    updated_at: int
    created_at: int | None = None
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
    last_sign_in_at: int | None = None
    banned: bool = False
    locked: bool = False

    @property
    def primary_email(self) -> str | None:
        """The primary address, found by id: it is not always ``email_addresses[0]``."""
        return _primary(self.primary_email_address_id, self.email_addresses, "email_address")

    @property
    def primary_phone(self) -> str | None:
        return _primary(self.primary_phone_number_id, self.phone_numbers, "phone_number")


class DeletedObject(_Tolerant):
    """``data`` of ``*.deleted``: ``{deleted, id, object}`` and sometimes ``external_id``."""

    id: str = Field(min_length=1)
    deleted: bool = True
    object: str | None = None
    external_id: str | None = None


def _primary(wanted: str | None, items: list[Any], attr: str) -> str | None:
    if wanted is None:
        return None
    for item in items:
        if item.id == wanted:
            value: str | None = getattr(item, attr)
            return value
    return None


def decode_user(data: dict[str, Any]) -> UserData:
    try:
        return UserData.model_validate(data)
    except ValidationError as exc:
        raise InvalidPayload(describe(exc, prefix="data")) from None


def decode_deleted(data: dict[str, Any]) -> DeletedObject:
    try:
        return DeletedObject.model_validate(data)
    except ValidationError as exc:
        raise InvalidPayload(describe(exc, prefix="data")) from None
