"""The dashboard over HTTP, in-process (the browser tests are ``tests/e2e/test_dashboard.py``):
sign-in, sessions, CSRF, escaping, search, filters, replay and retry, on real databases."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, insert, select, update
from starlette.testclient import TestClient

from clerk_sync.devtools import deleted_user_event, envelope, user_event, user_object
from clerk_sync.errors import ConfigError
from clerk_sync.web import WEBHOOK_PATH, create_app
from clerk_sync.web.admin.session import SESSION_COOKIE, Sessions
from tests.conftest import migrated_sqlite, signed
from tests.helpers.dashboard import csrf_of, sign_in
from tests.helpers.event_log import record_failed
from tests.helpers.instance import build_instance
from tests.helpers.tables import events_table, metadata

from .conftest import ADMIN_TOKEN, make_settings

outbox_table = metadata.tables["outbox"]
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
PAGES = ["/admin/", "/admin/live", "/admin/users", "/admin/organizations", "/admin/events",
         "/admin/outbox"]  # fmt: skip


def _client(db_url: str, **overrides: Any) -> TestClient:
    return TestClient(create_app(make_settings(db_url, **overrides)))


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return migrated_sqlite(tmp_path / "clerk_sync.db")


@pytest.fixture
def admin(db_url: str) -> Iterator[TestClient]:
    """A signed-in dashboard on either database."""
    with _client(db_url) as client:
        client.headers["x-test-csrf"] = sign_in(client, ADMIN_TOKEN)
        yield client


def _deliver(client: TestClient, event: dict[str, Any]) -> str:
    body, headers = signed(event)
    response = client.post(WEBHOOK_PATH, content=body, headers=headers)
    assert response.status_code == 200, response.text
    return str(headers["svix-id"])


# -- sign-in and sessions ------------------------------------------------------------------------


def test_without_admin_token_every_dashboard_path_is_404(sqlite_url: str) -> None:
    with _client(sqlite_url, admin_token="") as client:
        for path in [*PAGES, "/admin/sign-in", "/admin/static/htmx.min.js"]:
            assert client.get(path).status_code == 404, path
        assert client.post("/admin/sign-in", data={"token": ""}).status_code == 404


def test_a_page_sends_you_to_sign_in_and_back(sqlite_url: str) -> None:
    with _client(sqlite_url) as client:
        first = client.get("/admin/users?q=ada", follow_redirects=False)
        assert first.status_code == 303
        assert first.headers["location"] == "/admin/sign-in?next=%2Fadmin%2Fusers%3Fq%3Dada"
        form = client.get(first.headers["location"])
        assert 'value="/admin/users?q=ada"' in form.text
        signed_in = client.post(
            "/admin/sign-in",
            data={
                "token": ADMIN_TOKEN,
                "csrf_token": csrf_of(form.text),
                "next": "/admin/users?q=ada",
            },
            follow_redirects=False,
        )
        assert signed_in.status_code == 303
        assert signed_in.headers["location"] == "/admin/users?q=ada"
        cookie = next(
            c for c in signed_in.headers.get_list("set-cookie") if c.startswith(SESSION_COOKIE)
        )
        flags = {part.strip().lower() for part in cookie.split(";")[1:]}
        assert {"httponly", "samesite=strict", "path=/admin/"} <= flags
        assert "secure" not in flags  # plain HTTP here: see the HTTPS test
        assert ADMIN_TOKEN not in cookie


def test_the_cookie_is_secure_over_https(sqlite_url: str) -> None:
    with TestClient(create_app(make_settings(sqlite_url)), base_url="https://testserver") as client:
        form = client.get("/admin/sign-in")
        response = client.post(
            "/admin/sign-in",
            data={"token": ADMIN_TOKEN, "csrf_token": csrf_of(form.text)},
            follow_redirects=False,
        )
        cookie = next(
            c for c in response.headers.get_list("set-cookie") if c.startswith(SESSION_COOKIE)
        )
        assert "secure" in cookie.lower()


@pytest.mark.parametrize(
    "token", ["wrong", ADMIN_TOKEN[:-1], ADMIN_TOKEN + "x", "", ADMIN_TOKEN.upper()]
)
def test_a_wrong_token_gets_the_same_answer_whatever_is_wrong(sqlite_url: str, token: str) -> None:
    with _client(sqlite_url) as client:
        form = client.get("/admin/sign-in")
        response = client.post(
            "/admin/sign-in", data={"token": token, "csrf_token": csrf_of(form.text)}
        )
        assert response.status_code == 401
        assert "That is not the admin token." in response.text
        assert SESSION_COOKIE + "=" not in response.headers.get("set-cookie", "")
        assert client.get("/admin/", follow_redirects=False).status_code == 303


def test_sign_in_without_its_form_token_is_refused(sqlite_url: str) -> None:
    with _client(sqlite_url) as client:
        missing = client.post("/admin/sign-in", data={"token": ADMIN_TOKEN})
        assert missing.status_code == 403
        client.get("/admin/sign-in")  # a nonce cookie of its own, but another form's token
        other = Sessions(ADMIN_TOKEN, 1000).sign_in_csrf("some-other-nonce")
        forged = client.post("/admin/sign-in", data={"token": ADMIN_TOKEN, "csrf_token": other})
        assert forged.status_code == 403
        assert client.get("/admin/", follow_redirects=False).status_code == 303


def test_sign_in_is_rate_limited_like_the_read_api(sqlite_url: str) -> None:
    with _client(sqlite_url, rate_limit_api="4/minute") as client:
        codes = [
            client.post("/admin/sign-in", data={"token": "guess"}).status_code for _ in range(6)
        ]
        assert codes[:4] == [403] * 4
        assert codes[4:] == [429, 429]
        assert client.get("/admin/static/admin.css").status_code == 200  # static: no budget


@pytest.mark.parametrize(
    "target", ["https://evil.example/", "//evil.example/x", "/api/users", "/admin\\..", ""]
)
def test_next_never_leaves_the_dashboard(sqlite_url: str, target: str) -> None:
    with _client(sqlite_url) as client:
        form = client.get("/admin/sign-in")
        response = client.post(
            "/admin/sign-in",
            data={"token": ADMIN_TOKEN, "csrf_token": csrf_of(form.text), "next": target},
            follow_redirects=False,
        )
        assert response.headers["location"] == "/admin/"


def _session_cookie(client: TestClient) -> str:
    return str(client.cookies[SESSION_COOKIE])


def test_forged_expired_and_other_token_cookies_send_you_to_sign_in(sqlite_url: str) -> None:
    with _client(sqlite_url) as client:
        sign_in(client, ADMIN_TOKEN)
        good = _session_cookie(client)
        expires, nonce, signature = good.split(".")
        expired, _ = Sessions(ADMIN_TOKEN, 1000).issue(now_ms=int(time.time() * 1000) - 5000)
        other_token, _ = Sessions("another-admin-token-123456", 3_600_000).issue()
        cases = {
            "invalid": [
                f"{int(expires) + 10**9}.{nonce}.{signature}",  # lifetime stretched
                f"{expires}.{nonce}.{signature[:-2]}AA",
                other_token,
                "garbage",
                "a.b.c",
                "x" * 5000,
            ],
            "expired": [expired],
        }
        for why, cookies in cases.items():
            for cookie in cookies:
                client.cookies.clear()
                client.cookies.set(SESSION_COOKIE, cookie, path="/admin/")
                response = client.get("/admin/", follow_redirects=False)
                assert response.status_code == 303, cookie
                assert f"why={why}" in response.headers["location"], cookie
        client.cookies.clear()
        client.cookies.set(SESSION_COOKIE, expired, path="/admin/")
        page = client.get("/admin/")
        assert "Your session expired" in page.text


def test_state_changing_requests_need_the_sessions_csrf_token(admin: TestClient) -> None:
    svix_id = _deliver(admin, user_event("user.created", user_object()))
    replay = f"/admin/events/{svix_id}/replay"
    assert admin.post(replay, follow_redirects=False).status_code == 403
    assert admin.post(replay, data={"csrf_token": "nope"}).status_code == 403
    other = Sessions(ADMIN_TOKEN, 3_600_000)
    assert admin.post(replay, data={"csrf_token": other.csrf(other.issue()[1])}).status_code == 403
    assert admin.post("/admin/sign-out", follow_redirects=False).status_code == 403
    assert admin.get("/admin/", follow_redirects=False).status_code == 200  # still signed in
    csrf = admin.headers["x-test-csrf"]
    by_header = admin.post(replay, headers={"X-CSRF-Token": csrf}, follow_redirects=False)
    assert by_header.status_code == 303
    out = admin.post("/admin/sign-out", data={"csrf_token": csrf}, follow_redirects=False)
    assert out.status_code == 303
    assert admin.get("/admin/", follow_redirects=False).status_code == 303


def test_every_response_carries_the_security_headers(admin: TestClient) -> None:
    for path in [*PAGES, "/admin/sign-in", "/admin/static/htmx.min.js", "/admin/nope"]:
        response = admin.get(path)
        assert response.headers["content-security-policy"] == CSP, path
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
    assert admin.get("/admin/").headers["cache-control"] == "no-store"


def test_avatars_are_allowed_from_clerk_only_when_turned_on(sqlite_url: str) -> None:
    user = {**user_object(), "image_url": "https://img.clerk.com/abc.png"}
    with _client(sqlite_url) as client:
        sign_in(client, ADMIN_TOKEN)
        _deliver(client, user_event("user.created", user))
        assert "img.clerk.com" not in client.get("/admin/users").text
    with _client(sqlite_url, admin_show_avatars=True) as client:
        sign_in(client, ADMIN_TOKEN)
        page = client.get("/admin/users")
        assert '<img class="avatar" src="https://img.clerk.com/abc.png"' in page.text
        assert (
            "img-src 'self' data: https://img.clerk.com;" in page.headers["content-security-policy"]
        )


def test_nothing_in_the_templates_or_scripts_points_outside() -> None:
    root = Path(__file__).resolve().parents[2] / "src/clerk_sync/web/admin"
    for path in [
        *root.glob("templates/*.html"),
        root / "static/admin.js",
        root / "static/admin.css",
    ]:
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"(?:src|href)=[\"']?(?:https?:)?//", text), path
        assert "<script>" not in text, path  # the CSP allows no inline script
        assert "style=" not in text, path  # nor inline style


@pytest.mark.parametrize("setting", ["admin_session_ttl", "admin_quiet_after"])
def test_bad_dashboard_durations_stop_the_app_at_start(sqlite_url: str, setting: str) -> None:
    with pytest.raises(ConfigError, match=setting.upper()):
        create_app(make_settings(sqlite_url, **{setting: "soon"}))


# -- what the pages show -------------------------------------------------------------------------


def test_names_and_metadata_are_rendered_as_text(admin: TestClient) -> None:
    script = "<script>alert('x')</script>"
    user = user_object(first_name=script, last_name="\u202eevil", public_metadata={"note": script})
    svix_id = _deliver(admin, user_event("user.created", user))
    pages = [
        "/admin/users",
        f"/admin/users/{user['id']}",
        "/admin/live",
        "/admin/live/rows",
        f"/admin/events/{svix_id}",
        "/admin/users?q=" + "%3Cscript%3E",
    ]
    for path in pages:
        text = admin.get(path).text
        assert "<script>alert" not in text, path
        assert "&lt;script&gt;" in text, path
        assert "\u202e" not in text, path
    assert "\\u202eevil" in admin.get(f"/admin/users/{user['id']}").text


def test_search_matches_percent_and_underscore_as_themselves(admin: TestClient) -> None:
    users = {
        "percent": user_object(first_name="50% off"),
        "five hundred": user_object(first_name="500 off"),
        "underscore": user_object(username="a_b"),
        "axb": user_object(username="axb"),
    }
    for user in users.values():
        _deliver(admin, user_event("user.created", user))
    assert _ids(admin.get("/admin/users?q=%25").text) == {users["percent"]["id"]}
    assert _ids(admin.get("/admin/users?q=50%25").text) == {users["percent"]["id"]}
    assert _ids(admin.get("/admin/users?q=a_b").text) == {users["underscore"]["id"]}
    assert _ids(admin.get("/admin/users?q=").text) == {u["id"] for u in users.values()}
    assert _ids(admin.get("/admin/users?q=AXB").text) == {users["axb"]["id"]}
    one = users["percent"]["id"]
    assert _ids(admin.get(f"/admin/users?q={one}").text) == {one}


def _ids(html: str) -> set[str]:
    return set(re.findall(r'<td class="mono">(user_[^<]+)</td>', html))


def test_a_users_page_shows_organizations_sessions_and_a_timeline(admin: TestClient) -> None:
    instance = build_instance()
    for event in instance.events():
        _deliver(admin, event)
    alice = dict(instance.users["alice"])
    renamed = {**alice, "first_name": "Alicia", "updated_at": alice["updated_at"] + 1000}
    _deliver(admin, envelope("user.updated", renamed, renamed["updated_at"]))
    page = admin.get(f"/admin/users/{alice['id']}").text
    organizations = page[page.index("<h2>Organizations</h2>") : page.index("<h2>Sessions</h2>")]
    assert "Acme Corp" in organizations
    assert "Globex" in organizations
    for session_id in instance.sessions_of("alice"):
        assert session_id in page
    timeline = page[page.index('id="timeline"') :]
    assert timeline.count("user.created") == 1
    assert timeline.count("user.updated") == 1
    assert "organizationMembership.created" in timeline
    assert "session.created" in timeline
    assert "<code>first_name</code>: Alice → Alicia" in timeline
    org = admin.get(f"/admin/organizations/{instance.organizations['acme']['id']}").text
    assert "Members (3)" in org
    assert "dave@example.com" in org
    assert "Alicia Liddell" in org
    assert "Acme Corp" in admin.get("/admin/organizations?q=acme").text


def test_a_deleted_user_says_when(admin: TestClient) -> None:
    user = user_object()
    _deliver(admin, user_event("user.created", user))
    _deliver(admin, deleted_user_event(user["id"]))
    page = admin.get(f"/admin/users/{user['id']}")
    assert page.status_code == 404
    assert "deleted" in page.text
    assert "never synced" in admin.get("/admin/users/user_nobody").text


def test_the_overview_counts_and_turns_red_when_deliveries_stop(
    db_url: str, engine: Engine
) -> None:
    with _client(db_url, admin_quiet_after="1h") as client:
        sign_in(client, ADMIN_TOKEN)
        overview = client.get("/admin/").text
        assert 'class="card alarm" id="last-delivery"' in overview
        assert "never" in overview
        instance = build_instance(t0=int(time.time() * 1000) - 3_600_000)
        for event in instance.events():
            _deliver(client, event)
        record_failed(engine, "msg_old_failure", b"{}")
        overview = client.get("/admin/").text
        found = re.findall(r'"figure">([\d,]+)</span><span class="what">([^<]+)<', overview)
        assert {what: n for n, what in found} == {
            "users": "4",
            "organizations": "4",
            "memberships": "5",
            "active sessions": "4",
            "failed deliveries": "1",
            "dead outbox rows": "0",
        }
        assert 'class="card" id="last-delivery"' in overview
        assert overview.count('<rect class="ok"') >= 2  # deliveries this hour, sign-ups today
        with engine.begin() as conn:
            conn.execute(
                update(events_table).values(received_at=events_table.c.received_at - 7_200_000)
            )
        assert 'class="card alarm" id="last-delivery"' in client.get("/admin/").text


def test_events_are_filtered_by_status_type_subject_and_time(admin: TestClient) -> None:
    instance = build_instance()
    ids = {event["data"]["id"]: _deliver(admin, event) for event in instance.events()}
    body, headers = signed({"type": "user.created", "data": {"id": 5}, "object": "event"})
    assert admin.post(WEBHOOK_PATH, content=body, headers=headers).status_code == 422
    bad = headers["svix-id"]

    def listed(query: str) -> set[str]:
        page = admin.get("/admin/events?" + query).text
        return set(re.findall(r'/admin/events/(msg_[^"]+)"', page))

    assert listed("status=failed") == {bad}
    assert listed("type=organization.*") == {ids[o["id"]] for o in instance.organizations.values()}
    assert listed("type=organization.created") == listed("type=organization.*")
    alice = instance.users["alice"]["id"]
    assert listed(f"subject={alice}") == {ids[alice]}
    assert listed("since=2000-01-01T00:00&until=2000-01-02T00:00") == set()
    assert len(listed("since=2000-01-01T00:00")) == len(ids) + 1
    refused = admin.get("/admin/events?since=yesterday&status=nope")
    assert refused.status_code == 400
    assert "since must be a date" in refused.text
    assert "status must be one of" in refused.text


def test_events_are_paged_newest_first(admin: TestClient) -> None:
    sent = [_deliver(admin, user_event("user.created", user_object())) for _ in range(53)]
    first = admin.get("/admin/events").text
    shown = re.findall(r'/admin/events/(msg_[^"]+)"', first)
    assert shown == list(reversed(sent))[:50]
    older = re.search(r'href="/admin/events\?(cursor=\d+)">Older', first)
    assert older
    rest = re.findall(
        r'/admin/events/(msg_[^"]+)"', admin.get("/admin/events?" + older.group(1)).text
    )
    assert rest == list(reversed(sent))[50:]


def test_an_events_page_masks_emails_and_shows_what_changed(admin: TestClient) -> None:
    user = user_object(email="grace.hopper@example.com", first_name="Grace")
    _deliver(admin, user_event("user.created", user))
    newer = {**user, "first_name": "Amazing Grace", "updated_at": user["updated_at"] + 5}
    svix_id = _deliver(admin, envelope("user.updated", newer, newer["updated_at"]))
    page = admin.get(f"/admin/events/{svix_id}").text
    assert "grace.hopper@example.com" not in page
    assert "g***@example.com" in page
    assert "<code>first_name</code>: Grace → Amazing Grace" in page
    assert 'id="replay"' in page


def test_replay_from_the_dashboard(admin: TestClient, engine: Engine) -> None:
    csrf = {"csrf_token": admin.headers["x-test-csrf"]}
    user = user_object()
    body, _ = signed(user_event("user.created", user))
    record_failed(engine, "msg_was_failed", body)
    replayed = admin.post("/admin/events/msg_was_failed/replay", data=csrf, follow_redirects=False)
    assert replayed.status_code == 303
    assert replayed.headers["location"] == "/admin/events/msg_was_failed?replayed=processed"
    assert "Replayed: processed" in admin.get(replayed.headers["location"]).text
    assert admin.get(f"/admin/users/{user['id']}").status_code == 200
    again = admin.post("/admin/events/msg_was_failed/replay", data=csrf, follow_redirects=False)
    assert again.headers["location"].endswith("replayed=processed&duplicate=1")
    assert admin.post("/admin/events/msg_unknown/replay", data=csrf).status_code == 404
    assert admin.post("/admin/events/" + "x" * 300 + "/replay", data=csrf).status_code == 404
    other = user_object()
    created = _deliver(admin, user_event("user.created", other))
    _deliver(admin, deleted_user_event(other["id"]))  # erases the user's stored bodies
    gone = admin.post(f"/admin/events/{created}/replay", data=csrf)
    assert gone.status_code == 409
    assert "erased when its user was deleted" in gone.text
    assert 'id="replay"' not in admin.get(f"/admin/events/{created}").text
    pruned = _deliver(admin, user_event("user.created", user_object()))
    with engine.begin() as conn:
        conn.execute(
            update(events_table).where(events_table.c.svix_id == pruned).values(payload=None)
        )
    assert "pruned" in admin.post(f"/admin/events/{pruned}/replay", data=csrf).text


def test_dead_outbox_rows_are_retried_from_the_dashboard(admin: TestClient, engine: Engine) -> None:
    now = int(time.time() * 1000)
    rows = [
        {
            "key": f"k{i}",
            "handler": "myapp.hooks:welcome",
            "svix_id": f"msg_{i}",
            "event_type": "user.created",
            "subject_id": f"user_{i}",
            "status": status,
            "attempts": 5,
            "next_attempt_at": now,
            "created_at": now,
            "finished_at": now,
            "last_error": "RuntimeError: <b>smtp down</b>",
        }
        for i, status in enumerate(["dead", "dead", "dead", "done"])
    ]
    with engine.begin() as conn:
        conn.execute(insert(outbox_table), rows)
    page = admin.get("/admin/outbox").text
    assert page.count(">Retry</button>") == 3
    assert "&lt;b&gt;smtp down" in page
    csrf = admin.headers["x-test-csrf"]
    first_id = min(int(i) for i in re.findall(r'name="id" value="(\d+)"', page))
    one = admin.post("/admin/outbox/retry", data={"csrf_token": csrf, "id": str(first_id)})
    assert "1 row made pending again." in one.text
    assert '<input type="hidden" name="all" value="dead">' in one.text  # "Retry all dead rows"
    pending = admin.get("/admin/outbox?status=pending").text
    assert 'href="/admin/outbox?status=pending" aria-current="page"' in pending
    every = admin.post("/admin/outbox/retry", data={"csrf_token": csrf, "all": "dead"})
    assert "2 rows made pending again." in every.text
    with engine.connect() as conn:
        statuses = sorted(conn.execute(select(outbox_table.c.status)).scalars())
    assert statuses == ["done", "pending", "pending", "pending"]
    assert admin.post("/admin/outbox/retry", data={"id": str(first_id)}).status_code == 403


def test_an_oversized_form_is_refused_unread(sqlite_url: str) -> None:
    with _client(sqlite_url) as client:
        response = client.post("/admin/sign-in", content=b"token=" + b"x" * 20_000)
        assert response.status_code == 413
        assert "at most 16384 bytes" in response.text


def test_junk_cursors_and_stream_positions_are_taken_as_none(admin: TestClient) -> None:
    sent = [_deliver(admin, user_event("user.created", user_object())) for _ in range(3)]
    for junk in ["abc", "-1", "1e9", "٣", "9" * 40]:
        page = admin.get(f"/admin/events?cursor={junk}")
        assert page.status_code == 200, junk
        assert set(re.findall(r'/admin/events/(msg_[^"]+)"', page.text)) == set(sent), junk
        assert admin.get(f"/admin/users?cursor={junk}").status_code == 200, junk
