"""``POST /api/events/{svix_id}/replay`` through the real ASGI app on both databases: a failed
delivery decoded again through the writer, any other answered duplicate, the refusals."""

from __future__ import annotations

import secrets
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine, select
from sqlalchemy.engine import make_url
from starlette.testclient import TestClient

from clerk_sync import tables
from clerk_sync.config import normalize_database_url
from clerk_sync.devtools import deleted_user_event, encode, user_event, user_object
from clerk_sync.retention import DAY_MS, prune
from clerk_sync.store import make_engine
from clerk_sync.web import create_app
from tests.conftest import PG_ADMIN_URL, migrated_sqlite
from tests.helpers.entity_cases import log_row
from tests.helpers.event_log import record_failed
from tests.helpers.tables import users_table
from tests.proofs.hypothesis_settings import proof_settings

from .conftest import ADMIN_TOKEN, Post, make_settings

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
OUTCOME_KEYS = {"svix_id", "status", "duplicate", "type", "subject_id"}


def _user(engine: Engine, user_id: str) -> dict[str, Any] | None:
    with engine.connect() as conn:
        row = conn.execute(select(users_table).where(users_table.c.id == user_id)).first()
    return dict(row._mapping) if row else None


def _replay(client: TestClient, svix_id: str, **kwargs: Any) -> Any:
    headers = kwargs.pop("headers", AUTH)
    return client.post(f"/api/events/{quote(svix_id, safe='')}/replay", headers=headers, **kwargs)


def test_a_failed_delivery_is_decoded_again_then_a_duplicate(
    client: TestClient, observer: Engine, engine: Engine
) -> None:
    user = user_object()
    record_failed(engine, "msg_failed", encode(user_event("user.created", user)))

    first = _replay(client, "msg_failed")
    assert first.status_code == 200, first.text
    assert first.json() == {
        "svix_id": "msg_failed",
        "status": "processed",
        "duplicate": False,
        "type": "user.created",
        "subject_id": user["id"],
    }
    stored = _user(observer, user["id"])
    assert stored is not None  # committed: a second connection sees it
    assert log_row(observer, "msg_failed")["status"] == "processed"

    again = _replay(client, "msg_failed")
    assert again.status_code == 200, again.text
    assert again.json() == {**first.json(), "duplicate": True}
    assert _user(observer, user["id"]) == stored  # nothing applied twice
    row = log_row(observer, "msg_failed")
    assert (row["delivery_count"], row["status"], row["error"]) == (3, "processed", None)


def test_a_processed_delivery_is_answered_duplicate(
    client: TestClient, post: Post, observer: Engine
) -> None:
    user = user_object()
    assert post(user_event("user.created", user), msg_id="msg_once").status_code == 200
    stored = _user(observer, user["id"])
    response = _replay(client, "msg_once")
    assert response.status_code == 200, response.text
    assert response.json()["duplicate"] is True
    assert response.json()["status"] == "processed"
    assert set(response.json()) == OUTCOME_KEYS
    assert _user(observer, user["id"]) == stored


def test_a_failed_delivery_that_still_fails_says_why(
    client: TestClient, post: Post, observer: Engine
) -> None:
    assert post(b"<html>not an event</html>", msg_id="msg_html").status_code == 422
    response = _replay(client, "msg_html")
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["status"], body["duplicate"]) == ("failed", False)
    assert "not JSON" in body["reason"]
    assert log_row(observer, "msg_html")["delivery_count"] == 2


def test_a_payload_that_is_gone_is_409(
    client: TestClient, post: Post, engine: Engine, observer: Engine
) -> None:
    user = user_object()
    post(user_event("user.created", user), msg_id="msg_erased")
    post(deleted_user_event(user["id"]), msg_id="msg_deletion")
    old = int(time.time() * 1000) - 40 * DAY_MS
    record_failed(engine, "msg_pruned", encode(user_event("user.created", user_object())), old)
    assert prune(engine, tables(), old + 1) == 1

    for svix_id, why in [("msg_erased", "user it names was deleted"), ("msg_pruned", "pruned")]:
        response = _replay(client, svix_id)
        assert response.status_code == 409, response.text
        body = response.json()
        assert body["error"] == "payload_gone"
        assert why in body["detail"]
        assert "Clerk Dashboard" in body["detail"]
        assert log_row(observer, svix_id)["delivery_count"] == 1  # nothing was replayed


