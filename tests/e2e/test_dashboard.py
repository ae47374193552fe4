"""The dashboard in a real browser (Debian's Chromium, driven by Playwright) against a real
``clerk-sync serve`` on loopback: every page and action, the live feed without reload (from
the writer process, and on PostgreSQL from another replica), CSRF, no request leaving
127.0.0.1, no console errors, and the pages with JavaScript off.

Screenshots of every page are taken; with ``CLERK_SYNC_SCREENSHOTS=docs/screenshots`` they
are the README's.
"""

from __future__ import annotations

import os
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from clerk_sync.devtools import envelope, user_event, user_object
from clerk_sync.web import WEBHOOK_PATH
from tests.conftest import SECRET, migrated_database, signed
from tests.e2e.server import ServerProcess, clean_env, run_cli
from tests.helpers.hook_recorder import LOG_ENV, read_runs
from tests.helpers.instance import build_instance

REPO = str(Path(__file__).resolve().parents[2])
ADMIN_TOKEN = "e2e-dashboard-token-0123456789"
CHROMIUM = "/usr/bin/chromium"
DAY_MS = 86_400_000
WAIT_MS = 10_000
"""How long a page may take to show what the test waits for (a bound, not a figure)."""


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert Path(CHROMIUM).exists(), "Chromium is required: apt-get install -y chromium"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield launched
        launched.close()


class Watched:
    """A browser context whose every request and console error is recorded."""

    def __init__(self, browser: Browser, **options: Any) -> None:
        self.context: BrowserContext = browser.new_context(
            viewport={"width": 1280, "height": 860}, **options
        )
        self.requests: list[str] = []
        self.errors: list[str] = []
        self.context.on("request", lambda r: self.requests.append(r.url))
        self.page: Page = self.context.new_page()
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.set_default_timeout(WAIT_MS)

    def close(self) -> None:
        self.context.close()


def _screenshots(tmp_path: Path) -> Path:
    where = Path(os.environ.get("CLERK_SYNC_SCREENSHOTS") or tmp_path / "screenshots")
    where.mkdir(parents=True, exist_ok=True)
    return where


def _shot(page: Page, where: Path, name: str, *, whole: bool = False) -> None:
    path = where / f"{name}.png"
    page.screenshot(path=str(path), full_page=whole)
    assert path.stat().st_size > 10_000, f"{name}: the screenshot looks empty"


def _deliver(server: ServerProcess, event: dict[str, Any], expect: int = 200) -> str:
    body, headers = signed(event)
    response = server.post(body, headers)
    assert response.status_code == expect, response.text
    return str(headers["svix-id"])


def _until(check: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        time.sleep(0.1)


def _seed(server: ServerProcess) -> dict[str, Any]:
    """An instance with a history: users over a month, organizations, memberships, sessions,
    an update, a failed delivery."""
    now = int(time.time() * 1000)
    instance = build_instance(t0=now - 3_600_000)
    for event in instance.events():
        _deliver(server, event)
    for day in range(30):
        for n in range(day % 4):
            at = now - day * DAY_MS - n * 1000
            user = user_object(created_at=at, updated_at=at)
            _deliver(server, user_event("user.created", user))
    alice = instance.users["alice"]
    renamed = {**alice, "first_name": "Alicia", "updated_at": alice["updated_at"] + 10}
    _deliver(server, envelope("user.updated", renamed, renamed["updated_at"]))
    failed = _deliver(server, {"type": "user.created", "object": "event", "data": {"id": 7}}, 422)
    return {"instance": instance, "failed": failed}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, Path]]:
    """One ``serve`` on SQLite with the writer process and a hook that fails its first run
    (and ``OUTBOX_MAX_ATTEMPTS=1``, so it is dead at once): the outbox has something to retry."""
    workdir = tmp_path_factory.mktemp("dashboard")
    log = workdir / "hooks.jsonl"
    with ServerProcess(
        database_url=f"sqlite:///{workdir / 'clerk_sync.db'}",
        secret=SECRET,
        workdir=workdir,
        admin_token=ADMIN_TOKEN,
        extra_env={
            "PYTHONPATH": REPO,
            LOG_ENV: str(log),
            "HOOKS": "tests.helpers.hook_recorder:flaky",
            "OUTBOX_MAX_ATTEMPTS": "1",
        },
    ) as running:
        yield running, log


