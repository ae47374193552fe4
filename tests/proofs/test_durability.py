"""Proof: a 2xx leaves the server only after its commit, checked the instant it arrives.

A SIGKILL rarely lands in the few milliseconds between "answer" and "commit", so the crash proof
alone would seldom catch a server that answered a moment too early. Here PostgreSQL holds every
commit of the server's connections for 200 ms before making it visible (``commit_delay`` with
``commit_siblings=0``, set per connection through the URL), which stretches that gap until it
cannot be missed: each delivery's svix id and user are read through another connection as soon
as its 2xx arrives, and must already be there. Run with the writer process (the default) and the
in-process writer thread.
"""

from __future__ import annotations

import threading
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from sqlalchemy import Engine, select, text

from clerk_sync.devtools import encode, sign_headers, user_event, user_object
from clerk_sync.store import make_engine
from clerk_sync.web import WEBHOOK_PATH
from tests.conftest import SECRET
from tests.e2e.server import ServerProcess
from tests.helpers.tables import events_table, users_table

SLOW_COMMITS = "-c commit_delay=100000 -c commit_siblings=0"
"""commit_delay's maximum is 100 ms; the delay is taken on the WAL flush, twice per commit here
(a batch's log rows and users row share one flush, plus the visibility wait), so ≥ 100 ms."""
DELIVERIES = 24
SENDERS = 6


def slow_url(url: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}options={quote(SLOW_COMMITS)}"


def committed(observer: Engine, svix_id: str, user_id: str) -> tuple[bool, bool]:
    with observer.connect() as conn:
        logged = conn.execute(
            select(events_table.c.status).where(events_table.c.svix_id == svix_id)
        ).scalar_one_or_none()
        user = conn.execute(
            select(users_table.c.id).where(users_table.c.id == user_id)
        ).scalar_one_or_none()
    return logged == "processed", user is not None


@pytest.mark.parametrize("writer", ["process", "thread"])
def test_every_2xx_is_already_committed_when_it_arrives(
    pg_database: str, tmp_path: Path, writer: str
) -> None:
    """PostgreSQL only: SQLite's commit cannot be slowed from outside; the rule is the same."""
    db_url = pg_database
    url = slow_url(db_url)
    probe = make_engine(url)
    try:
        with probe.connect() as conn:
            assert conn.execute(text("SHOW commit_delay")).scalar_one() == "100000"
            assert conn.execute(text("SHOW commit_siblings")).scalar_one() == "0"
    finally:
        probe.dispose()

    observer = make_engine(db_url)
    users = [user_object() for _ in range(DELIVERIES)]
    late: list[str] = []
    problems: list[str] = []
    lock = threading.Lock()
    server = ServerProcess(
        database_url=url, secret=SECRET, workdir=tmp_path / "srv", extra_env={"WRITER": writer}
    )
    try:
        with server:

            def sender(share: list[dict[str, object]]) -> None:
                with httpx.Client(base_url=server.url, timeout=15) as client:
                    for user in share:
                        deliver(client, user)

            def deliver(client: httpx.Client, user: dict[str, object]) -> None:
                body = encode(user_event("user.created", user))
                headers = sign_headers(SECRET, body)
                try:
                    answer = client.post(WEBHOOK_PATH, content=body, headers=headers)
                except httpx.HTTPError as exc:
                    problem = repr(exc)
                else:
                    if answer.status_code == 200:
                        seen = committed(observer, headers["svix-id"], str(user["id"]))
                        problem = None if seen == (True, True) else f"late {headers['svix-id']}"
                    else:
                        problem = f"{answer.status_code} {answer.text}"
                if problem is not None:
                    with lock:
                        (late if problem.startswith("late") else problems).append(problem)

            threads = [
                threading.Thread(target=sender, args=(users[n::SENDERS],), daemon=True)
                for n in range(SENDERS)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(60)
            assert not any(thread.is_alive() for thread in threads), "a sender hung"
    finally:
        observer.dispose()
    assert not problems, problems[:5]
    assert not late, f"{len(late)} of {DELIVERIES} answered 2xx before their commit: {late[:5]}"
