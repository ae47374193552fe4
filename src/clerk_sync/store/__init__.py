"""Persistence: tables, engines, migrations, and the statements that read and write them."""

from .engine import make_engine
from .migrate import ensure_schema, schema_state, upgrade
from .schema import Base, metadata, users_table

__all__ = [
    "Base",
    "ensure_schema",
    "make_engine",
    "metadata",
    "schema_state",
    "upgrade",
    "users_table",
]