def _sign_in(watched: Watched, server: ServerProcess, token: str = ADMIN_TOKEN) -> None:
    page = watched.page
    page.goto(f"{server.url}/admin/")
    assert page.url.startswith(f"{server.url}/admin/sign-in")
    page.fill("#token", token)
    page.click("button[type=submit]")


def test_every_page_and_action_in_chromium(
    browser: Browser, server: tuple[ServerProcess, Path], tmp_path: Path
) -> None:
    serve, log = server
    seeded = _seed(serve)
    instance = seeded["instance"]
    shots = _screenshots(tmp_path)
    watched = Watched(browser)
    page = watched.page

    # Sign in: a wrong token first (the one console error allowed is its 401), then the right.
    _sign_in(watched, serve, token="not-the-token")
    assert page.locator("[role=alert]").inner_text() == "That is not the admin token."
    _shot(page, shots, "sign-in")
    assert len(watched.errors) == 1, watched.errors
    assert "401" in watched.errors[0]
    watched.errors.clear()
    page.fill("#token", ADMIN_TOKEN)
    page.click("button[type=submit]")
    page.wait_for_selector("h1:text('Overview')")
    assert (
        page.locator(".card", has_text="users")
        .first.inner_text()
        .startswith(str(len(instance.users) + sum(d % 4 for d in range(30))))
    )
    _shot(page, shots, "overview")

    # Live: a delivery appears without reload; paused, it waits; resumed, it shows.
    page.click("nav >> text=Live")
    page.wait_for_selector("#feed-state:text('live')")
    page.evaluate("window.__still_here = 42")
    fresh = {"id": "user_2graceTriggeredFromTheCli"}
    sent_at = time.monotonic()
    triggered = run_cli(
        "trigger",
        "user.created",
        "--url",
        f"{serve.url}{WEBHOOK_PATH}",
        "--user-id",
        fresh["id"],
        "--set",
        "data.first_name=Grace",
        env=clean_env({"CLERK_WEBHOOK_SECRET": SECRET}),
        cwd=tmp_path,
    )
    assert triggered.returncode == 0, triggered
    page.wait_for_selector(f"#feed li:has-text('{fresh['id']}')")
    print(f"live feed: shown {time.monotonic() - sent_at:.2f} s after `clerk-sync trigger` started")
    assert page.evaluate("window.__still_here") == 42, "the page was reloaded"
    _shot(page, shots, "live")
    page.click("#feed-toggle")
    held = user_object(first_name="Held")
    _deliver(serve, user_event("user.created", held))
    page.wait_for_selector("#feed-state:has-text('waiting')")
    assert page.locator(f"#feed li:has-text('{held['id']}')").count() == 0
    page.click("#feed-toggle")
    page.wait_for_selector(f"#feed li:has-text('{held['id']}')")
    assert page.evaluate("window.__still_here") == 42

    # Users: search as you type, then a user's page with the timeline.
    page.click("nav >> text=Users")
    alice = instance.users["alice"]
    page.fill("#q", "alice@exam")
    expect(page.locator("#results tbody tr")).to_have_count(1)
    assert alice["id"] in page.locator("#results").inner_text()
    _shot(page, shots, "users")
    page.click("#results a:has-text('Alicia')")
    page.wait_for_selector("#timeline")
    assert "first_name: Alice → Alicia" in page.locator("#timeline").inner_text()
    _shot(page, shots, "user", whole=True)

    # Organizations.
    page.click("nav >> text=Organizations")
    page.wait_for_selector("#results a:has-text('Globex')")
    _shot(page, shots, "organizations")
    page.click("text=Acme Corp")
    page.wait_for_selector("h2:has-text('Members (3)')")
    _shot(page, shots, "organization")

    # Events: filter by status, open the failed one, replay it.
    page.click("nav >> text=Events")
    page.select_option("select[name=status]", "failed")
    expect(page.locator("#results tbody tr")).to_have_count(1)
    _shot(page, shots, "events")
    page.click(f"text={seeded['failed']}")
    page.wait_for_selector("#payload")
    _shot(page, shots, "event")
    page.click("#replay")
    assert page.locator("#replayed").inner_text().startswith("Replayed: failed")

    # A request without the CSRF token is refused (the browser's cookies, no token).
    refused = watched.context.request.post(
        f"{serve.url}/admin/events/{seeded['failed']}/replay", max_redirects=0
    )
    assert refused.status == 403

    # Outbox: the hook's first run failed and, with one attempt allowed, is dead: retry it.
    def dead_listed() -> bool:
        page.goto(f"{serve.url}/admin/outbox?status=dead")
        return page.locator("button:text('Retry')").count() > 0

    _until(dead_listed, "a dead outbox row on the page")
    _shot(page, shots, "outbox")
    runs = len(read_runs(log))
    page.locator("tbody button:text-is('Retry')").first.click()
    assert page.locator("#retried").inner_text() == "1 row made pending again."
    _until(lambda: len(read_runs(log)) > runs, "the retried row's run")

    # Sign out.
    page.click("button:text('Sign out')")
    page.wait_for_selector("text=You are signed out.")
    page.goto(f"{serve.url}/admin/events")
    assert page.url.startswith(f"{serve.url}/admin/sign-in")

    assert watched.errors == []
    outside = [u for u in watched.requests if not u.startswith(f"{serve.url}/")]
    assert outside == [], outside
    watched.close()


