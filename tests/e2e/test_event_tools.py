"""End to end: a real ``clerk-sync serve`` (its writer process, its retention task) and the
``clerk-sync events …`` commands beside it on the same database, on both backends."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from clerk_sync.devtools import encode, envelope, user_event, user_object
from clerk_sync.receiver import Delivery, Receiver
from clerk_sync.retention import DAY_MS
from tests.conftest import SECRET, signed
from tests.e2e.server import ServerProcess, clean_env, run_cli, run_cli_many
from tests.helpers.entity_cases import log_row, row
from tests.helpers.event_log import record_failed
from tests.helpers.tables import users_table

ADMIN_TOKEN = "e2e-admin-token-0123456789"
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
MARKER = f"private-{secrets.token_hex(8)}"


def _wait(condition: Any, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.fixture
def server(db_url: str, engine: Engine, tmp_path: Path) -> Iterator[ServerProcess]:
    """A server started over a log that holds one delivery from 40 days ago."""
    old = int(time.time() * 1000) - 40 * DAY_MS
    body = encode(envelope("email.created", {"id": "ema_old", "body": MARKER}))
    Receiver(engine).receive(Delivery("msg_ancient", body, received_at=old))
    with ServerProcess(
        database_url=db_url, secret=SECRET, admin_token=ADMIN_TOKEN, workdir=tmp_path / "srv"
    ) as proc:
        yield proc


def test_serve_prunes_at_start_and_the_wal_keeps_nothing(
    server: ServerProcess, observer: Engine, db_url: str, tmp_path: Path
) -> None:
    _wait(lambda: log_row(observer, "msg_ancient")["payload"] is None)
    row = log_row(observer, "msg_ancient")
    assert (row["status"], row["delivery_count"]) == ("ignored", 1)  # the row stays
    assert "erased 1 stored payload(s)" in server.stderr_text()
    if db_url.startswith("sqlite"):
        database = tmp_path / "clerk_sync.db"
        for path in (database, database.with_name(database.name + "-wal")):
            if path.exists():
                assert MARKER.encode() not in path.read_bytes(), path

    response = server.client.post("/api/events/msg_ancient/replay", headers=AUTH)
    assert response.status_code == 409, response.text
    assert response.json()["error"] == "payload_gone"
    assert "pruned" in response.json()["detail"]


def test_replay_route_and_commands_beside_a_running_server(
    server: ServerProcess, observer: Engine, engine: Engine, db_url: str, tmp_path: Path
) -> None:
    user = user_object()
    body, headers = signed(user_event("user.created", user))
    delivered = server.post(body, headers)
    assert delivered.status_code == 200, delivered.text
    svix_id = headers["svix-id"]

    late, later = user_object(), user_object()
    record_failed(engine, "msg_failed_api", encode(user_event("user.created", late)))
    record_failed(engine, "msg_failed_cli", encode(user_event("user.created", later)))

    applied = server.client.post("/api/events/msg_failed_api/replay", headers=AUTH)
    assert applied.status_code == 200, applied.text
    assert applied.json() == {
        "svix_id": "msg_failed_api",
        "status": "processed",
        "duplicate": False,
        "type": "user.created",
        "subject_id": late["id"],
    }
    assert row(observer, users_table, late["id"]) is not None  # committed by the server's writer

    duplicate = server.client.post(f"/api/events/{svix_id}/replay", headers=AUTH)
    assert duplicate.status_code == 200, duplicate.text
    assert (duplicate.json()["status"], duplicate.json()["duplicate"]) == ("processed", True)
    assert server.client.post("/api/events/msg_nope/replay", headers=AUTH).status_code == 404
    refused = server.client.post("/api/events/msg_failed_cli/replay")
    assert refused.status_code == 401
    assert refused.json()["error"] == "unauthorized"

    env = clean_env({"DATABASE_URL": db_url})
    shown, listed, dry = run_cli_many(
        [
            (["events", "show", svix_id, "--json"], env),
            (["events", "list", "--status", "failed", "--json"], env),
            (["events", "replay", "--status", "failed", "--dry-run"], env),
        ],
        cwd=tmp_path,
    )
    assert shown.returncode == 0, str(shown)
    event = json.loads(shown.stdout)
    assert event["payload"] == body.decode()  # the exact body that was signed
    assert event["delivery_count"] == 2  # the delivery and the replay
    assert [e["svix_id"] for e in json.loads(listed.stdout)] == ["msg_failed_cli"]
    assert "msg_failed_cli user.created: failed → would be decoded again" in dry.stdout

    replayed = run_cli("events", "replay", "msg_failed_cli", env=env, cwd=tmp_path)
    assert replayed.returncode == 0, str(replayed)
    assert f"msg_failed_cli user.created {later['id']}: failed → processed" in replayed.stdout
    assert row(observer, users_table, later["id"]) is not None

    pruned = run_cli("events", "prune", "--older-than", "1h", "--json", env=env, cwd=tmp_path)
    assert pruned.returncode == 0, str(pruned)
    assert json.loads(pruned.stdout)["erased"] == 0  # everything but the ancient one is new
    assert server.get("/healthz").status_code == 200
