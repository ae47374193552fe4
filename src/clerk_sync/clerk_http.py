"""Requests to Clerk's Backend API: their errors, one budget for every call, and the retries,
all in one httpx transport (:class:`BudgetedTransport`) below every path that sends requests
(the ``clerk-backend-api`` SDK, its own retries set to ``none`` so they do not multiply these,
and :mod:`clerk_sync.clerk_api`'s raw JSON reads).

What this module decides:

* **One budget.** ``CLERK_API_RATE`` (default 90 requests per 10 s for an ``sk_test_`` key, 900
  for ``sk_live_``: under Clerk's 100 and 1,000) is a sliding window shared by every call and
  thread (:class:`RateLimiter`), so a backfill stays under the instance's limit instead of
  spending it and then waiting out 429s.
* **A 429 waits.** Its ``Retry-After`` seconds (1 s when absent), and the whole client pauses
  with it, since Clerk blocks the endpoint for everyone using the key; then the request is sent
  again. The SDK does not do this (its retries are hard-coded to 5xx).
* **5xx is retried** a few times with doubling waits (:class:`RetryPolicy`).
* **No connection fails within a minute.** Connection errors and timeouts are retried for
  ``RetryPolicy.connect_budget`` seconds (30), then :class:`ClerkApiUnreachable`; the SDK's
  default ``RetryConfig`` would keep retrying for an hour.
* **401/403 is one clear error** (:class:`ClerkKeyRefused`, raised by the client), never
  retried.

::

    ClerkSyncError
    └── ClerkApiError            clerk_api_error        exit 1  (failed after retries)
        ├── ClerkKeyRefused      clerk_key_refused      exit 2  (401/403: the key)
        ├── ClerkApiUnreachable  clerk_api_unreachable  exit 1  (no answer for connect_budget)
        ├── UnexpectedResponse   clerk_api_unexpected   exit 1  (a 2xx not of Clerk's shape)
        └── NotInClerk           not_in_clerk           exit 1  (404 for one object)
"""

from __future__ import annotations

import logging
import math
import random
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

import httpx

from .errors import ClerkSyncError, ConfigError

log = logging.getLogger("clerk_sync.clerk_api")

RETRY_AFTER_MAX = 600.0
"""The longest a ``Retry-After`` is waited (then the request is tried again)."""
_RATE = re.compile(r"\s*(\d+)\s*/\s*(\d+(?:\.\d+)?)?\s*(s|sec|m|min)\s*")
_DEFAULT_RATES = {"sk_test_": (90, 10.0), "sk_live_": (900, 10.0)}


class ClerkApiError(ClerkSyncError):
    """The Backend API answered something the backfill cannot use (after its retries)."""

    code = "clerk_api_error"
    http_status = 502


class ClerkKeyRefused(ClerkApiError):
    """The Backend API refused ``CLERK_SECRET_KEY`` (401/403): a configuration problem."""

    code = "clerk_key_refused"
    exit_code = 2


class ClerkApiUnreachable(ClerkApiError):
    """No HTTP answer from ``CLERK_API_URL`` for ``RetryPolicy.connect_budget`` seconds."""

    code = "clerk_api_unreachable"
    http_status = 503


class UnexpectedResponse(ClerkApiError):
    """A 2xx whose body is not the shape Clerk documents for that endpoint."""

    code = "clerk_api_unexpected"


class NotInClerk(ClerkApiError):
    """Clerk answered 404 for one object: it does not exist in this instance."""

    code = "not_in_clerk"
    http_status = 404


@dataclass(frozen=True, slots=True)
class Rate:
    """At most ``requests`` requests in any ``seconds``-long window."""

    requests: int
    seconds: float

    @property
    def per_second(self) -> float:
        """The sustained rate: what a long walk gets, in requests per second."""
        return self.requests / self.seconds

    def __str__(self) -> str:
        return f"{self.requests}/{self.seconds:g}s"


def parse_rate(value: str, secret_key: str = "") -> Rate:
    """``CLERK_API_RATE`` (``90/10s``, ``5/s``, ``600/1m``); empty: the default for the key's
    instance. A bad value is a one-line :class:`ConfigError`."""
    if not value.strip():
        for prefix, (requests, seconds) in _DEFAULT_RATES.items():
            if secret_key.startswith(prefix):
                return Rate(requests, seconds)
        return Rate(*_DEFAULT_RATES["sk_test_"])
    match = _RATE.fullmatch(value)
    if match is None:
        raise ConfigError(
            f"CLERK_API_RATE {value!r} is not a budget like 90/10s (requests / a period in s "
            "or m): set it like that, or leave it empty for 90/10s (sk_test_) or 900/10s "
            "(sk_live_)."
        )
    count, amount, unit = match.groups()
    seconds = float(amount or 1) * (60 if unit.startswith("m") else 1)
    if int(count) < 1 or seconds <= 0:
        raise ConfigError(
            f"CLERK_API_RATE {value!r} allows no request: give at least 1 request per a "
            "period longer than 0, like 90/10s."
        )
    return Rate(int(count), seconds)


