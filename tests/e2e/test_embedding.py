"""Embedding: the README's FastAPI app, exactly as printed, under a real uvicorn on both
databases; its Starlette variant mounted in-process; a mount whose lifespan never ran; and a
lifespan joined twice.

Mounted, clerk-sync routes on the path below the mount (Starlette keeps the whole path in
``path`` and the prefix in ``root_path``), and runs only when the host joins its lifespan.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import Engine, func, select
from starlette._utils import get_route_path
from starlette.testclient import TestClient

from clerk_sync.config import Settings
from clerk_sync.devtools import user_event, user_object
from clerk_sync.store import make_engine
from clerk_sync.web import NOT_STARTED, WEBHOOK_PATH, ClerkSyncApp, create_app, route_path
from tests.conftest import BACKENDS, SECRET, migrated_sqlite, signed
from tests.e2e.server import HOST, ServerProcess, free_port, wait_healthy
from tests.helpers.databases import empty_database
from tests.helpers.instance import ODD_USER_ID
from tests.helpers.tables import events_table, users_table
from tests.web.conftest import ADMIN_TOKEN, make_settings

README = Path(__file__).resolve().parents[2] / "README.md"
PREFIX = "/clerk"
HOOK_TIMEOUT = 10.0


def readme_block(marker: str) -> str:
    """The ```python block right after ``<!-- marker -->`` in the README."""
    text = README.read_text(encoding="utf-8")
    found = re.search(rf"<!-- {re.escape(marker)} -->\n```python\n(.*?)\n```\n", text, re.S)
    assert found, f"README.md has no ```python block after <!-- {marker} -->"
    return found.group(1) + "\n"


class EmbeddedServer(ServerProcess):
    """``uvicorn <module>:app`` instead of ``clerk-sync serve``: the same environment,
    lifecycle, logs and clients, with the health check polled under the mount."""

    def __init__(self, module: Path, *, uvicorn_args: tuple[str, ...] = (), **kw: Any) -> None:
        super().__init__(**kw)
        self.module = module
        self.uvicorn_args = uvicorn_args

    def _spawn(self) -> None:
        self._close_files()
        self.port = free_port()
        stderr = self.stderr_path.open("wb")
        stdout = self.stdout_path.open("wb")
        self._files = [stderr, stdout]
        self.proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "uvicorn", f"{self.module.stem}:app"),
                *("--app-dir", str(self.module.parent), "--host", HOST, "--port", str(self.port)),
                *self.uvicorn_args,
            ],
            env=self.env,
            cwd=self.workdir,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
        )

    def _wait_healthy(self) -> None:
        assert self.proc is not None
        wait_healthy(
            self.proc,
            self.url + PREFIX,
            self.startup_timeout,
            self.stderr_text,
            "uvicorn running the README's FastAPI app",
        )

    def wait_for_log(self, line: str, timeout: float = HOOK_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while line not in self.stderr_text():
            if time.monotonic() > deadline:
                raise AssertionError(f"no {line!r} in the log within {timeout} s:\n{self.log}")
            time.sleep(0.05)

    @property
    def log(self) -> str:
        return self.stderr_text() + self.stdout_path.read_text(encoding="utf-8", errors="replace")


def _deliver(post: Callable[..., Any], event: dict[str, Any]) -> dict[str, Any]:
    body, headers = signed(event)
    response = post(PREFIX + WEBHOOK_PATH, content=body, headers=headers)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    assert answer["status"] == "processed", answer
    return answer


def _stored_user(observer: Engine, user_id: str) -> dict[str, Any] | None:
    with observer.connect() as conn:
        row = conn.execute(select(users_table).where(users_table.c.id == user_id)).first()
    return dict(row._mapping) if row else None


def _auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN_TOKEN}"}


# -- the README's FastAPI app under uvicorn ------------------------------------------------------


