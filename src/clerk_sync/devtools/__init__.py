"""Tools for trying clerk-sync without Clerk: Clerk-shaped fixtures, a Svix signer, and what
``clerk-sync dev``, ``trigger``, ``send``, ``doctor`` and ``verify`` are built from."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .catalog import Fixture, Subject, all_fixtures, fixture, fixture_for, fixture_types
from .fixtures import (
    deleted_object,
    deleted_user_event,
    domain_object,
    encode,
    envelope,
    invitation_object,
    membership_object,
    new_id,
    organization_object,
    permission_object,
    role_object,
    session_object,
    user_event,
    user_object,
    waitlist_entry_object,
)
from .signing import new_msg_id, random_secret, sign_headers

if TYPE_CHECKING:
    from .keys import generate_dev_secret, is_dev_secret

_KEYS = ("generate_dev_secret", "is_dev_secret")


def __getattr__(name: str) -> Any:
    """The development secret's names load the settings (pydantic): only when first asked
    for, so that ``clerk-sync --help`` (which lists the scenarios) costs nothing."""
    if name in _KEYS:
        from . import keys

        return getattr(keys, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "Fixture",
    "Subject",
    "all_fixtures",
    "deleted_object",
    "deleted_user_event",
    "domain_object",
    "encode",
    "envelope",
    "fixture",
    "fixture_for",
    "fixture_types",
    "generate_dev_secret",
    "invitation_object",
    "is_dev_secret",
    "membership_object",
    "new_id",
    "new_msg_id",
    "organization_object",
    "permission_object",
    "random_secret",
    "role_object",
    "session_object",
    "sign_headers",
    "user_event",
    "user_object",
    "waitlist_entry_object",
]
