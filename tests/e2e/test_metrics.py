"""End to end: ``GET /metrics`` of a real ``clerk-sync serve`` (its writer a child process, the
default), read with ``prometheus_client``'s parser and checked against what was sent and what
the database holds, on SQLite and PostgreSQL; per replica; and after a restart.

One server per backend serves the module; the restart and the second replica are one more
process on the same database.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from clerk_sync import tables
from clerk_sync.devtools import encode, envelope, user_event, user_object
from clerk_sync.store import make_engine
from tests.conftest import (
    BACKENDS,
    OTHER_SECRET,
    SECRET,
    migrated_database,
    migrated_sqlite,
    signed,
)
from tests.e2e.server import ServerProcess
from tests.helpers.hook_recorder import LOG_ENV, NAME
from tests.helpers.prometheus import Scrape, parse
from tests.helpers.tables import events_table

REPO = str(Path(__file__).resolve().parents[2])
ADMIN_TOKEN = "e2e-admin-token-0123456789"
METRICS_TOKEN = "e2e-metrics-token-0123456789"
_T = tables()


@dataclass
class Deployment:
    server: ServerProcess
    observer: Engine
    url: str
    workdir: Path


@pytest.fixture(scope="module", params=BACKENDS)
def deployment(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    workdir = tmp_path_factory.mktemp(f"metrics-{request.param}")
    url = migrated_database(request.param, workdir, request)
    observer = make_engine(url)
    env = {
        "METRICS_TOKEN": METRICS_TOKEN,
        "HOOKS": "tests.helpers.hook_recorder:record",
        "PYTHONPATH": REPO,
        LOG_ENV: str(workdir / "runs.jsonl"),
    }
    try:
        with ServerProcess(
            database_url=url,
            secret=SECRET,
            admin_token=ADMIN_TOKEN,
            workdir=workdir / "srv",
            extra_env=env,
        ) as server:
            yield Deployment(server, observer, url, workdir)
            log = server.stderr_text()
            assert "Traceback" not in log, log
    finally:
        observer.dispose()


def scrape(server: ServerProcess, token: str = METRICS_TOKEN) -> Scrape:
    response = server.get("/metrics", token=token)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=")
    return parse(response.text)


def deliver(server: ServerProcess, event: dict[str, Any] | bytes, **signing: Any) -> int:
    body, headers = signed(event, **signing)
    return server.post(body, headers).status_code


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 12.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.05)


def rows(observer: Engine) -> dict[str, int]:
    with observer.connect() as conn:
        return {
            kind: int(conn.execute(select(func.count()).select_from(t)).scalar_one())
            for kind, t in _T.entities.items()
        }


def outbox_done(observer: Engine) -> int:
    t = _T.outbox
    with observer.connect() as conn:
        query = select(func.count()).select_from(t).where(t.c.status == "done")
        return int(conn.execute(query).scalar_one())


def newest_received_at(observer: Engine) -> int:
    with observer.connect() as conn:
        found = conn.execute(
            select(func.max(events_table.c.received_at)).where(events_table.c.source == "webhook")
        ).scalar_one()
    return int(found)


def delivered(figures: Scrape) -> dict[tuple[str, str], float]:
    return figures.pairs("clerk_sync_deliveries_total", "event_type", "outcome")


def test_metrics_count_what_was_sent_and_what_is_stored(deployment: Deployment) -> None:
    server, observer = deployment.server, deployment.observer
    t0 = int(time.time() * 1000) - 60_000
    created = user_object(created_at=t0, updated_at=t0)
    updated = {**created, "first_name": "Augusta", "updated_at": t0 + 1_000}
    first = encode(user_event("user.created", created))
    body, headers = signed(first)
    started = time.time()
    statuses = [
        server.post(body, headers).status_code,  # processed
        server.post(body, headers).status_code,  # the same message again: duplicate
        deliver(server, user_event("user.updated", updated)),  # processed
        deliver(server, first),  # the older version as a new message: stale
        deliver(server, envelope("email.created", {"id": "ema_e2e", "object": "email"})),
        deliver(server, user_event("user.created", user_object()), secret=OTHER_SECRET),
    ]
    finished = time.time()
    assert statuses == [200, 200, 200, 200, 200, 401]
    # The hook ran for the two processed deliveries (user.*): their outbox rows are done.
    wait_for(lambda: outbox_done(observer) == 2, "two outbox rows done")
    stored = rows(observer)

    def counted() -> Scrape:
        figures = scrape(server)
        assert figures.by("clerk_sync_entities", "kind"), "the database's figures are missing"
        return figures

    figures = counted()
    if figures.by("clerk_sync_entities", "kind") != stored:  # counted before: cached ≤ 5 s
        wait_for(lambda: counted().by("clerk_sync_entities", "kind") == stored, "a recount")
        figures = counted()

    assert delivered(figures) == {
        ("user.created", "processed"): 1,
        ("user.created", "duplicate"): 1,
        ("user.updated", "processed"): 1,
        ("user.created", "stale"): 1,
        ("email.created", "ignored"): 1,
    }
    assert figures.value("clerk_sync_refusals_total", reason="signature_mismatch") == 1
    # Batch sizes came from the child process: every verified delivery went through it.
    assert figures.value("clerk_sync_batch_size_sum") == 5
    assert (figures.value("clerk_sync_batch_size_count") or 0) >= 1
    assert figures.value("clerk_sync_delivery_lag_seconds_count") == 5
    assert figures.value("clerk_sync_delivery_processing_seconds_count") == 5
    last = figures.value("clerk_sync_last_delivery_timestamp_seconds")
    assert last is not None
    assert started - 1 <= last <= finished + 1
    assert figures.by("clerk_sync_entities", "kind") == stored
    assert stored["user"] == 1
    assert figures.by("clerk_sync_outbox_rows", "status") == {"pending": 0, "done": 2, "dead": 0}
    assert figures.value("clerk_sync_outbox_runs_total", handler=NAME, result="done") == 2
    assert figures.by("clerk_sync_events", "status") == {
        "processed": 2,
        "stale": 1,
        "ignored": 1,
        "failed": 0,
    }
    assert figures.value("clerk_sync_scrape_errors_total") == 0


def test_only_the_metrics_token_opens_them(deployment: Deployment) -> None:
    server = deployment.server
    assert "clerk_sync_deliveries" in scrape(server, METRICS_TOKEN).families
    refused = [
        server.get("/metrics", token=ADMIN_TOKEN),
        server.get("/metrics", token="wrong"),
        server.get("/metrics"),
    ]
    assert [r.status_code for r in refused] == [401, 401, 401]
    assert len({r.content for r in refused}) == 1  # no hint of what would have worked
    for response in refused:
        assert response.json()["error"] == "unauthorized"
        assert METRICS_TOKEN[:8] not in response.text
        assert ADMIN_TOKEN[:8] not in response.text
    assert server.get("/api/users", token=ADMIN_TOKEN).status_code == 200


def test_each_replica_counts_its_own_and_a_restart_reads_the_last_delivery(
    deployment: Deployment,
) -> None:
    """Another ``serve`` on the same database, as a restart or a second replica is: its last
    delivery is the log's, its counts are its own."""
    first = deployment.server
    assert deliver(first, user_event("user.created", user_object())) == 200
    newest = newest_received_at(deployment.observer)
    before = sum(delivered(scrape(first)).values())
    with ServerProcess(
        database_url=deployment.url,
        secret=SECRET,
        admin_token=ADMIN_TOKEN,  # no METRICS_TOKEN here: the admin token opens them
        workdir=deployment.workdir / "replica",
    ) as second:
        figures = scrape(second, ADMIN_TOKEN)
        assert figures.value("clerk_sync_last_delivery_timestamp_seconds") == newest / 1000
        assert delivered(figures) == {}
        assert figures.value("clerk_sync_batch_size_count") == 0

        assert [deliver(first, user_event("user.created", user_object())) for _ in range(2)] == [
            200,
            200,
        ]
        assert deliver(second, user_event("user.updated", user_object())) == 200
        mine, theirs = scrape(first), scrape(second, ADMIN_TOKEN)
        log = second.stderr_text()
    assert "Traceback" not in log, log
    assert sum(delivered(mine).values()) == before + 2
    assert delivered(theirs) == {("user.updated", "processed"): 1}
    assert theirs.value("clerk_sync_batch_size_sum") == 1
    assert (theirs.value("clerk_sync_last_delivery_timestamp_seconds") or 0) > newest / 1000


def test_without_a_token_there_are_no_metrics(tmp_path: Path) -> None:
    url = migrated_sqlite(tmp_path / "clerk_sync.db")
    with ServerProcess(database_url=url, secret=SECRET, workdir=tmp_path / "srv") as server:
        answers = [server.get("/metrics"), server.get("/metrics", token="anything")]
    assert [a.status_code for a in answers] == [404, 404]
    assert answers[0].json()["error"] == "not_found"
