"""Clerk-shaped objects and events for tests, demos and benchmarks.

Shapes follow real deliveries: keys Clerk sends today, millisecond timestamps, prefixed ids of 27
base62 characters, the primary e-mail found by id (and not always first), and — like a captured
2025 delivery — e-mail verification objects without an ``object`` key. Objects of the other kinds
(organizations, memberships, invitations, domains, roles, permissions, sessions, waitlist entries)
follow Clerk's webhook OpenAPI spec and its examples. The object builders take keyword arguments
and make fresh ids for what they are not given; an object that embeds or names another (a
membership its organization and user, a session its user) takes that object whole, so the events
of one story agree.

A deleted object is a stub (:func:`deleted_object`), except for a membership: Clerk sends the full
membership for ``organizationMembership.deleted``, with ``updated_at`` *not* bumped.
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


_DAY_MS = 86_400_000
_IMAGE_URL = "https://img.clerk.com/eyJ0eXBlIjoiZGVmYXVsdCJ9"
_ROLES: dict[str, tuple[str, tuple[str, ...]]] = {
    "org:admin": (
        "Admin",
        (
            "org:sys_profile:manage",
            "org:sys_profile:delete",
            "org:sys_memberships:read",
            "org:sys_memberships:manage",
            "org:sys_domains:read",
            "org:sys_domains:manage",
        ),
    ),
    "org:member": ("Member", ("org:sys_memberships:read",)),
}
"""Clerk's default organization roles: name and system permissions."""


def _role(key: str) -> tuple[str, tuple[str, ...]]:
    """A role's name and permissions: ``org:billing`` is "Billing", with none we know of."""
    return _ROLES.get(key, (key.split(":")[-1].replace("_", " ").capitalize(), ()))


def _times(created_at: int | None, updated_at: int | None) -> tuple[int, int]:
    created = created_at if created_at is not None else now_ms()
    return created, updated_at if updated_at is not None else created


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
    created, updated = _times(created_at, updated_at)
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
        "image_url": _IMAGE_URL,
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


def organization_object(
    *,
    org_id: str | None = None,
    name: str = "Acme Corp",
    slug: str | None = None,
    created_by: str | None = None,
    members_count: int = 0,
    public_metadata: dict[str, Any] | None = None,
    created_at: int | None = None,
    updated_at: int | None = None,
) -> dict[str, Any]:
    """A Clerk Organization; ``slug`` defaults to the name in lower case, words joined by ``-``."""
    created, updated = _times(created_at, updated_at)
    return {
        "object": "organization",
        "id": org_id or new_id("org"),
        "name": name,
        "slug": slug or "-".join(name.lower().split()),
        "image_url": _IMAGE_URL,
        "has_image": False,
        "members_count": members_count,
        "missing_member_with_elevated_permissions": False,
        "pending_invitations_count": 0,
        "max_allowed_memberships": 5,
        "admin_delete_enabled": True,
        "public_metadata": public_metadata or {},
        "private_metadata": {},
        "created_by": created_by,
        "created_at": created,
        "updated_at": updated,
    }


def _identifier(user: dict[str, Any]) -> str | None:
    """A user's primary e-mail address (else phone number): how Clerk names them to others."""
    for key, field in (("email_addresses", "email_address"), ("phone_numbers", "phone_number")):
        primary = user[f"primary_{field}_id"]
        for item in user[key]:
            if item["id"] == primary:
                return str(item[field])
    return None


def _public_user_data(user: dict[str, Any], *, profile_image_url: bool) -> dict[str, Any]:
    data: dict[str, Any] = {
        "user_id": user["id"],
        "first_name": user["first_name"],
        "last_name": user["last_name"],
    }
    if profile_image_url:  # deprecated, still sent in a membership's public_user_data
        data["profile_image_url"] = user["profile_image_url"]
    data.update(image_url=user["image_url"], has_image=user["has_image"])
    data["identifier"] = _identifier(user)
    return data


def _public_organization_data(organization: dict[str, Any]) -> dict[str, Any]:
    keys = ("id", "name", "slug", "image_url", "has_image")
    return {key: organization[key] for key in keys}


