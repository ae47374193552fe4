"""Sync rules through the receiver, on a real SQLite file and a real PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import Engine, select

from clerk_sync.devtools import deleted_user_event, encode, user_event, user_object
from clerk_sync.receiver import Delivery, Outcome, Receiver
from tests.helpers.tables import events_table, tombstones_table, users_table

Receive = Callable[..., Outcome]


def user_row(engine: Engine, user_id: str) -> dict[str, Any] | None:
    with engine.connect() as conn:
        row = conn.execute(select(users_table).where(users_table.c.id == user_id)).first()
    return dict(row._mapping) if row else None


def event_row(engine: Engine, svix_id: str) -> dict[str, Any]:
    with engine.connect() as conn:
        row = conn.execute(select(events_table).where(events_table.c.svix_id == svix_id)).one()
    return dict(row._mapping)


def count(engine: Engine, table: Any) -> int:
    with engine.connect() as conn:
        return len(conn.execute(select(table)).all())


def test_created_inserts_the_user_with_queried_columns(receive: Receive, observer: Engine) -> None:
    user = user_object(username="ada", public_metadata={"plan": "pro"}, updated_at=1_000)
    outcome = receive(user_event("user.created", user), "msg_a")
    assert (outcome.status, outcome.duplicate, outcome.subject_id) == (
        "processed",
        False,
        user["id"],
    )
    row = user_row(observer, user["id"])
    assert row is not None
    assert row["email"] == "ada.lovelace@example.com"
    assert (row["first_name"], row["last_name"], row["username"]) == ("Ada", "Lovelace", "ada")
    assert row["public_metadata"] == {"plan": "pro"}
    assert row["updated_at"] == 1_000
    assert row["data"] == user
    log = event_row(observer, "msg_a")
    assert (log["status"], log["type"], log["subject_id"], log["delivery_count"]) == (
        "processed",
        "user.created",
        user["id"],
        1,
    )


def test_newer_update_applies(receive: Receive, observer: Engine) -> None:
    user = user_object(updated_at=1_000)
    receive(user_event("user.created", user))
    newer = {**user, "first_name": "Augusta", "updated_at": 2_000}
    assert receive(user_event("user.updated", newer)).status == "processed"
    row = user_row(observer, user["id"])
    assert row is not None
    assert (row["first_name"], row["updated_at"]) == ("Augusta", 2_000)


def test_created_after_a_newer_update_is_stale(receive: Receive, observer: Engine) -> None:
    user = user_object(updated_at=1_000)
    newer = {**user, "first_name": "Augusta", "updated_at": 2_000}
    assert receive(user_event("user.updated", newer)).status == "processed"
    outcome = receive(user_event("user.created", user), "msg_late")
    assert outcome.status == "stale"
    assert outcome.reason
    assert "not newer" in outcome.reason
    row = user_row(observer, user["id"])
    assert row is not None
    assert row["first_name"] == "Augusta"
    log = event_row(observer, "msg_late")
    assert log["status"] == "stale"
    assert "not newer" in log["error"]


def test_equal_version_is_not_applied_twice(receive: Receive, observer: Engine) -> None:
    user = user_object(updated_at=5_000)
    receive(user_event("user.updated", user))
    same_version = {**user, "first_name": "Other"}
    for kind in ("user.updated", "user.created"):
        assert receive(user_event(kind, same_version)).status == "stale"
    assert user_row(observer, user["id"])["first_name"] == "Ada"  # type: ignore[index]


def test_a_tie_goes_to_the_later_action_in_any_order(receive: Receive, observer: Engine) -> None:
    """Same ``updated_at``: ``.updated`` outranks ``.created``, so the result is the same
    whichever arrives first."""
    user = user_object(updated_at=5_000)
    updated = {**user, "first_name": "Other"}
    assert receive(user_event("user.updated", updated)).status == "processed"
    assert receive(user_event("user.created", user)).status == "stale"
    assert user_row(observer, user["id"])["first_name"] == "Other"  # type: ignore[index]
    other = user_object(updated_at=5_000)
    receive(user_event("user.created", other))
    assert receive(user_event("user.updated", {**other, "first_name": "Other"})).status == (
        "processed"
    )
    assert user_row(observer, other["id"])["first_name"] == "Other"  # type: ignore[index]


def test_update_for_an_unknown_user_creates_it(receive: Receive, observer: Engine) -> None:
    user = user_object(updated_at=3_000)
    assert receive(user_event("user.updated", user)).status == "processed"
    assert user_row(observer, user["id"]) is not None


def test_same_svix_id_twice_applies_once(receive: Receive, observer: Engine) -> None:
    user = user_object(updated_at=1_000)
    first = receive(user_event("user.created", user), "msg_dup")
    # The redelivery carries the same id; even a different body must not be applied.
    changed = {**user, "first_name": "Changed", "updated_at": 9_000}
    second = receive(user_event("user.created", changed), "msg_dup")
    assert (first.duplicate, second.duplicate) == (False, True)
    assert second.status == "processed"
    assert user_row(observer, user["id"])["first_name"] == "Ada"  # type: ignore[index]
    assert event_row(observer, "msg_dup")["delivery_count"] == 2
    assert count(observer, events_table) == 1


def test_delete_removes_user_leaves_tombstone_and_wins(receive: Receive, observer: Engine) -> None:
    user = user_object(updated_at=1_000)
    receive(user_event("user.created", user), "msg_c")
    outcome = receive(deleted_user_event(user["id"], timestamp=1_750_000_007_000), "msg_d")
    assert outcome.status == "processed"
    assert user_row(observer, user["id"]) is None
    with observer.connect() as conn:
        tomb = conn.execute(select(tombstones_table)).one()
    assert (tomb.id, tomb.kind, tomb.deleted_at) == (user["id"], "user", 1_750_000_007_000)
    # A late update (or a retried create) never brings the user back.
    late = {**user, "updated_at": 99_000}
    for kind in ("user.updated", "user.created"):
        again = receive(user_event(kind, late))
        assert again.status == "stale"
        assert again.reason
        assert "deleted" in again.reason
    assert user_row(observer, user["id"]) is None


def test_delete_erases_stored_payloads_of_that_user(receive: Receive, observer: Engine) -> None:
    user = user_object(updated_at=1_000)
    receive(user_event("user.created", user), "msg_c")
    receive(deleted_user_event(user["id"]), "msg_d")
    receive(user_event("user.updated", {**user, "updated_at": 2_000}), "msg_late")
    assert event_row(observer, "msg_c")["payload"] is None
    assert event_row(observer, "msg_late")["payload"] is None
    # The delete's own body goes too: its event_attributes hold the user's IP and user agent.
    assert event_row(observer, "msg_d")["payload"] is None
    assert event_row(observer, "msg_d")["status"] == "processed"


def test_delete_of_a_never_seen_user_still_blocks_a_late_create(
    receive: Receive, observer: Engine
) -> None:
    user = user_object(updated_at=1_000)
    assert receive(deleted_user_event(user["id"])).status == "processed"
    assert receive(user_event("user.created", user)).status == "stale"
    assert user_row(observer, user["id"]) is None
    assert count(observer, tombstones_table) == 1


def test_deleting_twice_is_harmless(receive: Receive, observer: Engine) -> None:
    user = user_object()
    receive(user_event("user.created", user))
    assert receive(deleted_user_event(user["id"])).status == "processed"
    assert receive(deleted_user_event(user["id"])).status == "processed"
    assert count(observer, tombstones_table) == 1


def test_unknown_event_type_is_logged_as_ignored(receive: Receive, observer: Engine) -> None:
    event = {"type": "paymentAttempt.created", "object": "event", "data": {"id": "pa_1"}}
    outcome = receive(event, "msg_unknown")
    assert (outcome.status, outcome.accepted) == ("ignored", True)
    assert event_row(observer, "msg_unknown")["status"] == "ignored"
    assert count(observer, users_table) == 0


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"this is not json", "payload_not_json"),
        (b"[1, 2, 3]", "payload_invalid"),
        (encode({"type": "user.created", "data": {"first_name": "No id"}}), "payload_invalid"),
        (encode({"type": "user.deleted", "data": {"deleted": True}}), "payload_invalid"),
        (encode({"type": "user.created", "data": {"id": "user_1"}}), "payload_invalid"),
        (encode({"data": {"id": "user_1"}}), "payload_invalid"),
    ],
    ids=["not-json", "array", "no-data-id", "deleted-no-id", "no-updated-at", "no-type"],
)
def test_unapplicable_payload_is_kept_as_failed(
    receive: Receive, observer: Engine, body: bytes, code: str
) -> None:
    outcome = receive(body, "msg_bad")
    assert (outcome.status, outcome.accepted, outcome.error_code) == ("failed", False, code)
    log = event_row(observer, "msg_bad")
    assert log["status"] == "failed"
    assert log["error"] == outcome.reason
    assert log["payload"] == body.decode()
    assert count(observer, users_table) == 0
    # Redelivered, it is tried again (a newer clerk-sync might handle it) and fails again.
    again = receive(body, "msg_bad")
    assert (again.status, again.duplicate) == ("failed", False)
    assert event_row(observer, "msg_bad")["delivery_count"] == 2


@pytest.mark.parametrize(
    ("first", "last"),
    [("Zoë 🦄‍🌈", "O'Brien-Łukasiewicz"), ("مرحبا", "שָׁלוֹם"), ("\u202eevil", "名前")],
)
def test_names_are_stored_byte_exact(
    receive: Receive, observer: Engine, first: str, last: str
) -> None:
    user = user_object(first_name=first, last_name=last)
    receive(user_event("user.created", user))
    row = user_row(observer, user["id"])
    assert row is not None
    assert (row["first_name"], row["last_name"]) == (first, last)
    assert row["first_name"].encode() == first.encode()
    assert row["data"]["first_name"] == first


def test_phone_only_user(receive: Receive, observer: Engine) -> None:
    user = user_object(email=None, phone="+15555550100")
    assert receive(user_event("user.created", user)).status == "processed"
    row = user_row(observer, user["id"])
    assert row is not None
    assert (row["email"], row["phone_number"]) == (None, "+15555550100")


def test_primary_email_is_found_by_id_not_position(receive: Receive, observer: Engine) -> None:
    user = user_object(email="primary@example.com", extra_emails=("old@example.com",))
    assert user["email_addresses"][0]["email_address"] == "old@example.com"
    receive(user_event("user.created", user))
    assert user_row(observer, user["id"])["email"] == "primary@example.com"  # type: ignore[index]


def test_null_names_and_captured_shape(receive: Receive, observer: Engine) -> None:
    user = user_object(first_name=None, last_name=None, verification_object=False)
    receive(user_event("user.created", user))
    row = user_row(observer, user["id"])
    assert row is not None
    assert (row["first_name"], row["last_name"]) == (None, None)


def test_a_batch_commits_together_and_in_order(receiver: Receiver, observer: Engine) -> None:
    user = user_object(updated_at=1_000)
    deliveries = [
        Delivery("msg_1", encode(user_event("user.created", user))),
        Delivery("msg_2", encode(user_event("user.updated", {**user, "updated_at": 2_000}))),
        Delivery("msg_1", encode(user_event("user.created", user))),
        Delivery("msg_3", b"not json"),
    ]
    results = receiver.receive_batch(deliveries)
    statuses = [(r.status, r.duplicate) for r in results if isinstance(r, Outcome)]
    assert statuses == [
        ("processed", False),
        ("processed", False),
        ("processed", True),
        ("failed", False),
    ]
    assert user_row(observer, user["id"])["updated_at"] == 2_000  # type: ignore[index]
    assert count(observer, events_table) == 3
