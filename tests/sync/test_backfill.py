"""The backfill and ``ensure_user`` through the real receiver, on a SQLite file and PostgreSQL,
against the fake Backend API on 127.0.0.1 (no mocks): counts, the version guard against
webhooks racing it, checkpoints, dry runs, and every way the API can fail."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from clerk_sync.backfill import (
    WALKS,
    Backfill,
    Counts,
    Result,
    checkpoint_name,
    classify,
    ensure_user,
    svix_id,
)
from clerk_sync.clerk_api import (
    ClerkApi,
    ClerkApiError,
    ClerkApiUnreachable,
    ClerkKeyRefused,
    NotInClerk,
    RetryPolicy,
    UnexpectedResponse,
)
from clerk_sync.devtools import deleted_user_event, encode, envelope, user_event
from clerk_sync.entities import Upsert, kind_named
from clerk_sync.entities import kind as kinds
from clerk_sync.errors import ConfigError
from clerk_sync.events import Source, Status
from clerk_sync.plan_sql import stale_reason
from clerk_sync.receiver import Delivery, Outcome, Receiver
from clerk_sync.store import state
from tests.e2e.server import free_port
from tests.helpers.fake_clerk_api import SECRET_KEY, FakeClerkApi, fake_clerk_api
from tests.helpers.tables import (
    events_table,
    memberships_table,
    metadata,
    organizations_table,
    tombstones_table,
    users_table,
)

FAST = RetryPolicy(connect_budget=0.5, backoff=0.01, max_backoff=0.05)
"""Retries as the defaults do them, in milliseconds instead of seconds."""
PAGE = 100


@pytest.fixture
def fake() -> Iterator[FakeClerkApi]:
    with fake_clerk_api() as running:
        yield running


@pytest.fixture
def api(fake: FakeClerkApi) -> Iterator[ClerkApi]:
    with ClerkApi(SECRET_KEY, api_url=fake.url, policy=FAST) as client:
        yield client


def backfill(engine: Engine, api: ClerkApi, *names: str, **kwargs: Any) -> dict[str, Counts]:
    return Backfill(Receiver(engine), api, page_size=PAGE).run(names or tuple(WALKS), **kwargs)


def results(counts: Counts) -> dict[str, int]:
    return {r.value: n for r, n in counts.results.items() if n}


def rows(engine: Engine, table: Any) -> dict[str, dict[str, Any]]:
    with engine.connect() as conn:
        return {r.id: dict(r._mapping) for r in conn.execute(select(table))}


def count(engine: Engine, table: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def webhook(engine: Engine, event: dict[str, Any], msg: str) -> Outcome:
    return Receiver(engine).receive(Delivery(msg, encode(event)))


def checkpoint(engine: Engine, name: str) -> str | None:
    with engine.connect() as conn:
        return state.get(conn, Receiver(engine).tables, checkpoint_name(name))


def world(fake: FakeClerkApi, users: int = 250) -> None:
    """``users`` users, three organizations, a membership each for the first five users."""
    people = fake.add_users(users)
    orgs = fake.add_organizations(3)
    for i, person in enumerate(people[:5]):
        fake.add_membership(orgs[i % 3], person, role="org:admin" if i == 0 else "org:member")


# -- counts and the stored state ---------------------------------------------------------


def test_everything_is_copied_as_clerk_sent_it_then_unchanged(
    engine: Engine, api: ClerkApi, fake: FakeClerkApi
) -> None:
    world(fake)
    done = backfill(engine, api)
    assert {n: results(c) for n, c in done.items()} == {
        "users": {"inserted": 250},
        "organizations": {"inserted": 3},
        "memberships": {"inserted": 5},
    }
    assert (done["users"].total, done["users"].fetched) == (250, 250)
    assert done["memberships"].total == 5
    stored = rows(engine, users_table)
    assert {i: r["data"] for i, r in stored.items()} == fake.users
    assert {i: r["updated_at"] for i, r in stored.items()} == {
        i: u["updated_at"] for i, u in fake.users.items()
    }
    first = next(iter(fake.users.values()))
    assert stored[first["id"]]["email"] == first["email_addresses"][-1]["email_address"]
    orgs = rows(engine, organizations_table)
    assert {i: r["data"] for i, r in orgs.items()} == fake.organizations
    assert all(r["members_count"] == 0 for r in orgs.values())  # include_members_count asked
    assert {i: r["data"] for i, r in rows(engine, memberships_table).items()} == fake.memberships
    with engine.connect() as conn:
        logged = conn.execute(select(events_table.c.source, events_table.c.type)).all()
    assert {(s, t) for s, t in logged} == {
        ("backfill", "user.created"),
        ("backfill", "organization.created"),
        ("backfill", "organizationMembership.created"),
    }
    assert all(checkpoint(engine, n) is None for n in WALKS)

    again = backfill(engine, api)
    assert {n: results(c) for n, c in again.items()} == {
        "users": {"unchanged": 250},
        "organizations": {"unchanged": 3},
        "memberships": {"unchanged": 5},
    }
    assert rows(engine, users_table) == stored


def test_changed_users_are_updated_and_only_they(
    engine: Engine, api: ClerkApi, fake: FakeClerkApi
) -> None:
    world(fake, users=120)
    backfill(engine, api, "users")
    ids = list(fake.users)
    for user_id in ids[:7]:
        fake.touch_user(user_id, first_name="Renamed")
    fake.add_users(3)
    done = backfill(engine, api, "users")["users"]
    assert results(done) == {"updated": 7, "inserted": 3, "unchanged": 113}
    stored = rows(engine, users_table)
    assert {i: r["data"] for i, r in stored.items()} == fake.users
    assert {stored[i]["first_name"] for i in ids[:7]} == {"Renamed"}


# -- the version guard: webhooks win -----------------------------------------------------


def test_webhook_versions_and_deletes_win(
    engine: Engine, api: ClerkApi, fake: FakeClerkApi
) -> None:
    world(fake, users=30)
    ids = list(fake.users)
    newer, deleted, same, older = ids[0], ids[1], ids[2], ids[3]
    ahead = {**fake.users[newer], "first_name": "FromWebhook", "updated_at": fake.tick() + 10_000}
    webhook(engine, user_event("user.updated", ahead), "msg_newer")
    webhook(engine, deleted_user_event(deleted), "msg_deleted")
    webhook(engine, user_event("user.created", fake.users[same]), "msg_same")
    behind = {**fake.users[older], "updated_at": fake.users[older]["updated_at"] - 5}
    webhook(engine, user_event("user.updated", behind), "msg_older")
    # the membership of the first user is in an organization deleted by webhook
    org_id = next(iter(fake.memberships.values()))["organization"]["id"]
    webhook(
        engine,
        envelope("organization.deleted", {"object": "organization", "id": org_id, "deleted": True}),
        "msg_org_gone",
    )
    synced_same = rows(engine, users_table)[same]["synced_at"]

    done = backfill(engine, api)
    assert results(done["users"]) == {
        "inserted": 26,
        "updated": 1,  # the older one
        "unchanged": 1,  # the same version, stored by user.created: not rewritten
        "skipped_stale": 1,
        "skipped_deleted": 1,
    }
    assert results(done["organizations"]) == {"inserted": 2, "skipped_deleted": 1}
    # memberships of users 0-4: 0 and 3 in the deleted organization, 1 of the deleted user
    assert results(done["memberships"]) == {"inserted": 2, "skipped_deleted": 3}
    stored = rows(engine, users_table)
    assert stored[newer]["first_name"] == "FromWebhook"
    assert stored[newer]["updated_at"] == ahead["updated_at"]
    assert deleted not in stored
    assert stored[same]["synced_at"] == synced_same
    assert stored[older]["updated_at"] == fake.users[older]["updated_at"]
    assert org_id not in rows(engine, organizations_table)
    assert all(m["organization_id"] != org_id for m in rows(engine, memberships_table).values())


def test_memberships_of_deleted_users_and_organizations_are_skipped(
    engine: Engine, api: ClerkApi, fake: FakeClerkApi
) -> None:
    people = fake.add_users(4)
    orgs = fake.add_organizations(2)
    kept = fake.add_membership(orgs[0], people[0])
    of_gone_user = fake.add_membership(orgs[0], people[1])
    of_gone_org = fake.add_membership(orgs[1], people[2])
    webhook(engine, deleted_user_event(people[1]["id"]), "msg_u")
    gone = {"object": "organization", "id": orgs[1]["id"], "deleted": True}
    webhook(engine, envelope("organization.deleted", gone), "msg_o")
    done = backfill(engine, api, "memberships")["memberships"]
    assert results(done) == {"inserted": 1, "skipped_deleted": 2}
    assert set(rows(engine, memberships_table)) == {kept["id"]}
    assert of_gone_user["id"] not in rows(engine, memberships_table)
    assert of_gone_org["id"] not in rows(engine, memberships_table)


def test_a_webhook_racing_a_page_is_never_overwritten(
    engine: Engine, api: ClerkApi, fake: FakeClerkApi
) -> None:
    """While Clerk serves page 2 (with the old versions in it), webhooks store a newer version
    of one of its users and delete another: the page that arrives after them changes
    neither."""
    fake.add_users(3 * PAGE)
    ids = list(fake.users)
    raced, killed = ids[PAGE + 5], ids[PAGE + 6]
    newest = {**fake.users[raced], "first_name": "Newest", "updated_at": fake.tick() + 99}

    def race(path: str, offset: int) -> None:
        if path == "/v1/users" and offset == PAGE:
            webhook(engine, user_event("user.updated", newest), "msg_race")
            webhook(engine, deleted_user_event(killed), "msg_race_delete")

    fake.on_page = race
    done = backfill(engine, api, "users")["users"]
    assert results(done) == {"inserted": 3 * PAGE - 2, "skipped_stale": 1, "skipped_deleted": 1}
    stored = rows(engine, users_table)
    assert stored[raced]["first_name"] == "Newest"
    assert killed not in stored
    with engine.connect() as conn:
        tomb = conn.execute(select(tombstones_table.c.id)).scalars().all()
    assert killed in tomb


def test_webhooks_from_another_thread_converge_on_the_newest(
    engine: Engine, api: ClerkApi, fake: FakeClerkApi
) -> None:
    """Real concurrency (on PostgreSQL, two transactions at once): webhooks with newer versions
    and deletes arrive while the backfill writes the same users."""
    fake.add_users(6 * PAGE)
    fake.page_delay = 0.01
    ids = list(fake.users)
    bumped = ids[::7]
    gone = ids[3::11]
    newer = {
        i: {**fake.users[i], "last_name": "Webhook", "updated_at": fake.tick() + 1_000}
        for i in bumped
        if i not in gone
    }
    receiver = Receiver(engine)

    def send() -> None:
        for n, user in enumerate(newer.values()):
            receiver.receive(Delivery(f"msg_new_{n}", encode(user_event("user.updated", user))))
        for n, user_id in enumerate(gone):
            receiver.receive(Delivery(f"msg_gone_{n}", encode(deleted_user_event(user_id))))

    sender = threading.Thread(target=send)
    sender.start()
    backfill(engine, api, "users")
    sender.join(30)
    stored = rows(engine, users_table)
    assert set(stored) == set(ids) - set(gone)
    for user_id, user in newer.items():
        assert stored[user_id]["updated_at"] == user["updated_at"]
        assert stored[user_id]["last_name"] == "Webhook"
    for user_id in set(ids) - set(gone) - set(newer):
        assert stored[user_id]["data"] == fake.users[user_id]


# -- resuming ----------------------------------------------------------------------------


def test_an_interrupted_walk_continues_from_its_checkpoint(
    engine: Engine, api: ClerkApi, fake: FakeClerkApi
) -> None:
    fake.add_users(5 * PAGE + 17)

    def stop_after_two_pages(name: str, counts: Counts) -> None:
        if counts.fetched == 2 * PAGE:
            raise KeyboardInterrupt

    job = Backfill(Receiver(engine), api, page_size=PAGE)
    with pytest.raises(KeyboardInterrupt):
        job.run(["users"], progress=stop_after_two_pages)
    assert checkpoint(engine, "users") == '{"offset":200}'
    assert count(engine, users_table) == 2 * PAGE
    asked = len(fake.seen)

    done = job.run(["users"])["users"]
    assert done.resumed_from == 2 * PAGE
    assert results(done) == {"inserted": 3 * PAGE + 17}
    assert done.done == 5 * PAGE + 17
    offsets = [int(s.query["offset"]) for s in fake.seen[asked:] if s.path == "/v1/users"]
    assert offsets[0] == 2 * PAGE
    assert {i: r["data"] for i, r in rows(engine, users_table).items()} == fake.users
    assert checkpoint(engine, "users") is None


def test_a_page_committed_before_its_checkpoint_comes_out_unchanged(
    engine: Engine, api: ClerkApi, fake: FakeClerkApi
) -> None:
    """The stop fell between a page's commit and its checkpoint: the page is fetched again."""
    fake.add_users(3 * PAGE)
    job = Backfill(Receiver(engine), api, page_size=PAGE)
    job.run(["users"])
    with engine.begin() as conn:
        state.put(conn, job.receiver.tables, checkpoint_name("users"), '{"offset":100}', 1)
    done = job.run(["users"])["users"]
    assert (done.resumed_from, results(done)) == (PAGE, {"unchanged": 2 * PAGE})


