"""entities: organizations, memberships, invitations, domains, roles, permissions, sessions,
waitlist entries; ``sync_version`` on users; tombstones keyed by (kind, id); ``events.user_id``

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from typing import Any

import orjson
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from clerk_sync.store.migrations.names import schema, t

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None
TABLES = (
    "organizations",
    "organization_memberships",
    "organization_invitations",
    "organization_domains",
    "roles",
    "permissions",
    "sessions",
    "waitlist_entries",
)
"""The tables this revision creates (before ``TABLE_PREFIX``)."""

_ID = sa.String(length=255)
_NAMED_USER_TYPES = ("session.", "email.", "sms.", "organizationMembership.", "organization.")


def _ident(name: str) -> sa.Column[Any]:
    return sa.Column(name, _ID, nullable=True)


def _ms(name: str) -> sa.Column[Any]:
    return sa.Column(name, sa.BigInteger(), nullable=True)


def _json(name: str) -> sa.Column[Any]:
    return sa.Column(name, JSON, nullable=False)


def _email(name: str) -> sa.Column[Any]:
    return sa.Column(name, sa.String(length=320), nullable=True)


def _text(name: str) -> sa.Column[Any]:
    return sa.Column(name, sa.Text(), nullable=True)


def _status() -> sa.Column[Any]:
    return sa.Column("status", sa.String(length=32), nullable=True)


def _entity(name: str, columns: list[sa.Column[Any]], indexed: list[str]) -> None:
    """One entity table in the shape every kind shares (``store/schema.py``)."""
    table = t(name)
    op.create_table(
        table,
        sa.Column("id", _ID, nullable=False),
        *columns,
        sa.Column("data", JSON, nullable=False),
        sa.Column("sync_version", sa.BigInteger(), nullable=False),
        sa.Column("synced_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{table}")),
        schema=schema(),
    )
    for column in indexed:
        op.create_index(op.f(f"ix_{table}_{column}"), table, [column], schema=schema())


def upgrade() -> None:
    _entity(
        "organizations",
        [
            _text("name"),
            _ident("slug"),
            _text("image_url"),
            sa.Column("members_count", sa.Integer(), nullable=True),
            _json("public_metadata"),
            _ident("created_by"),
            _ms("created_at"),
            _ms("updated_at"),
        ],
        ["slug"],
    )
    _entity(
        "organization_memberships",
        [
            _ident("organization_id"),
            _ident("user_id"),
            _ident("role"),
            _text("role_name"),
            _json("permissions"),
            _json("public_metadata"),
            _ms("created_at"),
            _ms("updated_at"),
        ],
        ["organization_id", "user_id"],
    )
    _entity(
        "organization_invitations",
        [
            _ident("organization_id"),
            _email("email_address"),
            _ident("role"),
            _status(),
            _ident("user_id"),
            _ident("inviter_id"),
            _json("public_metadata"),
            _ms("expires_at"),
            _ms("created_at"),
            _ms("updated_at"),
        ],
        ["email_address", "organization_id", "user_id"],
    )
    _entity(
        "organization_domains",
        [
            _ident("organization_id"),
            _ident("name"),
            _ident("enrollment_mode"),
            _email("affiliation_email_address"),
            _ms("created_at"),
            _ms("updated_at"),
        ],
        ["organization_id"],
    )
    _entity(
        "roles",
        [
            _ident("key"),
            _text("name"),
            _text("description"),
            _json("permissions"),
            sa.Column("is_creator_eligible", sa.Boolean(), nullable=True),
            _ms("created_at"),
            _ms("updated_at"),
        ],
        ["key"],
    )
    _entity(
        "permissions",
        [
            _ident("key"),
            _text("name"),
            _text("description"),
            _ident("type"),
            _ms("created_at"),
            _ms("updated_at"),
        ],
        ["key"],
    )
    _entity(
        "sessions",
        [
            _ident("user_id"),
            _ident("client_id"),
            _status(),
            _ident("last_active_organization_id"),
            _ms("last_active_at"),
            _ms("expire_at"),
            _ms("abandon_at"),
            _ms("created_at"),
            _ms("updated_at"),
        ],
        ["user_id"],
    )
    _entity(
        "waitlist_entries",
        [
            _email("email_address"),
            _status(),
            sa.Column("is_locked", sa.Boolean(), nullable=True),
            _ms("created_at"),
            _ms("updated_at"),
        ],
        ["email_address"],
    )

    users, events, tombstones = t("users"), t("events"), t("tombstones")
    # The ordering key of every kind: updated_at (ms) × 4 + the rank of the action; a stored
    # row counts as an update.
    with op.batch_alter_table(users, schema=schema()) as batch_op:
        batch_op.add_column(sa.Column("sync_version", sa.BigInteger(), nullable=True))
    users_t = sa.table(users, sa.column("updated_at"), sa.column("sync_version"), schema=schema())
    op.execute(users_t.update().values(sync_version=users_t.c.updated_at * 4 + 1))
    with op.batch_alter_table(users, schema=schema()) as batch_op:
        batch_op.alter_column("sync_version", existing_type=sa.BigInteger(), nullable=False)

    # Tombstones of different kinds may share an id string: the key is (kind, id).
    with op.batch_alter_table(tombstones, schema=schema()) as batch_op:
        batch_op.drop_constraint(f"pk_{tombstones}", type_="primary")
        batch_op.create_primary_key(f"pk_{tombstones}", ["kind", "id"])

    # The user whose personal data a body holds, so a delete can erase it everywhere.
    with op.batch_alter_table(events, schema=schema()) as batch_op:
        batch_op.add_column(sa.Column("user_id", _ID, nullable=True))
        batch_op.drop_index(f"ix_{events}_subject_id")
        batch_op.create_index(f"ix_{events}_user_id", ["user_id"], unique=False)
    _backfill_named_users(events)


def _backfill_named_users(events: str) -> None:
    log = sa.table(
        events,
        sa.column("seq"),
        sa.column("type"),
        sa.column("subject_id"),
        sa.column("user_id"),
        sa.column("payload"),
        schema=schema(),
    )
    bind = op.get_bind()
    bind.execute(log.update().where(log.c.type.like("user.%")).values(user_id=log.c.subject_id))
    others = sa.or_(*[log.c.type.like(prefix + "%") for prefix in _NAMED_USER_TYPES])
    rows = bind.execute(
        sa.select(log.c.seq, log.c.payload).where(others).where(log.c.payload.is_not(None))
    )
    named = [(seq, _named_user(payload)) for seq, payload in rows]
    for seq, user_id in named:
        if user_id is not None:
            bind.execute(log.update().where(log.c.seq == seq).values(user_id=user_id))


def _named_user(payload: str) -> str | None:
    """The same rule as ``Envelope.named_user_id``, frozen here as of this revision."""
    try:
        data = orjson.loads(payload).get("data")
    except (orjson.JSONDecodeError, AttributeError):
        return None
    if not isinstance(data, dict):
        return None
    for candidate in (
        data.get("user_id"),
        (data.get("public_user_data") or {}).get("user_id"),
        (data.get("user") or {}).get("id"),
        data.get("created_by"),
    ):
        if isinstance(candidate, str) and candidate:
            return candidate
    return None


def downgrade() -> None:
    users, events, tombstones = t("users"), t("events"), t("tombstones")
    with op.batch_alter_table(events, schema=schema()) as batch_op:
        batch_op.drop_index(f"ix_{events}_user_id")
        batch_op.create_index(f"ix_{events}_subject_id", ["subject_id"], unique=False)
        batch_op.drop_column("user_id")
    with op.batch_alter_table(tombstones, schema=schema()) as batch_op:
        batch_op.drop_constraint(f"pk_{tombstones}", type_="primary")
        batch_op.create_primary_key(f"pk_{tombstones}", ["id"])
    with op.batch_alter_table(users, schema=schema()) as batch_op:
        batch_op.drop_column("sync_version")
    for name in (
        "waitlist_entries",
        "sessions",
        "permissions",
        "roles",
        "organization_domains",
        "organization_invitations",
        "organization_memberships",
        "organizations",
    ):
        op.drop_table(t(name), schema=schema())
