"""Table names inside migration scripts: the deployment's ``TABLE_PREFIX`` and schema.

``migrate.py`` hands Alembic the :class:`~clerk_sync.store.schema.Naming` in its config
attributes; each script names tables through :func:`t` and passes :func:`schema`, so one
history serves every naming.
"""

from __future__ import annotations

from alembic import context

from clerk_sync.store.schema import Naming


def naming() -> Naming:
    found = context.config.attributes.get("naming")
    return found if isinstance(found, Naming) else Naming()


def t(name: str) -> str:
    """A table's name for this deployment."""
    return naming().table(name)


def schema() -> str | None:
    return naming().schema
