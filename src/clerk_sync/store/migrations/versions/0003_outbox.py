"""outbox: one row per (after-commit handler × processed delivery), and per operational alert

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from clerk_sync.store.migrations.names import schema, t

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None
TABLES = ("outbox",)
"""The tables this revision creates (before ``TABLE_PREFIX``)."""


def upgrade() -> None:
    name = t("outbox")
    op.create_table(
        name,
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("handler", sa.String(length=200), nullable=False),
        sa.Column("svix_id", sa.String(length=255), nullable=True),
        sa.Column("event_type", sa.String(length=100), nullable=False),
        sa.Column("subject_id", sa.String(length=255), nullable=True),
        sa.Column("user_id", sa.String(length=255), nullable=True),
        sa.Column("version", sa.BigInteger(), nullable=True),
        sa.Column("data", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.BigInteger(), nullable=False),
        sa.Column("claimed_by", sa.String(length=128), nullable=True),
        sa.Column("claimed_until", sa.BigInteger(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("finished_at", sa.BigInteger(), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'done', 'dead')", name=op.f(f"ck_{name}_status_known")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{name}")),
        sa.UniqueConstraint("key", name=op.f(f"uq_{name}_key")),
        schema=schema(),
    )
    for index, column, status in (("pending", "id", "pending"), ("dead", "finished_at", "dead")):
        where = sa.text(f"status = '{status}'")
        op.create_index(
            f"ix_{name}_{index}",
            name,
            [column],
            schema=schema(),
            postgresql_where=where,
            sqlite_where=where,
        )
    op.create_index(
        f"ix_{name}_handler_subject_id", name, ["handler", "subject_id", "id"], schema=schema()
    )
    op.create_index(op.f(f"ix_{name}_user_id"), name, ["user_id"], schema=schema())


def downgrade() -> None:
    op.drop_table(t("outbox"), schema=schema())
