"""The budget of failed verifications against a real ``clerk-sync serve`` with its defaults
(``RATE_LIMIT_WEBHOOK_REJECTED=60/minute``): forgeries sent all at once from the address real
deliveries come from cannot overdraw it, and never keep a delivery that verifies out — one
process in memory, and two processes sharing it through the real Redis."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
from sqlalchemy import func, select

from clerk_sync.devtools import encode, sign_headers, user_event, user_object
from clerk_sync.store import make_engine
from clerk_sync.web import WEBHOOK_PATH
from tests.conftest import OTHER_SECRET, SECRET
from tests.helpers.tables import events_table

from .server import ServerProcess

FORGERIES = 300
REAL = 30
BUDGET = 60


def _delivery(secret: str) -> tuple[bytes, dict[str, str]]:
    body = encode(user_event("user.created", user_object()))
    return body, sign_headers(secret, body)


async def _all_at_once(urls: list[str]) -> tuple[list[int], list[int]]:
    """FORGERIES forged and REAL signed deliveries in flight together, spread over ``urls``;
    returns the statuses of each."""
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
    async with httpx.AsyncClient(timeout=30.0, limits=limits) as client:

        async def post(n: int, secret: str) -> int:
            body, headers = _delivery(secret)
            response = await client.post(
                urls[n % len(urls)] + WEBHOOK_PATH, content=body, headers=headers
            )
            return response.status_code

        forged = [post(n, OTHER_SECRET) for n in range(FORGERIES)]
        real = [post(n, SECRET) for n in range(REAL)]
        half = FORGERIES // 2
        statuses = await asyncio.gather(*forged[:half], *real, *forged[half:])
    return [*statuses[:half], *statuses[half + REAL :]], list(statuses[half : half + REAL])


def _processed(db: str) -> int:
    engine = make_engine(db)
    try:
        with engine.connect() as conn:
            query = select(func.count()).select_from(events_table)
            return int(conn.execute(query.where(events_table.c.status == "processed")).scalar_one())
    finally:
        engine.dispose()


def test_concurrent_forgeries_spend_exactly_the_budget_and_real_deliveries_pass(
    tmp_path: Path,
) -> None:
    db = f"sqlite:///{tmp_path / 'clerk_sync.db'}"
    with ServerProcess(database_url=db, secret=SECRET, workdir=tmp_path / "serve") as server:
        forged, real = asyncio.run(_all_at_once([server.url]))
        assert real == [200] * REAL
        assert forged.count(401) == BUDGET, forged
        assert forged.count(429) == FORGERIES - BUDGET
        body, headers = _delivery(SECRET)
        assert server.post(body, headers).status_code == 200
        refused = server.post(*_delivery(OTHER_SECRET))
        assert refused.status_code == 429
        assert int(refused.headers["retry-after"]) >= 1
        log = server.stderr_text()
    assert _processed(db) == REAL + 1
    assert log.count("rejected:signature_mismatch") == BUDGET  # the rest: one line per 10 s


def test_two_processes_share_the_budget_of_failures_through_redis(
    tmp_path: Path, redis_url: str
) -> None:
    db = f"sqlite:///{tmp_path / 'clerk_sync.db'}"
    env = {"REDIS_URL": redis_url}
    with (
        ServerProcess(database_url=db, secret=SECRET, workdir=tmp_path / "a", extra_env=env) as a,
        ServerProcess(database_url=db, secret=SECRET, workdir=tmp_path / "b", extra_env=env) as b,
    ):
        forged, real = asyncio.run(_all_at_once([a.url, b.url]))
    assert real == [200] * REAL
    assert forged.count(401) == BUDGET, forged
    assert forged.count(429) == FORGERIES - BUDGET
    assert _processed(db) == REAL