@pytest.mark.timeout(90)
@pytest.mark.parametrize("backend", BACKENDS)
def test_readme_fastapi_app_under_uvicorn(backend: str, tmp_path: Path) -> None:
    """Run the README's block as written: an empty database is migrated by the joined lifespan,
    signed deliveries to /clerk/api/webhooks/clerk are committed, the read API answers under
    the prefix, and the snippet's after-commit hook logs its welcome. On PostgreSQL the server
    also runs with the connection edge the README offers (``--http … --ws none``)."""
    module = tmp_path / "app" / "embedded_main.py"
    module.parent.mkdir()
    module.write_text(readme_block("embed-fastapi"), encoding="utf-8")
    edge = ("--http", "clerk_sync.web.edge:SettingsEdgeProtocol", "--ws", "none")
    with (
        empty_database(backend, tmp_path, "embed") as url,
        EmbeddedServer(
            module,
            uvicorn_args=edge if backend == "postgresql" else (),
            database_url=url,
            secret=SECRET,
            admin_token=ADMIN_TOKEN,
            workdir=tmp_path / "srv",
        ) as server,
    ):
        observer = make_engine(url)
        try:
            ada = user_object(first_name="Ada")
            odd = user_object(user_id=ODD_USER_ID, first_name="Odd", email="odd@example.net")
            for user in (ada, odd):
                answer = _deliver(server.client.post, user_event("user.created", user))
                assert answer["subject_id"] == user["id"]
            for user in (ada, odd):  # committed: a second connection sees them
                stored = _stored_user(observer, user["id"])
                assert stored is not None
                assert stored["first_name"] == user["first_name"]

            read = server.client.get(
                f"{PREFIX}/api/users/{quote(ODD_USER_ID, safe='')}", headers=_auth()
            )
            assert read.status_code == 200, read.text
            assert read.json()["id"] == ODD_USER_ID
            listed = server.client.get(f"{PREFIX}/api/users?email=odd@example.net", headers=_auth())
            assert [u["id"] for u in listed.json()["data"]] == [ODD_USER_ID]
            assert server.client.get(f"{PREFIX}/api/users/{ada['id']}").status_code == 401
            assert server.client.get(f"{PREFIX}/healthz").json() == {"status": "ok"}
            browser = server.client.get(PREFIX + WEBHOOK_PATH)
            assert (browser.status_code, browser.headers["allow"]) == (405, "POST")
            assert server.client.get(WEBHOOK_PATH).status_code == 404  # the host's, unmounted
            assert server.client.get("/").json() == {"hello": "world"}

            server.wait_for_log(f"welcome, Ada! ({ada['id']})")
            server.wait_for_log(f"welcome, Odd! ({ODD_USER_ID})")
            assert "Clerk webhook URL: https://<your domain>/clerk/api/webhooks/clerk" in server.log
            if backend == "postgresql":  # the edge counts raw header bytes: 431 past 64 KiB
                huge = httpx.get(  # a connection of its own: the pooled one may have idled out
                    f"{server.url}/", headers={"x-filler": "a" * 70_000, "connection": "close"}
                )
                assert huge.status_code == 431, huge.text
        finally:
            observer.dispose()
        code = server.stop()
        log = server.log
        assert "Application shutdown complete" in log, log
        assert "Traceback" not in log, log
        assert code in (0, -signal.SIGTERM), log  # uvicorn re-raises the SIGTERM


# -- in-process: the Starlette variant, routing, no lifespan, a lifespan joined twice ------------


def test_route_path_agrees_with_the_installed_starlette() -> None:
    scopes = [
        {"path": "/clerk/api/webhooks/clerk", "root_path": "/clerk"},
        {"path": "/clerk", "root_path": "/clerk"},
        {"path": "/clerkish/api/x", "root_path": "/clerk"},
        {"path": "/api/webhooks/clerk", "root_path": ""},
        {"path": "/api/webhooks/clerk", "root_path": "/clerk"},  # a proxy stripped it
        {"path": "/a/b/healthz", "root_path": "/a/b"},
    ]
    for scope in scopes:
        assert route_path(scope) == get_route_path(scope), scope


