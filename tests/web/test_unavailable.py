"""When the database goes away: 503 (Svix retries), nothing half-applied, healthz says so."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy.engine import make_url
from starlette.testclient import TestClient

from clerk_sync.config import normalize_database_url
from clerk_sync.devtools import user_event, user_object
from clerk_sync.web import WEBHOOK_PATH, create_app
from tests.conftest import PG_ADMIN_URL, signed

from .conftest import make_settings


@pytest.fixture
def doomed_database(pg_database: str) -> Iterator[tuple[str, str]]:
    admin = make_url(normalize_database_url(PG_ADMIN_URL)).set(drivername="postgresql")
    conninfo = admin.render_as_string(hide_password=False)
    name = f"clerk_sync_doomed_{secrets.token_hex(4)}"
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield admin.set(database=name).render_as_string(hide_password=False), conninfo
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.parametrize("writer", ["thread", "process"])
def test_database_down_answers_503_and_healthz_fails(
    doomed_database: tuple[str, str], writer: str
) -> None:
    url, admin = doomed_database
    with TestClient(create_app(make_settings(url, writer=writer))) as client:
        body, headers = signed(user_event("user.created", user_object()))
        assert client.post(WEBHOOK_PATH, content=body, headers=headers).status_code == 200

        name = make_url(url).database
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')

        body, headers = signed(user_event("user.created", user_object()))
        response = client.post(WEBHOOK_PATH, content=body, headers=headers)
        assert response.status_code == 503
        assert response.json()["error"] == "store_unavailable"
        assert "webhook-delivery" not in response.headers
        health = client.get("/healthz")
        assert health.status_code == 503
        assert health.json()["error"] == "store_unavailable"
