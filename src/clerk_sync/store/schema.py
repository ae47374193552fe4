"""The tables clerk-sync owns, named for one deployment. Alembic migrations (``migrations/``)
create them; a test keeps the two in agreement.

Two tables know no entity kind: ``events`` (the delivery log) and ``tombstones``. Every synced
kind adds one table of the same shape (:func:`entity_table`): its Clerk id, the columns its
module queries, the full latest object as JSON (``data``), the ordering key (``sync_version``)
and when clerk-sync wrote it (``synced_at``). The kinds themselves are declared in
:mod:`clerk_sync.entities`, which builds the whole set with :func:`build_tables`.

Names fit an existing application: every table gets ``TABLE_PREFIX`` and, on PostgreSQL, lives
in ``DATABASE_SCHEMA`` (:class:`Naming`). Applications reference ``users.id`` or
``organizations.id`` with ``ON DELETE CASCADE`` (see the README's "Associated data"): a delete
then removes their rows in the same transaction.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Column,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

from ..errors import ConfigError
from ..events import OUTBOX_STATUSES, SOURCES, STATUSES, Source

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_name)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
JsonType = JSON().with_variant(JSONB(), "postgresql")
EVENT_STATUSES = STATUSES
VERSION_TABLE = "clerk_sync_alembic_version"
_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,15}")
"""At most 16 characters: the longest index name, ``ix_`` + prefix +
``organization_invitations_organization_id``, stays within PostgreSQL's 63."""
_SCHEMA = re.compile(r"[a-z_][a-z0-9_]{0,62}")

ColumnsFactory = Callable[[], Iterable[Column[Any]]]
"""Fresh ``Column`` objects for one kind's queried columns (a column belongs to one table)."""


@dataclass(frozen=True, slots=True)
class Naming:
    """Where clerk-sync's tables live: ``TABLE_PREFIX`` and (PostgreSQL) ``DATABASE_SCHEMA``."""

    prefix: str = ""
    schema: str | None = None

    def __post_init__(self) -> None:
        if self.prefix and not _IDENTIFIER.fullmatch(self.prefix):
            raise ConfigError(
                f"TABLE_PREFIX {self.prefix!r} must be lowercase letters, digits and _ "
                "(at most 16, not starting with a digit), e.g. clerk_."
            )
        if self.schema is not None and not _SCHEMA.fullmatch(self.schema):
            raise ConfigError(
                f"DATABASE_SCHEMA {self.schema!r} must be lowercase letters, digits and _ "
                "(at most 63, not starting with a digit)."
            )

    def table(self, name: str) -> str:
        return self.prefix + name

    @property
    def version_table(self) -> str:
        """Alembic's version table: prefixed too, so two deployments can share a database."""
        return self.prefix + VERSION_TABLE

    def describe(self) -> str:
        where = f" in schema {self.schema!r}" if self.schema else ""
        return f"TABLE_PREFIX={self.prefix!r}{where}"


@dataclass(frozen=True, eq=False)
class Tables:
    """One deployment's tables. Hashable by identity: compiled statements are cached per
    :class:`Tables` (see ``store/writes.py``)."""

    naming: Naming
    metadata: MetaData
    events: Table
    tombstones: Table
    outbox: Table
    sync_state: Table
    entities: Mapping[str, Table] = field(default_factory=dict)
    """Entity kind name → its table."""

    def entity(self, kind: str) -> Table:
        return self.entities[kind]


