"""Backfill throughput: users/s from the Backend API into the database, beside the rate
budget's ceiling.

    python bench/backfill.py              # 50,000 users; then a budget-bound walk of 120 pages
    python bench/backfill.py --quick      # 10,000 users; 40 pages
    python bench/backfill.py --postgres   # also on PostgreSQL (CLERK_SYNC_BENCH_POSTGRES_URL)

Each run is the real ``clerk-sync backfill users --json`` against the fake Backend API of the
tests (``tests/helpers/fake_clerk_api.py``: Clerk-shaped users built with ``clerk_sync.devtools``,
on 127.0.0.1, in this process — the command has its own), into a fresh database. Users/s is the
command's own figure: users fetched over the seconds of the walk, which include the count
request and the SDK's import, not the process's start.

1. **The fake answering at once**, with ``CLERK_API_RATE`` too large to matter: what the command
   itself does (target ≥ 5,000 users/s on SQLite).
2. **The fake answering each page in 50 ms**, with ``CLERK_API_RATE`` (default ``20/10s``): the
   budget is then the bound. Printed beside the measured figure: the budget's sustained ceiling
   (requests/s × 500 users) and the ceiling for a walk of that many requests (a sliding window
   lets one window's worth go at once, then one window's worth per window).
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from databases import fresh_database  # noqa: E402
from tests.e2e.server import clean_env, clerk_sync_command  # noqa: E402
from tests.helpers.fake_clerk_api import SECRET_KEY, fake_clerk_api  # noqa: E402

from clerk_sync.clerk_api import PAGE_MAX, parse_rate  # noqa: E402

UNBOUNDED = "1000000/1s"


def backfill(users: int, page_delay: float, rate: str, url: str, workdir: Path) -> float:
    """Users/s of one ``clerk-sync backfill users`` against a fake holding ``users`` users."""
    with fake_clerk_api() as fake:
        fake.add_users(users)
        fake.page_delay = page_delay
        env = clean_env(
            {
                "DATABASE_URL": url,
                "CLERK_SECRET_KEY": SECRET_KEY,
                "CLERK_API_URL": fake.url,
                "CLERK_API_RATE": rate,
            }
        )
        done = subprocess.run(
            [*clerk_sync_command(), "backfill", "users", "--json"],
            env=env,
            cwd=workdir,
            capture_output=True,
            text=True,
            timeout=1800,
            check=False,
        )
    if done.returncode != 0:
        raise SystemExit(f"backfill failed ({done.returncode}):\n{done.stderr}")
    counts = json.loads(done.stdout)["kinds"]["users"]
    if counts["fetched"] != users or counts["inserted"] != users:
        raise SystemExit(f"wrong result: {counts}")
    return float(counts["fetched"]) / float(counts["seconds"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--postgres", action="store_true", help="also run on PostgreSQL")
    parser.add_argument("--rate", default="20/10s", help="CLERK_API_RATE of run 2")
    parser.add_argument("--delay", type=float, default=0.05, help="seconds per page in run 2")
    args = parser.parse_args()
    fast_users, slow_pages = (10_000, 40) if args.quick else (50_000, 120)
    rate = parse_rate(args.rate)
    workdir = Path(tempfile.mkdtemp(prefix="clerk-sync-bench-backfill-"))
    for backend in ["sqlite", *(["postgresql"] if args.postgres else [])]:
        url = fresh_database(backend, workdir, "backfill_fast")
        measured = backfill(fast_users, 0.0, UNBOUNDED, url, workdir)
        verdict = ""
        if backend == "sqlite":
            verdict = " (target ≥ 5,000: " + ("met)" if measured >= 5000 else "MISSED)")
        print(
            f"{backend:10}  1. fake answering at once, {fast_users:,} users: "
            f"{measured:,.0f} users/s{verdict}",
            flush=True,
        )
        slow_users = slow_pages * PAGE_MAX
        requests = slow_pages + 1  # the pages and the count
        url = fresh_database(backend, workdir, "backfill_slow")
        measured = backfill(slow_users, args.delay, str(rate), url, workdir)
        sustained = rate.per_second * PAGE_MAX
        windows = math.ceil(requests / rate.requests) - 1
        walk_ceiling = slow_users / max(windows * rate.seconds, requests * args.delay)
        print(
            f"{backend:10}  2. fake answering in {args.delay * 1000:.0f} ms a page, "
            f"{slow_users:,} users ({requests} requests), CLERK_API_RATE={rate}: "
            f"{measured:,.0f} users/s — the budget's ceiling: {sustained:,.0f} users/s "
            f"sustained, {walk_ceiling:,.0f} for a walk of {requests} requests; "
            f"{PAGE_MAX / args.delay:,.0f} users/s if only the {args.delay * 1000:.0f} ms pages "
            "bounded it",
            flush=True,
        )


if __name__ == "__main__":
    main()