@pytest.mark.parametrize(
    "raw",
    [
        "/api/events/msg_unknown/replay",
        "/api/events/msg%00x/replay",
        "/api/events/" + "m" * 256 + "/replay",
        "/api/events//replay",
        "/api/events/a/b/replay",
    ],
    ids=["unknown", "nul", "over-long", "empty", "two-segments"],
)
def test_an_id_not_in_the_log_is_404(client: TestClient, raw: str) -> None:
    response = client.post(raw, headers=AUTH)
    assert response.status_code == 404, response.text
    body = response.json()
    assert body["error"] == "not_found"
    assert len(body["detail"]) < 300  # an over-long id is not echoed whole


def test_an_id_with_an_encoded_slash_is_one_id(client: TestClient, engine: Engine) -> None:
    record_failed(engine, "msg/odd", encode(user_event("user.created", user_object())))
    response = client.post("/api/events/msg%2Fodd/replay", headers=AUTH)
    assert response.status_code == 200, response.text
    assert response.json()["svix_id"] == "msg/odd"


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": ADMIN_TOKEN}],
    ids=["none", "wrong-token", "no-scheme"],
)
def test_replay_needs_the_admin_token(
    client: TestClient, engine: Engine, observer: Engine, headers: dict[str, str]
) -> None:
    record_failed(engine, "msg_failed", encode(user_event("user.created", user_object())))
    response = _replay(client, "msg_failed", headers=headers)
    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"
    assert log_row(observer, "msg_failed")["delivery_count"] == 1


def test_replay_is_404_when_no_token_is_configured(db_url: str, engine: Engine) -> None:
    record_failed(engine, "msg_failed", encode(user_event("user.created", user_object())))
    with TestClient(create_app(make_settings(db_url, admin_token=""))) as client:
        assert _replay(client, "msg_failed").status_code == 404
        assert _replay(client, "msg_failed", headers={}).status_code == 404
    assert log_row(engine, "msg_failed")["status"] == "failed"


def test_replay_takes_no_query_parameters(client: TestClient, engine: Engine) -> None:
    record_failed(engine, "msg_failed", encode(user_event("user.created", user_object())))
    response = client.post("/api/events/msg_failed/replay?dry_run=1", headers=AUTH)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_parameter"
    assert "dry_run" in response.json()["detail"]
    assert log_row(engine, "msg_failed")["status"] == "failed"


def test_replay_goes_through_the_writer_process(db_url: str, engine: Engine) -> None:
    user = user_object()
    record_failed(engine, "msg_failed", encode(user_event("user.created", user)))
    with TestClient(create_app(make_settings(db_url, writer="process"))) as client:
        response = _replay(client, "msg_failed")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "processed"
    assert _user(engine, user["id"]) is not None


@pytest.fixture
def fuzz_client(db_url: str) -> Iterator[TestClient]:
    with TestClient(create_app(make_settings(db_url, rate_limit_api="off"))) as c:
        yield c


@proof_settings(max_examples=60)
@given(svix_id=st.text(max_size=300))
def test_no_id_answers_500(fuzz_client: TestClient, svix_id: str) -> None:
    response = fuzz_client.post(f"/api/events/{quote(svix_id, safe='')}/replay", headers=AUTH)
    assert response.status_code == 404, response.text


def test_a_locked_sqlite_database_is_503(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    url = migrated_sqlite(path)
    engine = make_engine(url)
    record_failed(engine, "msg_failed", encode(user_event("user.created", user_object())))
    engine.dispose()
    with TestClient(create_app(make_settings(f"{url}?timeout=1"))) as client:
        holder = sqlite3.connect(path, isolation_level=None)
        try:
            holder.execute("BEGIN IMMEDIATE")
            response = _replay(client, "msg_failed")
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert response.status_code == 503, response.text
        assert response.json()["error"] == "store_unavailable"
        assert _replay(client, "msg_failed").json()["status"] == "processed"


def test_a_database_gone_is_503(pg_database: str) -> None:
    admin = make_url(normalize_database_url(PG_ADMIN_URL)).set(drivername="postgresql")
    conninfo = admin.render_as_string(hide_password=False)
    name = f"clerk_sync_doomed_{secrets.token_hex(4)}"
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = admin.set(database=name).render_as_string(hide_password=False)
    try:
        with TestClient(create_app(make_settings(url))) as client:
            with psycopg.connect(conninfo, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
            response = _replay(client, "msg_any")
            assert response.status_code == 503, response.text
            assert response.json()["error"] == "store_unavailable"
    finally:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
