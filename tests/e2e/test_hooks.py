"""After-commit hooks through a real ``clerk-sync serve`` (writer process, outbox worker) and
``clerk-sync worker``, with ``HOOKS`` naming a module of the tests, on both databases."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from clerk_sync.devtools import deleted_user_event, user_event, user_object
from clerk_sync.hooks import idempotency_key
from tests.conftest import SECRET, signed
from tests.e2e.server import ServerProcess, clean_env, run_cli
from tests.helpers.fake_convex import DEPLOY_KEY, fake_convex
from tests.helpers.hook_recorder import LOG_ENV, NAME, read_runs
from tests.helpers.json_receiver import JsonReceiver
from tests.helpers.tables import metadata

REPO = str(Path(__file__).resolve().parents[2])
ADMIN_TOKEN = "e2e-admin-token-0123456789"
T0 = 1_744_400_000_000
outbox_table = metadata.tables["outbox"]


def _env(log: Path, **extra: str) -> dict[str, str]:
    return {"PYTHONPATH": REPO, LOG_ENV: str(log), **extra}


def _wait(condition: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.05)


def _outbox(observer: Engine) -> list[dict[str, Any]]:
    with observer.connect() as conn:
        rows = conn.execute(select(outbox_table).order_by(outbox_table.c.id))
        return [dict(r._mapping) for r in rows]


def _deliver(server: ServerProcess, event: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    body, headers = signed(event)
    response = server.post(body, headers)
    assert response.status_code == 200, response.text
    return headers["svix-id"], response.json()


def _user(user_id: str, at: int, name: str) -> dict[str, Any]:
    kind = "user.created" if at == T0 else "user.updated"
    return user_event(
        kind, user_object(user_id=user_id, created_at=T0, updated_at=at, first_name=name)
    )


def test_serve_runs_hooks_after_commit_for_processed_deliveries_only(
    db_url: str, observer: Engine, tmp_path: Path
) -> None:
    log = tmp_path / "runs.jsonl"
    env = _env(log, HOOKS="tests.helpers.hook_recorder:record")
    with ServerProcess(
        database_url=db_url,
        secret=SECRET,
        admin_token=ADMIN_TOKEN,
        workdir=tmp_path / "srv",
        extra_env=env,
    ) as server:
        created, answer = _deliver(server, _user("user_hk", T0, "Ada"))
        assert answer["status"] == "processed"
        updated, _ = _deliver(server, _user("user_hk", T0 + 10, "Grace"))
        stale, answer = _deliver(server, _user("user_hk", T0 + 5, "Old"))
        assert answer["status"] == "stale"
        body, headers = signed(_user("user_hk", T0 + 10, "Grace"), msg_id=updated)
        assert server.post(body, headers).json()["duplicate"] is True
        _wait(lambda: len(read_runs(log)) >= 2, "both hooks ran")
        _wait(lambda: {r["status"] for r in _outbox(observer)} == {"done"}, "the rows are done")
        listed = server.get("/api/outbox?status=done", token=ADMIN_TOKEN)
        assert listed.status_code == 200
        assert listed.json()["counts"] == {"pending": 0, "done": 2, "dead": 0}
        assert [r["svix_id"] for r in listed.json()["data"]] == [updated, created]
        assert server.get("/api/outbox?status=lost", token=ADMIN_TOKEN).status_code == 400
    runs = read_runs(log)
    assert [(r["svix_id"], r["first_name"]) for r in runs] == [(created, "Ada"), (updated, "Grace")]
    assert {r["key"] for r in runs} == {
        idempotency_key(NAME, created),
        idempotency_key(NAME, updated),
    }
    assert stale not in {r["svix_id"] for r in runs}


def test_a_failing_hook_is_retried_by_a_separate_worker(
    db_url: str, observer: Engine, tmp_path: Path
) -> None:
    log = tmp_path / "runs.jsonl"
    env = _env(log, HOOKS="tests.helpers.hook_recorder:flaky", OUTBOX_WORKER="off")
    with ServerProcess(
        database_url=db_url, secret=SECRET, workdir=tmp_path / "srv", extra_env=env
    ) as server:
        svix_id, _ = _deliver(server, _user("user_fl", T0, "Ada"))
        time.sleep(0.5)
        assert read_runs(log) == []  # OUTBOX_WORKER=off: serve runs no hooks
        [row] = _outbox(observer)
        assert row["status"] == "pending"
    worker_env = clean_env({"DATABASE_URL": db_url, **env})
    first = run_cli("worker", "--once", env=worker_env, cwd=tmp_path)
    assert first.returncode == 0, first
    [row] = _outbox(observer)
    assert (row["status"], row["attempts"]) == ("pending", 1)
    assert "the first attempt always fails" in row["last_error"]
    time.sleep(1.1)  # the first retry is due a second later
    second = run_cli("worker", "--once", env=worker_env, cwd=tmp_path)
    assert second.returncode == 0, second
    [row] = _outbox(observer)
    assert (row["status"], row["attempts"]) == ("done", 2)
    runs = read_runs(log)
    assert [r["attempt"] for r in runs] == [1, 2]
    assert {r["svix_id"] for r in runs} == {svix_id}
    assert len({r["key"] for r in runs}) == 1
    listed = run_cli("outbox", "list", "--json", env=worker_env, cwd=tmp_path)
    assert listed.returncode == 0, listed
    assert '"done": 1' in listed.stdout


@pytest.mark.parametrize(
    ("hooks", "message"),
    [
        ("tests.helpers.no_such_module", "does not import: ModuleNotFoundError"),
        ("tests.helpers.hook_recorder:not_a_hook", "is not a registered hook"),
        ("tests.helpers.hook_recorder:missing", "has no 'missing'"),
        ("tests.helpers.tables", "registers no hooks"),
    ],
)
def test_a_bad_hooks_setting_stops_serve_at_start_in_one_line(
    tmp_path: Path, hooks: str, message: str
) -> None:
    env = clean_env(
        {
            "CLERK_WEBHOOK_SECRET": SECRET,
            "DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}",
            "HOOKS": hooks,
            "PYTHONPATH": REPO,
        }
    )
    result = run_cli("serve", "--port", "0", env=env, cwd=tmp_path)
    assert result.returncode != 0, result
    [line] = [x for x in result.stderr.splitlines() if x.strip()]
    assert "HOOKS entry" in line
    assert message in line


def test_serve_mirrors_users_into_convex(db_url: str, observer: Engine, tmp_path: Path) -> None:
    with fake_convex() as fake:
        env = {"CONVEX_URL": fake.url, "CONVEX_DEPLOY_KEY": DEPLOY_KEY}
        with ServerProcess(
            database_url=db_url, secret=SECRET, workdir=tmp_path / "srv", extra_env=env
        ) as server:
            # One at a time: a row still pending when its user is deleted is skipped (the
            # user's data is erased), and the delete alone reaches Convex.
            _deliver(server, _user("user_cv", T0, "Ada"))
            _wait(lambda: len(fake.calls) == 1, "the first upsert")
            _deliver(server, _user("user_cv", T0 + 10, "Grace"))
            _wait(lambda: len(fake.calls) == 2, "the second upsert")
            _deliver(server, _user("user_cv", T0 + 5, "Stale"))
            _deliver(server, deleted_user_event("user_cv", timestamp=T0 + 20))
            _deliver(server, _user("user_cw", T0, "Wen"))
            _wait(lambda: len(fake.calls) >= 4, "four mutations")
            _wait(lambda: {r["status"] for r in _outbox(observer)} == {"done"}, "rows done")
        mine = [(c["path"], c["args"].get("data", {}).get("first_name")) for c in fake.calls]
        assert [m for m in mine if m[1] != "Wen"] == [
            ("users:upsertFromClerk", "Ada"),
            ("users:upsertFromClerk", "Grace"),
            ("users:deleteFromClerk", None),
        ]
        assert fake.users == {"user_cw": {"name": "Wen Lovelace", "externalId": "user_cw"}}


def test_serve_sends_notifications_and_retries_a_refused_one(
    db_url: str, observer: Engine, tmp_path: Path
) -> None:
    with JsonReceiver() as hook:
        rules = tmp_path / "notify.toml"
        rules.write_text(
            f"""
