"""Clerk's Backend API as ``backfill`` and ``ensure_user`` read it: a checked key, the
endpoints, and pages checked against their documented shapes. Requests go through
:mod:`clerk_sync.clerk_http` (one budget, 429s waited out, 5xx retried, unreachable within a
minute), whose errors and settings are re-exported here.

Why objects are read as raw JSON and not through the SDK's models: ``clerk-sync`` stores the
object *as Clerk sends it* (``data``), the same JSON its webhooks carry, and the SDK's models do
not round-trip to it. Checked with 7.0.0: ``model_dump(mode="json", by_alias=True)`` drops every
field the model does not declare (an organization's ``created_by``, which ``organizations``
stores; a user's ``requires_password_reset``; whatever Clerk adds next); it refuses real users
whose e-mail verification has no ``object`` key (as in a captured 2025 delivery) with a
``ResponseValidationError``, which would stop a backfill on one odd user; and parsing a page of
500 users into models and back costs ~140 ms, against ~5 ms for ``orjson`` (it alone would cap
a backfill under 4,000 users/s). So users, organizations and memberships are read raw through
the SDK's HTTP client and checked here against their documented shapes; the SDK counts users
(its ``TotalCount`` model is the whole answer).
"""

from __future__ import annotations

import re
import threading
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self
from urllib.parse import quote

import httpx
import orjson

from .clerk_http import (
    RETRY_AFTER_MAX,
    BudgetedTransport,
    ClerkApiError,
    ClerkApiUnreachable,
    ClerkKeyRefused,
    NotInClerk,
    Rate,
    RateLimiter,
    RetryPolicy,
    UnexpectedResponse,
    parse_rate,
    retry_after,
)
from .errors import ConfigError
from .logformat import redact

if TYPE_CHECKING:
    from clerk_backend_api import Clerk

    from .config import Settings

__all__ = [
    "CLERK_API_VERSION",
    "DEFAULT_API_URL",
    "PAGE_MAX",
    "RETRY_AFTER_MAX",
    "ClerkApi",
    "ClerkApiError",
    "ClerkApiUnreachable",
    "ClerkKeyRefused",
    "NotInClerk",
    "Page",
    "Rate",
    "RateLimiter",
    "RetryPolicy",
    "UnexpectedResponse",
    "check_api_url",
    "check_secret_key",
    "parse_rate",
    "refusal",
    "retry_after",
]

DEFAULT_API_URL = "https://api.clerk.com/v1"
CLERK_API_VERSION = "2025-11-10"
"""The API version ``clerk-backend-api`` 7 sends (its before-request hook): raw reads ask for
the same shapes as the SDK's calls."""
PAGE_MAX = 500
"""The largest ``limit`` Clerk's list endpoints accept."""
_KEY_HELP = "Clerk Dashboard → API keys → Secret keys"
_KEY = re.compile(r"sk_(test|live)_[A-Za-z0-9]+")


def check_secret_key(raw: str) -> str:
    """``CLERK_SECRET_KEY`` stripped, or a one-line :class:`ConfigError` saying which key to use.

    The message never contains the key, only which kind of value it is."""
    key = raw.strip()
    if not key:
        raise ConfigError(f"CLERK_SECRET_KEY is not set: set CLERK_SECRET_KEY: {_KEY_HELP}.")
    if key.startswith("pk_"):
        raise ConfigError(
            "CLERK_SECRET_KEY is a publishable key (pk_…), the one browsers use: the Backend "
            f"API needs the secret key (sk_test_… or sk_live_…) from {_KEY_HELP}."
        )
    if key.startswith("whsec_"):
        raise ConfigError(
            "CLERK_SECRET_KEY is a webhook signing secret (whsec_…), which belongs in "
            "CLERK_WEBHOOK_SECRET: the Backend API needs the secret key (sk_test_… or "
            f"sk_live_…) from {_KEY_HELP}."
        )
    if not key.startswith(("sk_test_", "sk_live_")):
        raise ConfigError(
            f"CLERK_SECRET_KEY does not start with sk_test_ or sk_live_: copy the secret key "
            f"from {_KEY_HELP}."
        )
    if not _KEY.fullmatch(key):
        raise ConfigError(
            f"CLERK_SECRET_KEY starts like a secret key but the rest is not one (only letters "
            f"and digits follow sk_test_/sk_live_: a placeholder, or quotes or spaces pasted "
            f"with it?): copy it again from {_KEY_HELP}."
        )
    return key


