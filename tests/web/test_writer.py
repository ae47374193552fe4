"""The writer process (``WRITER=process``, the default): the app's database work in a child.

Driven in-process through the real app, on SQLite and PostgreSQL; every end-to-end test and
proof runs it too, through ``clerk-sync serve``.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, select
from starlette.testclient import TestClient

from clerk_sync.devtools import deleted_user_event, encode, user_event, user_object
from clerk_sync.errors import StoreUnavailable
from clerk_sync.receiver import Delivery
from clerk_sync.web import WEBHOOK_PATH, create_app
from clerk_sync.writer import WriterConfig, WriterProcess, _frame, _Frames
from tests.conftest import signed
from tests.helpers.tables import events_table, users_table

from .conftest import make_settings


def process_app(db_url: str, **settings: Any) -> TestClient:
    return TestClient(create_app(make_settings(db_url, writer="process", **settings)))


def child_of(client: TestClient) -> WriterProcess:
    committer = client.app.webhook.committer  # type: ignore[attr-defined]
    assert isinstance(committer, WriterProcess)
    return committer


def post(client: TestClient, event: dict[str, Any]) -> Any:
    body, headers = signed(event)
    return client.post(WEBHOOK_PATH, content=body, headers=headers)


def stored_names(observer: Engine) -> dict[str, str | None]:
    with observer.connect() as conn:
        rows = conn.execute(select(users_table.c.id, users_table.c.first_name))
        return {row.id: row.first_name for row in rows}


def test_frames_survive_any_split() -> None:
    payloads = [(n, "msg_" + "x" * n, b"\x00\xff" * n, None) for n in range(40)]
    stream = b"".join(_frame(p) for p in payloads)
    for piece in (1, 3, 7, 4096):
        frames = _Frames()
        out: list[Any] = []
        for start in range(0, len(stream), piece):
            out += frames.feed(stream[start : start + piece])
        assert out == payloads


def test_deliveries_are_committed_by_the_child_before_the_answer(
    db_url: str, observer: Engine
) -> None:
    user = user_object(first_name="Ada")
    with process_app(db_url) as client:
        child = child_of(client)
        assert child.proc is not None
        assert child.proc.pid != os.getpid()
        answer = post(client, user_event("user.created", user))
        assert answer.status_code == 200, answer.text
        assert answer.json()["status"] == "processed"
        assert stored_names(observer) == {user["id"]: "Ada"}  # before the app stops
        again = post(client, user_event("user.created", {**user, "first_name": "Augusta"}))
        assert again.json()["status"] == "stale"  # same updated_at and action: not newer
        assert post(client, deleted_user_event(user["id"])).json()["status"] == "processed"
    assert stored_names(observer) == {}


def test_many_concurrent_deliveries_are_batched_and_all_answered(
    db_url: str, observer: Engine
) -> None:
    users = [user_object(first_name=f"U{n}") for n in range(300)]
    with process_app(db_url) as client:
        child = child_of(client)

        async def burst() -> list[Any]:
            bodies = [encode(user_event("user.created", u)) for u in users]
            return await asyncio.gather(
                *(child.submit(Delivery(f"msg_burst_{n}", b)) for n, b in enumerate(bodies))
            )

        assert client.portal is not None
        outcomes = client.portal.call(burst)
    assert [o.status for o in outcomes] == ["processed"] * len(users)
    assert len(stored_names(observer)) == len(users)


def test_stopping_with_deliveries_in_flight_answers_every_one(
    db_url: str, observer: Engine
) -> None:
    """``stop()`` pushes what the loop had not yet sent and reads answers at the same time, so
    a shutdown under load neither deadlocks on a full pipe nor drops a committed answer."""
    users = [user_object() for _ in range(400)]
    with process_app(db_url) as client:
        child = child_of(client)

        async def submit_then_stop() -> list[Any]:
            tasks = [
                asyncio.ensure_future(
                    child.submit(Delivery(f"msg_stop_{n}", encode(user_event("user.created", u))))
                )
                for n, u in enumerate(users)
            ]
            await asyncio.sleep(0)  # every submit has queued its frame; none is answered yet
            child.stop()
            return await asyncio.gather(*tasks, return_exceptions=True)

        assert client.portal is not None
        results = client.portal.call(submit_then_stop)
    assert [getattr(r, "status", r) for r in results] == ["processed"] * len(users)
    assert len(stored_names(observer)) == len(users)


def test_a_killed_child_fails_its_deliveries_with_503_then_is_replaced(
    db_url: str, observer: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    with process_app(db_url) as client:
        child = child_of(client)
        assert post(client, user_event("user.created", user_object())).status_code == 200
        first = child.proc
        assert first is not None
        os.kill(first.pid, signal.SIGKILL)
        first.wait(10)
        statuses = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            answer = post(client, user_event("user.created", user_object()))
            statuses.append(answer.status_code)
            if answer.status_code == 200:
                break
            assert answer.status_code == 503, answer.text
            assert answer.json()["error"] == "store_unavailable"
            time.sleep(0.05)
        assert statuses[-1] == 200, statuses
        assert child.proc is not None
        assert child.proc.pid != first.pid
    assert "writer process exited" in caplog.text
    with observer.connect() as conn:
        statuses_logged = conn.execute(select(events_table.c.status)).scalars().all()
    assert statuses_logged == ["processed", "processed"]  # no 503'd delivery was written


def test_stopping_the_app_waits_for_the_child(db_url: str) -> None:
    with process_app(db_url) as client:
        child = child_of(client)
        assert post(client, user_event("user.created", user_object())).status_code == 200
        proc = child.proc
    assert proc is not None
    assert proc.returncode == 0


def test_cleanup_hooks_named_in_settings_run_in_the_child(
    db_url: str, observer: Engine, tmp_path: Any
) -> None:
    user = user_object()
    hooks = "tests.web.writer_hooks:refuse_to_delete"
    with process_app(db_url, on_user_deleted=hooks) as client:
        assert post(client, user_event("user.created", user)).status_code == 200
        refused = post(client, deleted_user_event(user["id"]))
    assert refused.status_code == 503  # the hook raised inside the child's transaction
    assert set(stored_names(observer)) == {user["id"]}


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def test_submit_before_start_is_a_programming_error(loop: asyncio.AbstractEventLoop) -> None:
    writer = WriterProcess(WriterConfig(database_url="sqlite://"))
    with pytest.raises(RuntimeError, match="start"):
        loop.run_until_complete(writer.submit(Delivery("msg_x", b"{}")))


def test_a_child_that_cannot_start_fails_start(
    loop: asyncio.AbstractEventLoop, tmp_path: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    """E.g. a cleanup hook the child cannot import: the server's start fails, with the reason."""
    config = WriterConfig(
        database_url=f"sqlite:///{tmp_path / 'x.db'}", hook_paths=["no_such_module_here:hook"]
    )
    writer = WriterProcess(config)
    with pytest.raises(StoreUnavailable, match="exited at start"):
        loop.run_until_complete(writer.start())
    writer.stop()
    err = capfd.readouterr().err
    assert "no_such_module_here" in err
    assert "Traceback" not in err


