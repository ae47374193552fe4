"""initial schema: users, events, tombstones

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from clerk_sync.store.migrations.names import schema, t

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None
TABLES = ("events", "tombstones", "users")
"""The tables this revision creates (before ``TABLE_PREFIX``): ``migrate.py`` refuses to run it
over an application's table of the same name."""


def upgrade() -> None:
    op.create_table(
        t("events"),
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("svix_id", sa.String(length=255), nullable=False),
        sa.Column("type", sa.String(length=100), nullable=True),
        sa.Column("subject_id", sa.String(length=255), nullable=True),
        sa.Column("event_timestamp", sa.BigInteger(), nullable=True),
        sa.Column("received_at", sa.BigInteger(), nullable=False),
        sa.Column("last_received_at", sa.BigInteger(), nullable=False),
        sa.Column("delivery_count", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("payload", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "status IN ('processed', 'stale', 'ignored', 'failed')",
            name=op.f(f"ck_{t('events')}_status_known"),
        ),
        sa.PrimaryKeyConstraint("seq", name=op.f(f"pk_{t('events')}")),
        sa.UniqueConstraint("svix_id", name=op.f(f"uq_{t('events')}_svix_id")),
        schema=schema(),
    )
    with op.batch_alter_table(t("events"), schema=schema()) as batch_op:
        batch_op.create_index(f"ix_{t('events')}_status_seq", ["status", "seq"], unique=False)
        batch_op.create_index(
            batch_op.f(f"ix_{t('events')}_subject_id"), ["subject_id"], unique=False
        )
        batch_op.create_index(f"ix_{t('events')}_type_seq", ["type", "seq"], unique=False)

    op.create_table(
        t("tombstones"),
        sa.Column("id", sa.String(length=255), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("deleted_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{t('tombstones')}")),
        schema=schema(),
    )
    op.create_table(
        t("users"),
        sa.Column("id", sa.String(length=255), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("phone_number", sa.String(length=64), nullable=True),
        sa.Column("external_id", sa.String(length=255), nullable=True),
        sa.Column("first_name", sa.Text(), nullable=True),
        sa.Column("last_name", sa.Text(), nullable=True),
        sa.Column("username", sa.String(length=255), nullable=True),
        sa.Column("image_url", sa.Text(), nullable=True),
        sa.Column("public_metadata", JSON, nullable=False),
        sa.Column("unsafe_metadata", JSON, nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=True),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.Column("last_sign_in_at", sa.BigInteger(), nullable=True),
        sa.Column("banned", sa.Boolean(), nullable=False),
        sa.Column("locked", sa.Boolean(), nullable=False),
        sa.Column("data", JSON, nullable=False),
        sa.Column("synced_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{t('users')}")),
        schema=schema(),
    )
    with op.batch_alter_table(t("users"), schema=schema()) as batch_op:
        batch_op.create_index(batch_op.f(f"ix_{t('users')}_email"), ["email"], unique=False)
        batch_op.create_index(
            batch_op.f(f"ix_{t('users')}_external_id"), ["external_id"], unique=False
        )
        batch_op.create_index(batch_op.f(f"ix_{t('users')}_username"), ["username"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table(t("users"), schema=schema()) as batch_op:
        batch_op.drop_index(batch_op.f(f"ix_{t('users')}_username"))
        batch_op.drop_index(batch_op.f(f"ix_{t('users')}_external_id"))
        batch_op.drop_index(batch_op.f(f"ix_{t('users')}_email"))

    op.drop_table(t("users"), schema=schema())
    op.drop_table(t("tombstones"), schema=schema())
    with op.batch_alter_table(t("events"), schema=schema()) as batch_op:
        batch_op.drop_index(f"ix_{t('events')}_type_seq")
        batch_op.drop_index(batch_op.f(f"ix_{t('events')}_subject_id"))
        batch_op.drop_index(f"ix_{t('events')}_status_seq")

    op.drop_table(t("events"), schema=schema())