def test_an_unreadable_checkpoint_starts_over(
    engine: Engine, api: ClerkApi, fake: FakeClerkApi
) -> None:
    fake.add_users(10)
    receiver = Receiver(engine)
    with engine.begin() as conn:
        state.put(conn, receiver.tables, checkpoint_name("users"), "not json", 1)
    done = Backfill(receiver, api).run(["users"])["users"]
    assert (done.resumed_from, results(done)) == (0, {"inserted": 10})


# -- dry runs ----------------------------------------------------------------------------


def test_a_dry_run_predicts_the_real_run_and_writes_nothing(
    engine: Engine, api: ClerkApi, fake: FakeClerkApi
) -> None:
    world(fake, users=40)
    ids = list(fake.users)
    backfill(engine, api, "users")
    webhook(engine, deleted_user_event(ids[0]), "msg_d")
    ahead = {**fake.users[ids[1]], "updated_at": fake.tick() + 500}
    webhook(engine, user_event("user.updated", ahead), "msg_n")
    fake.touch_user(ids[2])
    fake.add_users(4)
    broken = fake.add_users(1)[0]
    fake.put_user({k: v for k, v in broken.items() if k != "updated_at"})  # can never apply
    with engine.begin() as conn:
        state.put(
            conn, Receiver(engine).tables, checkpoint_name("organizations"), '{"offset":0}', 1
        )
    before = {t.name: count(engine, t) for t in metadata.sorted_tables}

    predicted = backfill(engine, api, dry_run=True)
    assert {t.name: count(engine, t) for t in metadata.sorted_tables} == before
    assert checkpoint(engine, "organizations") == '{"offset":0}'
    assert results(predicted["users"]) == {
        "skipped_deleted": 1,
        "skipped_stale": 1,
        "updated": 1,
        "unchanged": 37,
        "inserted": 4,
        "failed": 1,
    }
    real = backfill(engine, api)
    assert {n: results(c) for n, c in real.items()} == {n: results(c) for n, c in predicted.items()}