def _wait_for(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        time.sleep(0.05)


def test_a_stopped_child_is_found_answered_503_within_the_deadline_and_replaced(
    db_url: str, observer: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    """SIGSTOP: the child is alive, its pipe open, and it answers nothing. ``/healthz`` finds
    it with a ping, deliveries get 503 by the deadline, and a new child serves new ones."""
    timeout = 1.0
    slack = 1.0  # the event loop's latency on a busy test machine
    with process_app(db_url, delivery_timeout_seconds=timeout) as client:
        child = child_of(client)
        stopped = child.proc
        assert stopped is not None
        assert client.get("/healthz").status_code == 200
        os.kill(stopped.pid, signal.SIGSTOP)
        try:
            started = time.monotonic()
            health = client.get("/healthz")
            assert time.monotonic() - started < timeout + slack
            assert health.status_code == 503, health.text
            assert health.json()["error"] == "store_unavailable"
            assert health.json()["check"] == "writer"
            assert "answered nothing" in health.json()["detail"]

            body, headers = signed(user_event("user.created", user_object()))
            started = time.monotonic()
            answer = client.post(WEBHOOK_PATH, content=body, headers=headers)
            assert time.monotonic() - started < timeout + slack
            assert answer.status_code == 503, answer.text
            assert answer.json()["error"] == "store_unavailable"

            stopped.wait(timeout + 5)  # killed by the watchdog, not by us
            assert stopped.returncode == -signal.SIGKILL
            _wait_for(lambda: client.get("/healthz").status_code == 200, 30, "a new child")
            assert child.proc is not None
            assert child.proc.pid != stopped.pid
            user = user_object()
            answer = post(client, user_event("user.created", user))
            assert answer.status_code == 200, answer.text
            assert answer.json()["status"] == "processed"
        finally:
            if stopped.poll() is None:
                os.kill(stopped.pid, signal.SIGKILL)
                stopped.wait(10)
    assert "made no progress" in caplog.text
    assert set(stored_names(observer)) == {user["id"]}  # the 503'd delivery was never applied


def test_a_busy_child_is_not_mistaken_for_a_stuck_one(db_url: str, observer: Engine) -> None:
    """A backlog is progress, batch by batch: the child is not killed and ``/healthz`` stays
    200 while it drains. A delivery that waits past the deadline is answered 503 but stays
    queued and is committed all the same (Svix's retry of it will be a duplicate)."""
    users = [user_object() for _ in range(2000)]
    with process_app(db_url, delivery_timeout_seconds=1) as client:
        child = child_of(client)
        first = child.proc

        async def flood_and_poll() -> tuple[list[Any], list[str | None]]:
            tasks = [
                asyncio.ensure_future(
                    child.submit(Delivery(f"msg_busy_{n}", encode(user_event("user.created", u))))
                )
                for n, u in enumerate(users)
            ]
            health = []
            while not all(t.done() for t in tasks):
                health.append(await child.health())
                await asyncio.sleep(0.02)
            return await asyncio.gather(*tasks, return_exceptions=True), health

        assert client.portal is not None
        results, health = client.portal.call(flood_and_poll)
        _wait_for(lambda: len(stored_names(observer)) == len(users), 20, "every one committed")
        assert child.proc is first
    assert set(health) == {None}
    for result in results:
        if isinstance(result, StoreUnavailable):
            assert "DELIVERY_TIMEOUT_SECONDS" in result.detail
        else:
            assert result.status == "processed"