[[rule]]
name = "signups"
events = ["user.created"]
notify = ["{hook.url("/signups")}"]
title = "New user: {{data.first_name}} {{data.last_name}}"
body = "{{email}} signed up"

[[rule]]
name = "nobody-listens"
events = ["user.created"]
notify = ["{hook.refused_url()}"]
""",
            encoding="utf-8",
        )
        env = {"NOTIFY_RULES": str(rules), "OUTBOX_MAX_ATTEMPTS": "2"}
        with ServerProcess(
            database_url=db_url, secret=SECRET, workdir=tmp_path / "srv", extra_env=env
        ) as server:
            svix_id, _ = _deliver(server, _user("user_nt", T0, "Ada"))
            [sent] = hook.wait_for(1, timeout=20)
            assert sent.path == "/signups"
            assert sent.body["title"] == "New user: Ada Lovelace"
            assert sent.body["message"] == "ada.lovelace@example.com signed up"

            def refused_is_dead() -> bool:
                return any(r["status"] == "dead" for r in _outbox(observer))

            _wait(refused_is_dead, "the refused notification is dead after two attempts")
        by_hook = {r["handler"]: r for r in _outbox(observer)}
        assert by_hook["notify:signups"]["status"] == "done"
        dead = by_hook["notify:nobody-listens"]
        assert (dead["attempts"], dead["svix_id"]) == (2, svix_id)
        assert "json://" in dead["last_error"]
        assert len(hook.received) == 1


def test_a_bad_rules_file_stops_serve_at_start_in_one_line(tmp_path: Path) -> None:
    rules = tmp_path / "notify.toml"
    rules.write_text(
        '[[rule]]\nname = "signups"\nevents = ["user.created"]\n'
        'notify = ["json://127.0.0.1:9/hook"]\ntitle = "{data.frist_name}"\n',
        encoding="utf-8",
    )
    env = clean_env(
        {
            "CLERK_WEBHOOK_SECRET": SECRET,
            "DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}",
            "NOTIFY_RULES": str(rules),
        }
    )
    result = run_cli("serve", "--port", "0", env=env, cwd=tmp_path)
    assert result.returncode == 2, result
    [line] = [x for x in result.stderr.splitlines() if x.strip()]
    assert '"signups"' in line
    assert "data.frist_name" in line


def test_an_in_transaction_hook_runs_in_the_writer_process_and_can_refuse(
    db_url: str, observer: Engine, tmp_path: Path
) -> None:
    log = tmp_path / "runs.jsonl"
    env = _env(log, HOOKS="tests.helpers.hook_recorder:keep_protected")
    with ServerProcess(
        database_url=db_url, secret=SECRET, workdir=tmp_path / "srv", extra_env=env
    ) as server:
        _deliver(server, _user("user_protected_1", T0, "Ada"))
        _deliver(server, _user("user_free_1", T0, "Bo"))
        body, headers = signed(deleted_user_event("user_protected_1", timestamp=T0 + 10))
        assert server.post(body, headers).status_code == 503
        _, answer = _deliver(server, deleted_user_event("user_free_1", timestamp=T0 + 10))
        assert answer["status"] == "processed"
        server_pid = server.proc.pid if server.proc else None
    runs = read_runs(log)
    assert [r["subject_id"] for r in runs] == ["user_protected_1", "user_free_1"]
    assert all(r["pid"] != server_pid for r in runs)  # the writer process ran them
    assert _outbox(observer) == []  # no after-commit hooks: no rows
