"""The Convex sink: every applied user change, sent to a Convex deployment's HTTP API.

It calls the mutations of the Clerk + Convex template (``users:upsertFromClerk`` with
``{"data": <Clerk user JSON>}``, ``users:deleteFromClerk`` with ``{"clerkUserId": id}``) through
``POST <CONVEX_URL>/api/mutation`` with ``Authorization: Convex <deploy key>``. It is an
outbox hook marked *mirror*: rows of one user run in version order, and one that a later row
has superseded, or an upsert of a user deleted since, is skipped — so Convex never gets a stale
version after a newer one, nor anything for a deleted id but its delete
(:mod:`clerk_sync.outbox`). An HTTP error or a ``{"status": "error"}`` reply raises, so the row
is retried and, in the end, dead-lettered.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ..errors import ConfigError
from ..hooks import ChangeEvent, Hook

HOOK_NAME = "sink:convex"
EVENTS = ("user.created", "user.updated", "user.deleted")
_FUNCTION = re.compile(r"[A-Za-z0-9_./-]+:[A-Za-z_][A-Za-z0-9_]*")
_LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
_TIMEOUT_SECONDS, _CONNECT_SECONDS = 10.0, 5.0
_SHOWN_BODY = 300


class ConvexError(Exception):
    """Convex refused or failed a mutation; the message is Convex's own."""


@dataclass(frozen=True)
class ConvexSink:
    """Where and how to call Convex (``CONVEX_*`` settings)."""

    url: str
    deploy_key: str
    upsert_function: str = "users:upsertFromClerk"
    delete_function: str = "users:deleteFromClerk"

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        local = parts.hostname in _LOCAL_HOSTS
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ConfigError(
                f"CONVEX_URL {self.url!r} must be your deployment's URL, e.g. "
                "https://happy-otter-123.convex.cloud."
            )
        if parts.scheme == "http" and not local:
            raise ConfigError(
                f"CONVEX_URL {self.url!r} must use https:// (http:// is for a local backend)."
            )
        if not self.deploy_key.strip():
            raise ConfigError(
                "CONVEX_URL is set but CONVEX_DEPLOY_KEY is not: create a deploy key in the "
                "Convex dashboard → Settings → Deploy keys."
            )
        for setting, value in (
            ("CONVEX_UPSERT_FUNCTION", self.upsert_function),
            ("CONVEX_DELETE_FUNCTION", self.delete_function),
        ):
            if not _FUNCTION.fullmatch(value):
                raise ConfigError(
                    f"{setting} {value!r} must name a mutation as 'module:function', "
                    "e.g. users:upsertFromClerk."
                )

    @property
    def endpoint(self) -> str:
        return self.url.rstrip("/") + "/api/mutation"

    def hook(self) -> Hook:
        return Hook(HOOK_NAME, "after_commit", EVENTS, self.send, mirror=True, backfill=True)

    def request(self, event: ChangeEvent) -> dict[str, Any]:
        """The mutation call for ``event``: a delete, or an upsert of the delivered user."""
        if event.type == "user.deleted":
            return {
                "path": self.delete_function,
                "args": {"clerkUserId": event.subject_id},
                "format": "json",
            }
        return {"path": self.upsert_function, "args": {"data": dict(event.data)}, "format": "json"}

    async def send(self, event: ChangeEvent) -> None:
        headers = {
            "Authorization": f"Convex {self.deploy_key}",
            "Idempotency-Key": event.idempotency_key,
        }
        import httpx  # here: a server without CONVEX_URL never loads it

        async with httpx.AsyncClient(
            timeout=httpx.Timeout(_TIMEOUT_SECONDS, connect=_CONNECT_SECONDS)
        ) as client:
            response = await client.post(self.endpoint, json=self.request(event), headers=headers)
        try:
            reply = response.json()
        except ValueError:
            reply = None
        if isinstance(reply, dict) and reply.get("status") == "error":
            raise ConvexError(
                f"{self.request(event)['path']} failed: {reply.get('errorMessage') or reply}"
            )
        if response.status_code != 200:
            raise ConvexError(
                f"{self.endpoint} answered HTTP {response.status_code}: "
                f"{response.text[:_SHOWN_BODY]}"
            )
        if not isinstance(reply, dict) or reply.get("status") != "success":
            raise ConvexError(f"{self.endpoint} answered something else than a Convex reply")
