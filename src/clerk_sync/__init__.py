"""clerk-sync: verified Clerk webhooks keep your own SQL database of users in sync.

The public surface is what this module exports; everything else may change between versions.
"""

from typing import TYPE_CHECKING, Any

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
from .store import Base, make_engine, metadata, users_table
from .sync import UserDeletedHook, handled_types
from .verify import SignedHeaders, Verifier

if TYPE_CHECKING:
    from .store.migrate import ensure_schema, upgrade

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    """``ensure_schema`` and ``upgrade`` load Alembic: only when first asked for."""
    if name in ("ensure_schema", "upgrade"):
        from .store import migrate

        return getattr(migrate, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
