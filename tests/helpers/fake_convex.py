"""A fake Convex deployment on 127.0.0.1 that speaks the documented HTTP API.

``POST /api/mutation`` with ``{"path", "args", "format": "json"}`` and ``Authorization: Convex
<deploy key>``; it answers ``{"status": "success", "value": …, "logLines": []}``, or
``{"status": "error", "errorMessage": …}`` (HTTP 560, as Convex does for a failed function).
It runs the two mutations of the Clerk + Convex template (``convex-demos``
``users-and-clerk-webhooks/convex/users.ts``) over an in-memory ``users`` table keyed by
``externalId``, and can be told to fail the next calls with a 500 or an error reply.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.helpers.loopback import serving

DEPLOY_KEY = "prod:happy-otter-123|eyJ2MiI6ImZha2UtZGVwbG95LWtleSJ9"


@dataclass
class FakeConvex:
    """What the fake was sent and holds; tell it to fail with :attr:`fail`."""

    url: str = ""
    calls: list[dict[str, Any]] = field(default_factory=list)
    """Every authorized mutation call, in arrival order (failed ones included)."""
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    """externalId → ``{"name", "externalId"}``, as the template's table holds them."""
    fail: list[str] = field(default_factory=list)
    """How the next calls fail, one entry each: ``"500"`` or ``"error"``."""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self, path: str, args: dict[str, Any]) -> Any:
        if path == "users:upsertFromClerk":
            data = args["data"]
            name = f"{data.get('first_name') or ''} {data.get('last_name') or ''}".strip()
            self.users[data["id"]] = {"name": name, "externalId": data["id"]}
            return None
        if path == "users:deleteFromClerk":
            self.users.pop(args["clerkUserId"], None)
            return None
        raise LookupError(f"Could not find public function for '{path}'")

    def sent(self) -> list[tuple[str, str]]:
        """``(mutation, user id)`` of every call."""
        out = []
        for call in self.calls:
            args = call["args"]
            out.append((call["path"], args.get("clerkUserId") or args.get("data", {}).get("id")))
        return out


def _handler(fake: FakeConvex) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _answer(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length)
            if self.path != "/api/mutation":
                self._answer(404, {"code": "NotFound", "message": self.path})
                return
            if self.headers.get("authorization") != f"Convex {DEPLOY_KEY}":
                self._answer(401, {"code": "BadDeployKey", "message": "bad deploy key"})
                return
            request = json.loads(raw)
            with fake.lock:
                fake.calls.append(request)
                how = fake.fail.pop(0) if fake.fail else None
                if how == "500":
                    self._answer(500, {"code": "InternalServerError", "message": "boom"})
                    return
                if how == "error":
                    self._answer(560, {"status": "error", "errorMessage": "Uncaught Error: no"})
                    return
                try:
                    value = fake.run(request["path"], request["args"])
                except LookupError as exc:
                    self._answer(560, {"status": "error", "errorMessage": str(exc)})
                    return
            self._answer(200, {"status": "success", "value": value, "logLines": []})

    return Handler


@contextmanager
def fake_convex() -> Iterator[FakeConvex]:
    """A running fake on an ephemeral 127.0.0.1 port, shut down on exit."""
    fake = FakeConvex()
    with serving(_handler(fake)) as port:
        fake.url = f"http://127.0.0.1:{port}"
        yield fake
