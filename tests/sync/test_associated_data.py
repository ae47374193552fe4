"""A user's associated data vanishes with the user: cascading foreign keys and cleanup hooks,
on SQLite (which needs foreign_keys=ON on every connection) and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import (
    Column,
    Connection,
    Engine,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    func,
    insert,
    select,
)

from clerk_sync import StoreUnavailable, users_table
from clerk_sync.devtools import deleted_user_event, encode, user_event, user_object
from clerk_sync.receiver import Delivery, Outcome, Receiver
from tests.helpers.tables import events_table

from .chatbot import app_metadata, conversations, forget_uploads, messages, uploads


@pytest.fixture
def app_tables(engine: Engine) -> Iterator[None]:
    app_metadata.create_all(engine)
    yield
    app_metadata.drop_all(engine)


def rows(engine: Engine, table: Table, **where: str) -> int:
    stmt = select(func.count()).select_from(table)
    for column, value in where.items():
        stmt = stmt.where(table.c[column] == value)
    with engine.connect() as conn:
        return int(conn.execute(stmt).scalar_one())


def create_user_with_data(receiver: Receiver, engine: Engine) -> str:
    user = user_object()
    receiver.receive(Delivery(f"msg_c_{user['id']}", encode(user_event("user.created", user))))
    with engine.begin() as conn:
        for n in range(2):
            conv = conn.execute(
                insert(conversations).values(user_id=user["id"], title=f"chat {n}")
            ).inserted_primary_key[0]
            conn.execute(insert(messages), [{"conversation_id": conv, "body": "hi"}] * 3)
        conn.execute(insert(uploads).values(owner_id=user["id"], path="/avatars/1.png"))
    return str(user["id"])


@pytest.mark.usefixtures("app_tables")
def test_delete_cascades_to_conversations_messages_and_hooks(
    engine: Engine, observer: Engine
) -> None:
    receiver = Receiver(engine, on_user_deleted=[forget_uploads])
    gone = create_user_with_data(receiver, engine)
    kept = create_user_with_data(receiver, engine)
    assert rows(observer, conversations, user_id=gone) == 2
    assert rows(observer, messages) == 12

    outcome = receiver.receive(Delivery("msg_del", encode(deleted_user_event(gone))))

    assert outcome.status == "processed"
    assert rows(observer, users_table, id=gone) == 0
    assert rows(observer, conversations, user_id=gone) == 0
    assert rows(observer, messages) == 6  # only the other user's
    assert rows(observer, uploads, owner_id=gone) == 0
    assert rows(observer, conversations, user_id=kept) == 2
    assert rows(observer, uploads, owner_id=kept) == 1


@pytest.mark.usefixtures("app_tables")
def test_a_failing_hook_rolls_everything_back_and_asks_for_a_retry(
    engine: Engine, observer: Engine
) -> None:
    def broken(conn: Connection, user_id: str) -> None:
        raise RuntimeError("object storage is down")

    user_id = create_user_with_data(Receiver(engine), engine)
    body = encode(deleted_user_event(user_id))
    with pytest.raises(StoreUnavailable):
        Receiver(engine, on_user_deleted=[broken]).receive(Delivery("msg_del", body))
    assert rows(observer, users_table, id=user_id) == 1
    assert rows(observer, conversations, user_id=user_id) == 2
    assert rows(observer, events_table, svix_id="msg_del") == 0  # not recorded: will be retried

    # Svix retries the same message once the hook works again.
    retried = Receiver(engine, on_user_deleted=[forget_uploads]).receive(Delivery("msg_del", body))
    assert (retried.status, retried.duplicate) == ("processed", False)
    assert rows(observer, conversations, user_id=user_id) == 0


def test_a_non_cascading_reference_blocks_the_delete_instead_of_losing_it(
    engine: Engine, observer: Engine
) -> None:
    """Proves foreign keys are enforced (on SQLite too) and a blocked delete is transient."""
    strict = MetaData()
    invoices = Table(
        "invoices",
        strict,
        Column("id", Integer, primary_key=True),
        Column("user_id", String(255), ForeignKey(users_table.c.id), nullable=False),
    )
    strict.create_all(engine)
    try:
        receiver = Receiver(engine)
        user = user_object()
        receiver.receive(Delivery("msg_c", encode(user_event("user.created", user))))
        with engine.begin() as conn:
            conn.execute(insert(invoices).values(user_id=user["id"]))
        with pytest.raises(StoreUnavailable):
            receiver.receive(Delivery("msg_d", encode(deleted_user_event(user["id"]))))
        assert rows(observer, users_table, id=user["id"]) == 1
        assert rows(observer, events_table, svix_id="msg_d") == 0
    finally:
        strict.drop_all(engine)


@pytest.mark.usefixtures("app_tables")
def test_one_poisoned_delivery_does_not_fail_its_batch(engine: Engine, observer: Engine) -> None:
    def broken(conn: Connection, user_id: str) -> None:
        raise RuntimeError("boom")

    receiver = Receiver(engine, on_user_deleted=[broken])
    doomed = create_user_with_data(Receiver(engine), engine)
    a, b = user_object(), user_object()
    results = receiver.receive_batch(
        [
            Delivery("msg_a", encode(user_event("user.created", a))),
            Delivery("msg_poison", encode(deleted_user_event(doomed))),
            Delivery("msg_b", encode(user_event("user.created", b))),
        ]
    )
    assert isinstance(results[0], Outcome)
    assert results[0].status == "processed"
    assert isinstance(results[1], StoreUnavailable)
    assert isinstance(results[2], Outcome)
    assert results[2].status == "processed"
    assert rows(observer, users_table, id=a["id"]) == 1
    assert rows(observer, users_table, id=b["id"]) == 1
    assert rows(observer, users_table, id=doomed) == 1
    assert rows(observer, events_table, svix_id="msg_poison") == 0
