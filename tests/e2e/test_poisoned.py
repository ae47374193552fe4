"""One poisoned delivery against a real ``clerk-sync serve`` (writer process, group commit):
``unsafe_metadata`` nested 300 levels deep — an end user can set it — sent at once with 150
valid neighbours. It is answered 422 with ``webhook-delivery: abort-message`` and recorded
``failed`` with its reason; every neighbour is answered 200 and committed."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
from sqlalchemy import select

from clerk_sync.devtools import encode, sign_headers, user_event, user_object
from clerk_sync.store import make_engine
from clerk_sync.web import WEBHOOK_PATH
from tests.conftest import SECRET
from tests.helpers.tables import events_table

from .server import ServerProcess

NEIGHBOURS = 150
DEPTH = 300


def _deep_body() -> bytes:
    user = user_object(unsafe_metadata={"x": "__DEEP__"})
    nested = b'{"a":' * DEPTH + b"{}" + b"}" * DEPTH
    return encode(user_event("user.updated", user)).replace(b'"__DEEP__"', nested)


async def _send(url: str, bodies: list[bytes]) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
    async with httpx.AsyncClient(base_url=url, timeout=30.0, limits=limits) as client:
        return await asyncio.gather(
            *(
                client.post(WEBHOOK_PATH, content=body, headers=sign_headers(SECRET, body))
                for body in bodies
            )
        )


def test_a_deeply_nested_delivery_fails_alone(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'clerk_sync.db'}"
    neighbours = [encode(user_event("user.created", user_object())) for _ in range(NEIGHBOURS)]
    bodies = [*neighbours[: NEIGHBOURS // 2], _deep_body(), *neighbours[NEIGHBOURS // 2 :]]
    with ServerProcess(database_url=db, secret=SECRET, workdir=tmp_path / "serve") as server:
        answers = asyncio.run(_send(server.url, bodies))
        again = server.post(bodies[NEIGHBOURS // 2], sign_headers(SECRET, bodies[NEIGHBOURS // 2]))
    poisoned = answers.pop(NEIGHBOURS // 2)
    assert [a.status_code for a in answers] == [200] * NEIGHBOURS
    for answer in (poisoned, again):
        assert answer.status_code == 422, answer.text
        assert answer.headers["webhook-delivery"] == "abort-message"
        assert "levels deep" in answer.json()["detail"]
    engine = make_engine(db)
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(events_table.c.status, events_table.c.error)).all()
    finally:
        engine.dispose()
    statuses = sorted(row.status for row in rows)
    assert statuses == ["failed"] * 2 + ["processed"] * NEIGHBOURS  # sent twice, two svix ids
    assert all(row.error for row in rows if row.status == "failed")
