"""Clerk-shaped events for tests, demos and benchmarks.

Shapes follow real deliveries: keys Clerk sends today, millisecond timestamps, prefixed ids of 27
base62 characters, the primary e-mail found by id (and not always first), and — like a captured
2025 delivery — e-mail verification objects without an ``object`` key.
"""

from __future__ import annotations

import secrets
import string
import time
from typing import Any

import orjson

# KSUID's alphabet is in ASCII order, so ids compare as strings the way their values do.
_BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase


_KSUID_EPOCH = 1_400_000_000


def new_id(prefix: str) -> str:
    """An id in Clerk's (and Svix's) format: ``<prefix>_`` and a KSUID, 27 base62 characters.

    A KSUID is 4 bytes of seconds since 2014-05-13 then 16 random bytes, so ids sort by creation
    time — as real ones do, which matters for how an index on them grows.
    """
    value = int.from_bytes(
        (int(time.time()) - _KSUID_EPOCH).to_bytes(4, "big") + secrets.token_bytes(16), "big"
    )
    digits = []
    for _ in range(27):
        value, rest = divmod(value, 62)
        digits.append(_BASE62[rest])
    return prefix + "_" + "".join(reversed(digits))


def now_ms() -> int:
    return int(time.time() * 1000)


def _verification(strategy: str, *, with_object: bool) -> dict[str, Any]:
    v: dict[str, Any] = {
        "attempts": 1,
        "expire_at": None,
        "status": "verified",
        "strategy": strategy,
    }
    if with_object:
        v["object"] = "verification_otp"
    return v


def user_object(
    *,
    user_id: str | None = None,
    email: str | None = "ada.lovelace@example.com",
    phone: str | None = None,
    first_name: str | None = "Ada",
    last_name: str | None = "Lovelace",
    username: str | None = None,
    created_at: int | None = None,
    updated_at: int | None = None,
    extra_emails: tuple[str, ...] = (),
    public_metadata: dict[str, Any] | None = None,
    unsafe_metadata: dict[str, Any] | None = None,
    verification_object: bool = False,
) -> dict[str, Any]:
    """A full Clerk User object. ``extra_emails`` come *before* the primary address."""
    created = created_at if created_at is not None else now_ms()
    updated = updated_at if updated_at is not None else created
    emails: list[dict[str, Any]] = []
    for address in (*extra_emails, *([email] if email else [])):
        emails.append(
            {
                "created_at": created,
                "email_address": address,
                "id": new_id("idn"),
                "linked_to": [],
                "matches_sso_connection": False,
                "object": "email_address",
                "reserved": False,
                "updated_at": updated,
                "verification": _verification("email_code", with_object=verification_object),
            }
        )
    phones: list[dict[str, Any]] = []
    if phone:
        phones.append(
            {
                "backup_codes": None,
                "created_at": created,
                "default_second_factor": False,
                "id": new_id("idn"),
                "linked_to": [],
                "object": "phone_number",
                "phone_number": phone,
                "reserved": False,
                "reserved_for_second_factor": False,
                "updated_at": updated,
                "verification": _verification("phone_code", with_object=verification_object),
            }
        )
    return {
        "backup_code_enabled": False,
        "banned": False,
        "bypass_client_trust": False,
        "create_organization_enabled": True,
        "create_organizations_limit": None,
        "created_at": created,
        "delete_self_enabled": True,
        "email_addresses": emails,
        "enterprise_accounts": [],
        "external_accounts": [],
        "external_id": None,
        "first_name": first_name,
        "has_image": False,
        "id": user_id or new_id("user"),
        "image_url": "https://img.clerk.com/eyJ0eXBlIjoiZGVmYXVsdCJ9",
        "last_active_at": updated,
        "last_name": last_name,
        "last_sign_in_at": None,
        "legal_accepted_at": None,
        "locale": None,
        "locked": False,
        "lockout_expires_in_seconds": None,
        "mfa_disabled_at": None,
        "mfa_enabled_at": None,
        "object": "user",
        "passkeys": [],
        "password_enabled": True,
        "password_last_updated_at": None,
        "phone_numbers": phones,
        "primary_email_address_id": emails[-1]["id"] if email else None,
        "primary_phone_number_id": phones[0]["id"] if phones else None,
        "primary_web3_wallet_id": None,
        "private_metadata": {},
        "profile_image_url": "https://www.gravatar.com/avatar?d=mp",
        "public_metadata": public_metadata or {},
        "requires_password_reset": False,
        "saml_accounts": [],
        "totp_enabled": False,
        "two_factor_enabled": False,
        "unsafe_metadata": unsafe_metadata or {},
        "updated_at": updated,
        "username": username,
        "verification_attempts_remaining": 100,
        "web3_wallets": [],
    }


def _envelope(event_type: str, data: dict[str, Any], timestamp: int | None) -> dict[str, Any]:
    return {
        "data": data,
        "event_attributes": {
            "http_request": {"client_ip": "203.0.113.45", "user_agent": "Mozilla/5.0"}
        },
        "instance_id": "ins_2vU3fQe7Hb1mNxK4pLr8TzWy0aS",
        "object": "event",
        "timestamp": timestamp if timestamp is not None else now_ms(),
        "type": event_type,
    }


def user_event(
    event_type: str, user: dict[str, Any], timestamp: int | None = None
) -> dict[str, Any]:
    """A ``user.created`` / ``user.updated`` envelope around ``user``."""
    return _envelope(event_type, user, timestamp if timestamp is not None else user["updated_at"])


def deleted_user_event(
    user_id: str, *, timestamp: int | None = None, external_id: str | None = None
) -> dict[str, Any]:
    """A ``user.deleted`` envelope: Clerk sends only ``{deleted, id, object}``."""
    data: dict[str, Any] = {"deleted": True, "id": user_id, "object": "user"}
    if external_id is not None:
        data["external_id"] = external_id
    return _envelope("user.deleted", data, timestamp)


def encode(event: dict[str, Any]) -> bytes:
    """Serialize once; sign and send these same bytes."""
    return orjson.dumps(event)
