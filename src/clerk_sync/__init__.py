"""clerk-sync: verified Clerk webhooks keep your own SQL database of users, organizations,
memberships and sessions in sync.

The public surface is what this module exports; everything else may change between versions.
"""

from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import DeclarativeBase

from .config import Settings
from .entities import handled_types, tables
from .errors import (
    ClerkSyncError,
    ConfigError,
    InvalidPayload,
    RejectedDelivery,
    SchemaError,
    StoreUnavailable,
)
from .events import Status
from .hooks import (
    ChangeEvent,
    Hook,
    InTransactionHook,
    UserDeletedHook,
    after_commit,
    in_transaction,
)
from .receiver import Delivery, Outcome, Receiver
from .store import Naming, Tables, make_engine
from .verify import SignedHeaders, Verifier

metadata = tables().metadata
"""The default deployment's tables (no ``TABLE_PREFIX``): reference them from your own."""
users_table = tables().entity("user")
organizations_table = tables().entity("organization")


class Base(DeclarativeBase):
    """A declarative base whose metadata holds clerk-sync's tables, so an application's ORM
    models can name ``users.id`` / ``organizations.id`` in a ``ForeignKey``."""

    metadata = metadata


if TYPE_CHECKING:
    from .backfill import ensure_user
    from .store.migrate import ensure_schema, upgrade
    from .web import create_app

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    """``ensure_schema`` and ``upgrade`` load Alembic, ``create_app`` Starlette, ``ensure_user``
    the Backend API client: only when first asked for (and the core never imports the web
    layer)."""
    if name in ("ensure_schema", "upgrade"):
        from .store import migrate

        return getattr(migrate, name)
    if name == "create_app":
        from . import web

        return web.create_app
    if name == "ensure_user":
        from . import backfill

        return backfill.ensure_user
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "Base",
    "ChangeEvent",
    "ClerkSyncError",
    "ConfigError",
    "Delivery",
    "Hook",
    "InTransactionHook",
    "InvalidPayload",
    "Naming",
    "Outcome",
    "Receiver",
    "RejectedDelivery",
    "SchemaError",
    "Settings",
    "SignedHeaders",
    "Status",
    "StoreUnavailable",
    "Tables",
    "UserDeletedHook",
    "Verifier",
    "__version__",
    "after_commit",
    "create_app",
    "ensure_schema",
    "ensure_user",
    "handled_types",
    "in_transaction",
    "make_engine",
    "metadata",
    "organizations_table",
    "tables",
    "upgrade",
    "users_table",
]
