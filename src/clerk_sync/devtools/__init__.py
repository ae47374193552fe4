"""Tools for trying clerk-sync without Clerk: Clerk-shaped fixtures, a Svix signer, and what
``clerk-sync dev``, ``trigger``, ``send``, ``doctor`` and ``verify`` are built from."""

from .catalog import Fixture, Subject, all_fixtures, fixture, fixture_for, fixture_types
from .fixtures import deleted_user_event, encode, new_id, user_event, user_object
from .keys import generate_dev_secret, is_dev_secret
from .signing import new_msg_id, random_secret, sign_headers

__all__ = [
    "Fixture",
    "Subject",
    "all_fixtures",
    "deleted_user_event",
    "encode",
    "fixture",
    "fixture_for",
    "fixture_types",
    "generate_dev_secret",
    "is_dev_secret",
    "new_id",
    "new_msg_id",
    "random_secret",
    "sign_headers",
    "user_event",
    "user_object",
]