@pytest.fixture
def starlette_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Settings for the README's Starlette block, from the environment only (as it reads
    them); returns the database URL."""
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env
    url = migrated_sqlite(tmp_path / "starlette.db")
    for name, value in {
        "CLERK_WEBHOOK_SECRET": SECRET,
        "DATABASE_URL": url,
        "ADMIN_TOKEN": ADMIN_TOKEN,
        "WRITER": "thread",
    }.items():
        monkeypatch.setenv(name, value)
    return url


def test_readme_starlette_variant_mounted(starlette_env: str) -> None:
    namespace: dict[str, Any] = {"__name__": "embedded_starlette"}
    exec(compile(readme_block("embed-starlette"), "README.md", "exec"), namespace)  # noqa: S102
    clerk: ClerkSyncApp = namespace["clerk"]
    observer = make_engine(starlette_env)
    try:
        with TestClient(namespace["app"]) as client:
            assert clerk.started
            user = user_object(user_id=ODD_USER_ID)
            _deliver(client.post, user_event("user.created", user))
            assert _stored_user(observer, ODD_USER_ID) is not None
            read = client.get(f"{PREFIX}/api/users/user%2Fodd%25id", headers=_auth())
            assert read.status_code == 200, read.text
            assert read.json()["id"] == ODD_USER_ID
            nested = client.get(f"{PREFIX}/api/users/user%2Fodd%25id/sessions", headers=_auth())
            assert nested.json() == {"data": [], "next_cursor": None}
            assert client.get(f"{PREFIX}/api/nothing", headers=_auth()).status_code == 404
            assert client.get(f"{PREFIX}/healthz").json() == {"status": "ok"}
            assert client.get(PREFIX + WEBHOOK_PATH).status_code == 405
            assert client.post(WEBHOOK_PATH).status_code == 404  # nothing outside the mount
        assert not clerk.started
    finally:
        observer.dispose()


def test_mounted_without_its_lifespan_answers_503_saying_what_to_add(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = migrated_sqlite(tmp_path / "forgot.db")
    clerk = create_app(make_settings(url))
    host = FastAPI()  # the mistake: no lifespan=clerk.lifespan
    host.mount(PREFIX, clerk)
    body, headers = signed(user_event("user.created", user_object()))
    with caplog.at_level(logging.WARNING, "clerk_sync.web"), TestClient(host) as client:
        answers = [
            client.post(PREFIX + WEBHOOK_PATH, content=body, headers=headers),
            client.get(f"{PREFIX}/api/users", headers=_auth()),
            client.get(f"{PREFIX}/healthz"),
        ]
    for answer in answers:
        assert answer.status_code == 503, answer.text
        assert answer.json() == {
            "error": "store_unavailable",
            "detail": NOT_STARTED,
            "check": "lifespan",
        }
    assert "lifespan=clerk.lifespan" in NOT_STARTED
    assert [r.getMessage() for r in caplog.records] == [
        f"answering 503 to every request: {NOT_STARTED}"
    ]
    observer = make_engine(url)
    try:
        with observer.connect() as conn:
            assert conn.execute(select(func.count()).select_from(events_table)).scalar_one() == 0
    finally:
        observer.dispose()


@contextlib.asynccontextmanager
async def asgi_lifespan(app: ClerkSyncApp) -> AsyncIterator[None]:
    """What a server running ``app`` itself does: the ASGI lifespan protocol."""
    to_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    from_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def send(message: Any) -> None:
        await from_app.put(dict(message))

    scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
    task = asyncio.create_task(app(scope, to_app.get, send))
    await to_app.put({"type": "lifespan.startup"})
    assert (await from_app.get())["type"] == "lifespan.startup.complete"
    try:
        yield
    finally:
        await to_app.put({"type": "lifespan.shutdown"})
        assert (await from_app.get())["type"] == "lifespan.shutdown.complete"
        await task


def test_lifespan_joined_twice_starts_and_stops_once(tmp_path: Path) -> None:
    """The host's lifespan and the ASGI lifespan (a server or framework that forwards it)
    together: the first entry starts, the last exit stops, and only once each."""
    clerk = create_app(make_settings(migrated_sqlite(tmp_path / "twice.db")))
    committer = clerk.webhook.committer
    calls: list[str] = []

    def counted(name: str) -> None:
        real = getattr(committer, name)

        async def wrapper() -> None:
            calls.append(name)
            await real()

        setattr(committer, name, wrapper)

    counted("open")
    counted("close")

    after_asgi: list[str] = []

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with clerk.lifespan(app):
            async with asgi_lifespan(clerk):
                yield
            assert clerk.started  # the ASGI lifespan ended: still running for the host
            after_asgi.extend(calls)

    host = FastAPI(lifespan=lifespan)
    host.mount(PREFIX, clerk)
    with TestClient(host) as client:
        _deliver(client.post, user_event("user.created", user_object()))
    assert after_asgi == ["open"]
    assert calls == ["open", "close"]
    assert not clerk.started


def test_fastapi_lifespan_one_liner_starts_again_after_a_stop(tmp_path: Path) -> None:
    """``FastAPI(lifespan=clerk.lifespan)``, run twice as a test suite does (each test client
    has an event loop of its own): stopped in between, answering in each."""
    clerk = create_app(make_settings(migrated_sqlite(tmp_path / "one.db")))
    host = FastAPI(lifespan=clerk.lifespan)
    host.mount(PREFIX, clerk)
    for _ in range(2):
        with TestClient(host) as client:
            assert clerk.started
            user = user_object()
            _deliver(client.post, user_event("user.created", user))
            read = client.get(f"{PREFIX}/api/users/{user['id']}", headers=_auth())
            assert read.status_code == 200, read.text
            assert read.json()["id"] == user["id"]
        assert not clerk.started