# -- hooks -------------------------------------------------------------------------------


def test_only_backfill_hooks_get_outbox_rows(
    engine: Engine, api: ClerkApi, fake: FakeClerkApi
) -> None:
    fake.add_users(3)
    receiver = Receiver(
        engine,
        outbox=[("app:welcome", ("user.created",), False), ("sink:copy", ("user.*",), True)],
    )
    Backfill(receiver, api).run(["users"])
    with engine.connect() as conn:
        handlers = conn.execute(select(receiver.tables.outbox.c.handler)).scalars().all()
    assert sorted(handlers) == ["sink:copy"] * 3


# -- the API failing ---------------------------------------------------------------------


def test_429s_are_waited_out(engine: Engine, fake: FakeClerkApi) -> None:
    fake.add_users(4 * PAGE)
    fake.throttle_every = 2
    fake.retry_after = "0.3"
    with ClerkApi(SECRET_KEY, api_url=fake.url, policy=FAST) as client:
        done = backfill(engine, client, "users")["users"]
    assert results(done) == {"inserted": 4 * PAGE}
    seen = fake.seen
    throttled = [n for n, s in enumerate(seen) if s.status == 429]
    assert len(throttled) >= 2
    for n in throttled:
        later = [s.at for s in seen[n + 1 :]]
        assert later
        assert min(later) - seen[n].at >= 0.29


