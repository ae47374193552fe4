"""The read API and the health check, through the ASGI app, on both databases."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, unquote

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.testclient import TestClient

from clerk_sync.devtools import (
    deleted_object,
    deleted_user_event,
    envelope,
    user_event,
    user_object,
)
from clerk_sync.web import create_app
from tests.conftest import USER_KEYS
from tests.helpers.instance import (
    INVITATION_KEYS,
    MEMBERSHIP_KEYS,
    ODD_ORG_ID,
    ODD_SESSION_ID,
    ODD_USER_ID,
    ORGANIZATION_KEYS,
    SESSION_KEYS,
    Instance,
    build_instance,
    event,
    expected_invitation,
    expected_membership,
    expected_organization,
    expected_session,
    shown,
)
from tests.proofs.hypothesis_settings import proof_settings

from .conftest import ADMIN_TOKEN, Post, make_settings

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def test_get_user_returns_the_synced_fields(client: TestClient, post: Post) -> None:
    user = user_object(
        username="ada",
        created_at=1_744_276_393_608,
        updated_at=1_744_276_393_626,
        public_metadata={"plan": "pro"},
    )
    post(user_event("user.created", user))
    response = client.get(f"/api/users/{user['id']}", headers=AUTH)
    assert response.status_code == 200
    body = response.json()
    assert set(body) >= USER_KEYS
    assert body["id"] == user["id"]
    assert body["email"] == "ada.lovelace@example.com"
    assert body["public_metadata"] == {"plan": "pro"}
    assert (body["created_at"], body["updated_at"]) == (1_744_276_393_608, 1_744_276_393_626)


def test_absent_and_deleted_users_are_404(client: TestClient, post: Post) -> None:
    assert client.get("/api/users/user_nobody", headers=AUTH).status_code == 404
    user = user_object()
    post(user_event("user.created", user))
    post(deleted_user_event(user["id"]))
    response = client.get(f"/api/users/{user['id']}", headers=AUTH)
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": ADMIN_TOKEN},
        {"Authorization": f"Basic {ADMIN_TOKEN}"},
    ],
    ids=["none", "wrong-token", "no-scheme", "basic"],
)
@pytest.mark.parametrize("path", ["/api/users", "/api/users/user_x", "/api/events"])
def test_read_api_needs_the_admin_token(
    client: TestClient, headers: dict[str, str], path: str
) -> None:
    response = client.get(path, headers=headers)
    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"


def test_read_api_is_404_when_no_token_is_configured(db_url: str) -> None:
    with TestClient(create_app(make_settings(db_url, admin_token=""))) as client:
        for path in ("/api/users", "/api/users/user_x", "/api/events"):
            assert client.get(path, headers=AUTH).status_code == 404
            assert client.get(path).status_code == 404
        assert client.get("/healthz").status_code == 200


def test_users_paginate_with_a_cursor(client: TestClient, post: Post) -> None:
    ids = set()
    for _ in range(5):
        user = user_object()
        ids.add(user["id"])
        post(user_event("user.created", user))
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = client.get("/api/users", params=params, headers=AUTH).json()
        seen += [u["id"] for u in page["data"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(ids)
    assert pages == 3


def test_events_filter_by_status_and_type_without_payloads(client: TestClient, post: Post) -> None:
    user = user_object(updated_at=2_000)
    post(user_event("user.updated", user), msg_id="msg_1")
    post(user_event("user.created", {**user, "updated_at": 1_000}), msg_id="msg_2")
    post(b"not json", msg_id="msg_3")
    everything = client.get("/api/events", headers=AUTH).json()
    assert [e["svix_id"] for e in everything["data"]] == ["msg_3", "msg_2", "msg_1"]
    assert all("payload" not in e for e in everything["data"])
    stale = client.get("/api/events", params={"status": "stale"}, headers=AUTH).json()["data"]
    assert [e["svix_id"] for e in stale] == ["msg_2"]
    created = client.get("/api/events", params={"type": "user.created"}, headers=AUTH).json()
    assert [e["svix_id"] for e in created["data"]] == ["msg_2"]
    first = client.get("/api/events", params={"limit": "1"}, headers=AUTH).json()
    rest = client.get(
        "/api/events", params={"limit": "5", "cursor": first["next_cursor"]}, headers=AUTH
    ).json()
    assert [e["svix_id"] for e in rest["data"]] == ["msg_2", "msg_1"]
    assert rest["next_cursor"] is None


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/api/events", {"status": "done"}),
        ("/api/events", {"limit": "0"}),
        ("/api/users", {"limit": "501"}),
        ("/api/users", {"limit": "ten"}),
        ("/api/events", {"cursor": "abc"}),
    ],
)
def test_bad_query_parameters_are_400(
    client: TestClient, path: str, params: dict[str, str]
) -> None:
    response = client.get(path, params=params, headers=AUTH)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_parameter"


def test_healthz(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


# -- organizations, memberships, invitations, sessions, user search ------------------------------


@pytest.fixture
def instance(post: Post) -> Instance:
    """The small instance of ``tests.helpers.instance``, delivered as signed POSTs."""
    built = build_instance()
    for delivery in built.events():
        response = post(delivery)
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "processed", response.text
    return built


def _get(client: TestClient, path: str, **params: str) -> Any:
    response = client.get(path, params=params, headers=AUTH)
    assert response.status_code == 200, f"{path} {params}: {response.text}"
    return response.json()


def _path(instance: Instance, template: str) -> str:
    """``template`` with ``{org:acme}``, ``{user:alice}``, ``{session:alice-1}`` as ids,
    URL-encoded."""
    names = {
        **{f"org:{n}": o["id"] for n, o in instance.organizations.items()},
        **{f"user:{n}": u["id"] for n, u in instance.users.items()},
        **{f"session:{n}": s["id"] for n, s in instance.sessions.items()},
    }
    out = template
    for name, object_id in names.items():
        out = out.replace("{" + name + "}", quote(object_id, safe=""))
    assert "{" not in out, out
    return out


class Reader:
    """The read API over the instance, with paths written as :func:`_path` templates."""

    def __init__(self, client: TestClient, instance: Instance) -> None:
        self.client = client
        self.instance = instance

    def get(self, template: str, **params: str) -> Any:
        return self.client.get(_path(self.instance, template), params=params, headers=AUTH)

    def status(self, template: str) -> int:
        return int(self.get(template).status_code)

    def json(self, template: str, **params: str) -> Any:
        return _get(self.client, _path(self.instance, template), **params)

    def data(self, template: str, **params: str) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = self.json(template, **params)["data"]
        return rows


@pytest.fixture
def api(client: TestClient, instance: Instance) -> Reader:
    return Reader(client, instance)


def test_organizations_are_shown_as_synced(
    api: Reader, client: TestClient, instance: Instance
) -> None:
    listed = _get(client, "/api/organizations")
    assert listed["next_cursor"] is None
    orgs = instance.organizations
    assert sorted(o["id"] for o in listed["data"]) == sorted(o["id"] for o in orgs.values())
    by_id = {o["id"]: o for o in listed["data"]}
    for org in orgs.values():
        assert shown(by_id[org["id"]], ORGANIZATION_KEYS) == expected_organization(org)
        one = _get(client, f"/api/organizations/{quote(org['id'], safe='')}")
        assert one == by_id[org["id"]]
    acme = api.json("/api/organizations/{org:acme}")
    assert acme["name"] == "Acme Corp"
    assert acme["public_metadata"] == {"tier": "gold"}
    assert acme["members_count"] == 3
    assert acme["created_by"] == instance.users["alice"]["id"]
    assert type(acme["created_at"]) is int
    assert (acme["created_at"], acme["updated_at"]) == (
        orgs["acme"]["created_at"],
        orgs["acme"]["updated_at"],
    )


def test_organization_update_and_delete(
    api: Reader, client: TestClient, post: Post, instance: Instance
) -> None:
    acme = instance.organizations["acme"]
    renamed = {**acme, "name": "Acme Corporation", "updated_at": acme["updated_at"] + 60_000}
    assert post(event("organization.updated", renamed)).json()["status"] == "processed"
    assert api.json("/api/organizations/{org:acme}")["name"] == "Acme Corporation"

    post(envelope("organization.deleted", deleted_object("organization", acme["id"], slug="x")))
    for template in (
        "/api/organizations/{org:acme}",
        "/api/organizations/{org:acme}/memberships",
        "/api/organizations/{org:acme}/invitations",
    ):
        response = api.get(template)
        assert response.status_code == 404, template
        assert set(response.json()) == {"error", "detail"}
        assert response.json()["error"] == "not_found"
    # The memberships went with it, also as seen from their users.
    alice = api.data("/api/users/{user:alice}/memberships")
    assert [m["id"] for m in alice] == instance.memberships_of(user="alice", org="globex")
    remaining = [o["id"] for o in _get(client, "/api/organizations")["data"]]
    assert acme["id"] not in remaining
    assert len(remaining) == len(instance.organizations) - 1


def test_memberships_of_organizations_and_users(
    api: Reader, client: TestClient, instance: Instance
) -> None:
    memberships = {m["id"]: m for m in instance.memberships.values()}
    for org in instance.organizations:
        page = api.json(f"/api/organizations/{{org:{org}}}/memberships")
        assert page["next_cursor"] is None
        assert [m["id"] for m in page["data"]] == instance.memberships_of(org=org), org
        for row in page["data"]:
            assert shown(row, MEMBERSHIP_KEYS) == expected_membership(memberships[row["id"]])
    for user in instance.users:
        page = api.json(f"/api/users/{{user:{user}}}/memberships")
        assert [m["id"] for m in page["data"]] == instance.memberships_of(user=user), user
    admin = api.data("/api/users/{user:alice}/memberships")
    by_org = {m["organization_id"]: m for m in admin}
    acme = by_org[instance.organizations["acme"]["id"]]
    assert acme["role"] == "org:admin"
    assert "org:sys_memberships:manage" in acme["permissions"]
    # Known but empty is an empty page; unknown is 404.
    assert api.data("/api/organizations/{org:initech}/memberships") == []
    assert api.data("/api/users/{user:carol}/memberships") == []
    for path in ("/api/organizations/org_nope/memberships", "/api/users/user_nope/memberships"):
        response = client.get(path, headers=AUTH)
        assert response.status_code == 404, path
        assert response.json()["error"] == "not_found"


def test_invitations_of_an_organization(
    api: Reader, client: TestClient, instance: Instance
) -> None:
    pending = api.data("/api/organizations/{org:acme}/invitations")
    assert [shown(v, INVITATION_KEYS) for v in pending] == [
        expected_invitation(instance.invitations["dave@acme"])
    ]
    assert (pending[0]["status"], pending[0]["user_id"]) == ("pending", None)
    accepted = api.data("/api/organizations/{org:globex}/invitations")
    assert [shown(v, INVITATION_KEYS) for v in accepted] == [
        expected_invitation(instance.invitations["bob@globex"])
    ]
    assert accepted[0]["status"] == "accepted"
    assert accepted[0]["user_id"] == instance.users["bob"]["id"]
    assert api.data("/api/organizations/{org:initech}/invitations") == []
    assert client.get("/api/organizations/org_nope/invitations", headers=AUTH).status_code == 404


def test_sessions_of_a_user_and_by_id(
    api: Reader, client: TestClient, post: Post, instance: Instance
) -> None:
    for user in instance.users:
        page = api.json(f"/api/users/{{user:{user}}}/sessions")
        assert [s["id"] for s in page["data"]] == instance.sessions_of(user), user
    session = instance.sessions["alice-1"]
    one = api.json("/api/sessions/{session:alice-1}")
    # Clerk's millisecond epochs, unchanged.
    assert shown(one, SESSION_KEYS) == expected_session(session)
    assert all(type(one[k]) is int for k in ("last_active_at", "expire_at", "created_at"))
    listed = api.data("/api/users/{user:alice}/sessions")
    assert one in listed

    ended = {**session, "status": "ended", "updated_at": session["updated_at"] + 5_000}
    assert post(event("session.ended", ended)).json()["status"] == "processed"
    after = api.json("/api/sessions/{session:alice-1}")
    assert (after["status"], after["updated_at"]) == ("ended", ended["updated_at"])

    assert api.data("/api/users/{user:carol}/sessions") == []
    for path in ("/api/sessions/sess_nope", "/api/users/user_nope/sessions"):
        response = client.get(path, headers=AUTH)
        assert response.status_code == 404, path
        assert response.json()["error"] == "not_found"
    # Sessions are read by id or by user, never listed whole.
    assert client.get("/api/sessions", headers=AUTH).status_code == 404


def test_user_deleted_takes_its_memberships_and_sessions(
    api: Reader, post: Post, instance: Instance
) -> None:
    alice = instance.users["alice"]
    post(deleted_user_event(alice["id"]))
    for template in ("/api/users/{user:alice}/memberships", "/api/users/{user:alice}/sessions"):
        assert api.status(template) == 404, template
    assert api.status("/api/sessions/{session:alice-1}") == 404
    acme = api.data("/api/organizations/{org:acme}/memberships")
    assert alice["id"] not in {m["user_id"] for m in acme}
    assert len(acme) == len(instance.memberships_of(org="acme")) - 1


def test_ids_with_a_slash_are_one_url_encoded_segment(
    client: TestClient, instance: Instance
) -> None:
    user = _get(client, "/api/users/user%2Fodd%25id")
    assert (user["id"], user["email"]) == (ODD_USER_ID, "odd@example.net")
    sessions = _get(client, "/api/users/user%2Fodd%25id/sessions")["data"]
    assert [s["id"] for s in sessions] == [ODD_SESSION_ID]
    assert _get(client, "/api/sessions/sess%2Fodd")["user_id"] == ODD_USER_ID
    memberships = _get(client, "/api/users/user%2Fodd%25id/memberships")["data"]
    assert [m["id"] for m in memberships] == instance.memberships_of(user="odd")
    org = _get(client, "/api/organizations/org%2Fodd")
    assert (org["id"], org["name"]) == (ODD_ORG_ID, "Odd Org")
    members = _get(client, "/api/organizations/org%2Fodd/memberships")["data"]
    assert [m["user_id"] for m in members] == [instance.users["bob"]["id"]]
    # Unencoded, the slash splits the path: a different (unknown) route, not the object.
    for path in ("/api/sessions/sess/odd", "/api/organizations/org/odd"):
        assert client.get(path, headers=AUTH).status_code == 404, path


USER_SEARCHES: list[tuple[dict[str, str], list[str]]] = [
    ({"email": "alice@example.com"}, ["alice"]),
    ({"email": "alice"}, []),  # exact, not a substring
    ({"query": "LIDDELL"}, ["alice"]),  # last name, any case
    ({"query": "aLiCe"}, ["alice"]),  # first name, username, e-mail
    ({"query": "BOBB"}, ["bob"]),  # username
    ({"query": "bob"}, ["bob"]),
    ({"query": "@example.com"}, ["alice", "bob"]),
    ({"query": "example"}, ["alice", "bob", "carol", "odd"]),
    ({"query": "user/odd"}, ["odd"]),  # id
    ({"query": "%"}, ["odd"]),  # a literal %, not a wildcard
    ({"query": "alice_l"}, ["alice"]),  # a literal _ ...
    ({"query": "ali_e"}, []),  # ... not a wildcard
    ({"query": "zzz"}, []),
    ({"email": "bob@example.com", "query": "alice"}, []),  # both must match
    ({"email": "bob@example.com", "query": "build"}, ["bob"]),
    ({"email": "", "query": ""}, ["alice", "bob", "carol", "odd"]),  # empty: no filter
]
"""``GET /api/users`` parameters → the users (by name) it must list."""


def test_users_filter_by_email_and_query(api: Reader, instance: Instance) -> None:
    for params, expected in USER_SEARCHES:
        page = api.json("/api/users", **params)
        found = sorted(u["id"] for u in page["data"])
        assert found == sorted(instance.users[n]["id"] for n in expected), params
        assert page["next_cursor"] is None, params
        for row in page["data"]:
            assert set(row) >= USER_KEYS


def test_user_query_is_case_insensitive_beyond_ascii(client: TestClient, post: Post) -> None:
    user = user_object(email="emile@example.com", first_name="Émile", last_name="ZOLA")
    post(user_event("user.created", user))
    for query in ("émile", "ÉMILE", "zola"):
        found = _get(client, "/api/users", query=query)["data"]
        assert [u["id"] for u in found] == [user["id"]], query


def _walk(client: TestClient, path: str, limit: int, **params: str) -> tuple[list[str], int]:
    """Every id ``path`` lists, page by page; and the number of pages."""
    seen: list[str] = []
    cursor: str | None = None
    for pages in range(1, 100):
        paging = {"limit": str(limit), **({"cursor": cursor} if cursor else {})}
        page = _get(client, path, **params, **paging)
        assert len(page["data"]) <= limit
        seen += [row["id"] for row in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return seen, pages
    raise AssertionError(f"{path} did not stop paging")


PAGED = [
    ("/api/organizations", {}),
    ("/api/users", {}),
    ("/api/users", {"query": "example"}),
    ("/api/organizations/{org:acme}/memberships", {}),
    ("/api/users/{user:alice}/memberships", {}),
    ("/api/users/{user:alice}/sessions", {}),
]


def test_cursor_paging_walks_every_row_once(api: Reader) -> None:
    for template, params in PAGED:
        everything = [row["id"] for row in api.data(template, limit="500", **params)]
        assert len(everything) >= 2, template
        path = _path(api.instance, template)
        for limit in (1, 2, 3):
            seen, pages = _walk(api.client, path, limit, **params)
            where = f"{template} {params} limit={limit}"
            assert seen == everything, where  # same order, no row twice, none missed
            assert len(set(seen)) == len(seen), where
            # A full page has a next cursor: the last page is the first that is not full.
            assert pages == len(everything) // limit + 1, where


NEW_ROUTES = [
    "/api/organizations",
    "/api/organizations/org_x",
    "/api/organizations/org_x/memberships",
    "/api/organizations/org_x/invitations",
    "/api/users/user_x/memberships",
    "/api/users/user_x/sessions",
    "/api/sessions/sess_x",
    "/api/users?email=a@example.com",
    "/api/users?query=a",
    "/api/users/user%2Fodd",
]
BAD_AUTH = [
    {},
    {"Authorization": "Bearer wrong"},
    {"Authorization": ADMIN_TOKEN},
    {"Authorization": f"Basic {ADMIN_TOKEN}"},
    {"Authorization": f"Bearer {ADMIN_TOKEN}x"},
]


def test_new_routes_need_the_admin_token(client: TestClient) -> None:
    for path in NEW_ROUTES:
        for headers in BAD_AUTH:
            response = client.get(path, headers=headers)
            assert response.status_code == 401, (path, headers)
            assert response.json()["error"] == "unauthorized"
            assert "ADMIN_TOKEN" in response.json()["detail"]


def test_new_routes_are_404_when_no_token_is_configured(db_url: str) -> None:
    with TestClient(create_app(make_settings(db_url, admin_token=""))) as client:
        for path in NEW_ROUTES:
            for headers in (AUTH, {}):
                response = client.get(path, headers=headers)
                assert response.status_code == 404, path
                assert set(response.json()) == {"error", "detail"}


LISTS = [
    "/api/organizations",
    "/api/users",
    "/api/organizations/org_x/memberships",
    "/api/organizations/org_x/invitations",
    "/api/users/user_x/memberships",
    "/api/users/user_x/sessions",
]
OBJECTS = ["/api/organizations/org_x", "/api/sessions/sess_x", "/api/users/user_x"]
UNKNOWN_PARAMETERS = (
    [(p, "bogus") for p in LISTS + OBJECTS]
    + [(p, "email") for p in LISTS if p != "/api/users"]
    + [(p, "query") for p in LISTS if p != "/api/users"]
    + [(p, "limit") for p in OBJECTS]
    + [(p, "cursor") for p in OBJECTS]
    + [("/api/users", "Email"), ("/api/users", "q"), ("/api/organizations", "slug")]
)
"""(route, a query parameter it does not take)."""


def test_unknown_query_parameters_are_400_naming_them(client: TestClient) -> None:
    for path, name in UNKNOWN_PARAMETERS:
        response = client.get(path, params={name: "1"}, headers=AUTH)
        assert response.status_code == 400, (path, name, response.text)
        body = response.json()
        assert set(body) == {"error", "detail"}
        assert body["error"] == "invalid_parameter"
        assert repr(name) in body["detail"], (path, body)


def test_bad_limits_and_cursors_are_400(client: TestClient) -> None:
    for path in LISTS:
        for limit in ("²", "0", "501", "-1", "+5", "1.5", " 5", "five", "9" * 30):
            response = client.get(path, params={"limit": limit}, headers=AUTH)
            assert response.status_code == 400, (path, limit, response.text)
            assert response.json()["error"] == "invalid_parameter"
            assert "limit" in response.json()["detail"]
        response = client.get(path, params={"cursor": "c" * 256}, headers=AUTH)
        assert response.status_code == 400, (path, response.text)
        assert response.json()["error"] == "invalid_parameter"
        assert "cursor" in response.json()["detail"]


def test_limits_at_the_bounds_are_accepted(api: Reader) -> None:
    for path in LISTS:
        template = path.replace("org_x", "{org:acme}").replace("user_x", "{user:alice}")
        for limit in ("1", "500"):
            assert 1 <= len(api.data(template, limit=limit)) <= int(limit), (path, limit)


def test_routes_outside_the_table_are_404(client: TestClient) -> None:
    for path in (
        "/api/organizations/org_x/domains",
        "/api/sessions/sess_x/user",
        "/api/users/user_x/invitations",
        "/api/organizations/org_x/memberships/extra",
        "/api/invitations",
        "/api/memberships/orgmem_x",
    ):
        response = client.get(path, headers=AUTH)
        assert response.status_code == 404, path
        assert response.json()["error"] == "not_found"


# --- no input gives a 500 -----------------------------------------------------------------------

ROUTE_WORDS = [
    "users",
    "organizations",
    "sessions",
    "events",
    "memberships",
    "invitations",
    "user_x",
    "org_x",
    "",
]
PARAM_NAMES = ["limit", "cursor", "email", "query", "status", "type", "limt", "Limit", "", "a b"]
AWKWARD_VALUES = [
    "",
    "0",
    "1",
    "500",
    "501",
    "²",
    "٣",
    "१०",
    "9" * 19,
    "9" * 30,
    "9" * 5000,
    "-1",
    "\x00",
    "a\x00b",
    "processed",
    "user.created",
    "%",
    "_",
    "\\",
    "\ufffd",
    "x" * 300,
    "é" * 100,
]
segments = st.one_of(st.sampled_from(ROUTE_WORDS), st.text(max_size=12))
names = st.one_of(st.sampled_from(PARAM_NAMES), st.text(max_size=6))
values = st.one_of(st.sampled_from(AWKWARD_VALUES), st.text(max_size=20))


@st.composite
def raw_query(draw: st.DrawFn) -> bytes:
    """A query string as a client may send it: encoded pairs, raw bytes, broken escapes."""
    if draw(st.booleans()):
        pairs = draw(st.lists(st.tuples(names, values), max_size=4))
        return "&".join(f"{quote(n, safe='')}={quote(v, safe='')}" for n, v in pairs).encode()
    return draw(st.binary(max_size=40).map(lambda b: quote(b, safe="=&%+").encode()))


@st.composite
def raw_path(draw: st.DrawFn) -> bytes:
    parts = draw(st.lists(segments, min_size=1, max_size=4))
    text = "/".join(parts) + draw(st.sampled_from(["", "/", "%", "%zz", "%00", "%ff", "%2F"]))
    return ("/api/" + quote(text, safe="/%")).encode()


def _asgi_get(client: TestClient, path: bytes, query: bytes) -> tuple[int, bytes]:
    """One GET straight into the app, with the raw path and query string a server passes on."""
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": unquote(path.decode("ascii")),
        "raw_path": path,
        "root_path": "",
        "query_string": query,
        "headers": [(b"host", b"testserver"), (b"authorization", AUTH["Authorization"].encode())],
        "client": ("203.0.113.9", 5000),
        "server": ("testserver", 80),
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    assert client.portal is not None
    client.portal.call(client.app, scope, receive, send)
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    return status, b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")


@pytest.fixture
def fuzz_client(db_url: str) -> Iterator[TestClient]:
    with TestClient(create_app(make_settings(db_url, rate_limit_api="off"))) as c:
        yield c


@proof_settings(max_examples=250)
@given(path=raw_path(), query=raw_query())
def test_no_read_api_input_is_a_server_error(
    fuzz_client: TestClient, path: bytes, query: bytes
) -> None:
    status, body = _asgi_get(fuzz_client, path, query)
    assert status in (200, 400, 404), (path, query, status, body)
    if status == 400:
        assert orjson.loads(body)["error"] == "invalid_parameter", body


@pytest.mark.parametrize(
    ("path", "query", "named"),
    [
        ("/api/events", "limit=%C2%B2", "limit"),
        ("/api/events", "limit=%D9%A3", "limit"),
        ("/api/users", "limit=" + "9" * 5000, "limit"),
        ("/api/events", "cursor=" + "9" * 30, "cursor"),
        ("/api/events", "cursor=%D9%A3", "cursor"),
        ("/api/users", "limt=3", "'limt'"),
        ("/api/users", "limit=3&limit=4", "limit"),
        ("/api/events", "type=user.created&type=user.updated", "type"),
        ("/api/users", "email=a%00b", "email"),
        ("/api/users", "query=a%00", "query"),
        ("/api/users", "cursor=user_%00", "cursor"),
        ("/api/events", "type=%00", "type"),
        ("/api/events", "status=%00", "status"),
        ("/api/users/user_x/memberships", "cursor=%00", "cursor"),
        ("/api/users", "query=" + "q" * 1001, "query"),
    ],
    ids=lambda value: str(value)[:24],
)
def test_bad_values_are_400_naming_the_parameter(
    fuzz_client: TestClient, path: str, query: str, named: str
) -> None:
    status, body = _asgi_get(fuzz_client, path.encode(), query.encode())
    assert status == 400, body
    answer = orjson.loads(body)
    assert answer["error"] == "invalid_parameter"
    assert named in answer["detail"], answer


@pytest.mark.parametrize("path", ["/api/users/user%00x", "/api/organizations/%00/memberships"])
def test_an_id_no_database_can_hold_is_404(fuzz_client: TestClient, path: str) -> None:
    status, body = _asgi_get(fuzz_client, path.encode(), b"")
    assert status == 404, body
