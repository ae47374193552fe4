"""What after-commit hooks cost: the receiver with and without outbox rows, and the worker.

    python bench/outbox.py            # 5,000 deliveries per run, 3 alternating rounds
    python bench/outbox.py --quick    # 1,000, one round

For each database (a SQLite file, PostgreSQL at CLERK_SYNC_BENCH_POSTGRES_URL), in one sitting
and alternately: the receiver alone (batches of 64 ``user.created``, no hooks: the baseline),
the receiver writing one outbox row per delivery (one after-commit hook), and then the outbox
worker draining those rows with a hook that does nothing (so what is measured is the outbox's
own cost: claims, runs, results). Prints deliveries/s and rows/s, medians, and ratios against
the baseline measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from databases import fresh_database  # noqa: E402

from clerk_sync import tables  # noqa: E402
from clerk_sync.devtools import encode, user_event, user_object  # noqa: E402
from clerk_sync.hooks import ChangeEvent, Hook, HookSet  # noqa: E402
from clerk_sync.outbox import OutboxSettings, OutboxWorker  # noqa: E402
from clerk_sync.receiver import Delivery, Receiver  # noqa: E402
from clerk_sync.store import make_engine  # noqa: E402

T0 = 1_744_400_000_000
BATCH = 64


def nothing(event: ChangeEvent) -> None:
    """The hook: all the time measured is the outbox's."""


HOOKS = HookSet((Hook("bench:nothing", "after_commit", ("user.created",), nothing),))


def deliveries(n: int, tag: str) -> list[Delivery]:
    return [
        Delivery(
            f"msg_{tag}_{i}",
            encode(
                user_event(
                    "user.created",
                    user_object(user_id=f"user_{tag}_{i}", created_at=T0, updated_at=T0),
                )
            ),
        )
        for i in range(n)
    ]


def receive(url: str, n: int, tag: str, *, hooked: bool) -> float:
    engine = make_engine(url)
    receiver = Receiver(engine, outbox=HOOKS.routes() if hooked else ())
    todo = deliveries(n, tag)
    started = time.perf_counter()
    for i in range(0, n, BATCH):
        receiver.receive_batch(todo[i : i + BATCH])
    elapsed = time.perf_counter() - started
    engine.dispose()
    return n / elapsed


def drain(url: str, n: int) -> float:
    engine = make_engine(url)
    worker = OutboxWorker(engine, tables(), HOOKS, OutboxSettings())

    async def go() -> float:
        started = time.perf_counter()
        await worker.drain(timeout=600)
        elapsed = time.perf_counter() - started
        await worker.stop()
        return elapsed

    elapsed = asyncio.run(go())
    engine.dispose()
    return n / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    n, rounds = (1_000, 1) if args.quick else (5_000, 3)
    workdir = Path(tempfile.mkdtemp(prefix="clerk-sync-bench-outbox-"))
    print(f"{n} deliveries per run, {rounds} round(s), batches of {BATCH}")
    for backend in ("sqlite", "postgresql"):
        plain: list[float] = []
        hooked: list[float] = []
        worker: list[float] = []
        for r in range(rounds):
            url = fresh_database(backend, workdir, f"outbox_{r}")
            plain.append(receive(url, n, f"p{r}", hooked=False))
            hooked.append(receive(url, n, f"h{r}", hooked=True))
            worker.append(drain(url, n))
        base, with_rows, runs = (statistics.median(x) for x in (plain, hooked, worker))
        print(
            f"{backend:10}  receiver alone {base:7,.0f}/s   with an outbox row "
            f"{with_rows:7,.0f}/s ({with_rows / base:.2f}x)   worker {runs:7,.0f} rows/s "
            f"({runs / base:.2f}x the receiver alone)"
        )


if __name__ == "__main__":
    main()
