"""End to end: the real ``clerk-sync reconcile`` against the fake Backend API (drift reported,
exit 1; ``--fix`` repairs it; then exit 0), and ``RECONCILE_EVERY`` in a real ``serve``, whose
repair raises the ``reconcile_drift`` alert through the notification rules — on both databases."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from clerk_sync.devtools import user_event
from tests.conftest import SECRET, signed
from tests.e2e.server import ServerProcess, clean_env, run_cli
from tests.helpers.fake_clerk_api import SECRET_KEY, FakeClerkApi, fake_clerk_api
from tests.helpers.json_receiver import JsonReceiver
from tests.helpers.tables import tombstones_table, users_table


@pytest.fixture
def fake() -> Iterator[FakeClerkApi]:
    with fake_clerk_api() as running:
        yield running


def _env(db_url: str, fake: FakeClerkApi, **extra: str) -> dict[str, str]:
    return clean_env(
        {"DATABASE_URL": db_url, "CLERK_SECRET_KEY": SECRET_KEY, "CLERK_API_URL": fake.url, **extra}
    )


def _users(engine: Engine) -> dict[str, Any]:
    with engine.connect() as conn:
        rows = conn.execute(select(users_table.c.id, users_table.c.first_name))
        return {r.id: r.first_name for r in rows}


def _wait(condition: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.1)


def _seed(db_url: str, fake: FakeClerkApi, observer: Engine, tmp_path: Path) -> list[str]:
    """Three users in both places, then: one more only in Clerk (missing), one deleted from
    Clerk (extra), one changed in Clerk (stale)."""
    users = fake.add_users(3)
    done = run_cli("backfill", "users", env=_env(db_url, fake), cwd=tmp_path)
    assert done.returncode == 0, done
    assert len(_users(observer)) == 3
    [new] = fake.add_users(1)
    fake.delete_user(users[0]["id"])
    fake.touch_user(users[1]["id"], first_name="Renamed")
    return [new["id"], users[0]["id"], users[1]["id"]]


def test_reconcile_reports_drift_then_fixes_it(
    db_url: str, fake: FakeClerkApi, observer: Engine, tmp_path: Path
) -> None:
    missing, extra, stale = _seed(db_url, fake, observer, tmp_path)
    env = _env(db_url, fake)
    report = run_cli("reconcile", "--kind", "users", "--json", env=env, cwd=tmp_path)
    assert report.returncode == 1, report
    found = json.loads(report.stdout)
    [users] = found["drift"]
    assert (users["missing"], users["extra"], users["stale"]) == (
        {"count": 1, "ids": [missing]},
        {"count": 1, "ids": [extra]},
        {"count": 1, "ids": [stale]},
    )
    assert (found["total"], found["fixed"]) == (3, False)
    assert len(_users(observer)) == 3  # a report writes nothing

    fixed = run_cli("reconcile", "--fix", env=env, cwd=tmp_path)
    assert fixed.returncode == 1, fixed
    assert "3 difference(s) repaired" in fixed.stdout
    now = _users(observer)
    assert set(now) == set(fake.users)
    assert now[stale] == "Renamed"
    with observer.connect() as conn:
        gone = set(conn.execute(select(tombstones_table.c.id)).scalars())
    assert extra in gone

    clean = run_cli("reconcile", env=env, cwd=tmp_path)
    assert clean.returncode == 0, clean
    assert "no drift" in clean.stdout


def test_reconcile_needs_a_secret_key(tmp_path: Path) -> None:
    env = clean_env({"DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"})
    result = run_cli("reconcile", env=env, cwd=tmp_path)
    assert result.returncode == 2, result
    [line] = [x for x in result.stderr.splitlines() if x.strip()]
    assert "CLERK_SECRET_KEY" in line
    assert "API keys" in line


def test_serve_reconciles_on_a_schedule_and_alerts_on_drift(
    db_url: str, fake: FakeClerkApi, observer: Engine, tmp_path: Path
) -> None:
    missing, extra, stale = _seed(db_url, fake, observer, tmp_path)
    with JsonReceiver() as hook:
        rules = tmp_path / "notify.toml"
        rules.write_text(
            f'[[alert]]\nkind = "reconcile_drift"\nnotify = ["{hook.url("/ops")}"]\n',
            encoding="utf-8",
        )
        env = {
            "CLERK_SECRET_KEY": SECRET_KEY,
            "CLERK_API_URL": fake.url,
            "RECONCILE_EVERY": "1s",
            "NOTIFY_RULES": str(rules),
        }
        with ServerProcess(
            database_url=db_url, secret=SECRET, workdir=tmp_path / "srv", extra_env=env
        ) as server:
            _wait(lambda: set(_users(observer)) == set(fake.users), "the drift repaired")
            assert _users(observer)[stale] == "Renamed"
            [alert] = hook.wait_for(1, timeout=60)
            body, headers = signed(user_event("user.updated", fake.users[missing]))
            assert server.post(body, headers).status_code == 200
        assert alert.path == "/ops"
        assert alert.body["title"] == "clerk-sync: reconcile found 3 difference(s) with Clerk"
        assert "users: 1 missing, 1 extra, 1 stale" in alert.body["message"]
    assert extra not in _users(observer)
