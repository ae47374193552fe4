"""``GET /metrics`` in-process: who may read it, what deliveries and refusals it counts, and the
database's figures (cached, and left out rather than a 500 when the database fails).

The real app with its lifespan, real databases, deliveries signed with the svix signer; the
writer is the in-process thread (``conftest.make_settings``) except where the child process's
figures are the point. ``tests/e2e/test_metrics.py`` runs the same against ``clerk-sync serve``.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select, text
from starlette.testclient import TestClient

from clerk_sync.devtools import encode, envelope, user_event, user_object
from clerk_sync.events import PING_TYPE
from clerk_sync.observe.metrics import Metrics
from clerk_sync.receiver import Delivery
from clerk_sync.web import WEBHOOK_PATH, create_app
from tests.conftest import OTHER_SECRET, migrated_sqlite, signed
from tests.helpers.prometheus import Scrape, parse
from tests.helpers.tables import events_table, users_table

from .conftest import ADMIN_TOKEN, make_settings

METRICS_TOKEN = "test-metrics-token-9876543210"


def app(url: str, **settings: Any) -> TestClient:
    return TestClient(create_app(make_settings(url, **settings)), client=("203.0.113.9", 1))


def metrics_of(client: TestClient) -> Metrics:
    found = client.app.state.metrics  # type: ignore[attr-defined]
    assert isinstance(found, Metrics)
    return found


def scrape(client: TestClient, token: str = ADMIN_TOKEN) -> Scrape:
    response = client.get("/metrics", headers={"authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=")
    return parse(response.text)


def deliver(client: TestClient, event: dict[str, Any] | bytes, **signing: Any) -> Any:
    body, headers = signed(event, **signing)
    return client.post(WEBHOOK_PATH, content=body, headers=headers)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return migrated_sqlite(tmp_path / "metrics.db")


# -- who may read them ----------------------------------------------------------------------


def test_without_any_token_metrics_are_not_there(sqlite_url: str) -> None:
    with app(sqlite_url, admin_token="") as client:
        for headers in ({}, {"authorization": "Bearer "}, {"authorization": "Bearer x"}):
            response = client.get("/metrics", headers=headers)
            assert response.status_code == 404
            assert response.json()["error"] == "not_found"


def test_the_admin_token_opens_them_when_no_metrics_token_is_set(sqlite_url: str) -> None:
    with app(sqlite_url) as client:
        assert "clerk_sync_deliveries" in scrape(client, ADMIN_TOKEN).families
        assert client.get("/metrics").status_code == 401


def test_a_metrics_token_replaces_the_admin_token(sqlite_url: str) -> None:
    with app(sqlite_url, metrics_token=METRICS_TOKEN) as client:
        assert "clerk_sync_refusals" in scrape(client, METRICS_TOKEN).families
        refused = [
            client.get("/metrics", headers=headers)
            for headers in (
                {"authorization": f"Bearer {ADMIN_TOKEN}"},
                {"authorization": f"Bearer {METRICS_TOKEN[:-1]}"},
                {"authorization": f"Basic {METRICS_TOKEN}"},
                {"authorization": METRICS_TOKEN},
                {},
            )
        ]
        # The read API keeps its own token.
        users = client.get("/api/users", headers={"authorization": f"Bearer {ADMIN_TOKEN}"})
        assert users.status_code == 200
    assert {r.status_code for r in refused} == {401}
    assert len({r.content for r in refused}) == 1  # the same answer whatever was sent
    assert refused[0].json()["error"] == "unauthorized"
    assert METRICS_TOKEN[:8] not in refused[0].text
    assert ADMIN_TOKEN[:8] not in refused[0].text


def test_scrapes_spend_the_read_api_budget(sqlite_url: str) -> None:
    with app(sqlite_url, rate_limit_api="2/minute") as client:
        scrape(client)
        scrape(client)
        refused = client.get("/metrics", headers={"authorization": f"Bearer {ADMIN_TOKEN}"})
    assert refused.status_code == 429
    assert refused.json()["error"] == "rate_limited"
    assert int(refused.headers["retry-after"]) >= 1


# -- what they count --------------------------------------------------------------------------


def _count(observer: Engine, table: Any) -> int:
    with observer.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def test_deliveries_refusals_and_the_database_are_counted(db_url: str, observer: Engine) -> None:
    t0 = int(time.time() * 1000) - 60_000
    created = user_object(created_at=t0, updated_at=t0)
    updated = {**created, "first_name": "Augusta", "updated_at": t0 + 1_000}
    first = encode(user_event("user.created", created))
    started = time.time()
    with app(db_url, allowed_source_ips="203.0.113.0/24, 198.51.100.7") as client:
        body, headers = signed(first)
        answers = [
            client.post(WEBHOOK_PATH, content=body, headers=headers),  # processed
            client.post(WEBHOOK_PATH, content=body, headers=headers),  # duplicate
            deliver(client, user_event("user.updated", updated)),  # processed
            deliver(client, first),  # a new message with the older version: stale
            deliver(client, envelope("email.created", {"id": "ema_1", "object": "email"})),
            deliver(client, envelope("widget.exploded", {"id": "wid_1"})),  # ignored, "other"
            deliver(client, b"not json"),  # failed (422), no type
        ]
        assert [a.status_code for a in answers] == [200] * 6 + [422]
        refusals = [
            deliver(client, user_event("user.created", user_object()), secret=OTHER_SECRET),
            client.post(WEBHOOK_PATH, content=b"{}"),  # no svix headers
            client.get(WEBHOOK_PATH),
        ]
        assert [r.status_code for r in refusals] == [401, 400, 405]
        with TestClient(client.app, client=("192.0.2.1", 1)) as outsider:
            assert deliver(outsider, first).status_code == 403
        figures = scrape(client)
    finished = time.time()

    assert figures.pairs("clerk_sync_deliveries_total", "event_type", "outcome") == {
        ("user.created", "processed"): 1,
        ("user.created", "duplicate"): 1,
        ("user.updated", "processed"): 1,
        ("user.created", "stale"): 1,
        ("email.created", "ignored"): 1,
        ("other", "ignored"): 1,
        ("unknown", "failed"): 1,
    }
    refused = {k: v for k, v in figures.by("clerk_sync_refusals_total", "reason").items() if v}
    assert refused == {
        "signature_mismatch": 1,
        "missing_header": 1,
        "method_not_allowed": 1,
        "source_not_allowed": 1,
    }
    assert figures.value("clerk_sync_delivery_processing_seconds_count") == 7
    assert figures.value("clerk_sync_delivery_lag_seconds_count") == 6  # "not json": no stamp
    assert figures.value("clerk_sync_batch_size_sum") == 7  # every verified one went through
    assert 1 <= (figures.value("clerk_sync_batch_size_count") or 0) <= 7
    last = figures.value("clerk_sync_last_delivery_timestamp_seconds")
    assert last is not None
    assert started - 1 <= last <= finished + 1
    entities = figures.by("clerk_sync_entities", "kind")
    assert entities["user"] == _count(observer, users_table) == 1
    assert sum(entities.values()) == 1
    assert figures.by("clerk_sync_events", "status") == {
        "processed": 2,
        "stale": 1,
        "ignored": 2,
        "failed": 1,
    }
    assert sum(figures.by("clerk_sync_events", "status").values()) == _count(observer, events_table)
    assert figures.by("clerk_sync_outbox_rows", "status") == {"pending": 0, "done": 0, "dead": 0}
    assert figures.value("clerk_sync_scrape_errors_total") == 0


def test_the_writer_process_sends_its_batch_sizes_back(sqlite_url: str) -> None:
    bodies = [encode(user_event("user.created", user_object())) for _ in range(40)]
    with app(sqlite_url, writer="process") as client:
        child = client.app.webhook.committer  # type: ignore[attr-defined]

        async def burst() -> list[Any]:
            return await asyncio.gather(
                *(child.submit(Delivery(f"msg_batch_{n}", b)) for n, b in enumerate(bodies))
            )

        assert client.portal is not None
        assert {o.status for o in client.portal.call(burst)} == {"processed"}
        answer = deliver(client, user_event("user.created", user_object()))
        assert answer.status_code == 200
        figures = scrape(client)
    assert figures.value("clerk_sync_batch_size_sum") == 41
    assert 2 <= (figures.value("clerk_sync_batch_size_count") or 0) < 41  # batched
    assert figures.value("clerk_sync_delivery_lag_seconds_count") == 1  # the stamp came back


def test_the_last_delivery_comes_from_the_log_after_a_restart(sqlite_url: str) -> None:
    with app(sqlite_url) as client:
        assert scrape(client).value("clerk_sync_last_delivery_timestamp_seconds") is None
        assert deliver(client, user_event("user.created", user_object())).status_code == 200
        before = scrape(client).value("clerk_sync_last_delivery_timestamp_seconds")
        assert before is not None
        # clerk-sync doctor's probe is not a delivery from Clerk (as for the alert).
        assert deliver(client, envelope(PING_TYPE, {"id": "ping_1"})).status_code == 200
        assert scrape(client).value("clerk_sync_last_delivery_timestamp_seconds") == before
    with app(sqlite_url) as restarted:
        figures = scrape(restarted)
    assert figures.value("clerk_sync_last_delivery_timestamp_seconds") == before
    assert figures.pairs("clerk_sync_deliveries_total", "event_type", "outcome") == {}


def test_the_database_is_counted_at_most_every_few_seconds(sqlite_url: str) -> None:
    with app(sqlite_url) as client:
        database = metrics_of(client).database
        assert database is not None
        assert database.every == 5.0
        database.every = 3600.0
        assert scrape(client).by("clerk_sync_entities", "kind")["user"] == 0
        assert deliver(client, user_event("user.created", user_object())).status_code == 200
        assert scrape(client).by("clerk_sync_entities", "kind")["user"] == 0  # as counted
        database.every = 0.0
        assert scrape(client).by("clerk_sync_entities", "kind")["user"] == 1


def test_a_database_error_leaves_its_figures_out_not_the_rest(sqlite_url: str) -> None:
    with app(sqlite_url) as client:
        assert deliver(client, user_event("user.created", user_object())).status_code == 200
        database = metrics_of(client).database
        assert database is not None
        with database.engine.begin() as conn:  # a table gone under the running server
            conn.execute(text("DROP TABLE waitlist_entries"))
        database.every = 0.0
        figures = scrape(client)
        again = scrape(client)
    assert figures.by("clerk_sync_entities", "kind") == {}
    assert figures.by("clerk_sync_outbox_rows", "status") == {}
    assert figures.value("clerk_sync_scrape_errors_total") == 1
    assert again.value("clerk_sync_scrape_errors_total") == 2
    assert figures.pairs("clerk_sync_deliveries_total", "event_type", "outcome") == {
        ("user.created", "processed"): 1
    }
    assert figures.value("clerk_sync_last_delivery_timestamp_seconds") is not None