def test_5xx_is_retried(engine: Engine, api: ClerkApi, fake: FakeClerkApi) -> None:
    fake.add_users(3 * PAGE)
    fake.fail_every = 2
    done = backfill(engine, api, "users")["users"]
    assert results(done) == {"inserted": 3 * PAGE}
    assert sum(1 for s in fake.seen if s.status >= 500) >= 2


def test_5xx_that_persists_is_one_error_and_keeps_the_checkpoint(
    engine: Engine, api: ClerkApi, fake: FakeClerkApi
) -> None:
    fake.add_users(3 * PAGE)

    def fail_from_page_three(path: str, offset: int) -> None:
        if offset == PAGE:  # page 2 is answered; every request after it fails
            with fake.lock:
                fake.fail_next = 100

    fake.on_page = fail_from_page_three
    with pytest.raises(ClerkApiError) as caught:
        backfill(engine, api, "users")
    detail = caught.value.detail
    assert "after retries" in detail
    assert "/v1/users?" in detail
    assert "\n" not in detail
    assert checkpoint(engine, "users") == '{"offset":200}'
    assert count(engine, users_table) == 2 * PAGE


def test_a_refused_key_is_one_clear_error_and_writes_nothing(
    engine: Engine, fake: FakeClerkApi
) -> None:
    fake.add_users(5)
    wrong = "sk_test_NotTheRightKey0123456789abcdef"
    with (
        ClerkApi(wrong, api_url=fake.url, policy=FAST) as client,
        pytest.raises(ClerkKeyRefused) as caught,
    ):
        backfill(engine, client)
    detail = caught.value.detail
    assert detail.startswith(
        "The Backend API refused CLERK_SECRET_KEY (401): Unable to authenticate"
    )
    assert wrong[8:] not in detail
    assert caught.value.exit_code == 2
    assert count(engine, events_table) == 0


