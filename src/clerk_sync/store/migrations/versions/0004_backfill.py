"""backfill: ``events.source`` (webhook or backfill) and ``sync_state`` (checkpoints)

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from clerk_sync.store.migrations.names import schema, t

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None
TABLES = ("sync_state",)
"""The tables this revision creates (before ``TABLE_PREFIX``)."""


def upgrade() -> None:
    events = t("events")
    with op.batch_alter_table(events, schema=schema()) as batch_op:
        batch_op.add_column(
            sa.Column("source", sa.String(length=16), nullable=False, server_default="webhook")
        )
        batch_op.create_check_constraint(
            op.f(f"ck_{events}_source_known"), "source IN ('webhook', 'backfill')"
        )
    op.create_table(
        t("sync_state"),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f(f"pk_{t('sync_state')}")),
        schema=schema(),
    )


def downgrade() -> None:
    op.drop_table(t("sync_state"), schema=schema())
    events = t("events")
    with op.batch_alter_table(events, schema=schema()) as batch_op:
        batch_op.drop_constraint(op.f(f"ck_{events}_source_known"), type_="check")
        batch_op.drop_column("source")
