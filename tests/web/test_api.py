"""The read API and the health check, through the ASGI app."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from clerk_sync.devtools import deleted_user_event, user_event, user_object
from clerk_sync.web import create_app
from tests.conftest import USER_KEYS

from .conftest import ADMIN_TOKEN, Post, make_settings

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def test_get_user_returns_the_synced_fields(client: TestClient, post: Post) -> None:
    user = user_object(
        username="ada",
        created_at=1_744_276_393_608,
        updated_at=1_744_276_393_626,
        public_metadata={"plan": "pro"},
    )
    post(user_event("user.created", user))
    response = client.get(f"/api/users/{user['id']}", headers=AUTH)
    assert response.status_code == 200
    body = response.json()
    assert set(body) >= USER_KEYS
    assert body["id"] == user["id"]
    assert body["email"] == "ada.lovelace@example.com"
    assert body["public_metadata"] == {"plan": "pro"}
    assert (body["created_at"], body["updated_at"]) == (1_744_276_393_608, 1_744_276_393_626)


def test_absent_and_deleted_users_are_404(client: TestClient, post: Post) -> None:
    assert client.get("/api/users/user_nobody", headers=AUTH).status_code == 404
    user = user_object()
    post(user_event("user.created", user))
    post(deleted_user_event(user["id"]))
    response = client.get(f"/api/users/{user['id']}", headers=AUTH)
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": ADMIN_TOKEN},
        {"Authorization": f"Basic {ADMIN_TOKEN}"},
    ],
    ids=["none", "wrong-token", "no-scheme", "basic"],
)
@pytest.mark.parametrize("path", ["/api/users", "/api/users/user_x", "/api/events"])
def test_read_api_needs_the_admin_token(
    client: TestClient, headers: dict[str, str], path: str
) -> None:
    response = client.get(path, headers=headers)
    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"


def test_read_api_is_404_when_no_token_is_configured(db_url: str) -> None:
    with TestClient(create_app(make_settings(db_url, admin_token=""))) as client:
        for path in ("/api/users", "/api/users/user_x", "/api/events"):
            assert client.get(path, headers=AUTH).status_code == 404
            assert client.get(path).status_code == 404
        assert client.get("/healthz").status_code == 200


def test_users_paginate_with_a_cursor(client: TestClient, post: Post) -> None:
    ids = set()
    for _ in range(5):
        user = user_object()
        ids.add(user["id"])
        post(user_event("user.created", user))
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = client.get("/api/users", params=params, headers=AUTH).json()
        seen += [u["id"] for u in page["data"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(ids)
    assert pages == 3


def test_events_filter_by_status_and_type_without_payloads(client: TestClient, post: Post) -> None:
    user = user_object(updated_at=2_000)
    post(user_event("user.updated", user), msg_id="msg_1")
    post(user_event("user.created", {**user, "updated_at": 1_000}), msg_id="msg_2")
    post(b"not json", msg_id="msg_3")
    everything = client.get("/api/events", headers=AUTH).json()
    assert [e["svix_id"] for e in everything["data"]] == ["msg_3", "msg_2", "msg_1"]
    assert all("payload" not in e for e in everything["data"])
    stale = client.get("/api/events", params={"status": "stale"}, headers=AUTH).json()["data"]
    assert [e["svix_id"] for e in stale] == ["msg_2"]
    created = client.get("/api/events", params={"type": "user.created"}, headers=AUTH).json()
    assert [e["svix_id"] for e in created["data"]] == ["msg_2"]
    first = client.get("/api/events", params={"limit": "1"}, headers=AUTH).json()
    rest = client.get(
        "/api/events", params={"limit": "5", "cursor": first["next_cursor"]}, headers=AUTH
    ).json()
    assert [e["svix_id"] for e in rest["data"]] == ["msg_2", "msg_1"]
    assert rest["next_cursor"] is None


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/api/events", {"status": "done"}),
        ("/api/events", {"limit": "0"}),
        ("/api/users", {"limit": "501"}),
        ("/api/users", {"limit": "ten"}),
        ("/api/events", {"cursor": "abc"}),
    ],
)
def test_bad_query_parameters_are_400(
    client: TestClient, path: str, params: dict[str, str]
) -> None:
    response = client.get(path, params=params, headers=AUTH)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_parameter"


def test_healthz(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
