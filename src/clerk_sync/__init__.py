"""clerk-sync: verified Clerk webhooks keep your own SQL database of users in sync.

The public surface is what this module exports; everything else may change between versions.
"""

from .config import Settings
from .errors import (
    ClerkSyncError,
    ConfigError,
    InvalidPayload,
    RejectedDelivery,
    SchemaError,
    StoreUnavailable,
)
from .receiver import Delivery, Outcome, Receiver
from .store import Base, ensure_schema, make_engine, metadata, upgrade, users_table
from .sync import UserDeletedHook, handled_types
from .verify import SignedHeaders, Verifier

__version__ = "0.1.0"

__all__ = [
    "Base",
    "ClerkSyncError",
    "ConfigError",
    "Delivery",
    "InvalidPayload",
    "Outcome",
    "Receiver",
    "RejectedDelivery",
    "SchemaError",
    "Settings",
    "SignedHeaders",
    "StoreUnavailable",
    "UserDeletedHook",
    "Verifier",
    "__version__",
    "ensure_schema",
    "handled_types",
    "make_engine",
    "metadata",
    "upgrade",
    "users_table",
]
