"""End to end: a real ``clerk-sync serve`` process, svix-signed deliveries over HTTP, and the
results checked through a second engine (what it sees has been committed), on both backends."""

from __future__ import annotations

import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, func, select

from clerk_sync.devtools import deleted_user_event, encode, user_event, user_object
from tests.conftest import OTHER_SECRET, SECRET, USER_KEYS, signed
from tests.e2e.server import ServerProcess
from tests.helpers.tables import events_table, tombstones_table, users_table

ADMIN_TOKEN = "e2e-admin-token-0123456789"
FIVE_MIB = 5 * 1024 * 1024


@pytest.fixture
def server(db_url: str, tmp_path: Path) -> Iterator[ServerProcess]:
    with ServerProcess(
        database_url=db_url, secret=SECRET, admin_token=ADMIN_TOKEN, workdir=tmp_path / "srv"
    ) as proc:
        yield proc


@pytest.fixture
def dotenv_server(db_url: str, tmp_path: Path) -> Iterator[ServerProcess]:
    """The same, but told its secret, database and token only through ``.env.local``."""
    proc = ServerProcess(
        database_url=db_url,
        secret=SECRET,
        admin_token=ADMIN_TOKEN,
        workdir=tmp_path / "srv",
        via_dotenv_local=True,
    )
    assert not {"CLERK_WEBHOOK_SECRET", "DATABASE_URL", "ADMIN_TOKEN"} & set(proc.env)
    with proc:
        yield proc


def _user_row(observer: Engine, user_id: str) -> dict[str, Any] | None:
    with observer.connect() as conn:
        row = conn.execute(select(users_table).where(users_table.c.id == user_id)).first()
    return dict(row._mapping) if row else None


def _event_row(observer: Engine, svix_id: str) -> dict[str, Any] | None:
    with observer.connect() as conn:
        row = conn.execute(select(events_table).where(events_table.c.svix_id == svix_id)).first()
    return dict(row._mapping) if row else None


def _count(observer: Engine, table: Any) -> int:
    with observer.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def _deliver(server: ServerProcess, event: dict[str, Any] | bytes) -> tuple[str, httpx.Response]:
    body, headers = signed(event)
    return headers["svix-id"], server.post(body, headers)


def _ok(response: httpx.Response, status: str, *, duplicate: bool = False) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    assert answer["status"] == status, answer
    assert answer["duplicate"] is duplicate, answer
    return answer


def test_user_lifecycle_then_sigkill(dotenv_server: ServerProcess, observer: Engine) -> None:
    server = dotenv_server
    t0 = int(time.time() * 1000) - 60_000
    created = user_object(created_at=t0, updated_at=t0, email="ada@example.com")
    uid = created["id"]

    body, headers = signed(user_event("user.created", created))
    created_id = headers["svix-id"]
    _ok(server.post(body, headers), "processed")
    row = _user_row(observer, uid)
    assert row is not None
    assert (row["email"], row["first_name"], row["last_name"]) == (
        "ada@example.com",
        "Ada",
        "Lovelace",
    )
    assert row["updated_at"] == t0

    updated = user_object(
        user_id=uid, created_at=t0, updated_at=t0 + 1_000, email="ada@example.com"
    )
    updated["first_name"] = "Augusta"
    upd_body, upd_headers = signed(user_event("user.updated", updated))
    _ok(server.post(upd_body, upd_headers), "processed")
    row = _user_row(observer, uid)
    assert row is not None
    assert (row["first_name"], row["updated_at"]) == ("Augusta", t0 + 1_000)

    # Svix retries the very same message: same svix-id, same bytes.
    _ok(server.post(upd_body, upd_headers), "processed", duplicate=True)
    event = _event_row(observer, upd_headers["svix-id"])
    assert event is not None
    assert (event["delivery_count"], event["status"]) == (2, "processed")

    # The user.created arrives (as a new message) after the update: it must not win.
    stale_id, response = _deliver(server, body)
    answer = _ok(response, "stale")
    assert "not newer" in answer["reason"]
    row = _user_row(observer, uid)
    assert row is not None
    assert (row["first_name"], row["updated_at"]) == ("Augusta", t0 + 1_000)

    _, response = _deliver(server, deleted_user_event(uid))
    _ok(response, "processed")
    assert _user_row(observer, uid) is None
    with observer.connect() as conn:
        tomb = conn.execute(select(tombstones_table).where(tombstones_table.c.id == uid)).first()
    assert tomb is not None
    assert tomb.kind == "user"

    late = user_object(user_id=uid, created_at=t0, updated_at=t0 + 5_000)
    _, response = _deliver(server, user_event("user.updated", late))
    _ok(response, "stale")
    assert _user_row(observer, uid) is None
    assert _count(observer, users_table) == 0

    # The log: one line per delivery with svix id, type, user id, outcome and duration.
    log = server.stderr_text()
    lines = [line for line in log.splitlines() if created_id in line]
    assert len(lines) == 1, log
    assert "user.created" in lines[0]
    assert uid in lines[0]
    assert " processed " in lines[0]
    assert re.search(r"\d+(\.\d+)?ms", lines[0]), lines[0]
    dup = [line for line in log.splitlines() if upd_headers["svix-id"] in line]
    assert len(dup) == 2, log
    assert "processed (duplicate)" in dup[1]
    assert any(stale_id in line and " stale " in line for line in log.splitlines()), log
    assert f"http://127.0.0.1:{server.port}/api/webhooks/clerk" in log
    assert SECRET not in log
    assert SECRET.removeprefix("whsec_") not in log

    # A 2xx means committed: SIGKILL right after the answer loses nothing.
    survivor = user_object(email="durable@example.com")
    survivor_id, response = _deliver(server, user_event("user.created", survivor))
    _ok(response, "processed")
    assert server.kill() == -signal.SIGKILL
    row = _user_row(observer, survivor["id"])
    assert row is not None
    assert row["email"] == "durable@example.com"
    event = _event_row(observer, survivor_id)
    assert event is not None
    assert event["status"] == "processed"