def test_a_bad_key_is_refused_before_any_request(fake: FakeClerkApi) -> None:
    with pytest.raises(ConfigError, match="publishable key"):
        ClerkApi("pk_test_abc", api_url=fake.url)
    assert fake.seen == []


def test_an_unreachable_api_fails_fast(engine: Engine) -> None:
    closed = f"http://127.0.0.1:{free_port()}/v1"
    started = time.monotonic()
    with (
        ClerkApi(SECRET_KEY, api_url=closed, policy=FAST) as client,
        pytest.raises(ClerkApiUnreachable) as caught,
    ):
        backfill(engine, client, "users")
    assert time.monotonic() - started < 5
    assert closed in caught.value.detail
    assert "0.5 s" in caught.value.detail
    assert count(engine, events_table) == 0


def test_the_default_policy_gives_up_on_connections_within_a_minute() -> None:
    policy = RetryPolicy()
    assert policy.connect_budget + policy.max_backoff + policy.connect_timeout < 60
    assert policy.connect_budget + policy.max_backoff + policy.timeout < 60


@pytest.mark.parametrize(
    ("walk", "path", "says"),
    [
        ("users", "/v1/users", "not the bare JSON array of users"),
        ("organizations", "/v1/organizations", 'not the {"data": [...], "total_count": N}'),
        (
            "memberships",
            "/v1/organization_memberships",
            'not the {"data": [...], "total_count": N}',
        ),
    ],
)
def test_a_malformed_page_names_its_url_and_writes_nothing_of_it(
    engine: Engine, api: ClerkApi, fake: FakeClerkApi, walk: str, path: str, says: str
) -> None:
    people = fake.add_users(3 * PAGE)
    orgs = fake.add_organizations(3 * PAGE)
    for i in range(3 * PAGE):
        fake.add_membership(orgs[i], people[i])
    fake.malformed.add((path, PAGE))
    with pytest.raises(UnexpectedResponse) as caught:
        backfill(engine, api, walk)
    detail = caught.value.detail
    assert f"GET {fake.url.removesuffix('/v1')}{path}?limit={PAGE}&offset={PAGE}" in detail
    assert says in detail
    assert "\n" not in detail
    table = {"users": users_table, "organizations": organizations_table}.get(
        walk, memberships_table
    )
    assert count(engine, table) == PAGE
    assert checkpoint(engine, walk) == '{"offset":100}'
    fake.malformed.clear()
    done = backfill(engine, api, walk)[walk]
    assert (done.resumed_from, done.done) == (PAGE, 3 * PAGE)


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"[1, 2]", "item 0 int, not a user object"),
        (b'[{"object": "user"}]', "item 0 a user without an id"),
        (b'[{"object": "organization", "id": "org_1"}]', "type 'organization' where 'user'"),
        (b"<html>502</html>", "not JSON"),
        (b'{"errors": []}', "not the bare JSON array"),
    ],
)
def test_odd_pages_are_refused(
    engine: Engine, api: ClerkApi, fake: FakeClerkApi, body: bytes, says: str
) -> None:
    fake.override["/v1/users"] = (200, body)
    with pytest.raises(UnexpectedResponse, match=says):
        backfill(engine, api, "users")


