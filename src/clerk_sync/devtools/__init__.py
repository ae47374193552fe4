"""Tools for trying clerk-sync without Clerk: Clerk-shaped fixtures, a Svix signer, and what
``clerk-sync dev``, ``trigger``, ``send``, ``doctor`` and ``verify`` are built from."""

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
from .keys import generate_dev_secret, is_dev_secret
from .signing import new_msg_id, random_secret, sign_headers

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
