"""Sync rules: per-event-type decoders and the actions they produce.

Importing this package registers every built-in handler.
"""

from . import users as _users  # noqa: F401  (registers the user handlers)
from .registry import Action, Applied, ApplyContext, UserDeletedHook, handled_types, handles

__all__ = ["Action", "Applied", "ApplyContext", "UserDeletedHook", "handled_types", "handles"]
