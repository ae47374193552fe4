"""Proof: a 2xx means durable, through SIGKILLs at random moments.

Thousands of Clerk events (users, organizations and memberships between them), some sent twice,
stream from a Svix-like sender (several in flight, retrying until 2xx) into a real
``clerk-sync serve`` that a killer thread SIGKILLs several times mid-stream and restarts on the
same port and database. At the end the database must be exactly the model's state of the
history (every table and the tombstones), with one event-log row per svix id that agrees with every
answer given: nothing accepted was lost, nothing was applied twice, nothing is half-written.

The server runs an after-commit hook (``HOOKS``) that records every run, so the kills also land
between commits and runs and during runs: once the outbox has settled, every processed
delivery's hook ran at least once, in delivery order per subject, each run with that delivery's
idempotency key, and none ran for a delivery that was not processed.

The history and the kill points come from ``SEED`` (``CLERK_SYNC_PROOF_SEED`` overrides it);
the moments of the kills still depend on timing.
"""

from __future__ import annotations

import os
import random
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from clerk_sync.store import make_engine
from tests.conftest import SECRET
from tests.e2e.server import HOST, ServerProcess, clerk_sync_command
from tests.helpers.hook_recorder import LOG_ENV, NAME, SLEEP_ENV, read_runs
from tests.helpers.tables import tombstones_table
from tests.proofs.history import delivery_order, make_history
from tests.proofs.model import Event, actual_state, differences, expected_state, tombstone_times
from tests.proofs.outbox_checks import check_runs, wait_settled
from tests.proofs.svix_sender import Attempt, check_event_log, send

SEED = int(os.environ.get("CLERK_SYNC_PROOF_SEED", "20251127"))
EVENTS = 4_500
KILLS = 5
REPO = str(Path(__file__).resolve().parents[2])


class SamePortServer(ServerProcess):
    """A ``ServerProcess`` that comes back on the port it first got, as an endpoint behind a
    fixed URL does, and keeps the log of every life (appended, not truncated)."""

    def _spawn(self) -> None:
        if not self.port:
            super()._spawn()
            return
        self._close_files()
        self._files = [self.stderr_path.open("ab"), self.stdout_path.open("ab")]
        self.proc = subprocess.Popen(
            [*clerk_sync_command(), "serve", "--host", HOST, "--port", str(self.port)],
            env=self.env,
            cwd=self.workdir,
            stdin=subprocess.DEVNULL,
            stdout=self._files[1],
            stderr=self._files[0],
        )


@dataclass(frozen=True)
class Kill:
    """One SIGKILL: how many messages were accepted before it, and the restart's length."""

    accepted_before: int
    restart_seconds: float


def run_killer(
    server: ServerProcess,
    accepted: Callable[[], int],
    thresholds: list[int],
    rng: random.Random,
    done: threading.Event,
    kills: list[Kill],
    errors: list[BaseException],
) -> None:
    """SIGKILL the server once the sender has had ``threshold`` messages accepted, for each
    threshold, then restart it on the same port and database."""
    try:
        for threshold in thresholds:
            while accepted() < threshold and not done.is_set():
                time.sleep(0.001)
            if done.is_set():
                return
            time.sleep(rng.uniform(0.0, 0.02))
            before = accepted()
            server.kill()
            started = time.monotonic()
            time.sleep(rng.uniform(0.0, 0.2))
            server.start()
            kills.append(Kill(before, time.monotonic() - started))
    except BaseException as exc:
        errors.append(exc)


def _tombstones(engine: Engine) -> dict[tuple[str, str], int]:
    with engine.connect() as conn:
        rows = conn.execute(select(tombstones_table))
        return {(row.kind, row.id): row.deleted_at for row in rows}


@pytest.mark.timeout(150)
def test_sigkill_mid_stream_loses_nothing_and_applies_nothing_twice(
    db_url: str, tmp_path: Path
) -> None:
    print(f"seed {SEED} (set CLERK_SYNC_PROOF_SEED to change it)")
    rng = random.Random(SEED)
    history = make_history(rng, EVENTS)
    messages = delivery_order(rng, history)
    thresholds = [
        int(len(messages) * (k + rng.uniform(0.2, 0.8)) / (KILLS + 1)) for k in range(KILLS)
    ]
    accepted = 0
    count_lock = threading.Lock()

    def on_attempt(attempt: Attempt) -> None:
        nonlocal accepted
        if attempt.ok:
            with count_lock:
                accepted += 1

    runs_log = tmp_path / "runs.jsonl"
    hooks = {
        "HOOKS": "tests.helpers.hook_recorder:record",
        "PYTHONPATH": REPO,
        LOG_ENV: str(runs_log),
        SLEEP_ENV: "0.001",
        "OUTBOX_CONCURRENCY": "8",
    }
    server = SamePortServer(
        database_url=db_url, secret=SECRET, workdir=tmp_path / "srv", extra_env=hooks
    )
    settle = make_engine(db_url)
    kills: list[Kill] = []
    errors: list[BaseException] = []
    done = threading.Event()
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
                deadline=90,
                seed=SEED,
                on_attempt=on_attempt,
            )
        finally:
            done.set()
            killer.join(30)
        print(f"{report.summary()}; kills {kills}")
        assert not errors, f"seed {SEED}: the killer failed: {errors[0]!r}"
        assert len(kills) == KILLS, f"seed {SEED}: only {len(kills)} kills"
        assert report.statuses().get("transport", 0) >= KILLS, "the kills interrupted nothing"
        report.check()
        ran_before_the_end = len(read_runs(runs_log))
        wait_settled(settle, timeout=60)
    settle.dispose()
    runs = read_runs(runs_log)
    again = len(runs) - len({r["svix_id"] for r in runs})
    print(f"{len(runs)} hook runs ({ran_before_the_end} while the stream lasted), {again} again")
    assert ran_before_the_end > 0, "no hook ran while the server was being killed"

    observer = make_engine(db_url)
    try:
        events: list[Event] = [event for _, event in history]
        expected = expected_state(events)
        wrong = differences(expected, actual_state(observer))
        assert not wrong, f"seed {SEED}: the database differs from the model:\n" + "\n".join(wrong)
        possible = tombstone_times(events)
        found = _tombstones(observer)
        assert found.keys() == possible.keys()
        wrong_times = {k: at for k, at in found.items() if at not in possible[k]}
        assert not wrong_times, f"seed {SEED}: tombstones at times no deletion had: {wrong_times}"
        bodies = {m.svix_id: m.body for m in messages}
        check_event_log(observer, bodies, [report], expected)
        check_runs(observer, runs, NAME, exactly_once=False)
    finally:
        observer.dispose()
