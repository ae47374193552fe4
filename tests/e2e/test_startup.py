"""Start-up: replicas and ``db upgrade`` started at once on one empty database all succeed (the
migration lock), and a browser pointed at the webhook URL is told what it is for.

Each round is a fresh database — a new SQLite file, or a new PostgreSQL database — and a mix of
``serve`` and ``db upgrade`` processes spawned together, so they reach the empty schema at the
same moment. Before the lock, about one start in three failed (SQLite ``database is locked``,
PostgreSQL ``UniqueViolation`` on the version table).
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from clerk_sync.config import normalize_database_url
from clerk_sync.store import make_engine, schema_state
from clerk_sync.store.migrate import VERSION_TABLE, head_revision
from clerk_sync.web import WEBHOOK_PATH
from tests.conftest import BACKENDS, PG_ADMIN_URL, SECRET
from tests.e2e.server import (
    HOST,
    ServerError,
    clean_env,
    clerk_sync_command,
    free_port,
    wait_healthy,
)

ROUNDS = 3
JOBS = ("serve", "db upgrade", "serve", "db upgrade", "db upgrade")
"""Five processes a round: two servers and three upgrades, spawned in this order."""
ROUND_TIMEOUT = 60.0
PORT_TAKEN = 11  # PortInUse.exit_code: free_port() lost its port to another test; try again


@dataclass
class Job:
    args: tuple[str, ...]
    proc: subprocess.Popen[bytes]
    stderr: Path
    port: int | None

    def stderr_text(self) -> str:
        return self.stderr.read_text(encoding="utf-8", errors="replace")


@pytest.fixture
def fresh_database(backend: str, tmp_path: Path) -> Iterator[Callable[[int], str]]:
    """``fresh_database(n)``: the URL of a new empty database (SQLite file or PostgreSQL
    database); the PostgreSQL ones are dropped at the end."""
    created: list[str] = []
    admin = make_url(normalize_database_url(PG_ADMIN_URL)).set(drivername="postgresql")
    conninfo = admin.render_as_string(hide_password=False)

    def make(n: int) -> str:
        if backend == "sqlite":
            return f"sqlite:///{tmp_path / f'race{n}.db'}"
        name = f"clerk_sync_race_{os.getpid()}_{secrets.token_hex(3)}"
        try:
            with psycopg.connect(conninfo, autocommit=True, connect_timeout=5) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
        except psycopg.OperationalError as exc:
            pytest.fail(f"PostgreSQL is required at {PG_ADMIN_URL}: {exc}", pytrace=False)
        created.append(name)
        return admin.set(database=name).render_as_string(hide_password=False)

    yield make
    for name in created:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _spawn(args: tuple[str, ...], env: dict[str, str], workdir: Path, n: int) -> Job:
    port = free_port() if args == ("serve",) else None
    argv = [*args, "--host", HOST, "--port", str(port)] if port else list(args)
    stderr = workdir / f"job{n}.stderr"
    with stderr.open("wb") as err:
        proc = subprocess.Popen(
            [*clerk_sync_command(), *argv],
            env=env,
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    return Job(args, proc, stderr, port)


def _stop(job: Job) -> int:
    if job.proc.poll() is None:
        job.proc.send_signal(signal.SIGTERM)
        try:
            job.proc.wait(10)
        except subprocess.TimeoutExpired:
            job.proc.kill()
            job.proc.wait()
    return job.proc.returncode


def _race(url: str, workdir: Path) -> None:
    """One round: every job started at once; each upgrade exits 0, each server gets healthy,
    answers a GET on the webhook URL with 405, and stops cleanly."""
    workdir.mkdir()
    env = clean_env({"DATABASE_URL": url, "CLERK_WEBHOOK_SECRET": SECRET})
    jobs = [_spawn(tuple(spec.split()), env, workdir, n) for n, spec in enumerate(JOBS)]
    deadline = time.monotonic() + ROUND_TIMEOUT
    try:
        for n, job in enumerate(jobs):
            if job.port is None:
                try:
                    code = job.proc.wait(max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    raise AssertionError(f"db upgrade hung:\n{job.stderr_text()}") from None
                assert code == 0, f"db upgrade exited {code}:\n{job.stderr_text()}"
                continue
            for attempt in range(3):
                base = f"http://{HOST}:{job.port}"
                remaining = max(0.1, deadline - time.monotonic())
                try:
                    wait_healthy(job.proc, base, remaining, job.stderr_text, "serve")
                    break
                except ServerError:
                    if job.proc.poll() != PORT_TAKEN or attempt == 2:
                        raise
                job = jobs[n] = _spawn(job.args, env, workdir, n + len(jobs) * (attempt + 1))
            answer = httpx.get(base + WEBHOOK_PATH, timeout=5)
            assert answer.status_code == 405, answer.text
            assert answer.headers["allow"] == "POST"
            assert "POST" in answer.json()["detail"], answer.text
        for job in jobs:
            assert "Traceback" not in job.stderr_text(), job.stderr_text()
    finally:
        codes = [_stop(job) for job in jobs]
    servers = [(job, code) for job, code in zip(jobs, codes, strict=True) if job.port]
    for job, code in servers:
        assert code == 0, f"serve exited {code} on SIGTERM:\n{job.stderr_text()}"


@pytest.mark.timeout(ROUNDS * ROUND_TIMEOUT + 30)
@pytest.mark.parametrize("backend", BACKENDS)
def test_serve_and_db_upgrade_race_on_an_empty_database(
    fresh_database: Callable[[int], str], tmp_path: Path
) -> None:
    for n in range(ROUNDS):
        url = fresh_database(n)
        _race(url, tmp_path / f"round{n}")
        engine = make_engine(url)
        try:
            assert schema_state(engine) == "current"
            with engine.connect() as conn:
                versions = conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).all()
            assert [tuple(row) for row in versions] == [(head_revision(),)]  # migrated once
        finally:
            engine.dispose()