def test_the_pages_work_with_javascript_off(
    browser: Browser, server: tuple[ServerProcess, Path]
) -> None:
    serve, _ = server
    user = user_object(first_name="Noscript", last_name="Reader")
    _deliver(serve, user_event("user.created", user))
    watched = Watched(browser, java_script_enabled=False)
    page = watched.page
    _sign_in(watched, serve)
    page.wait_for_selector("h1:text('Overview')")
    page.goto(f"{serve.url}/admin/users")
    page.fill("#q", "Noscript")
    page.click("button:text('Search')")
    assert page.url.endswith("/admin/users?q=Noscript")
    assert page.locator("#results tbody tr").count() == 1
    page.goto(f"{serve.url}/admin/live")
    assert user["id"] in page.locator("#feed").inner_text()
    page.goto(f"{serve.url}/admin/events?status=processed")
    assert page.locator("#results tbody tr").count() >= 1
    assert watched.errors == []
    watched.close()


def test_the_live_feed_shows_what_another_replica_committed(
    browser: Browser, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    url = migrated_database("postgresql", tmp_path, request)
    common = {"database_url": url, "secret": SECRET, "admin_token": ADMIN_TOKEN}
    with (
        ServerProcess(workdir=tmp_path / "a", **common) as a,
        ServerProcess(workdir=tmp_path / "b", **common) as b,
    ):
        watched = Watched(browser)
        _sign_in(watched, a)
        watched.page.goto(f"{a.url}/admin/live")
        watched.page.wait_for_selector("#feed-state:text('live')")
        users = [user_object(first_name=f"Replica {n}") for n in range(3)]
        for n, user in enumerate(users):
            _deliver(b if n % 2 == 0 else a, user_event("user.created", user))
        for user in users:
            watched.page.wait_for_selector(f"#feed li:has-text('{user['id']}')")
        assert watched.errors == []
        watched.close()


def test_serve_stops_promptly_with_live_streams_open(tmp_path: Path) -> None:
    with ServerProcess(
        database_url=f"sqlite:///{tmp_path / 'clerk_sync.db'}",
        secret=SECRET,
        workdir=tmp_path,
        admin_token=ADMIN_TOKEN,
    ) as serve:
        with httpx.Client(base_url=serve.url, timeout=10.0) as client:
            from tests.helpers.dashboard import sign_in

            sign_in(client, ADMIN_TOKEN)
            opened = threading.Event()
            ended: list[float] = []

            def listen() -> None:
                try:
                    with client.stream("GET", "/admin/live/stream") as stream:
                        for line in stream.iter_lines():
                            if line.startswith("event: ready"):
                                opened.set()
                except httpx.RemoteProtocolError:  # cut when the server stops: the browser
                    pass  # reconnects, to this server or another
                ended.append(time.monotonic())

            listener = threading.Thread(target=listen, daemon=True)
            listener.start()
            assert opened.wait(10)
            assert serve.proc is not None
            stopped_at = time.monotonic()
            serve.proc.send_signal(signal.SIGTERM)
            assert serve.proc.wait(10) == 0, serve.stderr_text()
            listener.join(10)
            assert ended
            assert ended[0] - stopped_at < 10
        log = serve.stderr_text()
        assert not re.search(r"Traceback|ERROR", log), log
