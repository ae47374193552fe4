"""The guard: source allowlist (403) and per-IP rate limits (429) before anything is parsed.

In-process, with the client address set by the test client; the storage of the budgets is the
real ``limits`` memory storage, and the real Redis for the shared-budget tests.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from starlette.testclient import TestClient

from clerk_sync.devtools import user_event, user_object
from clerk_sync.errors import ConfigError
from clerk_sync.store import make_engine
from clerk_sync.web import WEBHOOK_PATH, create_app
from clerk_sync.web.sources import PRESETS, ClientResolver, parse_address, parse_networks
from tests.conftest import OTHER_SECRET, migrated_sqlite, signed
from tests.helpers.tables import events_table

from .conftest import ADMIN_TOKEN, make_settings

SVIX_US = "44.228.126.217"
SVIX_EU_V6 = "2a05:d028:17:8000::1"
ELSEWHERE = "198.51.100.7"
PROXY = "10.0.0.5"


@pytest.fixture
def sqlite_url(tmp_path: Any) -> str:
    return migrated_sqlite(tmp_path / "guard.db")


@pytest.fixture
def events_engine(sqlite_url: str) -> Iterator[Engine]:
    engine = make_engine(sqlite_url)
    yield engine
    engine.dispose()


def app_client(url: str, client_ip: str = ELSEWHERE, **settings: Any) -> TestClient:
    return TestClient(create_app(make_settings(url, **settings)), client=(client_ip, 40000))


def post_signed(client: TestClient, headers: dict[str, str] | None = None, **signing: Any) -> Any:
    body, signed_headers = signed(user_event("user.created", user_object()), **signing)
    return client.post(WEBHOOK_PATH, content=body, headers={**signed_headers, **(headers or {})})


def logged_events(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(events_table)).scalar_one())


def assert_refused(response: Any, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"] == code
    assert response.json()["detail"]


# --- who is the client --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("203.0.113.9", "203.0.113.9"),
        (" 203.0.113.9 ", "203.0.113.9"),
        ("203.0.113.9:443", "203.0.113.9"),
        ("[2001:db8::1]:443", "2001:db8::1"),
        ("2001:db8::1", "2001:db8::1"),
        ("unknown", None),
        ("", None),
        ("999.1.1.1", None),
    ],
)
def test_addresses_are_read_as_proxies_write_them(raw: str, expected: str | None) -> None:
    parsed = parse_address(raw)
    assert (str(parsed) if parsed else None) == expected


def scope(peer: str, *forwarded: str) -> dict[str, Any]:
    headers = [(b"x-forwarded-for", value.encode()) for value in forwarded]
    return {"client": (peer, 1234), "headers": headers}


@pytest.mark.parametrize(
    ("peer", "forwarded", "client"),
    [
        # Not from a trusted proxy: X-Forwarded-For is whatever the client wrote, never believed.
        (ELSEWHERE, [SVIX_US], ELSEWHERE),
        # From the proxy: the hop it appended is the client.
        (PROXY, [SVIX_US], SVIX_US),
        # The client's own forged entry is left of the real one and ignored.
        (PROXY, [f"{SVIX_US}, {ELSEWHERE}"], ELSEWHERE),
        # Two trusted proxies in a row are walked past.
        (PROXY, [f"{SVIX_US}, 10.0.0.9"], SVIX_US),
        # Repeated headers are one list, in order.
        (PROXY, [SVIX_US, "10.0.0.9"], SVIX_US),
        # A trusted proxy that forwards nothing: the proxy itself.
        (PROXY, [], PROXY),
        # An unreadable hop makes the client unknown, not the hop before it.
        (PROXY, [f"{SVIX_US}, garbage"], None),
    ],
)
def test_forwarded_for_is_believed_only_from_trusted_proxies(
    peer: str, forwarded: list[str], client: str | None
) -> None:
    resolve = ClientResolver(parse_networks("10.0.0.0/8", "TRUSTED_PROXIES"))
    found = resolve(scope(peer, *forwarded))
    assert (str(found) if found else None) == client


def test_the_svix_preset_holds_every_published_region() -> None:
    svix = {str(n) for n in parse_networks("svix", "ALLOWED_SOURCE_IPS", presets=True)}
    assert f"{SVIX_US}/32" in svix
    assert "2a05:d028:17:8000::/56" in svix
    assert "13.126.41.108/32" in svix  # the private "in" region too
    assert len(svix) == len(PRESETS["svix"]) == 23


@pytest.mark.parametrize(
    ("setting", "value", "named"),
    [
        ("allowed_source_ips", "svix-moon", "'svix-moon'"),
        ("allowed_source_ips", "44.228.126.217/40", "'44.228.126.217/40'"),
        ("trusted_proxies", "svix", "'svix'"),  # presets are for sources, not proxies
        ("rate_limit_api", "lots", "RATE_LIMIT_API"),
        ("rate_limit_webhook", "10/fortnight", "RATE_LIMIT_WEBHOOK"),
        ("rate_limit_webhook_rejected", "-1/minute", "RATE_LIMIT_WEBHOOK_REJECTED"),
        ("redis_url", "mongodb://127.0.0.1", "REDIS_URL"),
    ],
)
def test_bad_protection_settings_fail_at_startup(
    sqlite_url: str, setting: str, value: str, named: str
) -> None:
    with pytest.raises(ConfigError, match=named):
        create_app(make_settings(sqlite_url, **{setting: value}))


# --- source allowlist --------------------------------------------------------------------------


def test_allowed_source_is_served(sqlite_url: str) -> None:
    with app_client(sqlite_url, SVIX_US, allowed_source_ips="svix") as client:
        assert post_signed(client).status_code == 200
    with app_client(sqlite_url, SVIX_EU_V6, allowed_source_ips="svix-eu") as client:
        assert post_signed(client).status_code == 200


def test_other_sources_get_403_before_anything_is_read(
    sqlite_url: str, events_engine: Engine
) -> None:
    with app_client(sqlite_url, ELSEWHERE, allowed_source_ips="svix, 192.0.2.0/24") as client:
        # A valid signature does not help...
        assert_refused(post_signed(client), 403, "source_not_allowed")
        # ...and garbage is not parsed: the answer is 403, not 400.
        assert_refused(client.post(WEBHOOK_PATH, content=b"\xff"), 403, "source_not_allowed")
    assert logged_events(events_engine) == 0


def test_a_forged_forwarded_for_does_not_pass_the_allowlist(sqlite_url: str) -> None:
    with app_client(sqlite_url, ELSEWHERE, allowed_source_ips="svix") as client:
        response = post_signed(client, headers={"x-forwarded-for": SVIX_US})
    assert_refused(response, 403, "source_not_allowed")
    assert ELSEWHERE in response.json()["detail"]


def test_behind_a_trusted_proxy_the_forwarded_client_is_checked(sqlite_url: str) -> None:
    settings = {"allowed_source_ips": "svix", "trusted_proxies": "10.0.0.0/8"}
    with app_client(sqlite_url, PROXY, **settings) as client:
        assert post_signed(client, headers={"x-forwarded-for": SVIX_US}).status_code == 200
        spoofed = post_signed(client, headers={"x-forwarded-for": f"{SVIX_US}, {ELSEWHERE}"})
        assert_refused(spoofed, 403, "source_not_allowed")
        unreadable = post_signed(client, headers={"x-forwarded-for": "not-an-ip"})
        assert_refused(unreadable, 403, "source_not_allowed")


def test_the_allowlist_is_for_webhooks_not_the_read_api(sqlite_url: str) -> None:
    with app_client(sqlite_url, ELSEWHERE, allowed_source_ips="svix") as client:
        response = client.get("/api/users", headers={"authorization": f"Bearer {ADMIN_TOKEN}"})
    assert response.status_code == 200


# --- rate limits -------------------------------------------------------------------------------


def test_read_api_budget_per_ip_gets_429_with_retry_after(sqlite_url: str) -> None:
    auth = {"authorization": f"Bearer {ADMIN_TOKEN}"}
    app = create_app(make_settings(sqlite_url, rate_limit_api="3/minute"))
    with TestClient(app, client=(ELSEWHERE, 1)) as first:
        assert [first.get("/api/users", headers=auth).status_code for _ in range(3)] == [200] * 3
        refused = first.get("/api/users", headers=auth)
        assert_refused(refused, 429, "rate_limited")
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        assert first.get("/healthz").status_code == 200  # never budgeted: load balancers poll it
    with TestClient(app, client=("203.0.113.50", 1)) as second:
        assert second.get("/api/users", headers=auth).status_code == 200


def test_verified_deliveries_are_not_throttled_by_default(
    sqlite_url: str, events_engine: Engine
) -> None:
    with app_client(sqlite_url, SVIX_US) as client:
        statuses = {post_signed(client).status_code for _ in range(150)}
    assert statuses == {200}
    assert logged_events(events_engine) == 150


def test_failed_verifications_spend_a_budget_then_failures_get_429(
    sqlite_url: str, events_engine: Engine
) -> None:
    app = create_app(make_settings(sqlite_url, rate_limit_webhook_rejected="3/minute"))
    with TestClient(app, client=(ELSEWHERE, 1)) as attacker:
        forged = [post_signed(attacker, secret=OTHER_SECRET).status_code for _ in range(3)]
        assert forged == [401, 401, 401]
        # The budget is spent: what fails from this address is refused with Retry-After...
        refused = post_signed(attacker, secret=OTHER_SECRET)
        assert_refused(refused, 429, "rate_limited")
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        assert "failed verification" in refused.json()["detail"]
        assert_refused(attacker.post(WEBHOOK_PATH, content=b"x"), 429, "rate_limited")
        # ...but a delivery that verifies is never refused by it.
        assert post_signed(attacker).status_code == 200
    with TestClient(app, client=(SVIX_US, 1)) as clerk:
        assert post_signed(clerk).status_code == 200
    assert logged_events(events_engine) == 2


def test_forgeries_from_a_shared_svix_ip_never_keep_real_deliveries_out(
    sqlite_url: str, events_engine: Engine
) -> None:
    """Svix sends every customer's webhooks from the same IPs: 60 forgeries (the default
    budget) and more from SVIX_US, between and around real deliveries from the same address."""
    with app_client(sqlite_url, SVIX_US) as svix:
        forged = [post_signed(svix, secret=OTHER_SECRET).status_code for _ in range(60)]
        assert forged == [401] * 60
        statuses = []
        for _ in range(20):
            statuses.append(post_signed(svix).status_code)
            statuses.append(post_signed(svix, secret=OTHER_SECRET).status_code)
    assert statuses[0::2] == [200] * 20
    assert statuses[1::2] == [429] * 20
    assert logged_events(events_engine) == 20


def test_verified_deliveries_give_their_unit_back(sqlite_url: str) -> None:
    with app_client(sqlite_url, SVIX_US, rate_limit_webhook_rejected="3/minute") as svix:
        assert {post_signed(svix).status_code for _ in range(10)} == {200}
        forged = [post_signed(svix, secret=OTHER_SECRET).status_code for _ in range(4)]
    assert forged == [401, 401, 401, 429]


def test_over_budget_failures_are_not_logged_one_by_one(
    sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        caplog.at_level(logging.INFO),
        app_client(sqlite_url, SVIX_US, rate_limit_webhook_rejected="2/minute") as svix,
    ):
        forged = [post_signed(svix, secret=OTHER_SECRET).status_code for _ in range(30)]
        assert post_signed(svix).status_code == 200
    assert forged == [401, 401] + [429] * 28
    delivery = [r for r in caplog.records if r.name == "clerk_sync.delivery"]
    assert [r.delivery["outcome"] for r in delivery] == ["rejected:signature_mismatch"] * 2 + [
        "processed"
    ]
    refusals = [r for r in caplog.records if "refused rate_limited" in r.getMessage()]
    assert 1 <= len(refusals) <= 2  # once per reason and address every 10 s


def _concurrently(calls: list[Callable[[], int]]) -> list[int]:
    with ThreadPoolExecutor(max_workers=16) as pool:
        return list(pool.map(lambda call: call(), calls))


def test_concurrent_forgeries_cannot_overdraw_the_budget(sqlite_url: str) -> None:
    """Each request takes its unit atomically when it is admitted: 300 forgeries in flight at
    once get exactly the budget's 60 401s, and the real deliveries among them all get 200."""
    with app_client(sqlite_url, SVIX_US) as svix:
        forged = [lambda: post_signed(svix, secret=OTHER_SECRET).status_code] * 300
        real = [lambda: post_signed(svix).status_code] * 40
        statuses = _concurrently([*forged[:150], *real, *forged[150:]])
    failures = statuses[:150] + statuses[190:]
    assert failures.count(401) == 60, failures
    assert failures.count(429) == 240
    assert statuses[150:190] == [200] * 40


