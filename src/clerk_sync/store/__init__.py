"""Persistence: table naming, engines, migrations, and the statements that read and write.

The migration functions are imported on first use, and load Alembic (about 12 MB and 0.2 s) only
when there is something to migrate or to explain: the writer process and the commands that meet
a current schema never pay for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .engine import make_engine
from .schema import Naming, Tables

if TYPE_CHECKING:
    from .migrate import ensure_schema, schema_state, upgrade

_MIGRATE = ("ensure_schema", "schema_state", "upgrade")


def __getattr__(name: str) -> Any:
    if name in _MIGRATE:
        from . import migrate

        return getattr(migrate, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["Naming", "Tables", "ensure_schema", "make_engine", "schema_state", "upgrade"]
