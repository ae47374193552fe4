"""What ``clerk-sync trigger`` plans to send: stories, the hard cases, and bad options."""

from __future__ import annotations

import json
import random
from collections import Counter
from typing import Any

import pytest

from clerk_sync.devtools.overrides import apply_override, parse_override
from clerk_sync.devtools.scenarios import Planned, PlanOptions, plan
from clerk_sync.errors import InvalidParameter

NOW = 1_800_000_000_000


def data(d: Planned) -> dict[str, Any]:
    event: dict[str, Any] = json.loads(d.body)
    return event["data"]


def test_one_event_per_distinct_user() -> None:
    sent = plan(PlanOptions(event_type="user.created", count=3), now_ms=NOW)
    assert [d.event_type for d in sent] == ["user.created"] * 3
    assert len({d.subject_id for d in sent}) == 3
    assert len({d.msg_id for d in sent}) == 3
    assert all(d.subject_id.startswith("user_") and len(d.subject_id) == 32 for d in sent)
    emails = {data(d)["email_addresses"][0]["email_address"] for d in sent}
    assert len(emails) == 3
    assert all(d.expects == "2xx" and d.signing == "valid" for d in sent)


def test_lifecycle_is_ordered_in_time_for_one_user() -> None:
    sent = plan(PlanOptions(scenario="lifecycle", user_id="user_x"), now_ms=NOW)
    assert [d.event_type for d in sent] == ["user.created", "user.updated", "user.deleted"]
    assert {d.subject_id for d in sent} == {"user_x"}
    created, updated, deleted = (json.loads(d.body) for d in sent)
    assert created["data"]["updated_at"] < updated["data"]["updated_at"] < deleted["timestamp"]
    assert deleted["timestamp"] < NOW


def test_stale_update_follows_the_newest_version_and_is_older() -> None:
    sent = plan(PlanOptions(scenario="lifecycle", stale=True), now_ms=NOW)
    types = [d.event_type for d in sent]
    assert types == ["user.created", "user.updated", "user.updated", "user.deleted"]
    newest, stale = data(sent[1])["updated_at"], data(sent[2])["updated_at"]
    assert data(sent[0])["updated_at"] < stale < newest
    assert sent[2].note == "stale on purpose"


def test_stale_works_for_any_versioned_kind() -> None:
    sent = plan(PlanOptions(event_type="organization.created", stale=True), now_ms=NOW)
    assert [d.event_type for d in sent] == ["organization.created", "organization.updated"]
    assert {d.subject_id for d in sent} == {data(sent[0])["id"]}
    assert data(sent[1])["updated_at"] < data(sent[0])["updated_at"]
    assert sent[1].note == "stale on purpose"


def test_stale_after_a_delete_alone() -> None:
    sent = plan(PlanOptions(event_type="user.deleted", stale=True), now_ms=NOW)
    assert [d.event_type for d in sent] == ["user.deleted", "user.updated"]


def test_duplicate_sends_the_same_message_twice() -> None:
    sent = plan(PlanOptions(event_type="user.updated", duplicate=True), now_ms=NOW)
    assert len(sent) == 2
    assert sent[0].msg_id == sent[1].msg_id
    assert sent[0].body == sent[1].body
    assert (sent[0].note, sent[1].note) == ("", "second copy")


def test_shuffle_keeps_every_delivery_and_marks_copies_in_sending_order() -> None:
    options = PlanOptions(scenario="lifecycle", count=4, duplicate=True, shuffle=True)
    ordered = plan(PlanOptions(scenario="lifecycle", count=4, duplicate=True), now_ms=NOW)
    shuffled = plan(options, now_ms=NOW, rng=random.Random(7))
    assert len(shuffled) == len(ordered) == 24
    assert Counter(d.msg_id for d in shuffled).most_common(1)[0][1] == 2
    assert [d.event_type for d in shuffled] != [d.event_type for d in ordered]
    seen: set[str] = set()
    for d in shuffled:
        assert (d.note == "second copy") == (d.msg_id in seen)
        seen.add(d.msg_id)


@pytest.mark.parametrize(
    ("flag", "signing", "expects"),
    [
        ("bad_signature", "wrong-secret", "signature_mismatch"),
        ("expired", "expired", "timestamp_out_of_tolerance"),
    ],
)
def test_signing_on_purpose(flag: str, signing: str, expects: str) -> None:
    options = PlanOptions(event_type="user.created", **{flag: True})  # type: ignore[arg-type]
    (sent,) = plan(options, now_ms=NOW)
    assert (sent.signing, sent.expects) == (signing, expects)


def test_overrides_apply_to_every_event() -> None:
    overrides = (
        parse_override("data.first_name=Grace"),
        parse_override('data.public_metadata={"plan":"team"}'),
    )
    sent = plan(PlanOptions(event_type="user.created", overrides=overrides), now_ms=NOW)
    assert data(sent[0])["first_name"] == "Grace"
    assert data(sent[0])["public_metadata"] == {"plan": "team"}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (PlanOptions(), "Give an EVENT_TYPE (clerkSync.ping, email.created, organization.created"),
        (PlanOptions(event_type="user.bogus"), "the known ones are clerkSync.ping, email.created"),
        (PlanOptions(event_type="user.created", scenario="lifecycle"), "not both"),
        (PlanOptions(scenario="birthday"), "Unknown scenario 'birthday'"),
        (PlanOptions(event_type="user.created", user_id="user_x", count=2), "--user-id"),
        (PlanOptions(event_type="user.created", bad_signature=True, expired=True), "not both"),
        (PlanOptions(event_type="clerkSync.ping", stale=True), "--stale"),
        (PlanOptions(event_type="user.created", count=0), "--count"),
    ],
)
def test_bad_options_are_refused_with_the_fix(options: PlanOptions, message: str) -> None:
    with pytest.raises(InvalidParameter) as caught:
        plan(options, now_ms=NOW)
    assert message in caught.value.detail


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("data.first_name=Ada", "Ada"),
        ("data.first_name=", ""),
        ("data.username=null", None),
        ("data.banned=true", True),
        ("data.created_at=42", 42),
        ('data.username="007"', "007"),
        ("data.username=NaN", "NaN"),
        ("data.first_name=a=b", "a=b"),
    ],
)
def test_override_values(text: str, value: Any) -> None:
    event: dict[str, Any] = {"data": {}}
    apply_override(event, parse_override(text))
    assert list(event["data"].values()) == [value]


def test_override_paths_create_objects_and_index_lists() -> None:
    event: dict[str, Any] = {"data": {"email_addresses": [{"email_address": "a@example.com"}]}}
    apply_override(event, parse_override("data.email_addresses.0.email_address=b@example.com"))
    apply_override(event, parse_override("data.private_metadata.crm.id=7"))
    assert event["data"]["email_addresses"][0]["email_address"] == "b@example.com"
    assert event["data"]["private_metadata"] == {"crm": {"id": 7}}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("first_name", "must look like path=value"),
        ("=Ada", "must look like path=value"),
        ("data..x=1", "must look like path=value"),
        ("data.email_addresses.3.id=x", "not an index of a list of 1 item(s)"),
        ("data.email_addresses.first=x", "not an index"),
        ("data.first_name.x=1", "data.first_name is str, not an object"),
    ],
)
def test_bad_overrides_say_what_is_wrong(text: str, message: str) -> None:
    event: dict[str, Any] = {"data": {"first_name": "Ada", "email_addresses": [{}]}}
    with pytest.raises(InvalidParameter) as caught:
        apply_override(event, parse_override(text))
    assert message in caught.value.detail