def test_a_webhook_budget_when_configured(sqlite_url: str, events_engine: Engine) -> None:
    with app_client(sqlite_url, SVIX_US, rate_limit_webhook="5/minute") as client:
        statuses = [post_signed(client).status_code for _ in range(7)]
    assert statuses == [200] * 5 + [429] * 2
    assert logged_events(events_engine) == 5


def test_budgets_can_be_switched_off(sqlite_url: str) -> None:
    auth = {"authorization": f"Bearer {ADMIN_TOKEN}"}
    settings = {"rate_limit_api": "off", "rate_limit_webhook_rejected": ""}
    with app_client(sqlite_url, ELSEWHERE, **settings) as client:
        assert {client.get("/api/users", headers=auth).status_code for _ in range(700)} == {200}
        assert {post_signed(client, secret=OTHER_SECRET).status_code for _ in range(70)} == {401}


# --- shared budgets in Redis -------------------------------------------------------------------


def test_replicas_share_one_budget_through_redis(sqlite_url: str, redis_url: str) -> None:
    address = "203.0.113.20"
    auth = {"authorization": f"Bearer {ADMIN_TOKEN}"}
    replicas = [
        create_app(make_settings(sqlite_url, rate_limit_api="4/minute", redis_url=redis_url))
        for _ in range(2)
    ]
    with (
        TestClient(replicas[0], client=(address, 1)) as one,
        TestClient(replicas[1], client=(address, 1)) as two,
    ):
        statuses = [c.get("/api/users", headers=auth).status_code for c in (one, two, one, two)]
        assert statuses == [200] * 4
        assert_refused(two.get("/api/users", headers=auth), 429, "rate_limited")
        assert_refused(one.get("/api/users", headers=auth), 429, "rate_limited")


