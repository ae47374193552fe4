"""``POST /api/webhooks/clerk`` through the ASGI app: every bad input gets a clear answer and
nothing reaches the users table; every accepted delivery is committed before the 2xx."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from starlette.testclient import TestClient

from clerk_sync.devtools import deleted_user_event, encode, sign_headers, user_event, user_object
from clerk_sync.web import WEBHOOK_PATH, create_app
from tests.conftest import OTHER_SECRET, SECRET, signed
from tests.helpers.tables import events_table, users_table

from .conftest import Post, make_settings


def count(engine: Engine, table: Any, **where: Any) -> int:
    stmt = select(func.count()).select_from(table)
    for column, value in where.items():
        stmt = stmt.where(table.c[column] == value)
    with engine.connect() as conn:
        return int(conn.execute(stmt).scalar_one())


def stored_user(engine: Engine, user_id: str) -> dict[str, Any] | None:
    with engine.connect() as conn:
        row = conn.execute(select(users_table).where(users_table.c.id == user_id)).first()
    return dict(row._mapping) if row else None


def assert_refused(response: Any, status: int, code: str, observer: Engine) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == code
    assert isinstance(body["detail"], str)
    assert body["detail"].endswith(".")
    assert SECRET not in response.text
    assert SECRET[6:] not in response.text
    assert "webhook-delivery" not in response.headers
    assert count(observer, users_table) == 0
    assert count(observer, events_table) == 0


def created() -> dict[str, Any]:
    return user_event("user.created", user_object(updated_at=1_000))


# -- accepted ----------------------------------------------------------------------------------


def test_created_is_committed_before_the_answer(post: Post, observer: Engine) -> None:
    event = created()
    response = post(event, msg_id="msg_ok")
    assert response.status_code == 200
    assert response.json() == {
        "svix_id": "msg_ok",
        "status": "processed",
        "duplicate": False,
        "type": "user.created",
        "subject_id": event["data"]["id"],
    }
    row = stored_user(observer, event["data"]["id"])
    assert row is not None
    assert row["email"] == "ada.lovelace@example.com"


def test_the_same_delivery_twice(post: Post, observer: Engine) -> None:
    body, headers = signed(created(), msg_id="msg_twice")
    first = post(body, headers=headers)
    second = post(body, headers=headers)
    assert (first.status_code, second.status_code) == (200, 200)
    assert (first.json()["duplicate"], second.json()["duplicate"]) == (False, True)
    assert count(observer, users_table) == 1
    assert count(observer, events_table, svix_id="msg_twice", delivery_count=2) == 1


def test_unbranded_webhook_headers_are_accepted(post: Post, observer: Engine) -> None:
    body, headers = signed(created())
    unbranded = {k.replace("svix-", "webhook-"): v for k, v in headers.items()}
    assert post(body, headers=unbranded).status_code == 200
    assert count(observer, users_table) == 1


def test_two_signatures_where_only_the_second_is_valid(post: Post, observer: Engine) -> None:
    body, headers = signed(created())
    headers["svix-signature"] = (
        "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= " + headers["svix-signature"]
    )
    assert post(body, headers=headers).status_code == 200


def test_rotated_secret_both_accepted(db_url: str, observer: Engine) -> None:
    settings = make_settings(db_url, clerk_webhook_secret=f"{SECRET}, {OTHER_SECRET}")
    with TestClient(create_app(settings)) as client:
        for secret in (SECRET, OTHER_SECRET):
            body, headers = signed(created(), secret=secret)
            assert client.post(WEBHOOK_PATH, content=body, headers=headers).status_code == 200
    assert count(observer, users_table) == 2


def test_unknown_event_type_is_acknowledged_and_logged(post: Post, observer: Engine) -> None:
    event = {"type": "subscription.pastDue", "object": "event", "data": {"id": "csub_1"}}
    response = post(event, msg_id="msg_org")
    assert response.status_code == 200
    assert response.json()["status"] == "ignored"
    assert count(observer, events_table, svix_id="msg_org", status="ignored") == 1


def test_update_for_a_never_seen_user_creates_it(post: Post, observer: Engine) -> None:
    user = user_object(updated_at=5_000)
    assert post(user_event("user.updated", user)).json()["status"] == "processed"
    assert stored_user(observer, user["id"]) is not None


def test_deleted_then_updated_stays_deleted(post: Post, observer: Engine) -> None:
    user = user_object(updated_at=1_000)
    post(user_event("user.created", user))
    assert post(deleted_user_event(user["id"])).status_code == 200
    late = post(user_event("user.updated", {**user, "updated_at": 9_000}))
    assert late.status_code == 200
    assert late.json()["status"] == "stale"
    assert stored_user(observer, user["id"]) is None


def test_created_after_a_newer_update_is_stale(post: Post, observer: Engine) -> None:
    user = user_object(updated_at=1_000)
    post(user_event("user.updated", {**user, "first_name": "New", "updated_at": 2_000}))
    response = post(user_event("user.created", user))
    assert response.status_code == 200
    assert response.json()["status"] == "stale"
    assert stored_user(observer, user["id"])["first_name"] == "New"  # type: ignore[index]


def test_emoji_and_right_to_left_names_are_byte_exact(post: Post, observer: Engine) -> None:
    user = user_object(first_name="Zoë 👩🏽‍💻", last_name="עִבְרִית مرحبا")
    assert post(user_event("user.created", user)).status_code == 200
    row = stored_user(observer, user["id"])
    assert row is not None
    assert row["first_name"].encode() == "Zoë 👩🏽‍💻".encode()
    assert row["last_name"].encode() == "עִבְרִית مرحبا".encode()


def test_phone_only_user(post: Post, observer: Engine) -> None:
    user = user_object(email=None, phone="+447700900123")
    assert post(user_event("user.created", user)).status_code == 200
    row = stored_user(observer, user["id"])
    assert row is not None
    assert (row["email"], row["phone_number"]) == (None, "+447700900123")


# -- authentic but unusable: recorded as failed, Svix told to stop ------------------------------


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"<html>not json</html>", "payload_not_json"),
        (
            encode({"type": "user.created", "object": "event", "data": {"first_name": "x"}}),
            "payload_invalid",
        ),
    ],
    ids=["non-json", "no-data-id"],
)
def test_verified_but_unusable_is_failed_with_abort_header(
    post: Post, observer: Engine, body: bytes, code: str
) -> None:
    response = post(body, msg_id="msg_unusable")
    assert response.status_code == 422
    assert response.headers["webhook-delivery"] == "abort-message"
    assert response.json()["error"] == code
    assert response.json()["detail"]
    assert count(observer, events_table, svix_id="msg_unusable", status="failed") == 1
    assert count(observer, users_table) == 0


# -- refused before anything is written ---------------------------------------------------------


@pytest.mark.parametrize("missing", ["svix-id", "svix-timestamp", "svix-signature"])
def test_missing_header(post: Post, observer: Engine, missing: str) -> None:
    body, headers = signed(created())
    del headers[missing]
    response = post(body, headers=headers)
    assert_refused(response, 400, "missing_header", observer)
    assert missing in response.json()["detail"]


@pytest.mark.parametrize(
    ("header", "value"),
    [("svix-timestamp", "hello"), ("svix-timestamp", "1.5e9"), ("svix-signature", "garbage")],
)
def test_garbled_header(post: Post, observer: Engine, header: str, value: str) -> None:
    body, headers = signed(created())
    headers[header] = value
    assert_refused(post(body, headers=headers), 400, "malformed_header", observer)


def test_wrong_secret(post: Post, observer: Engine) -> None:
    assert_refused(post(created(), secret=OTHER_SECRET), 401, "signature_mismatch", observer)


def test_one_byte_of_the_body_changed(post: Post, observer: Engine) -> None:
    body, headers = signed(created())
    tampered = body.replace(b"Ada", b"Adb", 1)
    assert tampered != body
    assert_refused(post(tampered, headers=headers), 401, "signature_mismatch", observer)


def test_json_reserialized_with_other_whitespace(post: Post, observer: Engine) -> None:
    body, headers = signed(created())
    reserialized = json.dumps(json.loads(body), indent=2).encode()
    assert_refused(post(reserialized, headers=headers), 401, "signature_mismatch", observer)


@pytest.mark.parametrize("offset", [-360, 360], ids=["6-min-old", "6-min-ahead"])
def test_timestamp_outside_tolerance(post: Post, observer: Engine, offset: int) -> None:
    response = post(created(), timestamp=int(time.time()) + offset)
    assert_refused(response, 401, "timestamp_out_of_tolerance", observer)
    assert ("past" if offset < 0 else "future") in response.json()["detail"]


def test_tolerance_is_configurable(db_url: str, observer: Engine) -> None:
    settings = make_settings(db_url, webhook_tolerance_seconds=900)
    with TestClient(create_app(settings)) as client:
        body, headers = signed(created(), timestamp=int(time.time()) - 600)
        assert client.post(WEBHOOK_PATH, content=body, headers=headers).status_code == 200


def test_replay_with_a_new_id_but_the_old_signature(post: Post, observer: Engine) -> None:
    body, headers = signed(created(), msg_id="msg_original")
    headers["svix-id"] = "msg_forged"
    assert_refused(post(body, headers=headers), 401, "signature_mismatch", observer)


def test_five_mebibyte_body_with_content_length(client: TestClient, observer: Engine) -> None:
    body = b'{"type":"user.created","data":{"pad":"' + b"x" * (5 * 1024 * 1024) + b'"}}'
    headers = sign_headers(SECRET, body)
    response = client.post(WEBHOOK_PATH, content=body, headers=headers)
    assert_refused(response, 413, "payload_too_large", observer)


def test_five_mebibyte_body_streamed_without_length(client: TestClient, observer: Engine) -> None:
    chunk = b"x" * 65536
    sent = 0

    def stream() -> Any:
        nonlocal sent
        for _ in range(80):  # 5 MiB
            sent += 1
            yield chunk

    headers = sign_headers(SECRET, b"{}")
    response = client.post(WEBHOOK_PATH, content=stream(), headers=headers)
    assert_refused(response, 413, "payload_too_large", observer)


def test_body_limit_is_configurable(db_url: str, observer: Engine) -> None:
    with TestClient(create_app(make_settings(db_url, max_body_bytes=2048))) as client:
        event = created()
        event["data"]["public_metadata"] = {"bio": "x" * 4096}
        body, headers = signed(event)
        response = client.post(WEBHOOK_PATH, content=body, headers=headers)
    assert_refused(response, 413, "payload_too_large", observer)
