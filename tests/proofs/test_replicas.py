"""Proof: two ``clerk-sync serve`` replicas on one database agree, under races.

Two real server processes share one database (PostgreSQL, as the README's scaling advice says,
and one SQLite file, which two processes may share too). A history with many versions of few
users, organizations and memberships is delivered out of order, some messages twice, split
between the replicas, and a third of the messages are sent to *both* at the same moment (one
svix id racing itself). The race must
never surface: no 5xx, no unique violation or deadlock in either log, and at the end the
database is the model's state, with one event-log row per svix id that agrees with every answer.

Both replicas run the outbox worker with one recording hook: every processed delivery's hook
ran exactly once (no row was claimed by both), never two runs of one at the same time, and
both workers took part.
"""

from __future__ import annotations

import os
import random
import threading
from pathlib import Path

import pytest

from clerk_sync.store import make_engine
from tests.conftest import SECRET
from tests.e2e.server import ServerProcess
from tests.helpers.hook_recorder import LOG_ENV, NAME, SLEEP_ENV, read_runs
from tests.proofs.history import delivery_order, make_history
from tests.proofs.model import actual_state, differences, expected_state
from tests.proofs.outbox_checks import check_no_overlap, check_runs, wait_settled
from tests.proofs.svix_sender import Message, Report, check_event_log, send

SEED = int(os.environ.get("CLERK_SYNC_PROOF_SEED", "20251127"))
REPO = str(Path(__file__).resolve().parents[2])
EVENTS = 3_000
RACING = 1 / 3
"""Share of messages sent to both replicas at once (a barrier holds the first to arrive)."""
TROUBLE = ("Traceback", "Deadlock", "UniqueViolation", "IntegrityError", "not committed")
"""Log text that means a race reached the database layer as an error."""


def split(rng: random.Random, messages: list[Message]) -> tuple[list[Message], list[Message]]:
    """Each message to one replica at random, or to both at once behind a shared barrier.

    Racing twins keep the same relative order in both lists, so neither sender can wait at a
    barrier for a twin the other will never reach.
    """
    one: list[Message] = []
    two: list[Message] = []
    for message in messages:
        if rng.random() < RACING:
            barrier = threading.Barrier(2)
            one.append(Message(message.svix_id, message.body, barrier))
            two.append(Message(message.svix_id, message.body, barrier))
        else:
            (one if rng.random() < 0.5 else two).append(message)
    return one, two


@pytest.mark.timeout(150)
def test_two_replicas_racing_on_the_same_svix_ids_converge(db_url: str, tmp_path: Path) -> None:
    print(f"seed {SEED} (set CLERK_SYNC_PROOF_SEED to change it)")
    rng = random.Random(SEED + 1)
    history = make_history(rng, EVENTS, created=0.15, updated=0.75)
    messages = delivery_order(rng, history, window=60, duplicated=0.1)
    lists = split(rng, messages)
    reports: list[Report] = []
    runs_log = tmp_path / "runs.jsonl"
    hooks = {
        "HOOKS": "tests.helpers.hook_recorder:record",
        "PYTHONPATH": REPO,
        LOG_ENV: str(runs_log),
        SLEEP_ENV: "0.002",
    }
    servers = [
        ServerProcess(database_url=db_url, secret=SECRET, workdir=tmp_path / name, extra_env=hooks)
        for name in ("replica-1", "replica-2")
    ]
    settle = make_engine(db_url)
    with servers[0], servers[1]:
        results: dict[int, Report] = {}

        def run(n: int) -> None:
            results[n] = send(lists[n], servers[n].url, SECRET, concurrency=12, deadline=90, seed=n)

        threads = [threading.Thread(target=run, args=(n,), daemon=True) for n in (0, 1)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        assert sorted(results) == [0, 1], "a sender did not finish"
        reports = [results[0], results[1]]
        wait_settled(settle, timeout=60)
        logs = [server.stderr_text() for server in servers]
    settle.dispose()

    for n, report in enumerate(reports):
        print(f"replica {n + 1}: {report.summary()}")
        assert set(report.statuses()) == {"200"}, f"replica {n + 1}: {report.statuses()}"
        report.check()
    for n, log in enumerate(logs):
        found = [word for word in TROUBLE if word in log]
        assert not found, f"replica {n + 1} logged {found}:\n{log[-3000:]}"
    raced = sum(1 for m in lists[0] if m.barrier is not None)
    assert raced > EVENTS // 4, "too few races to prove anything"

    observer = make_engine(db_url)
    try:
        expected = expected_state([event for _, event in history])
        wrong = differences(expected, actual_state(observer))
        assert not wrong, f"seed {SEED}: the database differs from the model:\n" + "\n".join(wrong)
        bodies = {m.svix_id: m.body for m in messages}
        check_event_log(observer, bodies, reports, expected)
        runs = read_runs(runs_log)
        check_runs(observer, runs, NAME, exactly_once=True)
        check_no_overlap(runs)
        workers = {r["pid"] for r in runs}
        assert len(workers) == 2, f"only {len(workers)} replica's worker ran hooks"
    finally:
        observer.dispose()