def test_replicas_share_the_budget_of_failures_through_redis(
    sqlite_url: str, events_engine: Engine, redis_url: str
) -> None:
    settings = {"rate_limit_webhook_rejected": "60/minute", "redis_url": redis_url}
    replicas = [create_app(make_settings(sqlite_url, **settings)) for _ in range(2)]
    with (
        TestClient(replicas[0], client=(SVIX_US, 1)) as one,
        TestClient(replicas[1], client=(SVIX_US, 1)) as two,
    ):
        forged = [
            lambda c=c: post_signed(c, secret=OTHER_SECRET).status_code for c in (one, two) * 150
        ]
        real = [lambda c=c: post_signed(c).status_code for c in (one, two) * 10]
        statuses = _concurrently([*forged[:150], *real, *forged[150:]])
        after = [post_signed(c).status_code for c in (one, two)]
        forged_after = [post_signed(c, secret=OTHER_SECRET).status_code for c in (one, two)]
    assert statuses[150:170] == [200] * 20
    failures = statuses[:150] + statuses[170:]
    assert failures.count(401) == 60, failures
    assert failures.count(429) == 240
    assert after == [200, 200]
    assert forged_after == [429, 429]
    assert logged_events(events_engine) == 22


def test_redis_down_lets_deliveries_through_and_says_so(
    sqlite_url: str, events_engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    settings = {"redis_url": "redis://127.0.0.1:9/0", "rate_limit_webhook": "1/minute"}
    with (
        caplog.at_level(logging.WARNING, "clerk_sync.guard"),
        app_client(sqlite_url, SVIX_US, **settings) as client,
    ):
        statuses = [post_signed(client).status_code for _ in range(3)]
    assert statuses == [200, 200, 200]
    assert logged_events(events_engine) == 3
    assert "rate-limit storage unavailable" in caplog.text
