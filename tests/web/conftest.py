"""The real ASGI app (lifespan included) on a real database, driven in-process."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx2
import pytest
from starlette.testclient import TestClient

from clerk_sync.config import Settings
from clerk_sync.web import WEBHOOK_PATH, create_app
from tests.conftest import SECRET, signed

ADMIN_TOKEN = "test-admin-token-0123456789"
Post = Callable[..., "httpx2.Response"]


def make_settings(db_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "clerk_webhook_secret": SECRET,
        "database_url": db_url,
        "admin_token": ADMIN_TOKEN,
        # In-process writer: a child process per app would add a second to every test; the
        # writer process has its own tests (test_writer.py) and every end-to-end test runs it.
        "writer": "thread",
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture
def client(db_url: str) -> Iterator[TestClient]:
    with TestClient(create_app(make_settings(db_url))) as c:
        yield c


@pytest.fixture
def post(client: TestClient) -> Post:
    """``post(event_or_bytes, headers=None, **signing)``: sign now with svix, then POST."""

    def _post(
        event: dict[str, Any] | bytes, headers: dict[str, str] | None = None, **signing: Any
    ) -> httpx2.Response:
        body, signed_headers = signed(event, **signing)
        return client.post(WEBHOOK_PATH, content=body, headers=headers or signed_headers)

    return _post
