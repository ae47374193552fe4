"""Proof: after-commit hooks survive SIGKILLs — none is lost, none runs for a delivery that was
not processed, each run of one delivery's hook carries the same idempotency key.

A Svix-like sender streams thousands of deliveries (users, organizations, memberships; some
sent twice, out of order, so some are stale and some duplicates) into a real ``clerk-sync
serve`` whose ``HOOKS`` module records every run to a file, while a killer SIGKILLs the server
several times — between commits and runs, during runs — and restarts it. Once the outbox has
settled, every processed delivery's hook has run at least once, in delivery order per subject,
and nothing is left pending or dead.
"""

from __future__ import annotations

import random
import threading
from pathlib import Path

import pytest

from clerk_sync.store import make_engine
from tests.conftest import SECRET
from tests.helpers.hook_recorder import LOG_ENV, NAME, SLEEP_ENV, read_runs
from tests.proofs.history import delivery_order, make_history
from tests.proofs.outbox_checks import check_runs, wait_settled
from tests.proofs.svix_sender import Attempt, send
from tests.proofs.test_crash_safety import SEED, Kill, SamePortServer, run_killer

REPO = str(Path(__file__).resolve().parents[2])
EVENTS = 3_000
KILLS = 4


@pytest.mark.timeout(180)
def test_sigkill_loses_no_hook_and_runs_none_for_unprocessed_deliveries(
    db_url: str, tmp_path: Path
) -> None:
    print(f"seed {SEED} (set CLERK_SYNC_PROOF_SEED to change it)")
    rng = random.Random(SEED + 7)
    history = make_history(rng, EVENTS, created=0.3, updated=0.6)
    messages = delivery_order(rng, history)
    thresholds = [
        int(len(messages) * (k + rng.uniform(0.2, 0.8)) / (KILLS + 1)) for k in range(KILLS)
    ]
    log = tmp_path / "runs.jsonl"
    env = {
        "HOOKS": "tests.helpers.hook_recorder:record",
        "PYTHONPATH": REPO,
        LOG_ENV: str(log),
        SLEEP_ENV: "0.001",
        "OUTBOX_CONCURRENCY": "8",
    }
    accepted = 0
    count_lock = threading.Lock()

    def on_attempt(attempt: Attempt) -> None:
        nonlocal accepted
        if attempt.ok:
            with count_lock:
                accepted += 1

    server = SamePortServer(
        database_url=db_url, secret=SECRET, workdir=tmp_path / "srv", extra_env=env
    )
    kills: list[Kill] = []
    errors: list[BaseException] = []
    done = threading.Event()
    observer = make_engine(db_url)
    try:
        with server:
            killer = threading.Thread(
                target=run_killer,
                args=(server, lambda: accepted, thresholds, rng, done, kills, errors),
                daemon=True,
            )
            killer.start()
            try:
                report = send(
                    messages,
                    server.url,
                    SECRET,
                    concurrency=16,
                    deadline=100,
                    seed=SEED,
                    on_attempt=on_attempt,
                )
            finally:
                done.set()
                killer.join(30)
            assert not errors, f"seed {SEED}: the killer failed: {errors[0]!r}"
            assert len(kills) == KILLS, f"seed {SEED}: only {len(kills)} kills"
            report.check()
            killed_during_runs = len(read_runs(log))
            wait_settled(observer, timeout=60)
        runs = read_runs(log)
        again = len(runs) - len({r["svix_id"] for r in runs})
        print(f"{report.summary()}; kills {kills}; {len(runs)} hook runs, {again} run again")
        assert killed_during_runs > 0, "no hook had run before the stream ended"
        check_runs(observer, runs, NAME, exactly_once=False)
    finally:
        observer.dispose()