def membership_object(
    *,
    organization: dict[str, Any],
    user: dict[str, Any],
    membership_id: str | None = None,
    role: str = "org:member",
    created_at: int | None = None,
    updated_at: int | None = None,
) -> dict[str, Any]:
    """``user``'s OrganizationMembership in ``organization``: the organization embedded whole,
    the user as its ``public_user_data``; ``role_name`` and ``permissions`` follow the role."""
    created, updated = _times(created_at, updated_at)
    role_name, permissions = _role(role)
    return {
        "object": "organization_membership",
        "id": membership_id or new_id("orgmem"),
        "role": role,
        "role_name": role_name,
        "permissions": list(permissions),
        "public_metadata": {},
        "private_metadata": {},
        "organization": organization,
        "public_user_data": _public_user_data(user, profile_image_url=True),
        "created_at": created,
        "updated_at": updated,
    }


def invitation_object(
    *,
    organization: dict[str, Any],
    email_address: str,
    invitation_id: str | None = None,
    role: str = "org:member",
    status: str = "pending",
    inviter: dict[str, Any] | None = None,
    user_id: str | None = None,
    created_at: int | None = None,
    updated_at: int | None = None,
) -> dict[str, Any]:
    """An OrganizationInvitation to ``email_address``, valid 7 days; ``status`` is ``pending``,
    ``accepted`` or ``revoked``. ``user_id`` (the user who accepted) is only in an accepted
    invitation; ``inviter`` is the full User who sent it (None: sent from the dashboard)."""
    created, updated = _times(created_at, updated_at)
    invitation: dict[str, Any] = {
        "object": "organization_invitation",
        "id": invitation_id or new_id("orginv"),
        "email_address": email_address,
        "role": role,
        "role_name": _role(role)[0],
        "organization_id": organization["id"],
        "inviter_id": inviter["id"] if inviter else None,
        "public_inviter_data": (
            _public_user_data(inviter, profile_image_url=False) if inviter else None
        ),
        "public_organization_data": _public_organization_data(organization),
        "status": status,
        "public_metadata": {},
        "private_metadata": {},
        "url": None,
    }
    if user_id is not None:
        invitation["user_id"] = user_id
    invitation.update(expires_at=created + 7 * _DAY_MS, created_at=created, updated_at=updated)
    return invitation


def domain_object(
    *,
    organization: dict[str, Any],
    name: str = "acme.example",
    domain_id: str | None = None,
    enrollment_mode: str = "automatic_invitation",
    verified: bool = False,
    created_at: int | None = None,
    updated_at: int | None = None,
) -> dict[str, Any]:
    """An OrganizationDomain of ``organization``; once ``verified``, by an e-mail code sent to
    an address at the domain (its affiliation verification)."""
    created, updated = _times(created_at, updated_at)
    verification = (
        {
            "status": "verified",
            "strategy": "email_code",
            "attempts": 1,
            "expire_at": None,
            "verified_at": None,
        }
        if verified
        else None
    )
    return {
        "object": "organization_domain",
        "id": domain_id or new_id("orgdmn"),
        "organization_id": organization["id"],
        "name": name,
        "enrollment_mode": enrollment_mode,
        "affiliation_email_address": f"admin@{name}" if verified else None,
        "affiliation_verification": verification,
        "ownership_verification": None,
        "verification": verification,  # Clerk's deprecated alias of affiliation_verification
        "total_pending_invitations": 0,
        "total_pending_suggestions": 0,
        "public_organization_data": _public_organization_data(organization),
        "created_at": created,
        "updated_at": updated,
    }


def permission_object(
    *,
    permission_id: str | None = None,
    key: str = "org:invoices:read",
    name: str = "Read invoices",
    description: str = "See the organization's invoices",
    permission_type: str = "custom",
    created_at: int | None = None,
    updated_at: int | None = None,
) -> dict[str, Any]:
    """A Permission (``type`` is ``custom``, or ``system`` for Clerk's ``org:sys_*`` ones)."""
    created, updated = _times(created_at, updated_at)
    return {
        "object": "permission",
        "id": permission_id or new_id("perm"),
        "name": name,
        "key": key,
        "description": description,
        "type": permission_type,
        "created_at": created,
        "updated_at": updated,
    }


