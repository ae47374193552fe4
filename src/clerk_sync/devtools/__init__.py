"""Tools for trying clerk-sync without Clerk: Clerk-shaped fixtures and a Svix signer."""

from .fixtures import deleted_user_event, encode, new_id, user_event, user_object
from .signing import new_msg_id, sign_headers

__all__ = [
    "deleted_user_event",
    "encode",
    "new_id",
    "new_msg_id",
    "sign_headers",
    "user_event",
    "user_object",
]