def _events(metadata: MetaData, naming: Naming) -> Table:
    statuses = ", ".join(f"'{s}'" for s in STATUSES)
    sources = ", ".join(f"'{s}'" for s in SOURCES)
    name = naming.table("events")
    return Table(
        name,
        metadata,
        Column(
            "seq",
            BigInteger().with_variant(Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        Column("svix_id", String(255), nullable=False, unique=True),
        Column("type", String(100)),
        Column("subject_id", String(255)),
        Column("user_id", String(255), index=True),
        Column("event_timestamp", BigInteger),
        Column("received_at", BigInteger, nullable=False),
        Column("last_received_at", BigInteger, nullable=False),
        Column("delivery_count", Integer, nullable=False),
        Column("status", String(16), nullable=False),
        Column("error", Text),
        Column("payload", Text),
        Column("source", String(16), nullable=False, server_default=Source.WEBHOOK.value),
        CheckConstraint(f"status IN ({statuses})", name="status_known"),
        CheckConstraint(f"source IN ({sources})", name="source_known"),
        Index(f"ix_{name}_status_seq", "status", "seq"),
        Index(f"ix_{name}_type_seq", "type", "seq"),
        schema=naming.schema,
    )


def _tombstones(metadata: MetaData, naming: Naming) -> Table:
    return Table(
        naming.table("tombstones"),
        metadata,
        Column("kind", String(32), nullable=False),
        Column("id", String(255), nullable=False),
        Column("deleted_at", BigInteger, nullable=False),
        PrimaryKeyConstraint("kind", "id"),
        schema=naming.schema,
    )


def _outbox(metadata: MetaData, naming: Naming) -> Table:
    """One row per (after-commit handler × processed delivery), written in the delivery's own
    transaction, and per operational alert; see :mod:`clerk_sync.outbox`."""
    statuses = ", ".join(f"'{s}'" for s in OUTBOX_STATUSES)
    name = naming.table("outbox")
    return Table(
        name,
        metadata,
        Column(
            "id",
            BigInteger().with_variant(Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        Column("key", String(64), nullable=False, unique=True),
        Column("handler", String(200), nullable=False),
        Column("svix_id", String(255)),
        Column("event_type", String(100), nullable=False),
        Column("subject_id", String(255)),
        Column("user_id", String(255), index=True),
        Column("version", BigInteger),
        Column("data", Text),
        Column("status", String(16), nullable=False),
        Column("attempts", Integer, nullable=False),
        Column("next_attempt_at", BigInteger, nullable=False),
        Column("claimed_by", String(128)),
        Column("claimed_until", BigInteger),
        Column("last_error", Text),
        Column("note", Text),
        Column("created_at", BigInteger, nullable=False),
        Column("finished_at", BigInteger),
        CheckConstraint(f"status IN ({statuses})", name="status_known"),
        # Partial indexes: the worker's claim scans pending rows in id order, alerts the dead
        # ones; both stay small however many rows are done.
        Index(
            f"ix_{name}_pending",
            "id",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
        Index(
            f"ix_{name}_dead",
            "finished_at",
            postgresql_where=text("status = 'dead'"),
            sqlite_where=text("status = 'dead'"),
        ),
        Index(f"ix_{name}_handler_subject_id", "handler", "subject_id", "id"),
        schema=naming.schema,
    )


def _sync_state(metadata: MetaData, naming: Naming) -> Table:
    """Small named values clerk-sync keeps between runs (the backfill's checkpoints)."""
    return Table(
        naming.table("sync_state"),
        metadata,
        Column("name", String(200), primary_key=True),
        Column("value", Text, nullable=False),
        Column("updated_at", BigInteger, nullable=False),
        schema=naming.schema,
    )


def entity_table(metadata: MetaData, naming: Naming, name: str, columns: ColumnsFactory) -> Table:
    """The table of one entity kind: the shape every kind shares around its own columns."""
    return Table(
        naming.table(name),
        metadata,
        Column("id", String(255), primary_key=True),
        *columns(),
        Column("data", JsonType, nullable=False),
        Column("sync_version", BigInteger, nullable=False),
        Column("synced_at", BigInteger, nullable=False),
        schema=naming.schema,
    )


def build_tables(naming: Naming, kinds: Iterable[tuple[str, str, ColumnsFactory]]) -> Tables:
    """All tables for ``naming``: the log, the tombstones and one per ``(kind, table, columns)``."""
    metadata = MetaData(naming_convention=NAMING_CONVENTION, schema=naming.schema)
    events = _events(metadata, naming)
    tombstones = _tombstones(metadata, naming)
    outbox = _outbox(metadata, naming)
    sync_state = _sync_state(metadata, naming)
    entities = {
        kind: entity_table(metadata, naming, table, columns) for kind, table, columns in kinds
    }
    return Tables(naming, metadata, events, tombstones, outbox, sync_state, entities)


def table_key(table: Table) -> str:
    """How ``MetaData.tables`` names ``table`` (``schema.name`` when it has a schema)."""
    return f"{table.schema}.{table.name}" if table.schema else table.name