def role_object(
    *,
    role_id: str | None = None,
    key: str = "org:billing",
    name: str = "Billing",
    description: str | None = "Manages the organization's invoices",
    permissions: list[dict[str, Any]] | None = None,
    is_creator_eligible: bool = False,
    created_at: int | None = None,
    updated_at: int | None = None,
) -> dict[str, Any]:
    """A custom organization Role with its Permission objects (none by default)."""
    created, updated = _times(created_at, updated_at)
    return {
        "object": "role",
        "id": role_id or new_id("role"),
        "name": name,
        "key": key,
        "description": description,
        "is_creator_eligible": is_creator_eligible,
        "permissions": permissions or [],
        "created_at": created,
        "updated_at": updated,
    }


def session_object(
    *,
    user: dict[str, Any],
    session_id: str | None = None,
    status: str = "active",
    client_id: str | None = None,
    created_at: int | None = None,
    updated_at: int | None = None,
) -> dict[str, Any]:
    """A Session of ``user`` (the full User object, embedded as in session events); ``status``
    is what the event says: ``active``, ``pending``, ``ended``, ``removed``, ``revoked``…"""
    created, updated = _times(created_at, updated_at)
    session_id = session_id or new_id("sess")
    return {
        "object": "session",
        "id": session_id,
        "user_id": user["id"],
        "user": user,
        "client_id": client_id or new_id("client"),
        "actor": None,
        "status": status,
        "last_active_organization_id": None,
        "last_active_at": updated,
        "latest_activity": {
            "object": "session_activity",
            "id": "activity_" + session_id.removeprefix("sess_"),
            "device_type": "desktop",
            "is_mobile": False,
            "browser_name": "Chrome",
            "browser_version": "128.0.0.0",
            "ip_address": "203.0.113.45",
            "city": "London",
            "country": "GB",
        },
        "expire_at": created + 7 * _DAY_MS,
        "abandon_at": created + 30 * _DAY_MS,
        "updated_at": updated,
        "created_at": created,
    }


def waitlist_entry_object(
    *,
    entry_id: str | None = None,
    email_address: str = "alan.turing@example.com",
    is_locked: bool = False,
    invited_at: int | None = None,
    created_at: int | None = None,
    updated_at: int | None = None,
) -> dict[str, Any]:
    """A WaitlistEntry, ``pending`` — or ``invited`` with its Invitation once ``invited_at``."""
    created, updated = _times(created_at, updated_at)
    invitation = None
    if invited_at is not None:
        invitation = {
            "object": "invitation",
            "id": new_id("inv"),
            "email_address": email_address,
            "status": "pending",
            "created_at": invited_at,
            "updated_at": invited_at,
        }
    return {
        "object": "waitlist_entry",
        "id": entry_id or new_id("wle"),
        "email_address": email_address,
        "status": "pending" if invitation is None else "invited",
        "is_locked": is_locked,
        "created_at": created,
        "updated_at": updated,
        "invitation": invitation,
    }


def deleted_object(kind_object: str, object_id: str, /, **extra: Any) -> dict[str, Any]:
    """The DeletedObject stub Clerk sends for most deletes: ``{object, id, deleted: true}`` and
    what ``extra`` adds (``slug`` for an organization, ``external_id`` for a user)."""
    return {"object": kind_object, "id": object_id, **extra, "deleted": True}


def envelope(event_type: str, data: dict[str, Any], timestamp: int | None = None) -> dict[str, Any]:
    """The event around ``data`` as Clerk POSTs it; ``timestamp`` in ms (default: now)."""
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


_envelope = envelope  # its name before it was public


def user_event(
    event_type: str, user: dict[str, Any], timestamp: int | None = None
) -> dict[str, Any]:
    """A ``user.created`` / ``user.updated`` envelope around ``user``."""
    return envelope(event_type, user, timestamp if timestamp is not None else user["updated_at"])


def deleted_user_event(
    user_id: str, *, timestamp: int | None = None, external_id: str | None = None
) -> dict[str, Any]:
    """A ``user.deleted`` envelope: Clerk sends only ``{deleted, id, object}``."""
    extra = {} if external_id is None else {"external_id": external_id}
    return envelope("user.deleted", deleted_object("user", user_id, **extra), timestamp)


def encode(event: dict[str, Any]) -> bytes:
    """Serialize once; sign and send these same bytes."""
    return orjson.dumps(event)