def test_a_bad_count_is_refused(api: ClerkApi, fake: FakeClerkApi) -> None:
    fake.override["/v1/users/count"] = (200, b'{"total_count": "many"}')
    with pytest.raises(UnexpectedResponse, match="/v1/users/count"):
        api.count_users()


def test_an_api_url_that_is_not_the_backend_api(engine: Engine, fake: FakeClerkApi) -> None:
    with (
        ClerkApi(SECRET_KEY, api_url=fake.url + "/nope", policy=FAST) as client,
        pytest.raises(ClerkApiError, match=r"answered 404.*Is CLERK_API_URL"),
    ):
        client.list_organizations()


# -- ensure_user -------------------------------------------------------------------------


def test_ensure_user(engine: Engine, api: ClerkApi, fake: FakeClerkApi) -> None:
    user = fake.add_users(1)[0]
    first = ensure_user(user["id"], receiver=engine, client=api)
    assert (first.status, first.event_type, first.duplicate) == ("processed", "user.created", False)
    assert rows(engine, users_table)[user["id"]]["data"] == user
    again = ensure_user(user["id"], receiver=engine, client=api)
    assert again.duplicate
    newer = fake.touch_user(user["id"], first_name="Later")
    updated = ensure_user(user["id"], receiver=Receiver(engine), client=api)
    assert (updated.status, updated.event_type) == ("processed", "user.updated")
    assert rows(engine, users_table)[user["id"]]["first_name"] == "Later"
    with engine.connect() as conn:
        sources = (
            conn.execute(
                select(events_table.c.source).where(events_table.c.subject_id == user["id"])
            )
            .scalars()
            .all()
        )
    assert set(sources) == {Source.BACKFILL}
    assert newer["updated_at"] == rows(engine, users_table)[user["id"]]["updated_at"]


def test_ensure_user_keeps_newer_and_deleted(
    engine: Engine, api: ClerkApi, fake: FakeClerkApi
) -> None:
    ahead, gone = fake.add_users(2)
    webhook(
        engine, user_event("user.updated", {**ahead, "updated_at": ahead["updated_at"] + 9}), "m1"
    )
    webhook(engine, deleted_user_event(gone["id"]), "m2")
    stale = ensure_user(ahead["id"], receiver=engine, client=api)
    assert stale.status == Status.STALE
    assert "not newer than the stored" in (stale.reason or "")
    dead = ensure_user(gone["id"], receiver=engine, client=api)
    assert dead.status == Status.STALE
    assert dead.reason == f"user {gone['id']} was deleted; deletes win"
    assert gone["id"] not in rows(engine, users_table)