class RateLimiter:
    """A sliding-window log shared by threads: no window of ``rate.seconds`` ever holds more
    than ``rate.requests`` requests, and :meth:`pause` holds everyone back (a 429)."""

    def __init__(
        self,
        rate: Rate,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.rate = rate
        self._clock = clock
        self._sleep = sleep
        self._sent: deque[float] = deque()
        self._paused_until = float("-inf")
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Wait until a request may go, and count it; returns the seconds waited."""
        waited = 0.0
        while True:
            with self._lock:
                now = self._clock()
                horizon = now - self.rate.seconds
                while self._sent and self._sent[0] <= horizon:
                    self._sent.popleft()
                wait = self._paused_until - now
                if wait <= 0:
                    if len(self._sent) < self.rate.requests:
                        self._sent.append(now)
                        return waited
                    wait = self._sent[0] - horizon
            self._sleep(wait)
            waited += wait

    def pause(self, seconds: float) -> None:
        """No request goes for ``seconds`` from now (later pauses extend, never shorten)."""
        with self._lock:
            self._paused_until = max(self._paused_until, self._clock() + seconds)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How long requests are retried; the defaults fail an unreachable API within a minute."""

    connect_budget: float = 30.0
    """Seconds of connection errors and timeouts (from the first) before giving up."""
    server_error_retries: int = 4
    """Retries of a 5xx answer (waits: ``backoff``, doubling, at most ``max_backoff``)."""
    backoff: float = 0.5
    max_backoff: float = 8.0
    rate_limited_retries: int = 30
    """429s in a row for one request before giving up (each waits its ``Retry-After``)."""
    timeout: float = 20.0
    """Seconds to wait for an answer's bytes (read, write, pool)."""
    connect_timeout: float = 10.0

    def wait(self, attempt: int) -> float:
        """The wait before retry ``attempt`` (0, 1, …), with up to 10% jitter."""
        base = min(self.max_backoff, self.backoff * 2.0**attempt)
        return base * (1 + random.random() / 10)  # noqa: S311 - jitter, not a secret


class BudgetedTransport(httpx.BaseTransport):
    """Every request waits for the budget; 429, 5xx and lost connections are retried as the
    module docstring says. Only GET and HEAD are retried (the backfill only reads)."""

    def __init__(
        self,
        inner: httpx.BaseTransport,
        limiter: RateLimiter,
        policy: RetryPolicy,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._inner = inner
        self._limiter = limiter
        self._policy = policy
        self._clock = clock
        self._sleep = sleep

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.method not in ("GET", "HEAD"):
            self._limiter.acquire()
            return self._inner.handle_request(request)
        policy = self._policy
        limited = failed = lost = 0
        unreachable_since: float | None = None
        while True:
            self._limiter.acquire()
            try:
                response = self._inner.handle_request(request)
                response.read()  # a body cut off mid-way is retried like a lost connection
            except httpx.TransportError as exc:
                now = self._clock()
                if unreachable_since is None:
                    unreachable_since = now
                left = policy.connect_budget - (now - unreachable_since)
                if left <= 0:
                    raise ClerkApiUnreachable(
                        f"Could not reach the Backend API at {request.url} for "
                        f"{policy.connect_budget:g} s ({type(exc).__name__}: {exc}): check "
                        "CLERK_API_URL and the network, then run again."
                    ) from None
                self._sleep(min(left, policy.wait(lost)))
                lost += 1
                continue
            unreachable_since = None
            status = response.status_code
            if status == 429 and limited < policy.rate_limited_retries:
                wait = retry_after(response.headers)
                log.info("Backend API answered 429: waiting %g s (Retry-After)", wait)
                self._limiter.pause(wait)
                limited += 1
                response.close()
                continue
            if status >= 500 and failed < policy.server_error_retries:
                header = response.headers.get("retry-after")
                wait = min(60.0, retry_after(response.headers)) if header else policy.wait(failed)
                log.info("Backend API answered %d: retrying in %.1f s", status, wait)
                response.close()
                self._sleep(wait)
                failed += 1
                continue
            return response

    def close(self) -> None:
        self._inner.close()


def retry_after(headers: Mapping[str, str]) -> float:
    """``Retry-After`` in seconds (a number or an HTTP date); 1 when absent or garbled, at most
    :data:`RETRY_AFTER_MAX` (a proxy's "come back tomorrow" should not hang a backfill)."""
    value = headers.get("retry-after", "").strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return min(RETRY_AFTER_MAX, max(0.0, seconds)) if math.isfinite(seconds) else 1.0
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return 1.0
    return min(RETRY_AFTER_MAX, max(0.0, float(when.timestamp()) - time.time()))
