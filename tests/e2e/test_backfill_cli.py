"""End to end: the real ``clerk-sync backfill`` and ``clerk-sync users fetch`` processes against
the fake Backend API on 127.0.0.1, on SQLite and PostgreSQL, checked through a second engine.

The long one: 20,000 users, 429s with ``Retry-After: 1`` on the way, a SIGKILL halfway, and a
second run that continues from the checkpoint — after which the database equals the fake.
Then a real ``clerk-sync serve`` takes webhooks about the same users while a backfill runs:
whichever arrives first, the newest version wins and a deleted user stays deleted.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from clerk_sync.devtools import deleted_user_event, user_event
from clerk_sync.store import make_engine, state
from tests.conftest import SECRET, migrated_sqlite, signed
from tests.e2e.server import ServerProcess, clean_env, clerk_sync_command, run_cli, run_cli_many
from tests.helpers.fake_clerk_api import SECRET_KEY, FakeClerkApi, fake_clerk_api
from tests.helpers.tables import events_table, organizations_table, users_table

pytestmark = pytest.mark.timeout(120)
USERS = 20_000


@pytest.fixture
def fake() -> Iterator[FakeClerkApi]:
    with fake_clerk_api() as running:
        yield running


@pytest.fixture
def observer(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


def env(db_url: str, fake: FakeClerkApi, **extra: str) -> dict[str, str]:
    return clean_env(
        {"DATABASE_URL": db_url, "CLERK_SECRET_KEY": SECRET_KEY, "CLERK_API_URL": fake.url, **extra}
    )


def start_backfill(
    db_url: str, fake: FakeClerkApi, cwd: Path, *args: str, text: bool = False
) -> subprocess.Popen[Any]:
    """``clerk-sync backfill users ARGS`` against the fake, running in the background."""
    return subprocess.Popen(
        [*clerk_sync_command(), "backfill", "users", *args],
        env=env(db_url, fake),
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=text,
    )


def stored(engine: Engine) -> dict[str, dict[str, Any]]:
    with engine.connect() as conn:
        return {r.id: r.data for r in conn.execute(select(users_table.c.id, users_table.c.data))}


def count(engine: Engine, table: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def checkpoint(engine: Engine) -> int | None:
    from clerk_sync import tables

    with engine.connect() as conn:
        raw = state.get(conn, tables(), "backfill:users")
    return None if raw is None else int(json.loads(raw)["offset"])


def test_killed_halfway_then_resumed_equals_the_fake(
    db_url: str, fake: FakeClerkApi, observer: Engine, tmp_path: Path
) -> None:
    fake.add_users(USERS)
    fake.retry_after = "1"
    halfway = threading.Event()

    def on_page(path: str, offset: int) -> None:
        if path != "/v1/users":
            return
        if offset in (5_000, 15_000):  # one 429 (Retry-After: 1) in each run
            with fake.lock:
                fake.throttle_next = 1
        if offset >= USERS // 2:
            halfway.set()

    fake.on_page = on_page
    started = time.monotonic()
    proc = start_backfill(db_url, fake, tmp_path, "--json")
    try:
        assert halfway.wait(60), proc.stderr.read().decode() if proc.poll() is not None else ""
        time.sleep(random.uniform(0, 0.05))  # the kill lands mid-fetch or mid-commit
        proc.send_signal(signal.SIGKILL)
    finally:
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL, err.decode()
    resumed_at = checkpoint(observer)
    assert resumed_at is not None
    assert USERS // 4 <= resumed_at < USERS
    assert resumed_at <= count(observer, users_table) < USERS
    asked = len(fake.seen)

    result = run_cli("backfill", "users", "--json", env=env(db_url, fake), cwd=tmp_path)
    assert result.returncode == 0, result
    report = json.loads(result.stdout)["kinds"]["users"]
    assert report["resumed_from"] == resumed_at
    assert report["total"] == USERS
    assert report["fetched"] == USERS - resumed_at
    assert report["inserted"] + report["unchanged"] == USERS - resumed_at
    assert report["unchanged"] <= 500  # at most the page committed before its checkpoint
    assert report["failed"] == report["skipped_stale"] == report["skipped_deleted"] == 0
    first_users_page = next(s for s in fake.seen[asked:] if s.path == "/v1/users")
    assert int(first_users_page.query["offset"]) == resumed_at
    assert len(fake.throttled()) == 2
    assert "429" in result.stderr

    assert stored(observer) == fake.users
    assert count(observer, events_table) == USERS  # one log row per user, however often sent
    assert checkpoint(observer) is None
    assert time.monotonic() - started < 30


def test_ctrl_c_stops_with_one_line_and_keeps_the_checkpoint(
    tmp_path: Path, fake: FakeClerkApi
) -> None:
    db_url = migrated_sqlite(tmp_path / "clerk_sync.db")
    fake.add_users(3_000)
    third_page = threading.Event()
    fake.on_page = lambda path, offset: third_page.set() if offset >= 1_000 else None
    fake.page_delay = 0.2
    proc = start_backfill(db_url, fake, tmp_path, text=True)
    try:
        assert third_page.wait(30)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err
    assert err.endswith(
        "interrupted: run `clerk-sync backfill users` again to continue from its checkpoint\n"
    )
    assert "Traceback" not in err
    observer = make_engine(db_url)
    stopped_at = checkpoint(observer)
    assert stopped_at is not None
    assert 500 <= stopped_at < 3_000
    again = run_cli("backfill", "users", "--json", env=env(db_url, fake), cwd=tmp_path)
    assert json.loads(again.stdout)["kinds"]["users"]["resumed_from"] == stopped_at
    assert stored(observer) == fake.users
    observer.dispose()


def test_json_text_and_dry_run(
    db_url: str, fake: FakeClerkApi, observer: Engine, tmp_path: Path
) -> None:
    people = fake.add_users(30)
    orgs = fake.add_organizations(2)
    for person in people[:3]:
        fake.add_membership(orgs[0], person)
    dry, text = run_cli_many(
        [
            (("backfill", "--dry-run", "--json"), env(db_url, fake)),
            (("backfill", "organizations"), env(db_url, fake)),
        ],
        cwd=tmp_path,
    )
    assert dry.returncode == 0, dry
    predicted = json.loads(dry.stdout)
    assert predicted["dry_run"] is True
    assert list(predicted["kinds"]) == ["users", "organizations", "memberships"]
    assert predicted["kinds"]["users"]["inserted"] == 30
    assert predicted["kinds"]["memberships"] == {
        **predicted["kinds"]["memberships"],
        "total": 3,
        "fetched": 3,
        "inserted": 3,
        "failed": 0,
    }
    assert text.returncode == 0, text
    assert text.stdout.startswith("organizations: 2 of 2 fetched — 2 inserted, 0 updated,")
    assert text.stdout.count("\n") == 1
    assert count(observer, users_table) == 0
    assert count(observer, organizations_table) == 2

    done = run_cli("backfill", "all", "--json", env=env(db_url, fake), cwd=tmp_path)
    assert done.returncode == 0, done
    kinds = json.loads(done.stdout)["kinds"]
    assert {k: (v["inserted"], v["unchanged"]) for k, v in kinds.items()} == {
        "users": (30, 0),
        "organizations": (0, 2),
        "memberships": (3, 0),
    }
    assert set(kinds["users"]) == {
        "total",
        "fetched",
        "inserted",
        "updated",
        "unchanged",
        "skipped_stale",
        "skipped_deleted",
        "failed",
        "resumed_from",
        "seconds",
    }
    assert stored(observer) == fake.users


def test_users_fetch_and_bad_configuration(tmp_path: Path, fake: FakeClerkApi) -> None:
    """The command's own behaviour, on one backend (``ensure_user`` runs on both in
    ``tests/sync/test_backfill.py``)."""
    db_url = migrated_sqlite(tmp_path / "clerk_sync.db")
    observer = make_engine(db_url)
    user = fake.add_users(1)[0]
    good = env(db_url, fake)
    jobs = [
        (("users", "fetch", user["id"], "--json"), good),
        (("users", "fetch", "user_2NoSuchUser"), good),
        (("backfill",), {**good, "CLERK_SECRET_KEY": ""}),
        (("backfill",), {**good, "CLERK_SECRET_KEY": "pk_live_Y2xlcmsuZXhhbXBsZS5jb20k"}),
        (("users", "fetch", user["id"]), {**good, "CLERK_SECRET_KEY": "whsec_abc"}),
        (("backfill",), {**good, "CLERK_SECRET_KEY": "sk_test_WrongWrongWrong0123"}),
        (("backfill",), {**good, "CLERK_API_RATE": "fast"}),
    ]
    fetched, missing, no_key, publishable, webhook_secret, refused, bad_rate = run_cli_many(
        jobs, cwd=tmp_path
    )
    assert fetched.returncode == 0, fetched
    answer = json.loads(fetched.stdout)
    assert (answer["status"], answer["type"], answer["subject_id"]) == (
        "processed",
        "user.created",
        user["id"],
    )
    assert answer["svix_id"] == f"backfill_user_{user['id']}_{user['updated_at']}"
    assert stored(observer) == {user["id"]: user}

    assert missing.returncode == 1, missing
    assert "error [not_in_clerk] user_2NoSuchUser does not exist in Clerk" in missing.stderr
    assert no_key.returncode == 2, no_key
    assert "set CLERK_SECRET_KEY: Clerk Dashboard → API keys → Secret keys" in no_key.stderr
    assert publishable.returncode == 2
    assert "publishable key (pk_…)" in publishable.stderr
    assert webhook_secret.returncode == 2
    assert "belongs in CLERK_WEBHOOK_SECRET" in webhook_secret.stderr
    assert refused.returncode == 2, refused
    assert "refused CLERK_SECRET_KEY (401)" in refused.stderr
    assert "WrongWrongWrong" not in refused.stderr
    assert bad_rate.returncode == 2
    assert "CLERK_API_RATE 'fast' is not a budget like 90/10s" in bad_rate.stderr
    for result in (missing, no_key, publishable, webhook_secret, refused, bad_rate):
        assert result.stderr.count("\n") == 1, result  # one line, no traceback
        assert result.stdout == ""

    again = run_cli("users", "fetch", user["id"], env=good, cwd=tmp_path)
    assert again.returncode == 0, again
    assert again.stdout == f"{user['id']}: unchanged (this version was fetched before)\n"
    fake.touch_user(user["id"], first_name="Changed")
    changed = run_cli("users", "fetch", user["id"], env=good, cwd=tmp_path)
    assert changed.stdout == f"{user['id']}: updated\n", changed
    assert stored(observer)[user["id"]]["first_name"] == "Changed"
    observer.dispose()


def test_webhooks_racing_a_backfill_through_serve(
    db_url: str, fake: FakeClerkApi, observer: Engine, tmp_path: Path
) -> None:
    fake.add_users(3_000)
    fake.page_delay = 0.2
    ids = list(fake.users)
    newer = {
        i: {**fake.users[i], "first_name": "FromWebhook", "updated_at": fake.tick() + 60_000}
        for i in ids[::10]
    }
    gone = ids[5::40]
    older = {
        i: {**fake.users[i], "updated_at": fake.users[i]["updated_at"] - 1} for i in ids[7::50]
    }
    started = threading.Event()
    fake.on_page = lambda path, offset: started.set()
    with ServerProcess(database_url=db_url, secret=SECRET, workdir=tmp_path / "serve") as server:
        proc = start_backfill(db_url, fake, tmp_path, "--json")
        try:
            assert started.wait(30)
            events = [user_event("user.updated", u) for u in newer.values()]
            events += [user_event("user.updated", u) for u in older.values()]
            events += [deleted_user_event(i) for i in gone]
            random.shuffle(events)
            first_post = time.monotonic()
            for event in events:
                body, headers = signed(event)
                assert server.post(body, headers).status_code == 200
            out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        assert proc.returncode == 0, err.decode()
        assert proc.poll() is not None
        # the webhooks went while pages were still being fetched
        assert any(s.at > first_post for s in fake.seen if s.path == "/v1/users")

    rows = stored(observer)
    assert set(rows) == set(ids) - set(gone)
    for user_id, user in newer.items():
        if user_id not in gone:
            assert rows[user_id] == user
    for user_id in set(ids) - set(gone) - set(newer):
        assert rows[user_id] == fake.users[user_id]
    report = json.loads(out)["kinds"]["users"]
    assert report["fetched"] == 3_000
    assert report["failed"] == 0
