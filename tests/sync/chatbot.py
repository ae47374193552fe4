"""The README's example of application data that belongs to a user: a chatbot's conversations
and messages (cascading foreign keys) and uploaded files tracked without a foreign key (cleaned up
by an ``on_user_deleted`` hook)."""

from __future__ import annotations

from sqlalchemy import (
    Column,
    Connection,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    delete,
)

from clerk_sync import users_table

app_metadata = MetaData()

conversations = Table(
    "conversations",
    app_metadata,
    Column("id", Integer, primary_key=True),
    Column(
        "user_id",
        String(255),
        ForeignKey(users_table.c.id, ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("title", Text),
)

messages = Table(
    "messages",
    app_metadata,
    Column("id", Integer, primary_key=True),
    Column(
        "conversation_id",
        Integer,
        ForeignKey("conversations.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("body", Text),
)

uploads = Table(
    "uploads",
    app_metadata,
    Column("id", Integer, primary_key=True),
    Column("owner_id", String(255), index=True),  # no foreign key: e.g. files in object storage
    Column("path", Text),
)


def forget_uploads(conn: Connection, user_id: str) -> None:
    """An ``on_user_deleted`` hook: runs inside the delete's transaction."""
    conn.execute(delete(uploads).where(uploads.c.owner_id == user_id))
