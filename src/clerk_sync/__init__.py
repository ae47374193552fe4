"""clerk-sync: verified Clerk webhooks keep your own SQL database of users, organizations,
memberships and sessions in sync.

The public surface is what this module exports; everything else may change between versions.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy import MetaData, Table

    from .backfill import ensure_user
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
    from .orm import Base
    from .receiver import Delivery, Outcome, Receiver
    from .store import Naming, Tables, make_engine
    from .store.migrate import ensure_schema, upgrade
    from .verify import SignedHeaders, Verifier
    from .web import create_app

    metadata: MetaData
    """The default deployment's tables (no ``TABLE_PREFIX``): reference them from your own."""
    users_table: Table
    organizations_table: Table

__version__ = "0.1.0"

_HOMES = {
    "Base": "orm",
    "ChangeEvent": "hooks",
    "ClerkSyncError": "errors",
    "ConfigError": "errors",
    "Delivery": "receiver",
    "Hook": "hooks",
    "InTransactionHook": "hooks",
    "InvalidPayload": "errors",
    "Naming": "store",
    "Outcome": "receiver",
    "Receiver": "receiver",
    "RejectedDelivery": "errors",
    "SchemaError": "errors",
    "Settings": "config",
    "SignedHeaders": "verify",
    "Status": "events",
    "StoreUnavailable": "errors",
    "Tables": "store",
    "UserDeletedHook": "hooks",
    "Verifier": "verify",
    "after_commit": "hooks",
    "create_app": "web",
    "ensure_schema": "store.migrate",
    "ensure_user": "backfill",
    "handled_types": "entities",
    "in_transaction": "hooks",
    "make_engine": "store",
    "tables": "entities",
    "upgrade": "store.migrate",
}
"""Where each public name is defined: imported on first use, so that ``import clerk_sync``
(and every ``clerk-sync`` command, whose package this is) costs nothing it does not use —
the web layer loads Starlette, the receiver pydantic and SQLAlchemy, migrations Alembic."""
_TABLES = {"metadata": None, "users_table": "user", "organizations_table": "organization"}
"""The default deployment's tables (no ``TABLE_PREFIX``), for an application's own to
reference: its ``MetaData`` and two of its tables, by entity kind."""


def __getattr__(name: str) -> Any:
    """Import a public name from its module the first time it is asked for (then it is an
    ordinary attribute of the package)."""
    if name in _TABLES:
        from .entities import tables

        kind = _TABLES[name]
        value: Any = tables().metadata if kind is None else tables().entity(kind)
    elif name in _HOMES:
        value = getattr(importlib.import_module(f".{_HOMES[name]}", __name__), name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


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
