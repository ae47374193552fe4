"""The guard in front of the routes: source allowlist (403) and per-IP rate limits (429).

The allowlist and the opt-in webhook budget run before a byte of the body is read. Budgets come
from the ``limits`` library, in memory per process or in Redis when ``REDIS_URL`` is set, so
replicas behind one load balancer share them. The read API has its own budget.

**A delivery that verifies is never refused by the budget of failures.** Svix sends every
customer's webhooks from the same few IPs, so anyone with a Svix account can send forgeries from
the address your real deliveries come from; a budget that refused an *address* would let them
keep your deliveries out. So ``RATE_LIMIT_WEBHOOK_REJECTED`` only decides how a request that
*fails* is answered: once the handler has decided to refuse it, and before it answers or logs,
it takes one unit with the storage's atomic ``hit`` — so concurrent failures cannot overdraw the
budget, and exactly the budget's worth get their own 400/401 and log line — and one that finds
nothing left is answered 429 with ``Retry-After`` instead, logged at most once per 10 s per
address (:func:`refuse`). A request that verifies never touches the budget: it costs no storage
round trip at all (taking a unit on every request and giving it back cost about 13% of the
event loop's time).

When Redis cannot be reached the guard lets requests through (and says so in the log, at most
every 30 s): losing Clerk's deliveries because a cache is down would be the worse failure.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Protocol

from limits import RateLimitItem, parse_many
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError
from limits.storage import storage_from_string

from ..config import Settings
from ..errors import ConfigError, RateLimited, SourceNotAllowed
from .responses import Receive, Scope, Send
from .sources import ClientResolver, IPAddress, Network, contains, parse_networks

log = logging.getLogger("clerk_sync.guard")
UNKNOWN_CLIENT = "unknown"
_STORAGE_OPTIONS: dict[str, float | str | bool] = {
    "socket_timeout": 1.0,
    "socket_connect_timeout": 1.0,
}


def parse_limits(raw: str, setting: str) -> list[RateLimitItem]:
    """``100/second``, ``1000 per hour;10/second``; empty or ``off`` means no budget."""
    if raw.strip().lower() in ("", "off", "none"):
        return []
    try:
        return parse_many(raw)
    except ValueError:
        raise ConfigError(
            f"{setting} {raw!r} is not a rate limit: write e.g. '100/second' or '600/minute'."
        ) from None


class Budget:
    """One kind of budget (webhook, rejected, api): its limits under one storage."""

    def __init__(self, name: str, items: list[RateLimitItem], limiter: Limiter) -> None:
        self.name = name
        self.items = items
        self.limiter = limiter

    def __bool__(self) -> bool:
        return bool(self.items)

    async def spend(self, key: str) -> None:
        """Take one unit, or raise :class:`RateLimited` when any limit is spent."""
        for item in self.items:
            if not await self.limiter.call("hit", item, self.name, key):
                raise await self.refusal(item, key)

    async def take(self, key: str) -> RateLimitItem | None:
        """Take one unit of every limit — each an atomic ``hit``, never a test then a hit —
        and return the first that had nothing left (None: all had room)."""
        spent: RateLimitItem | None = None
        for item in self.items:
            if not await self.limiter.call("hit", item, self.name, key) and spent is None:
                spent = item
        return spent

    async def refusal(self, item: RateLimitItem, key: str) -> RateLimited:
        stats = await self.limiter.window_stats(item, self.name, key)
        retry_after = max(1, math.ceil(stats - time.time())) if stats else 1
        what = "requests that failed verification" if self.name == "rejected" else "requests"
        return RateLimited(
            f"Too many {what} from {key} ({item}); retry after {retry_after} s.",
            retry_after=retry_after,
        )


class Limiter:
    """The ``limits`` strategy over memory or Redis, failing open when the storage is down."""

    def __init__(self, redis_url: str) -> None:
        if redis_url:
            if not redis_url.startswith(("redis://", "rediss://", "redis+unix://")):
                raise ConfigError(
                    f"REDIS_URL {redis_url!r} must start with redis://, rediss:// or redis+unix://."
                )
            uri = "async+" + redis_url
            options = {**_STORAGE_OPTIONS, "implementation": "redispy", "key_prefix": "clerk_sync"}
        else:
            uri, options = "async+memory://", {}
        try:
            storage = storage_from_string(uri, wrap_exceptions=True, **options)
        except Exception as exc:
            raise ConfigError(f"REDIS_URL {redis_url!r} cannot be used: {exc}.") from None
        self.storage = storage
        # A moving window is exact: the sliding-window counter weighs the previous window's
        # count, and a burst across a window boundary got 61 units of a budget of 60.
        self.strategy = MovingWindowRateLimiter(storage)
        self._last_warning = 0.0

    async def close(self) -> None:
        """Close the Redis connections (``limits`` has no close of its own for them)."""
        client = getattr(getattr(self.storage, "bridge", None), "storage", None)
        if client is not None and hasattr(client, "aclose"):
            await client.aclose()

    async def call(
        self, method: str, item: RateLimitItem, *identifiers: str, cost: int = 1
    ) -> bool:
        try:
            return bool(await getattr(self.strategy, method)(item, *identifiers, cost=cost))
        except StorageError as exc:
            self._warn(exc)
            return True

    async def window_stats(self, item: RateLimitItem, *identifiers: str) -> float | None:
        try:
            return float((await self.strategy.get_window_stats(item, *identifiers)).reset_time)
        except StorageError:
            return None

    def _warn(self, exc: StorageError) -> None:
        now = time.monotonic()
        if now - self._last_warning > 30:
            self._last_warning = now
            log.warning("rate-limit storage unavailable, letting requests through: %s", exc)


class Guard:
    """What the app asks before routing a request: may this client go on?"""

    def __init__(
        self,
        *,
        allowed_sources: tuple[Network, ...],
        trusted_proxies: tuple[Network, ...],
        limiter: Limiter,
        webhook: list[RateLimitItem],
        rejected: list[RateLimitItem],
        api: list[RateLimitItem],
    ) -> None:
        self.allowed_sources = allowed_sources
        self.resolve = ClientResolver(trusted_proxies)
        self.limiter = limiter
        self.webhook = Budget("webhook", webhook, limiter)
        self.rejected = Budget("rejected", rejected, limiter)
        self.api = Budget("api", api, limiter)
        self.needs_address = bool(allowed_sources or trusted_proxies)

    @classmethod
    def from_settings(cls, settings: Settings) -> Guard:
        """Parse and check every protection setting now: a typo fails at startup."""
        return cls(
            allowed_sources=parse_networks(
                settings.allowed_source_ips, "ALLOWED_SOURCE_IPS", presets=True
            ),
            trusted_proxies=parse_networks(settings.trusted_proxies, "TRUSTED_PROXIES"),
            limiter=Limiter(settings.redis_url),
            webhook=parse_limits(settings.rate_limit_webhook, "RATE_LIMIT_WEBHOOK"),
            rejected=parse_limits(
                settings.rate_limit_webhook_rejected, "RATE_LIMIT_WEBHOOK_REJECTED"
            ),
            api=parse_limits(settings.rate_limit_api, "RATE_LIMIT_API"),
        )

    def client_key(self, scope: MutableMapping[str, Any]) -> tuple[str, IPAddress | None]:
        """The budget key of the client and its parsed address (None when not needed/known)."""
        if not self.needs_address:
            client = scope.get("client")
            return (str(client[0]) if client else UNKNOWN_CLIENT), None
        address = self.resolve(scope)
        return (str(address) if address is not None else UNKNOWN_CLIENT), address

    async def admit_webhook(self, scope: MutableMapping[str, Any]) -> str:
        """Source allowlist (403) and the webhook budget (429); returns the client key (the
        budget of failures comes later, see :meth:`answer_webhook`)."""
        key, address = self.client_key(scope)
        if self.allowed_sources and (
            address is None or not contains(self.allowed_sources, address)
        ):
            raise SourceNotAllowed(
                f"{key} is not in ALLOWED_SOURCE_IPS; if requests come through a reverse "
                "proxy, list it in TRUSTED_PROXIES so X-Forwarded-For is believed."
            )
        if self.webhook:
            await self.webhook.spend(key)
        return key

    async def answer_webhook(
        self, key: str, handler: Handler, scope: Scope, receive: Receive, send: Send
    ) -> int:
        """Run ``handler``; a request of it that fails verification first spends a unit of the
        budget of failures (atomically), and is answered 429 instead when none was left."""
        if not self.rejected:
            return await handler(scope, receive, send)

        async def spend() -> RateLimited | None:
            spent = await self.rejected.take(key)
            return None if spent is None else await self.rejected.refusal(spent, key)

        return await handler(scope, receive, send, gate=spend)

    async def admit_api(self, scope: MutableMapping[str, Any]) -> None:
        if self.api:
            await self.api.spend(self.client_key(scope)[0])


class Handler(Protocol):
    """The webhook handler (:class:`~clerk_sync.web.webhook.WebhookEndpoint`): answers and
    returns the status it sent (0 when the client left); ``gate`` is asked before it refuses a
    request that failed verification."""

    def __call__(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        *,
        gate: Callable[[], Awaitable[RateLimited | None]] | None = None,
    ) -> Awaitable[int]: ...