def test_ensure_user_of_a_user_clerk_does_not_have(engine: Engine, api: ClerkApi) -> None:
    with pytest.raises(NotInClerk) as caught:
        ensure_user("user_2NotThere", receiver=engine, client=api)
    assert "user_2NotThere does not exist in Clerk" in caught.value.detail
    assert "404" in caught.value.detail
    with pytest.raises(NotInClerk, match="is not a Clerk user id"):
        ensure_user("", receiver=engine, client=api)
    assert count(engine, events_table) == 0


# -- pure parts --------------------------------------------------------------------------


def test_stale_reasons_are_classified_by_the_wording_plan_sql_uses() -> None:
    """``classify`` reads :func:`stale_reason`'s sentences: pinned here, so a change of wording
    breaks this test and not the counts."""
    user = kind_named("user")
    membership = kind_named("organization_membership")
    own = Upsert(user, "user_1", kinds.version(1000, 0, "updated"), {})
    mem = Upsert(membership, "orgmem_1", 4000, {"organization_id": "org_1", "user_id": "user_1"})

    def stale(upsert: Upsert, answer: tuple[Any, ...]) -> Result:
        why, _ = stale_reason(upsert, answer)
        return classify(Outcome("m", Status.STALE, False, "t", "s", why), existed=True)

    assert stale(own, (1, None)) is Result.SKIPPED_DELETED
    assert stale(own, (None, kinds.version(1000, 0, "updated"))) is Result.UNCHANGED
    assert stale(own, (None, kinds.version(1000, 0, "created"))) is Result.UNCHANGED
    assert stale(own, (None, kinds.version(2000, 0, "updated"))) is Result.SKIPPED_STALE
    assert stale(mem, (None, 123, None, None)) is Result.SKIPPED_DELETED
    processed = Outcome("m", Status.PROCESSED, False, "t", "s")
    assert classify(processed, existed=False) is Result.INSERTED
    assert classify(processed, existed=True) is Result.UPDATED
    assert classify(Outcome("m", Status.STALE, True, "t", "s"), existed=True) is Result.UNCHANGED
    assert classify(Outcome("m", Status.FAILED, False, "t", "s"), existed=False) is Result.FAILED


def test_svix_ids_fit_the_log() -> None:
    kind = kind_named("organization_membership")
    assert svix_id(kind, {"id": "orgmem_1", "updated_at": 5}) == (
        "backfill_organization_membership_orgmem_1_5"
    )
    assert svix_id(kind, {"id": "orgmem_1", "created_at": 7}).endswith("_7")
    assert svix_id(kind, {"id": "orgmem_1"}).endswith("_none")
    long = svix_id(kind, {"id": "x" * 255, "updated_at": 1_744_400_000_000})
    assert len(long) <= 255
    assert long.endswith("_1744400000000")
    assert long != svix_id(kind, {"id": "y" + "x" * 254, "updated_at": 1_744_400_000_000})


def test_unknown_kinds_are_refused(engine: Engine, api: ClerkApi) -> None:
    with pytest.raises(ValueError, match="unknown kinds"):
        Backfill(Receiver(engine), api).run(["sessions"])


def test_ensure_user_with_only_the_id_reads_the_settings(
    engine: Engine,
    db_url: str,
    fake: FakeClerkApi,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``clerk_sync.ensure_user("user_…")``, as an application calls it: the environment names
    the database and the key."""
    import clerk_sync

    monkeypatch.chdir(tmp_path)  # no stray .env
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("CLERK_SECRET_KEY", SECRET_KEY)
    monkeypatch.setenv("CLERK_API_URL", fake.url)
    user = fake.add_users(1)[0]
    outcome = clerk_sync.ensure_user(user["id"])
    assert (outcome.status, outcome.event_type) == ("processed", "user.created")
    assert rows(engine, users_table)[user["id"]]["data"] == user