def test_refusals(server: ServerProcess, observer: Engine) -> None:
    user = user_object()
    body, headers = signed(user_event("user.created", user), secret=OTHER_SECRET)
    response = server.post(body, headers)
    assert response.status_code == 401, response.text
    assert response.headers["content-type"].startswith("application/json")
    answer = response.json()
    assert set(answer) == {"error", "detail"}
    assert answer["error"] == "signature_mismatch"
    assert "CLERK_WEBHOOK_SECRET" in answer["detail"]

    response = server.post(encode(user_event("user.created", user)), {})
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "missing_header"

    big = b'{"type":"user.created","data":{"pad":"' + b"a" * FIVE_MIB + b'"}}'
    big_body, big_headers = signed(big)
    response = server.post(big_body, big_headers)  # bytes: sent with Content-Length
    assert response.status_code == 413, response.text
    assert response.json()["error"] == "payload_too_large"

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(big_body), 64 * 1024):
            yield big_body[start : start + 64 * 1024]

    request = server.client.build_request(
        "POST", "/api/webhooks/clerk", content=chunks(), headers=big_headers
    )
    assert request.headers.get("transfer-encoding") == "chunked"
    assert "content-length" not in request.headers
    response = server.client.send(request)
    assert response.status_code == 413, response.text
    assert response.json()["error"] == "payload_too_large"

    assert _count(observer, users_table) == 0
    assert _count(observer, events_table) == 0

    # Authentic, but never applicable: recorded as failed, and Svix is told to stop retrying.
    svix_id, response = _deliver(server, b"this is not JSON")
    assert response.status_code == 422, response.text
    assert response.headers["webhook-delivery"] == "abort-message"
    assert response.json()["error"] == "payload_not_json"
    event = _event_row(observer, svix_id)
    assert event is not None
    assert event["status"] == "failed"
    assert "JSON" in event["error"]
    assert _count(observer, events_table) == 1
    assert _count(observer, users_table) == 0

    # The server is still healthy after all that.
    assert server.get("/healthz").status_code == 200


def test_read_api_then_sigterm(server: ServerProcess, observer: Engine) -> None:
    t0 = 1_700_000_000_123
    first = user_object(
        user_id="user_aaaaaaaaaaaaaaaaaaaaaaaaaaa",
        created_at=t0,
        updated_at=t0 + 7,
        username="ada",
        public_metadata={"plan": "pro", "seats": 3},
    )
    second = user_object(user_id="user_bbbbbbbbbbbbbbbbbbbbbbbbbbb", email="bob@example.com")
    for user in (first, second):
        _, response = _deliver(server, user_event("user.created", user))
        _ok(response, "processed")
    failed_id, response = _deliver(server, b"[1, 2, 3]")
    assert response.status_code == 422
    assert _count(observer, users_table) == 2

    response = server.get(f"/api/users/{first['id']}", token=ADMIN_TOKEN)
    assert response.status_code == 200, response.text
    found = response.json()
    assert set(found) >= USER_KEYS
    assert found["id"] == first["id"]
    assert found["email"] == "ada.lovelace@example.com"
    assert (found["first_name"], found["last_name"]) == ("Ada", "Lovelace")
    assert found["username"] == "ada"
    assert found["image_url"] == first["image_url"]
    assert found["public_metadata"] == {"plan": "pro", "seats": 3}
    assert (found["created_at"], found["updated_at"]) == (t0, t0 + 7)
    assert type(found["created_at"]) is int

    for token in (None, "wrong-token"):
        response = server.get(f"/api/users/{first['id']}", token=token)
        assert response.status_code == 401, response.text
        assert response.json()["error"] == "unauthorized"
    response = server.get("/api/users/user_missing", token=ADMIN_TOKEN)
    assert response.status_code == 404

    seen: list[str] = []
    cursor: str | None = None
    for _ in range(5):
        query = "/api/users?limit=1" + (f"&cursor={cursor}" if cursor else "")
        response = server.get(query, token=ADMIN_TOKEN)
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["data"]) <= 1
        seen.extend(u["id"] for u in page["data"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [first["id"], second["id"]]

    response = server.get("/api/events?status=failed", token=ADMIN_TOKEN)
    assert response.status_code == 200, response.text
    events = response.json()["data"]
    assert [(e["svix_id"], e["status"]) for e in events] == [(failed_id, "failed")]
    assert "payload" not in events[0]
    response = server.get("/api/events?type=user.created", token=ADMIN_TOKEN)
    assert {e["subject_id"] for e in response.json()["data"]} == {first["id"], second["id"]}
    response = server.get("/api/events?status=bogus", token=ADMIN_TOKEN)
    assert response.status_code == 400
    assert "failed" in response.json()["detail"]

    # SIGTERM: a graceful shutdown within a few seconds, and exit code 0.
    started = time.monotonic()
    code = server.stop(timeout=10.0)
    elapsed = time.monotonic() - started
    log = server.stderr_text()
    assert elapsed < 5.0, log
    assert "Application shutdown complete" in log
    assert "Traceback" not in log
    assert code == 0, log
