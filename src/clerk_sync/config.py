"""Settings: one typed object, built by the composition roots (web app, CLI) at startup.

Sources, lowest priority first: ``.env``, then ``.env.local`` (both in the working directory),
then the real environment. Nothing below the composition roots reads this object: they are
handed plain values, so tests build any configuration without touching the environment.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .errors import ConfigError

SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret
MIN_SECRET_BYTES = 16
_WHERE_TO_FIND = (
    "copy it from Clerk Dashboard → Webhooks → your endpoint → Signing Secret "
    "and set it in the environment or in .env.local"
)


class Settings(BaseSettings):
    """Everything clerk-sync can be told; each field is one environment variable."""

    model_config = SettingsConfigDict(
        env_file=(".env", ".env.local"),
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
    )

    clerk_webhook_secret: str = Field(
        default="",
        description="One `whsec_…` signing secret, or several separated by spaces or commas "
        "(during rotation a delivery is valid if any of them verifies it).",
    )
    database_url: str = Field(
        default="sqlite:///clerk_sync.db",
        description="SQLAlchemy URL. `postgresql://…` uses psycopg 3.",
    )
    table_prefix: str = Field(
        default="",
        description="Prefix of every table clerk-sync owns, e.g. `clerk_` → `clerk_users`, "
        "`clerk_events`, … (lowercase letters, digits, `_`), to fit beside an application's "
        "own tables.",
    )
    database_schema: str = Field(
        default="",
        description="PostgreSQL only: the schema clerk-sync's tables live in (created if "
        "missing). Empty: the connection's default (`public`).",
    )
    admin_token: str = Field(
        default="",
        description="Bearer token for the read API, and the sign-in of the dashboard at "
        "`/admin`; when empty both answer 404.",
    )
    admin_session_ttl: str = Field(
        default="12h",
        description="How long a dashboard sign-in lasts (`30m`, `12h`, `7d`). Changing "
        "`ADMIN_TOKEN` ends every session at once.",
    )
    admin_quiet_after: str = Field(
        default="6h",
        description="The dashboard shows the age of the last delivery in red past this "
        "(`90m`, `6h`, `2d`).",
    )
    admin_show_avatars: bool = Field(
        default=False,
        description="Show users' avatars in the dashboard. Browsers then fetch them from "
        "Clerk's image host (`img.clerk.com`); off, the dashboard loads nothing from outside.",
    )
    metrics_token: str = Field(
        default="",
        description="Bearer token for `GET /metrics`; when empty `ADMIN_TOKEN` opens it, and "
        "with neither set it answers 404.",
    )
    webhook_tolerance_seconds: int = Field(
        default=300,
        ge=1,
        le=86_400,
        description="How far `svix-timestamp` may be from now, in either direction.",
    )
    max_body_bytes: int = Field(
        default=1_048_576,
        ge=1024,
        description="Largest webhook body accepted; larger ones get 413 unread.",
    )
    header_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        le=300,
        description="Seconds from a request's first byte to the end of its headers; a slower "
        "client gets 408 and is disconnected.",
    )
    body_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        le=300,
        description="Seconds from the end of a request's headers to the end of its body; a "
        "slower client gets 408 and is disconnected.",
    )
    keep_alive_timeout_seconds: float = Field(
        default=5.0,
        gt=0,
        le=300,
        description="Seconds a connection may stay open without a request in progress (before "
        "its first request or between requests) before it is closed.",
    )
    max_connections: int | None = Field(
        default=None,
        ge=16,
        description="Most connections open at once. Unset: the process's file-descriptor limit "
        "(RLIMIT_NOFILE) less room for the database, logs and pipes, at most 10,000. At the "
        "cap the quietest connection not waiting for its answer makes room; if every one is "
        "waiting, the new one is answered 503 and closed at once.",
    )
    max_pending_body_bytes: int = Field(
        default=64 * 1024 * 1024,
        ge=1024,
        description="Most request-body bytes held at once: every byte received counts until "
        "its request is answered. A request that does not fit takes the place of bodies begun "
        "over a second ago, or else gets 503 with Retry-After, its body unread.",
    )
    sqlite_synchronous: Literal["FULL", "NORMAL"] = Field(
        default="FULL",
        description="SQLite durability: FULL survives power loss, NORMAL only a process crash.",
    )
    batch_max: int = Field(
        default=64,
        ge=1,
        le=10_000,
        description="Most deliveries committed together in one transaction (group commit).",
    )
    delivery_timeout_seconds: float = Field(
        default=10,
        gt=0,
        le=3600,
        description="Longest a delivery waits for its commit: past it the answer is 503 (Svix "
        "retries; if the commit lands later, the retry is answered `duplicate`). A writer that "
        "makes no progress for this long is replaced. Keep it under Svix's 15 s.",
    )
    writer: Literal["process", "thread"] = Field(
        default="process",
        description="Where the database work runs: a child process fed over a pipe (the "
        "default: it does not compete with the HTTP event loop for the GIL), or a thread of "
        "the server process (one process, e.g. where spawning is not allowed).",
    )
    on_user_deleted: str = Field(
        default="",
        description="Comma-separated `module:function` cleanup hooks run inside the delete "
        "transaction, each called as `fn(connection, user_id)`.",
    )
    hooks: str = Field(
        default="",
        description="Comma-separated modules of hooks (`package.module`: every hook decorated "
        "in it) or single hooks (`package.module:function`), imported by `serve`, `dev`, "
        "`worker` and the writer process.",
    )
    outbox_worker: Literal["on", "off"] = Field(
        default="on",
        description="Whether `serve` runs the outbox worker (after-commit hooks, "
        "notifications, the Convex sink). `off`: run `clerk-sync worker` separately.",
    )
    outbox_max_attempts: int = Field(
        default=10,
        ge=1,
        le=100,
        description="Runs of an outbox row before it is marked `dead` (retries wait 1 s, "
        "doubling to 1 h).",
    )
    outbox_handler_timeout_seconds: float = Field(
        default=30,
        gt=0,
        le=3600,
        description="Longest one run of an after-commit hook may take; past it the run counts "
        "as failed and is retried.",
    )
    outbox_concurrency: int = Field(
        default=4,
        ge=1,
        le=64,
        description="Outbox rows one worker runs at once (rows of one subject always run one "
        "after another, in delivery order).",
    )
    notify_rules: str = Field(
        default="",
        description="Path of a TOML file of notification rules and operational alerts, sent "
        "through apprise URLs (see docs/notifications.md). Empty: none.",
    )
    convex_url: str = Field(
        default="",
        description="Convex deployment URL (`https://<name>.convex.cloud`): every applied user "
        "change is sent there through the outbox. Empty: no Convex sink.",
    )
    convex_deploy_key: str = Field(
        default="",
        description="Convex deploy key, sent as `Authorization: Convex <key>`.",
    )
    convex_upsert_function: str = Field(
        default="users:upsertFromClerk",
        description="Convex mutation called with `{data: <Clerk user JSON>}`.",
    )
    convex_delete_function: str = Field(
        default="users:deleteFromClerk",
        description="Convex mutation called with `{clerkUserId: <id>}`.",
    )
    clerk_secret_key: str = Field(
        default="",
        description="Clerk Backend API secret key (`sk_test_…` / `sk_live_…`, Clerk Dashboard → "
        "API keys) for `backfill`, `reconcile` and `users fetch`.",
    )
    clerk_api_url: str = Field(
        default="https://api.clerk.com/v1",
        description="Base URL of Clerk's Backend API (tests point it at a local fake).",
    )
    clerk_api_rate: str = Field(
        default="",
        description="Client-side budget of Backend API requests, e.g. `90/10s`. Empty: 90 per "
        "10 s for an `sk_test_` key, 900 per 10 s for `sk_live_` (under Clerk's 100 and 1,000).",
    )
    event_retention_days: int = Field(
        default=30,
        ge=0,
        le=36_500,
        description="Stored payloads older than this are erased (their log rows stay); 0 keeps "
        "them forever.",
    )
    reconcile_every: str = Field(
        default="",
        description="Run `reconcile` inside `serve` this often (`24h`, `30m`); empty: never.",
    )
    allowed_source_ips: str = Field(
        default="",
        description="Who may POST webhooks: IPs, CIDRs and presets (`svix` = every published "
        "Svix region, or `svix-us`, `svix-eu`, …) separated by spaces or commas. Others get 403 "
        "before anything is read. Empty: any source (the signature is always required).",
    )
    trusted_proxies: str = Field(
        default="",
        description="IPs/CIDRs of your reverse proxies: only a request from one of them has its "
        "`X-Forwarded-For` believed. Empty: the TCP peer is the client.",
    )
    rate_limit_webhook: str = Field(
        default="",
        description="Budget of webhook requests per client IP, e.g. `100/second` (the `limits` "
        "notation). Empty: verified deliveries are never throttled.",
    )
    rate_limit_webhook_rejected: str = Field(
        default="60/minute",
        description="Budget per client IP of webhook requests that fail verification (4xx but "
        "422). Once spent, that IP's failing requests get 429 instead of 400/401; a request "
        "that verifies is never refused. Empty: no budget.",
    )
    rate_limit_api: str = Field(
        default="600/minute",
        description="Budget of read API requests (`/api/users`, `/api/events`) per client IP. "
        "Empty: no budget.",
    )
    redis_url: str = Field(
        default="",
        description="Redis (`redis://…`, `rediss://…`) holding the rate-limit budgets, so "
        "replicas share them. Empty: in memory, per process.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = Field(
        default="INFO", description="Python logging level name."
    )

    @field_validator("log_level", "sqlite_synchronous", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("writer", "outbox_worker", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @classmethod
    def load(cls) -> Settings:
        """Read the environment and dotenv files; a bad value is a one-line ConfigError."""
        try:
            return cls()
        except ValidationError as exc:
            first = exc.errors()[0]
            name = str(first["loc"][0]).upper() if first["loc"] else "a setting"
            raise ConfigError(f"{name} is invalid: {first['msg']}.") from None

    def webhook_secrets(self) -> list[str]:
        """The configured secrets, checked; raises :class:`ConfigError` with the fix."""
        return parse_secrets(self.clerk_webhook_secret)

    def sqlalchemy_url(self) -> str:
        """``database_url`` with PostgreSQL URLs pointed at the psycopg 3 driver."""
        return normalize_database_url(self.database_url)

    def schema_name(self) -> str | None:
        """``DATABASE_SCHEMA``, refused on SQLite (which has no schemas to put tables in)."""
        if not self.database_schema:
            return None
        if not self.sqlalchemy_url().startswith("postgresql"):
            raise ConfigError(
                "DATABASE_SCHEMA is for PostgreSQL; on SQLite use TABLE_PREFIX to keep "
                "clerk-sync's tables apart."
            )
        return self.database_schema

    def hook_paths(self) -> list[str]:
        """``ON_USER_DELETED`` entries."""
        return [p.strip() for p in self.on_user_deleted.split(",") if p.strip()]

    def hook_modules(self) -> list[str]:
        """``HOOKS`` entries."""
        return [p.strip() for p in self.hooks.split(",") if p.strip()]


def parse_secrets(raw: str) -> list[str]:
    """Split and validate ``CLERK_WEBHOOK_SECRET``; the message never contains a secret."""
    parts = [p for p in re.split(r"[\s,]+", raw.strip()) if p]
    if not parts:
        raise ConfigError(f"CLERK_WEBHOOK_SECRET is not set: {_WHERE_TO_FIND}.")
    for position, secret in enumerate(parts, start=1):
        problem = secret_problem(secret)
        if problem:
            which = "" if len(parts) == 1 else f" (secret #{position})"
            raise ConfigError(f"CLERK_WEBHOOK_SECRET{which} {problem}: {_WHERE_TO_FIND}.")
    return parts


def secret_problem(secret: str) -> str | None:
    """Why ``secret`` cannot be a Svix signing secret, or None when it can."""
    if not secret.startswith(SECRET_PREFIX):
        return f"does not start with {SECRET_PREFIX!r}"
    body = secret[len(SECRET_PREFIX) :]
    try:
        key = base64.b64decode(body + "=" * (-len(body) % 4), validate=True)
    except (binascii.Error, ValueError):
        return "is not valid base64 after the whsec_ prefix (a placeholder?)"
    if len(key) < MIN_SECRET_BYTES:
        return f"is too short ({len(key)} bytes; Svix secrets are at least {MIN_SECRET_BYTES})"
    return None


def normalize_database_url(url: str) -> str:
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url
