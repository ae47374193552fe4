"""A fake Clerk Backend API on 127.0.0.1 that speaks the documented shapes.

``GET /v1/users?limit&offset&order_by`` answers a bare JSON array of users;
``/v1/users/count`` ``{"object": "total_count", "total_count": N}``; ``/v1/users/{id}`` the user
or 404; ``/v1/organizations`` and ``/v1/organization_memberships``
``{"data": [...], "total_count": N}`` (an organization carries ``members_count`` only with
``include_members_count=true``, as Clerk's does). Every request needs ``Authorization: Bearer
<secret key>`` (401 with Clerk's error body otherwise); ``limit`` is 1-500, ``offset`` ≥ 0
(422 otherwise). On demand it answers 429 with ``Retry-After``, a 5xx, or a malformed page,
and waits before answering a page. It holds objects built with the ``clerk_sync.devtools``
builders, so they are Clerk-shaped, and can change them (a new ``updated_at``) between runs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import orjson

from clerk_sync.devtools import membership_object, organization_object, user_object
from tests.helpers.loopback import serving

SECRET_KEY = "sk_test_FAKEfakeFAKEfake0123456789abcdefABCDEF"
T0 = 1_744_400_000_000


@dataclass(frozen=True)
class Seen:
    """One request the fake answered."""

    at: float
    """``time.monotonic()`` when it arrived."""
    path: str
    query: dict[str, str]
    status: int


def _error(message: str, code: str, long_message: str | None = None) -> dict[str, Any]:
    return {
        "errors": [{"message": message, "long_message": long_message or message, "code": code}],
        "clerk_trace_id": "trace_fake",
    }


@dataclass
class FakeClerkApi:
    """What the fake holds and was asked; its knobs are plain attributes (set under
    :attr:`lock` while it serves)."""

    url: str = ""
    """The API base, ``http://127.0.0.1:<port>/v1`` (``CLERK_API_URL``)."""
    secret_key: str = SECRET_KEY
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    organizations: dict[str, dict[str, Any]] = field(default_factory=dict)
    memberships: dict[str, dict[str, Any]] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    throttle_every: int = 0
    """Answer every Nth request (1-based count of all requests) with 429."""
    throttle_next: int = 0
    """Answer the next N requests with 429."""
    retry_after: str = "1"
    fail_every: int = 0
    """Answer every Nth request with a 5xx (503, 500, 502 in turn)."""
    fail_next: int = 0
    malformed: set[tuple[str, int]] = field(default_factory=set)
    """``(list path, offset)`` pages answered in the wrong shape (the other lists' shape)."""
    override: dict[str, tuple[int, bytes]] = field(default_factory=dict)
    """Path → ``(status, raw body)`` answered instead (after authentication)."""
    page_delay: float = 0.0
    """Seconds to wait before answering a list page."""
    on_page: Callable[[str, int], None] | None = None
    """Called with ``(path, offset)`` before a list page is answered (outside the lock)."""
    lock: threading.Lock = field(default_factory=threading.Lock)
    _count: int = 0
    _fails: int = 0
    _clock: int = T0
    _encoded: dict[str, bytes] = field(default_factory=dict)
    _orders: dict[tuple[int, str], list[str]] = field(default_factory=dict)

    # -- objects -----------------------------------------------------------------------------

    def tick(self) -> int:
        """A fresh millisecond time, later than every one handed out before."""
        self._clock += 1
        return self._clock

    def add_users(self, n: int, **kwargs: Any) -> list[dict[str, Any]]:
        """``n`` new users, each created a millisecond after the previous one."""
        added = []
        for i in range(n):
            at = self.tick()
            user = user_object(
                user_id=f"user_{at:x}{i:05d}",
                email=f"person{at}@example.com",
                first_name=f"First{at}",
                created_at=at,
                updated_at=at,
                verification_object=i % 2 == 0,
                **kwargs,
            )
            self.put_user(user)
            added.append(user)
        return added

    def put_user(self, user: dict[str, Any]) -> None:
        with self.lock:
            self.users[user["id"]] = user
            self._encoded.pop(user["id"], None)
            self._orders.clear()

    def touch_user(self, user_id: str, **changes: Any) -> dict[str, Any]:
        """A newer version of a user: ``changes`` applied and ``updated_at`` moved on."""
        user = {**self.users[user_id], **changes, "updated_at": self.tick()}
        self.put_user(user)
        return user

    def delete_user(self, user_id: str) -> None:
        with self.lock:
            self.users.pop(user_id, None)
            self._encoded.pop(user_id, None)
            self._orders.clear()

    def add_organizations(self, n: int) -> list[dict[str, Any]]:
        added = []
        for i in range(n):
            at = self.tick()
            org = organization_object(
                org_id=f"org_{at:x}{i:04d}", name=f"Org {at}", created_at=at, updated_at=at
            )
            self.organizations[org["id"]] = org
            added.append(org)
        return added

    def add_membership(
        self, organization: dict[str, Any], user: dict[str, Any], role: str = "org:member"
    ) -> dict[str, Any]:
        at = self.tick()
        m = membership_object(
            organization=organization, user=user, role=role, created_at=at, updated_at=at
        )
        self.memberships[m["id"]] = m
        return m

    def throttled(self) -> list[Seen]:
        return [s for s in self.seen if s.status == 429]

    # -- answering ---------------------------------------------------------------------------

    def _sorted(self, table: dict[str, dict[str, Any]], order_by: str) -> list[str]:
        """Ids in ``order_by`` order (cached until ``table`` changes size or a user changes)."""
        cache_key = (id(table), order_by)
        ids = self._orders.get(cache_key)
        if ids is None or len(ids) != len(table):
            key = order_by.lstrip("+-") or "created_at"
            ids = sorted(table, key=lambda i: (table[i].get(key) or 0, i))
            if order_by.startswith("-"):
                ids.reverse()
            self._orders[cache_key] = ids
        return ids

    def answer(self, path: str, query: dict[str, str], auth: str | None) -> tuple[int, Any, dict]:
        """``(status, JSON body or raw bytes, extra headers)`` for one request."""
        with self.lock:
            self._count += 1
            n = self._count
            if self.throttle_next or (self.throttle_every and n % self.throttle_every == 0):
                self.throttle_next = max(0, self.throttle_next - 1)
                body = _error("Too many requests", "too_many_requests")
                return 429, body, {"Retry-After": self.retry_after}
            if self.fail_next or (self.fail_every and n % self.fail_every == 0):
                self.fail_next = max(0, self.fail_next - 1)
                self._fails += 1
                status = (503, 500, 502)[self._fails % 3]
                return status, _error("Internal error", "internal_clerk_error"), {}
        if auth != f"Bearer {self.secret_key}":
            return (
                401,
                _error(
                    "Invalid authentication",
                    "authentication_invalid",
                    "Unable to authenticate the request, you need to supply an active API key",
                ),
                {},
            )
        if path in self.override:
            return *self.override[path], {}
        if path == "/v1/users/count":
            return 200, {"object": "total_count", "total_count": len(self.users)}, {}
        if path.startswith("/v1/users/"):
            user_id = unquote(path[len("/v1/users/") :])
            with self.lock:
                user = self.users.get(user_id)
            if user is None:
                return 404, _error("not found", "resource_not_found"), {}
            return 200, user, {}
        tables = {
            "/v1/users": self.users,
            "/v1/organizations": self.organizations,
            "/v1/organization_memberships": self.memberships,
        }
        if path not in tables:
            return 404, _error("not found", "resource_not_found"), {}
        try:
            limit = int(query.get("limit", "10"))
            offset = int(query.get("offset", "0"))
        except ValueError:
            return 422, _error("is invalid", "form_param_format_invalid"), {}
        if not 1 <= limit <= 500 or offset < 0:
            return 422, _error("is invalid", "form_param_value_invalid"), {}
        if self.on_page is not None:
            self.on_page(path, offset)
        if self.page_delay:
            time.sleep(self.page_delay)
        with self.lock:
            table = tables[path]
            ids = self._sorted(table, query.get("order_by", "-created_at"))
            chosen = ids[offset : offset + limit]
            items = [self._object(path, table, i, query) for i in chosen]
            total = len(ids)
            bad = (path, offset) in self.malformed
        array = b"[" + b",".join(items) + b"]"
        if path == "/v1/users":
            if bad:  # the other lists' shape, where Clerk sends a bare array
                return 200, b'{"data":' + array + b',"total_count":%d}' % total, {}
            return 200, array, {}
        if bad:
            return 200, array, {}
        return 200, b'{"data":' + array + b',"total_count":%d}' % total, {}

    def _object(
        self, path: str, table: dict[str, dict[str, Any]], object_id: str, query: dict[str, str]
    ) -> bytes:
        if path == "/v1/organizations" and query.get("include_members_count") != "true":
            return orjson.dumps({k: v for k, v in table[object_id].items() if k != "members_count"})
        if path != "/v1/users":
            return orjson.dumps(table[object_id])
        cached = self._encoded.get(object_id)
        if cached is None:
            cached = self._encoded[object_id] = orjson.dumps(table[object_id])
        return cached


def _handler(fake: FakeClerkApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
            status, body, headers = fake.answer(
                parts.path, query, self.headers.get("authorization")
            )
            with fake.lock:
                fake.seen.append(Seen(time.monotonic(), parts.path, query, status))
            data = body if isinstance(body, bytes) else orjson.dumps(body)
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

    return Handler


@contextmanager
def fake_clerk_api() -> Iterator[FakeClerkApi]:
    """A running fake on an ephemeral 127.0.0.1 port, shut down on exit."""
    fake = FakeClerkApi()
    with serving(_handler(fake)) as port:
        fake.url = f"http://127.0.0.1:{port}/v1"
        yield fake
