"""The guard in front of the routes: source allowlist (403) and per-IP rate limits (429).

The allowlist and the opt-in webhook budget run before a byte of the body is read. Budgets come
from the ``limits`` library, in memory per process or in Redis when ``REDIS_URL`` is set, so
replicas behind one load balancer share them. The read API has its own budget.

**A delivery that verifies is never refused by the budget of failures.** Svix sends every
customer's webhooks from the same few IPs, so anyone with a Svix account can send forgeries from
the address your real deliveries come from; a budget that refused an *address* would let them
keep your deliveries out. So ``RATE_LIMIT_WEBHOOK_REJECTED`` only decides how a request that
*fails* is answered: each webhook request takes one unit when it is admitted — with the storage's
atomic ``hit``, so concurrent requests cannot overdraw it — and gives it back once it has
verified. A failing request that found the budget spent is answered 429 with ``Retry-After``
instead of its 400/401 and logged at most once per 10 s per address instead of once per request;
one that verifies goes on as if there were no budget.

When Redis cannot be reached the guard lets requests through (and says so in the log, at most
every 30 s): losing Clerk's deliveries because a cache is down would be the worse failure.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, MutableMapping
from dataclasses import dataclass
from typing import Any, Protocol

from limits import RateLimitItem, parse_many
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from limits.errors import StorageError
from limits.storage import storage_from_string

from ..config import Settings
from ..errors import ConfigError, RateLimited, SourceNotAllowed
from .responses import Receive, Scope, Send, refuse
from .sources import ClientResolver, IPAddress, Network, contains, parse_networks

log = logging.getLogger("clerk_sync.guard")
UNKNOWN_CLIENT = "unknown"
_STORAGE_OPTIONS: dict[str, float | str | bool] = {
    "socket_timeout": 0.5,
    "socket_connect_timeout": 0.5,
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

    async def take(self, key: str) -> Ticket:
        """Take one unit of every limit that has one left — each an atomic ``hit``, never a
        test then a hit — and say which were taken and which was spent; never refuses."""
        taken: list[RateLimitItem] = []
        spent: RateLimitItem | None = None
        for item in self.items:
            if await self.limiter.call("hit", item, self.name, key):
                taken.append(item)
            elif spent is None:
                spent = item
        return Ticket(self, key, tuple(taken), spent)

    async def refusal(self, item: RateLimitItem, key: str) -> RateLimited:
        stats = await self.limiter.window_stats(item, self.name, key)
        retry_after = max(1, math.ceil(stats - time.time())) if stats else 1
        what = "requests that failed verification" if self.name == "rejected" else "requests"
        return RateLimited(
            f"Too many {what} from {key} ({item}); retry after {retry_after} s.",
            retry_after=retry_after,
        )


@dataclass(frozen=True, slots=True)
class Ticket:
    """One webhook request's unit of the budget of failures, taken when it was admitted."""

    budget: Budget
    key: str
    taken: tuple[RateLimitItem, ...]
    """The limits a unit was taken from (given back if the request verifies)."""
    spent: RateLimitItem | None
    """A limit that had nothing left: should this request fail, it is answered 429."""

    @property
    def over_budget(self) -> bool:
        return self.spent is not None

    async def give_back(self) -> None:
        """The request verified: its units were not spent on a failure (an atomic ``hit`` of
        cost -1; one taken just before a window turned over is credited to the new window)."""
        for item in self.taken:
            await self.budget.limiter.call("hit", item, self.budget.name, self.key, cost=-1)

    async def refusal(self) -> RateLimited:
        assert self.spent is not None
        return await self.budget.refusal(self.spent, self.key)


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
        self.strategy = SlidingWindowCounterRateLimiter(storage)
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

    async def admit_webhook(self, scope: MutableMapping[str, Any]) -> Ticket:
        """Source allowlist (403) and the webhook budget (429), then a unit of the budget of
        failures is taken — never refused here: whether it matters depends on whether the
        request verifies (:meth:`webhook_answered`)."""
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
        if not self.rejected:
            return Ticket(self.rejected, key, (), None)
        return await self.rejected.take(key)

    async def webhook_answered(self, ticket: Ticket, status: int) -> None:
        """Give the unit back unless the request failed on the client's side (4xx but 422,
        which is a verified delivery that can never be applied, or no answer at all)."""
        if ticket.taken and not failed_verification(status) and status != 0:
            await ticket.give_back()

    async def answer_over_budget(
        self, ticket: Ticket, handler: Handler, scope: Scope, receive: Receive, send: Send
    ) -> int:
        """See :func:`answer_over_budget`."""
        return await answer_over_budget(ticket, handler, scope, receive, send)

    async def admit_api(self, scope: MutableMapping[str, Any]) -> None:
        if self.api:
            await self.api.spend(self.client_key(scope)[0])


class Handler(Protocol):
    """The webhook handler: answers and returns the status it sent (0 when the client left);
    ``quiet`` drops its log line for a refusal (the caller logs a summary instead)."""

    def __call__(
        self, scope: Scope, receive: Receive, send: Send, *, quiet: bool = False
    ) -> Awaitable[int]: ...


async def answer_over_budget(
    ticket: Ticket, handler: Handler, scope: Scope, receive: Receive, send: Send
) -> int:
    """Run ``handler`` for a request that found the budget of failures spent. If it verifies,
    nothing changes. If it fails, its own answer (and its log line) is replaced by a 429 with
    ``Retry-After``, logged at most once per 10 s (:func:`refuse`)."""
    replaced = False

    async def send_unless_failed(message: MutableMapping[str, Any]) -> None:
        nonlocal replaced
        if message["type"] == "http.response.start" and failed_verification(message["status"]):
            replaced = True
        if not replaced:
            await send(message)

    status = await handler(scope, receive, send_unless_failed, quiet=True)
    if not replaced:
        return status
    refusal = await ticket.refusal()
    await refuse(send, refusal)
    return refusal.http_status


def failed_verification(status: int) -> bool:
    """Whether a webhook answer means the request was refused before it verified: a 4xx
    other than 422 (a verified delivery whose content can never be applied)."""
    return 400 <= status < 500 and status != 422
