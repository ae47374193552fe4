"""The transactional outbox: rows written with the delivery, run after commit by the worker,
retried, dead-lettered, ordered per subject, erased with their user — on both databases."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, update

from clerk_sync.devtools import deleted_user_event, user_event, user_object
from clerk_sync.errors import StoreUnavailable
from clerk_sync.events import OutboxStatus, Status
from clerk_sync.hooks import ChangeEvent, Hook, idempotency_key
from clerk_sync.outbox import retry_delay
from clerk_sync.store import outbox as rows
from clerk_sync.store.engine import write_transaction
from tests.helpers.entity_cases import T0, envelope
from tests.helpers.outbox import Outbox, Recorder


def _user(user_id: str, at: int, first_name: str = "Ada") -> dict[str, Any]:
    return user_event(
        "user.updated" if at > T0 else "user.created",
        user_object(user_id=user_id, created_at=T0, updated_at=at, first_name=first_name),
    )


def test_a_processed_delivery_runs_its_hook_once_after_commit(engine: Engine) -> None:
    recorder = Recorder()
    box = Outbox(engine, [recorder.hook("user.created")])
    outcome = box.receive(_user("user_a", T0), "msg_created_a")
    assert outcome.status == Status.PROCESSED
    [row] = box.rows()
    assert row["status"] == "pending"
    assert recorder.calls == []  # the receiver only writes the row
    box.drain()
    [event] = recorder.calls
    assert (event.svix_id, event.type, event.subject_id) == (
        "msg_created_a",
        "user.created",
        "user_a",
    )
    assert event.data["first_name"] == "Ada"
    assert event.status == Status.PROCESSED
    assert event.attempt == 1
    assert event.idempotency_key == idempotency_key("tests:recorder", "msg_created_a")
    assert len(event.idempotency_key) == 32
    [row] = box.rows()
    assert row["status"] == "done"
    assert row["finished_at"] is not None
    box.drain()
    assert len(recorder.calls) == 1


def test_no_row_for_stale_duplicate_ignored_or_failed(engine: Engine) -> None:
    recorder = Recorder()
    box = Outbox(engine, [recorder.hook("user.*", "email.created")])
    box.receive(_user("user_b", T0 + 10), "msg_new")
    assert box.receive(_user("user_b", T0 + 5), "msg_old").status == Status.STALE
    assert box.receive(_user("user_b", T0 + 10), "msg_new").duplicate
    ignored = envelope("email.created", {"id": "ema_1", "object": "email"})
    assert box.receive(ignored, "msg_email").status == Status.IGNORED
    failed = envelope("user.updated", {"object": "user"})
    assert box.receive(failed, "msg_bad").status == Status.FAILED
    assert [r["svix_id"] for r in box.rows()] == ["msg_new"]
    box.drain()
    assert [c.svix_id for c in recorder.calls] == ["msg_new"]


def test_every_matching_hook_gets_its_own_row_and_key(engine: Engine) -> None:
    first, second = Recorder(), Recorder()
    box = Outbox(
        engine,
        [
            first.hook("user.created", name="tests:first"),
            second.hook("user.*", name="tests:second"),
        ],
    )
    box.receive(_user("user_c", T0), "msg_c")
    box.receive(deleted_user_event("user_c", timestamp=T0 + 50), "msg_c_gone")
    assert [(r["handler"], r["event_type"]) for r in box.rows()] == [
        ("tests:first", "user.created"),
        ("tests:second", "user.created"),
        ("tests:second", "user.deleted"),
    ]
    assert len({r["key"] for r in box.rows()}) == 3


def test_a_failing_hook_is_retried_with_backoff_then_dead(engine: Engine) -> None:
    recorder = Recorder(failures={"user_d": 99})
    box = Outbox(engine, [recorder.hook("user.created")], max_attempts=3)
    box.receive(_user("user_d", T0), "msg_d")
    box.drain()
    [row] = box.rows()
    assert (row["status"], row["attempts"]) == ("pending", 1)
    assert "told to fail" in row["last_error"]
    box.drain()  # not due yet: 1 s after the first failure
    assert len(recorder.calls) == 1
    box.advance(retry_delay(1))
    box.drain()
    box.advance(retry_delay(2))
    box.drain()
    [row] = box.rows()
    assert (row["status"], row["attempts"]) == ("dead", 3)
    assert [c.attempt for c in recorder.calls] == [1, 2, 3]
    assert len({c.idempotency_key for c in recorder.calls}) == 1
    box.advance(3600)
    box.drain()
    assert len(recorder.calls) == 3


def test_backoff_doubles_from_one_second_to_an_hour() -> None:
    assert [retry_delay(n) for n in (1, 2, 3, 4)] == [1, 2, 4, 8]
    assert retry_delay(12) == 2048
    assert retry_delay(13) == 3600
    assert retry_delay(40) == 3600


def test_a_failing_subject_holds_back_only_its_own_later_rows(engine: Engine) -> None:
    recorder = Recorder(failures={"user_e": 1})
    box = Outbox(engine, [recorder.hook("user.*")])
    box.receive(_user("user_e", T0), "msg_e1")
    box.receive(_user("user_f", T0), "msg_f1")
    box.receive(_user("user_e", T0 + 10, "Eve"), "msg_e2")
    box.drain()
    assert [c.svix_id for c in recorder.calls] == ["msg_e1", "msg_f1"]
    box.advance(1)
    box.drain()
    assert [c.svix_id for c in recorder.calls] == ["msg_e1", "msg_f1", "msg_e1", "msg_e2"]
    assert {r["status"] for r in box.rows()} == {"done"}


def test_hooks_that_time_out_or_hang_are_retried_while_others_flow(engine: Engine) -> None:
    release = threading.Event()
    calls: list[str] = []

    def hangs(event: ChangeEvent) -> None:
        calls.append(event.svix_id)
        release.wait(10)

    async def sleeps(event: ChangeEvent) -> None:
        calls.append(event.svix_id)
        await asyncio.sleep(10)

    recorder = Recorder()
    box = Outbox(
        engine,
        [
            Hook("tests:hangs", "after_commit", ("user.created",), hangs),
            Hook("tests:sleeps", "after_commit", ("user.created",), sleeps),
            recorder.hook("user.updated"),
        ],
        handler_timeout=0.3,
        max_attempts=2,
        concurrency=2,
    )
    box.receive(_user("user_g", T0), "msg_g")
    box.receive(_user("user_h", T0 + 5), "msg_h")
    started = time.monotonic()
    box.drain()
    assert time.monotonic() - started < 5
    by_handler = {r["handler"]: r for r in box.rows()}
    for name in ("tests:hangs", "tests:sleeps"):
        assert by_handler[name]["status"] == "pending"
        assert by_handler[name]["last_error"] == "timed out after 0.3 s"
    assert by_handler["tests:recorder"]["status"] == "done"
    box.advance(1)
    box.drain()
    assert {r["status"] for r in box.rows() if r["handler"] != "tests:recorder"} == {"dead"}
    release.set()


def test_a_hook_that_is_not_loaded_is_an_error_on_the_row(engine: Engine) -> None:
    recorder = Recorder()
    box = Outbox(engine, [recorder.hook("user.created", name="tests:gone")], max_attempts=1)
    box.receive(_user("user_i", T0), "msg_i")
    elsewhere = Outbox(engine, [recorder.hook("user.deleted", name="tests:other")], max_attempts=1)
    box.drain(elsewhere.worker())  # a worker that was not given that hook
    [row] = box.rows()
    assert row["status"] == "dead"
    assert "no after-commit hook named 'tests:gone'" in row["last_error"]
    assert recorder.calls == []


def test_a_deleted_users_pending_rows_run_then_lose_their_data(engine: Engine) -> None:
    recorder = Recorder()
    box = Outbox(engine, [recorder.hook("user.*")])
    box.receive(_user("user_j", T0), "msg_j")
    box.receive(deleted_user_event("user_j", timestamp=T0 + 100), "msg_j_gone")
    assert all(r["data"] is not None for r in box.rows())  # pending: kept until they run
    box.drain()
    assert [c.svix_id for c in recorder.calls] == ["msg_j", "msg_j_gone"]
    assert recorder.calls[0].data["first_name"] == "Ada"
    assert [(r["status"], r["data"]) for r in box.rows()] == [("done", None), ("done", None)]
    with engine.begin() as conn:  # retried by hand: nothing left to run it with
        rows.retry(conn, box.tables, ids=[box.rows()[0]["id"]], now_ms=int(box.clock() * 1000))
    box.drain()
    assert len(recorder.calls) == 2
    assert box.rows()[0]["note"] == "skipped: the user was deleted and this row's data erased"


def test_a_done_rows_data_is_erased_when_its_user_is_deleted(engine: Engine) -> None:
    recorder = Recorder()
    box = Outbox(engine, [recorder.hook("user.created")])
    box.receive(_user("user_k", T0), "msg_k")
    box.drain()
    assert box.rows()[0]["data"] is not None
    box.receive(deleted_user_event("user_k", timestamp=T0 + 100), "msg_k_gone")
    assert box.rows()[0]["data"] is None


def test_a_mirror_skips_superseded_and_tombstoned_rows(engine: Engine) -> None:
    recorder = Recorder(failures={"user_l": 3})
    box = Outbox(
        engine, [recorder.hook("user.*", name="tests:mirror", mirror=True)], max_attempts=1
    )
    box.receive(_user("user_l", T0), "msg_l1")
    box.drain()  # fails once: dead
    box.receive(_user("user_l", T0 + 10, "Newer"), "msg_l2")
    recorder.failures.clear()
    box.drain()
    with engine.begin() as conn:
        assert rows.retry(conn, box.tables, dead=True, now_ms=int(box.clock() * 1000)) == [
            box.rows()[0]["id"]
        ]
    box.drain()
    first = box.rows()[0]
    assert first["status"] == "done"
    assert first["note"] == f"skipped: superseded by row {box.rows()[1]['id']}"
    assert [c.data["first_name"] for c in recorder.calls] == ["Ada", "Newer"]


def test_a_mirror_sends_nothing_but_the_delete_for_a_deleted_user(engine: Engine) -> None:
    recorder = Recorder()
    box = Outbox(engine, [recorder.hook("user.*", name="tests:mirror", mirror=True)])
    box.receive(_user("user_m", T0), "msg_m1")
    with engine.begin() as conn:  # the user's data not yet erased, the delete not yet run
        conn.execute(update(box.tables.outbox).values(next_attempt_at=2**40))
    box.receive(deleted_user_event("user_m", timestamp=T0 + 100), "msg_m_gone")
    with engine.begin() as conn:
        conn.execute(update(box.tables.outbox).values(next_attempt_at=0, data='{"id":"user_m"}'))
    box.drain()
    assert [c.type for c in recorder.calls] == ["user.deleted"]
    assert box.rows()[0]["note"] == "skipped: the object was deleted since"


def test_retry_makes_dead_rows_pending_again(engine: Engine) -> None:
    recorder = Recorder(failures={"user_n": 1})
    box = Outbox(engine, [recorder.hook("user.created")], max_attempts=1)
    box.receive(_user("user_n", T0), "msg_n")
    box.drain()
    [row] = box.rows()
    assert row["status"] == "dead"
    now = int(box.clock() * 1000)
    with engine.begin() as conn:
        assert rows.retry(conn, box.tables, ids=[row["id"] + 1000], now_ms=now) == []
        assert rows.retry(conn, box.tables, ids=[row["id"]], now_ms=now) == [row["id"]]
        assert rows.counts(conn, box.tables) == {"pending": 1, "done": 0, "dead": 0}
    box.drain()
    [row] = box.rows()
    assert (row["status"], row["attempts"]) == ("done", 1)


def test_a_dead_workers_claims_are_released_at_start(engine: Engine) -> None:
    recorder = Recorder()
    box = Outbox(engine, [recorder.hook("user.created")])
    box.receive(_user("user_o", T0), "msg_o")
    gone = _dead_pid()
    with engine.begin() as conn:
        conn.execute(
            update(box.tables.outbox).values(
                claimed_by=f"{os.uname().nodename}:{gone}:abcdef", claimed_until=2**50
            )
        )
    box.drain()  # drain without start: the claim holds
    assert recorder.calls == []

    async def started() -> None:
        worker = box.worker()
        await worker.start()
        await worker.drain()
        await worker.stop()

    asyncio.run(started())
    assert [c.svix_id for c in recorder.calls] == ["msg_o"]


def _dead_pid() -> int:
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_an_in_transaction_hook_runs_before_the_change_and_can_roll_it_back(
    engine: Engine,
) -> None:
    seen: list[tuple[str, int]] = []

    def count_users(conn: Connection, event: ChangeEvent) -> None:
        from sqlalchemy import func, select

        users = box.tables.entity("user")
        seen.append(
            (event.type, conn.execute(select(func.count()).select_from(users)).scalar_one())
        )
        if event.data.get("first_name") == "Boom":
            raise RuntimeError("the application's hook failed")

    recorder = Recorder()
    box = Outbox(
        engine,
        [Hook("tests:count", "in_transaction", ("user.*",), count_users), recorder.hook("user.*")],
    )
    box.receive(_user("user_p", T0), "msg_p")
    assert seen == [("user.created", 0)]
    with pytest.raises(StoreUnavailable):
        box.receive(_user("user_p", T0 + 10, "Boom"), "msg_boom")
    assert [r["svix_id"] for r in box.rows()] == ["msg_p"]


def test_concurrent_workers_never_claim_the_same_row(engine: Engine, backend: str) -> None:
    recorder = Recorder()
    box = Outbox(engine, [recorder.hook("user.*")])
    for n in range(60):
        box.receive(_user(f"user_q{n}", T0), f"msg_q{n}")
    claimed: list[list[int]] = [[], [], []]
    now = int(box.clock() * 1000)

    def claim(index: int) -> None:
        for _ in range(30):
            with write_transaction(engine) as conn:
                got = rows.claim(
                    conn, box.tables, worker=f"w{index}", now_ms=now, lease_ms=60_000, limit=3
                )
            claimed[index] += [r.id for r in got]

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    everything = [i for ids in claimed for i in ids]
    assert len(everything) == len(set(everything)) == 60
    assert {r["claimed_by"] for r in box.rows()} == {"w0", "w1", "w2"} or backend == "sqlite"


def test_statuses_are_one_enum() -> None:
    assert [s.value for s in OutboxStatus] == ["pending", "done", "dead"]
    assert (rows.PENDING, rows.DONE, rows.DEAD) == ("pending", "done", "dead")
