"""Typed Clerk events: the envelope first, then ``data`` as the model for its type."""

from .envelope import Envelope, decode_envelope
from .user import DeletedObject, UserData, decode_deleted, decode_user

__all__ = [
    "DeletedObject",
    "Envelope",
    "UserData",
    "decode_deleted",
    "decode_envelope",
    "decode_user",
]