def check_api_url(raw: str) -> str:
    """``CLERK_API_URL`` without its trailing ``/`` (empty: Clerk's), or a one-line
    :class:`ConfigError`."""
    url = raw.strip().rstrip("/") or DEFAULT_API_URL
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        parsed = None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.host:
        raise ConfigError(
            f"CLERK_API_URL {raw!r} is not an http(s) URL: leave it empty for Clerk's "
            f"{DEFAULT_API_URL}, or give a whole URL like it."
        )
    return url


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a ``{"data": [...], "total_count": N}`` list."""

    data: list[dict[str, Any]]
    total_count: int


class ClerkApi:
    """The Backend API of one Clerk instance. Thread-safe; close it (or use ``with``)."""

    def __init__(
        self,
        secret_key: str,
        *,
        api_url: str = DEFAULT_API_URL,
        rate: Rate | str = "",
        policy: RetryPolicy | None = None,
    ) -> None:
        """``secret_key`` is checked (:func:`check_secret_key`); ``rate`` is a :class:`Rate`
        or ``CLERK_API_RATE``'s text (empty: the key's default)."""
        key = check_secret_key(secret_key)
        self.api_url = check_api_url(api_url)
        self.rate = rate if isinstance(rate, Rate) else parse_rate(rate, key)
        self.policy = policy or RetryPolicy()
        self.limiter = RateLimiter(self.rate)
        self._key = key
        self._sdk: Clerk | None = None
        self._sdk_lock = threading.Lock()
        self._http = httpx.Client(
            base_url=self.api_url + "/",
            headers={
                "Authorization": f"Bearer {key}",
                "Clerk-API-Version": CLERK_API_VERSION,
                "User-Agent": f"clerk-sync/{_version()}",
                "Accept": "application/json",
            },
            timeout=httpx.Timeout(self.policy.timeout, connect=self.policy.connect_timeout),
            transport=BudgetedTransport(httpx.HTTPTransport(), self.limiter, self.policy),
        )

    @classmethod
    def from_settings(cls, settings: Settings, *, policy: RetryPolicy | None = None) -> Self:
        """A client from ``CLERK_SECRET_KEY``, ``CLERK_API_URL`` and ``CLERK_API_RATE``."""
        key = check_secret_key(settings.clerk_secret_key)
        return cls(
            key,
            api_url=settings.clerk_api_url,
            rate=parse_rate(settings.clerk_api_rate, key),
            policy=policy,
        )

    # -- the objects ------------------------------------------------------------------------

    def list_users(self, offset: int = 0, limit: int = PAGE_MAX) -> list[dict[str, Any]]:
        """``GET /users`` oldest first (``order_by=+created_at``: new sign-ups go to the end, so
        offsets already walked do not move): a bare JSON array of users."""
        params = {"limit": limit, "offset": offset, "order_by": "+created_at"}
        url, body = self._get("users", params)
        return _objects(body, url, "user", limit)

    def count_users(self) -> int:
        """``GET /users/count`` → ``{"object": "total_count", "total_count": N}``, through the
        SDK (its ``TotalCount`` model is the whole answer)."""
        sdk = self.sdk
        from clerk_backend_api import models

        url = f"{self.api_url}/users/count"
        try:
            with warnings.catch_warnings():
                # 7.0.0 reads its own deprecated query fields while building the request
                warnings.simplefilter("ignore", DeprecationWarning)
                answer = sdk.users.count(request={})
        except models.ResponseValidationError as exc:
            raise UnexpectedResponse(
                f"GET {url} answered {_clip(exc.body)!s}, not "
                '{"object": "total_count", "total_count": N}: is CLERK_API_URL the Backend '
                "API?"
            ) from None
        except models.ClerkBaseError as exc:
            raise refusal(exc.raw_response) from None
        return answer.total_count

    def list_organizations(self, offset: int = 0, limit: int = PAGE_MAX) -> Page:
        """``GET /organizations`` oldest first, with ``members_count`` (webhooks carry it)."""
        params: dict[str, Any] = {
            "limit": limit,
            "offset": offset,
            "order_by": "+created_at",
            "include_members_count": "true",
        }
        url, body = self._get("organizations", params)
        return _page(body, url, "organization", limit)

    def list_memberships(self, offset: int = 0, limit: int = PAGE_MAX) -> Page:
        """``GET /organization_memberships``: every membership of the instance in one walk (the
        SDK's ``users.get_instance_organization_memberships``), oldest first."""
        params = {"limit": limit, "offset": offset, "order_by": "+created_at"}
        url, body = self._get("organization_memberships", params)
        return _page(body, url, "organization_membership", limit)

    def get_user(self, user_id: str) -> dict[str, Any]:
        """``GET /users/{id}``; raises :class:`NotInClerk` when Clerk answers 404."""
        if not user_id.strip() or len(user_id) > 255 or user_id in (".", ".."):
            raise NotInClerk(f"{user_id!r} is not a Clerk user id (like user_2x…).")
        url, body = self._get(f"users/{quote(user_id, safe='')}", {}, missing=user_id)
        _check_object(body, url, "user", None)
        return dict(body)

    # -- plumbing ---------------------------------------------------------------------------

    @property
    def sdk(self) -> Clerk:
        """The ``clerk-backend-api`` client on this client's budget and transport (built on
        first use: importing the SDK takes half a second)."""
        with self._sdk_lock:
            if self._sdk is None:
                try:
                    from clerk_backend_api import Clerk
                    from clerk_backend_api.utils import BackoffStrategy, RetryConfig
                except ImportError:
                    raise ConfigError(
                        "The Backend API client needs clerk-backend-api: "
                        "pip install 'clerk-sync[backfill]'."
                    ) from None
                self._sdk = Clerk(
                    bearer_auth=self._key,
                    server_url=self.api_url,
                    client=self._http,
                    # Ours retries (BudgetedTransport); the SDK's default would retry a lost
                    # connection for an hour, and on top of ours.
                    retry_config=RetryConfig("none", BackoffStrategy(0, 0, 1, 0), False),
                    timeout_ms=int(self.policy.timeout * 1000),
                )
            return self._sdk

    def _get(
        self, path: str, params: Mapping[str, Any], *, missing: str | None = None
    ) -> tuple[str, Any]:
        """The URL asked and its JSON body; any answer but 200 raises its error."""
        response = self._http.get(path, params=dict(params))
        url = str(response.request.url)
        if response.status_code == 404 and missing is not None:
            raise NotInClerk(
                f"{missing} does not exist in Clerk: the Backend API answered 404 for GET "
                f"{url} (deleted, or a user of another instance than CLERK_SECRET_KEY's?)."
            )
        if response.status_code != 200:
            raise refusal(response)
        try:
            body = orjson.loads(response.content)
        except orjson.JSONDecodeError as exc:
            raise UnexpectedResponse(
                f"GET {url} answered {response.status_code} with a body that is not JSON "
                f"({exc}): is CLERK_API_URL the Backend API?"
            ) from None
        return url, body

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _version() -> str:
    """This package's version, from its metadata (importing ``clerk_sync`` itself from the
    core would pull the web layer in, as far as the import contracts can tell)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("clerk-sync")
    except PackageNotFoundError:
        return "unknown"


def refusal(response: httpx.Response) -> ClerkApiError:
    """The error for a non-2xx answer that retrying did not (or cannot) fix."""
    status = response.status_code
    url = str(response.request.url)
    message = _clerk_message(response)
    if status in (401, 403):
        return ClerkKeyRefused(
            f"The Backend API refused CLERK_SECRET_KEY ({status}): {message} — copy this "
            f"instance's secret key from {_KEY_HELP} (was it rotated or revoked?)."
        )
    if status == 429:
        return ClerkApiError(
            f"GET {url} still answered 429 (rate limited) after waiting out every Retry-After: "
            "lower CLERK_API_RATE, or run again later (a backfill continues where it stopped)."
        )
    if status >= 500:
        return ClerkApiError(
            f"GET {url} answered {status} after retries: Clerk's Backend API is failing "
            f"({message}); run again later (a backfill continues where it stopped)."
        )
    hint = " Is CLERK_API_URL the Backend API (https://api.clerk.com/v1)?" if status == 404 else ""
    return ClerkApiError(f"GET {url} answered {status}: {message}.{hint}")


def _clerk_message(response: httpx.Response) -> str:
    """Clerk's own words from ``{"errors": [{"message", "long_message", "code"}]}``, else the
    start of the body; secret-shaped tokens are masked."""
    try:
        body = orjson.loads(response.content)
        first = body["errors"][0]
        text = first.get("long_message") or first.get("message") or first.get("code")
        if text:
            return redact(str(text))[:300]
    except (orjson.JSONDecodeError, KeyError, IndexError, TypeError, AttributeError):
        pass
    return redact(response.text.strip()[:200]) or f"HTTP {response.status_code}, empty body"


def _clip(value: Any) -> str:
    text = value if isinstance(value, str) else orjson.dumps(value).decode()
    return redact(text[:120] + ("…" if len(text) > 120 else ""))


def _objects(body: Any, url: str, obj: str, limit: int) -> list[dict[str, Any]]:
    """A bare JSON array of Clerk objects of type ``obj``, at most ``limit`` of them."""
    if not isinstance(body, list):
        raise UnexpectedResponse(
            f"GET {url} answered {_describe(body)}, not the bare JSON array of "
            f"{obj}s Clerk documents: is CLERK_API_URL the Backend API?"
        )
    if len(body) > limit:
        raise UnexpectedResponse(
            f"GET {url} answered {len(body)} {obj}s for limit={limit}: not Clerk's paging."
        )
    for position, item in enumerate(body):
        _check_object(item, url, obj, position)
    return body


def _page(body: Any, url: str, obj: str, limit: int) -> Page:
    """``{"data": [...], "total_count": N}``."""
    if not isinstance(body, dict) or not isinstance(body.get("data"), list):
        raise UnexpectedResponse(
            f"GET {url} answered {_describe(body)}, not the "
            '{"data": [...], "total_count": N} Clerk documents: is CLERK_API_URL the Backend '
            "API?"
        )
    total = body.get("total_count")
    if not isinstance(total, int) or isinstance(total, bool) or total < 0:
        raise UnexpectedResponse(
            f"GET {url} answered total_count {total!r}, not a count: not Clerk's list shape."
        )
    return Page(_objects(body["data"], url, obj, limit), total)


def _check_object(item: Any, url: str, obj: str, position: int | None) -> None:
    where = "" if position is None else f" item {position}"
    if not isinstance(item, dict):
        raise UnexpectedResponse(
            f"GET {url} answered{where} {type(item).__name__}, not a {obj} object."
        )
    if not isinstance(item.get("id"), str) or not item["id"]:
        raise UnexpectedResponse(f"GET {url} answered{where} a {obj} without an id.")
    kind = item.get("object")
    if kind is not None and kind != obj:
        raise UnexpectedResponse(
            f"GET {url} answered{where} an object of type {kind!r} where {obj!r} was expected."
        )


def _describe(body: Any) -> str:
    if isinstance(body, dict):
        return "an object with " + (", ".join(sorted(body)) or "no keys")
    if isinstance(body, list):
        return f"a bare array of {len(body)}"
    return type(body).__name__
