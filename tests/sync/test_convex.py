"""The Convex sink against a fake Convex deployment on 127.0.0.1: every applied user change in
version order, never a stale one after a newer one, nothing for a deleted id but its delete,
errors retried then dead-lettered."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine

from clerk_sync.devtools import deleted_user_event, user_event, user_object
from clerk_sync.errors import ConfigError
from clerk_sync.sinks.convex import ConvexSink
from clerk_sync.store import outbox as rows
from tests.helpers.entity_cases import T0
from tests.helpers.fake_convex import DEPLOY_KEY, FakeConvex, fake_convex
from tests.helpers.outbox import Outbox

UPSERT, DELETE = "users:upsertFromClerk", "users:deleteFromClerk"


def _user(user_id: str, at: int, first_name: str = "Ada") -> dict[str, Any]:
    return user_event(
        "user.updated" if at > T0 else "user.created",
        user_object(
            user_id=user_id, created_at=T0, updated_at=at, first_name=first_name, last_name="L"
        ),
    )


def _box(engine: Engine, fake: FakeConvex, **settings: Any) -> Outbox:
    return Outbox(engine, [ConvexSink(fake.url, DEPLOY_KEY).hook()], **settings)


def test_every_applied_change_goes_to_convex_in_order(engine: Engine) -> None:
    with fake_convex() as fake:
        box = _box(engine, fake)
        box.receive(_user("user_cx", T0))
        box.receive(_user("user_cx", T0 + 10, "Grace"))
        box.receive(_user("user_cx", T0 + 5, "Stale"))  # stale: never sent
        box.receive(_user("user_cy", T0, "Yan"))
        box.drain()
        assert sorted(fake.sent()) == [
            (UPSERT, "user_cx"),
            (UPSERT, "user_cx"),
            (UPSERT, "user_cy"),
        ]
        names = [c["args"]["data"]["first_name"] for c in fake.calls]
        assert [n for n in names if n != "Yan"] == ["Ada", "Grace"]  # in version order
        assert fake.calls[0]["format"] == "json"
        assert fake.users["user_cx"] == {"name": "Grace L", "externalId": "user_cx"}
        box.receive(deleted_user_event("user_cx", timestamp=T0 + 20))
        box.drain()
        assert fake.sent()[-1] == (DELETE, "user_cx")
        assert fake.calls[-1]["args"] == {"clerkUserId": "user_cx"}
        assert set(fake.users) == {"user_cy"}


def test_error_replies_and_500s_are_retried(engine: Engine) -> None:
    with fake_convex() as fake:
        box = _box(engine, fake)
        fake.fail = ["error", "500"]
        box.receive(_user("user_cr", T0))
        box.drain()
        [row] = box.rows()
        assert row["status"] == "pending"
        assert "Uncaught Error: no" in row["last_error"]
        box.advance(1)
        box.drain()
        [row] = box.rows()
        assert "answered HTTP 500" in row["last_error"]
        box.advance(2)
        box.drain()
        [row] = box.rows()
        assert (row["status"], row["attempts"]) == ("done", 3)
        assert fake.users["user_cr"]["name"] == "Ada L"


def test_a_dead_upsert_retried_after_the_delete_sends_nothing(engine: Engine) -> None:
    with fake_convex() as fake:
        box = _box(engine, fake, max_attempts=1)
        fake.fail = ["500"]
        box.receive(_user("user_cd", T0))
        box.drain()
        assert box.rows()[0]["status"] == "dead"
        box.receive(deleted_user_event("user_cd", timestamp=T0 + 20))
        box.drain()
        with engine.begin() as conn:
            assert len(rows.retry(conn, box.tables, dead=True, now_ms=int(box.clock() * 1000)))
        box.drain()
        assert fake.sent() == [(UPSERT, "user_cd"), (DELETE, "user_cd")]
        upsert = box.rows()[0]
        assert upsert["status"] == "done"
        assert upsert["note"] is not None


def test_an_older_version_retried_after_a_newer_one_sent_is_skipped(engine: Engine) -> None:
    with fake_convex() as fake:
        box = _box(engine, fake, max_attempts=1)
        fake.fail = ["error"]
        box.receive(_user("user_co", T0))
        box.drain()
        box.receive(_user("user_co", T0 + 10, "Newer"))
        box.drain()
        with engine.begin() as conn:
            rows.retry(conn, box.tables, dead=True, now_ms=int(box.clock() * 1000))
        box.drain()
        assert [c["args"]["data"]["first_name"] for c in fake.calls] == ["Ada", "Newer"]
        assert fake.users["user_co"]["name"] == "Newer L"


def test_a_wrong_deploy_key_is_a_clear_error_on_the_row(engine: Engine) -> None:
    with fake_convex() as fake:
        box = Outbox(engine, [ConvexSink(fake.url, "prod:wrong|key").hook()], max_attempts=1)
        box.receive(_user("user_ck", T0))
        box.drain()
        [row] = box.rows()
        assert row["status"] == "dead"
        assert "answered HTTP 401" in row["last_error"]
        assert "prod:wrong|key" not in row["last_error"]


def test_a_deployment_that_refuses_connections_is_retried(engine: Engine) -> None:
    with fake_convex() as fake:
        gone = fake.url
    box = Outbox(engine, [ConvexSink(gone, DEPLOY_KEY).hook()], max_attempts=2)
    box.receive(_user("user_cc", T0))
    box.drain()
    [row] = box.rows()
    assert row["status"] == "pending"
    assert "ConnectError" in row["last_error"]


@pytest.mark.parametrize(
    ("url", "key", "upsert", "message"),
    [
        ("happy-otter-123.convex.cloud", DEPLOY_KEY, UPSERT, "must be your deployment's URL"),
        ("http://happy-otter-123.convex.cloud", DEPLOY_KEY, UPSERT, "must use https://"),
        ("https://happy-otter-123.convex.cloud", " ", UPSERT, "CONVEX_DEPLOY_KEY is not"),
        ("https://happy-otter-123.convex.cloud", DEPLOY_KEY, "upsertFromClerk", "module:function"),
    ],
)
def test_bad_convex_settings_are_refused(url: str, key: str, upsert: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        ConvexSink(url, key, upsert_function=upsert)
    assert DEPLOY_KEY not in caught.value.detail
