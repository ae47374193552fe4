"""The Backend API client's pure parts (``clerk_api``, ``clerk_http``): key checks,
``CLERK_API_RATE``, the shared budget, ``Retry-After``; every bad value is a one-line error
that never shows the key."""

from __future__ import annotations

import threading
import time

import pytest

from clerk_sync.clerk_api import check_api_url, check_secret_key
from clerk_sync.clerk_http import Rate, RateLimiter, parse_rate, retry_after
from clerk_sync.errors import ConfigError

KEY = "sk_test_0123456789abcdefABCDEFghijklmnopQRST"


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("", "CLERK_SECRET_KEY is not set: set CLERK_SECRET_KEY: Clerk Dashboard → API keys"),
        ("   ", "is not set"),
        ("pk_test_Y2xlcmsuZXhhbXBsZS5jb20k", "publishable key (pk_…)"),
        ("pk_live_Y2xlcmsuZXhhbXBsZS5jb20k", "publishable key (pk_…)"),
        ("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "belongs in CLERK_WEBHOOK_SECRET"),
        ("sk_prod_0123456789abcdef", "does not start with sk_test_ or sk_live_"),
        ("0123456789abcdef", "does not start with sk_test_ or sk_live_"),
        ("sk_test_", "the rest is not one"),
        ("sk_test_<your key here>", "the rest is not one"),
        ('sk_live_"0123456789abcdef"', "the rest is not one"),
        ("sk_test_0123 456789", "the rest is not one"),
    ],
)
def test_a_wrong_key_is_one_line_naming_the_fix_and_never_the_key(value: str, says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        check_secret_key(value)
    detail = caught.value.detail
    assert says in detail
    assert "\n" not in detail
    assert "Clerk Dashboard → API keys → Secret keys" in detail
    secret_part = value.strip().split("_", 2)[-1]
    if len(secret_part) > 4:
        assert secret_part not in detail


def test_a_secret_key_is_accepted_with_surrounding_whitespace() -> None:
    assert check_secret_key(f"  {KEY}\n") == KEY
    live = "sk_live_" + KEY[len("sk_test_") :]
    assert check_secret_key(live) == live


@pytest.mark.parametrize(
    ("value", "key", "rate"),
    [
        ("", KEY, Rate(90, 10.0)),
        ("", "sk_live_abc", Rate(900, 10.0)),
        ("", "", Rate(90, 10.0)),
        ("90/10s", KEY, Rate(90, 10.0)),
        (" 50 / 10 s ", KEY, Rate(50, 10.0)),
        ("5/s", KEY, Rate(5, 1.0)),
        ("600/1m", KEY, Rate(600, 60.0)),
        ("600/min", KEY, Rate(600, 60.0)),
        ("3/0.5s", KEY, Rate(3, 0.5)),
    ],
)
def test_rates(value: str, key: str, rate: Rate) -> None:
    assert parse_rate(value, key) == rate


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("lots", "is not a budget like 90/10s"),
        ("90", "is not a budget like 90/10s"),
        ("90/10h", "is not a budget like 90/10s"),
        ("-1/10s", "is not a budget like 90/10s"),
        ("0/10s", "allows no request"),
        ("90/0s", "allows no request"),
    ],
)
def test_a_bad_rate_is_one_line(value: str, says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_rate(value, KEY)
    assert says in caught.value.detail
    assert "CLERK_API_RATE" in caught.value.detail
    assert "\n" not in caught.value.detail


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_the_budget_is_a_sliding_window() -> None:
    clock = FakeClock()
    limiter = RateLimiter(Rate(3, 10.0), clock=clock, sleep=clock.sleep)
    sent = []
    for _ in range(7):
        limiter.acquire()
        sent.append(clock.now)
        clock.now += 1.0
    # three at once, then each waits for the oldest of the last three to leave the window
    assert sent == [100.0, 101.0, 102.0, 110.0, 111.0, 112.0, 120.0]
    for i, at in enumerate(sent):
        assert sum(1 for t in sent if at <= t < at + 10.0) <= 3, i


def test_a_pause_holds_every_request_back() -> None:
    clock = FakeClock()
    limiter = RateLimiter(Rate(100, 10.0), clock=clock, sleep=clock.sleep)
    limiter.acquire()
    limiter.pause(2.5)
    limiter.pause(1.0)  # shorter: does not shorten the first
    assert limiter.acquire() == pytest.approx(2.5)
    assert clock.now == pytest.approx(102.5)


def test_the_budget_is_shared_by_threads() -> None:
    limiter = RateLimiter(Rate(5, 0.3))
    sent: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(4):
            limiter.acquire()
            with lock:
                sent.append(time.monotonic())

    threads = [threading.Thread(target=worker) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    sent.sort()
    assert len(sent) == 20
    for at in sent:
        assert sum(1 for t in sent if at <= t < at + 0.29) <= 5


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ({"retry-after": "2"}, 2.0),
        ({"retry-after": "0.5"}, 0.5),
        ({}, 1.0),
        ({"retry-after": "soon"}, 1.0),
        ({"retry-after": "inf"}, 1.0),
        ({"retry-after": "nan"}, 1.0),
        ({"retry-after": "-3"}, 0.0),
        ({"retry-after": "86400"}, 600.0),
    ],
)
def test_retry_after(header: dict[str, str], seconds: float) -> None:
    assert retry_after(header) == seconds


def test_retry_after_as_a_date() -> None:
    from email.utils import formatdate

    assert 1.0 < retry_after({"retry-after": formatdate(time.time() + 3, usegmt=True)}) <= 3.0
    assert retry_after({"retry-after": formatdate(time.time() - 30, usegmt=True)}) == 0.0


@pytest.mark.parametrize("value", ["api.clerk.com/v1", "ftp://api.clerk.com/v1", "https://"])
def test_a_bad_api_url_is_one_line(value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        check_api_url(value)
    assert caught.value.detail.startswith(f"CLERK_API_URL {value!r} is not an http(s) URL")


def test_api_urls() -> None:
    assert check_api_url("https://api.clerk.com/v1/") == "https://api.clerk.com/v1"
    assert check_api_url(" http://127.0.0.1:9/v1 ") == "http://127.0.0.1:9/v1"
    assert check_api_url("") == "https://api.clerk.com/v1"
