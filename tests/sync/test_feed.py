"""The live feed's poller on real databases: what it sends, what it catches up, the rows a
PostgreSQL transaction commits late, bursts, slow listeners, and that it stops."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Sequence
from typing import Any

import pytest
from sqlalchemy import Engine, select

from clerk_sync.devtools import encode, user_event, user_object
from clerk_sync.observe.feed import BATCH, QUEUE, Feed, Listener, Update
from clerk_sync.receiver import Delivery, Receiver
from tests.helpers.event_log import insert_log_row
from tests.helpers.tables import events_table

TIMEOUT = 10.0


def _ids(rows: Sequence[dict[str, Any]]) -> list[str]:
    return [r["svix_id"] for r in rows]


def _feed(engine: Engine, receiver: Receiver) -> Feed[list[str]]:
    return Feed(engine, receiver.tables, _ids, interval=0.02)


def _deliver(receiver: Receiver, n: int = 1) -> list[str]:
    deliveries = [
        Delivery(f"msg_{secrets.token_hex(6)}", encode(user_event("user.created", user_object())))
        for _ in range(n)
    ]
    receiver.receive_batch(deliveries)
    return [d.svix_id for d in deliveries]


async def _next(listener: Listener[list[str]]) -> Update[list[str]]:
    update = await asyncio.wait_for(listener.next(), TIMEOUT)
    assert update is not None
    return update


def test_listeners_get_what_is_committed_after_they_joined(
    engine: Engine, receiver: Receiver
) -> None:
    before = _deliver(receiver, 2)

    async def scenario() -> None:
        feed = _feed(engine, receiver)
        async with feed.listen() as now, feed.listen(after=0) as from_start:
            assert (await _next(from_start)).prepared == list(reversed(before))
            sent = await asyncio.to_thread(_deliver, receiver, 3)
            for listener in (now, from_start):
                update = await _next(listener)
                assert update.prepared == list(reversed(sent))  # newest first
                assert not update.busy
        await feed.close()

    asyncio.run(scenario())


@pytest.mark.parametrize("backend", ["postgresql"])
def test_a_lower_seq_committed_later_is_still_sent(engine: Engine, receiver: Receiver) -> None:
    """Two writers (replicas): the one that took the lower ``seq`` commits second."""

    async def scenario() -> None:
        feed = _feed(engine, receiver)
        async with feed.listen() as listener:
            with engine.connect() as slow:
                slow.begin()
                insert_log_row(
                    slow, "msg_committed_late", "ignored"
                )  # its seq taken, not committed
                fast = await asyncio.to_thread(_deliver, receiver)
                assert (await _next(listener)).prepared == fast
                slow.commit()
            assert (await _next(listener)).prepared == ["msg_committed_late"]
        await feed.close()

    asyncio.run(scenario())


def test_a_burst_sends_the_newest_rows_and_says_it_is_busy(
    engine: Engine, receiver: Receiver
) -> None:
    async def scenario() -> None:
        feed = _feed(engine, receiver)
        async with feed.listen() as listener:
            sent = await asyncio.to_thread(_deliver, receiver, BATCH + 30)
            update = await _next(listener)
            assert update.busy
            assert update.prepared == list(reversed(sent))[:BATCH]
        await feed.close()

    asyncio.run(scenario())


def test_a_listener_that_falls_behind_loses_the_oldest_and_is_told() -> None:
    async def scenario() -> None:
        listener: Listener[int] = Listener(after=0)
        for n in range(QUEUE + 3):
            listener.push(Update([{"seq": n}], n))
        first = await listener.next()
        assert first is not None
        assert first.lost
        assert first.prepared == 3
        second = await listener.next()
        assert second is not None
        assert not second.lost
        listener.close()
        assert [u.prepared for u in [await listener.next() for _ in range(QUEUE - 1)] if u] == list(
            range(5, QUEUE + 3)
        )
        assert await listener.next() is None

    asyncio.run(scenario())


def test_the_poller_runs_only_while_somebody_listens_and_close_ends_streams(
    engine: Engine, receiver: Receiver
) -> None:
    async def scenario() -> None:
        feed = _feed(engine, receiver)
        async with feed.listen():
            assert feed.listeners == 1
        await asyncio.sleep(0.2)
        assert feed.listeners == 0
        assert feed._task is not None
        assert feed._task.done()
        async with feed.listen() as listener:
            await feed.close()
            assert await asyncio.wait_for(listener.next(), TIMEOUT) is None

    asyncio.run(scenario())


@pytest.mark.parametrize("backend", ["postgresql"])
def test_a_row_committed_late_below_where_the_poller_started_is_still_sent(
    engine: Engine, receiver: Receiver
) -> None:
    """A browser whose page was rendered before a slow transaction took its ``seq``: the
    poller starts above that number, and must still ask for it."""
    before = _deliver(receiver)

    async def scenario() -> None:
        feed = _feed(engine, receiver)
        with engine.connect() as slow:
            slow.begin()
            insert_log_row(slow, "msg_late_and_low", "ignored")
            fast = await asyncio.to_thread(_deliver, receiver)
            with engine.connect() as conn:
                page_seq = conn.execute(
                    select(events_table.c.seq).where(events_table.c.svix_id == before[0])
                ).scalar_one()
            async with feed.listen(after=page_seq) as listener:
                assert (await _next(listener)).prepared == fast
                slow.commit()
                assert (await _next(listener)).prepared == ["msg_late_and_low"]
        await feed.close()

    asyncio.run(scenario())
