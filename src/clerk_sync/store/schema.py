"""The tables clerk-sync owns. Alembic migrations (``migrations/``) create them; a test keeps
the two in agreement.

Applications add their own tables beside these and reference ``users.id`` with
``ON DELETE CASCADE`` (see :data:`users_table` and the README's "Associated data"): a
``user.deleted`` then removes their rows in the same transaction as the user.
"""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

JsonType = JSON().with_variant(JSONB(), "postgresql")
EVENT_STATUSES = ("processed", "stale", "ignored", "failed")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dict[str, Any]: JsonType}  # noqa: RUF012


class User(Base):
    """One live Clerk user. ``updated_at`` (Clerk's, ms) is the version that orders writes."""

    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    email: Mapped[str | None] = mapped_column(String(320), index=True)
    phone_number: Mapped[str | None] = mapped_column(String(64))
    external_id: Mapped[str | None] = mapped_column(String(255), index=True)
    first_name: Mapped[str | None] = mapped_column(Text)
    last_name: Mapped[str | None] = mapped_column(Text)
    username: Mapped[str | None] = mapped_column(String(255), index=True)
    image_url: Mapped[str | None] = mapped_column(Text)
    public_metadata: Mapped[dict[str, Any]]
    unsafe_metadata: Mapped[dict[str, Any]]
    created_at: Mapped[int | None] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)
    last_sign_in_at: Mapped[int | None] = mapped_column(BigInteger)
    banned: Mapped[bool]
    locked: Mapped[bool]
    data: Mapped[dict[str, Any]]
    """The full latest user object as Clerk sent it."""
    synced_at: Mapped[int] = mapped_column(BigInteger)
    """When clerk-sync last wrote the row (ms since the epoch)."""


class Event(Base):
    """The delivery log: one row per Svix message id, whatever became of it."""

    __tablename__ = "events"
    __table_args__ = (
        CheckConstraint(
            "status IN ('processed', 'stale', 'ignored', 'failed')", name="status_known"
        ),
        Index("ix_events_status_seq", "status", "seq"),
        Index("ix_events_type_seq", "type", "seq"),
    )

    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    svix_id: Mapped[str] = mapped_column(String(255), unique=True)
    type: Mapped[str | None] = mapped_column(String(100))
    subject_id: Mapped[str | None] = mapped_column(String(255), index=True)
    event_timestamp: Mapped[int | None] = mapped_column(BigInteger)
    received_at: Mapped[int] = mapped_column(BigInteger)
    last_received_at: Mapped[int] = mapped_column(BigInteger)
    delivery_count: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(Text)
    payload: Mapped[str | None] = mapped_column(Text)
    """The raw body, kept for replay; erased when the user it describes is deleted."""


class Tombstone(Base):
    """A deleted entity: its id and when, nothing personal. Deletes win over late updates."""

    __tablename__ = "tombstones"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    deleted_at: Mapped[int] = mapped_column(BigInteger)


metadata = Base.metadata
users_table = cast(Table, User.__table__)
events_table = cast(Table, Event.__table__)
tombstones_table = cast(Table, Tombstone.__table__)
