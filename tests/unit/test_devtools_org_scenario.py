"""``clerk-sync trigger --scenario org-lifecycle``: an organization's life in 14 events whose ids
agree, one second apart, with the hard cases (``--duplicate``, ``--shuffle``) as for users."""

from __future__ import annotations

import itertools
import json
import random
from collections import Counter
from typing import Any

import pytest

from clerk_sync.devtools.catalog import DELIVERY_LAG_MS
from clerk_sync.devtools.overrides import parse_override
from clerk_sync.devtools.scenarios import SCENARIOS, Planned, PlanOptions, plan
from clerk_sync.entities import route
from clerk_sync.entities.kind import plan as decide
from clerk_sync.errors import InvalidParameter
from clerk_sync.events import decode_envelope

NOW = 1_800_000_000_000
STEP_MS = 1_000  # each change one second after the previous one
STORY = [
    "organization.created",
    "user.created",
    "organizationMembership.created",
    "user.created",
    "organizationMembership.created",
    "user.created",
    "organizationMembership.created",
    "organizationMembership.updated",
    "organizationInvitation.created",
    "organizationInvitation.accepted",
    "user.created",
    "organizationMembership.created",
    "organizationMembership.deleted",
    "organization.deleted",
]


def event(d: Planned) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(d.body)
    return parsed


def data(d: Planned) -> dict[str, Any]:
    inside: dict[str, Any] = event(d)["data"]
    return inside


def org_lifecycle(**options: Any) -> list[Planned]:
    return plan(PlanOptions(scenario="org-lifecycle", **options), now_ms=NOW)


def test_the_story_is_told_in_order() -> None:
    sent = org_lifecycle()
    assert [d.event_type for d in sent] == STORY
    assert [event(d)["type"] for d in sent] == STORY
    assert all(d.subject_id == data(d)["id"] for d in sent)  # what each event is about
    assert len({d.msg_id for d in sent}) == len(STORY)
    assert all((d.signing, d.note) == ("valid", "") for d in sent)


def test_the_ids_agree_across_the_story() -> None:
    sent = org_lifecycle()
    by_type: dict[str, list[dict[str, Any]]] = {}
    for d in sent:
        by_type.setdefault(d.event_type, []).append(data(d))
    (organization,) = by_type["organization.created"]
    users = by_type["user.created"]
    joined = by_type["organizationMembership.created"]
    (promoted,) = by_type["organizationMembership.updated"]
    (invited,) = by_type["organizationInvitation.created"]
    (accepted,) = by_type["organizationInvitation.accepted"]
    (left,) = by_type["organizationMembership.deleted"]
    (deleted,) = by_type["organization.deleted"]

    # Every membership is in this organization, embedded whole as it was last sent, and is the
    # membership of the user created just before it, as org:member.
    assert [m["organization"] for m in joined] == [organization] * 4
    assert [m["public_user_data"]["user_id"] for m in joined] == [u["id"] for u in users]
    assert {m["role"] for m in joined} == {"org:member"}
    assert len({u["id"] for u in users}) == len({m["id"] for m in joined}) == 4
    for user, membership in zip(users, joined, strict=True):
        (email,) = user["email_addresses"]
        assert membership["public_user_data"]["identifier"] == email["email_address"]
        assert membership["public_user_data"]["first_name"] == user["first_name"]

    # The first member is promoted: same membership, a later version.
    assert promoted["id"] == joined[0]["id"]
    assert promoted["public_user_data"]["user_id"] == users[0]["id"]
    assert (promoted["role"], promoted["role_name"]) == ("org:admin", "Admin")
    assert promoted["created_at"] == joined[0]["created_at"] < promoted["updated_at"]

    # The admin invites the fourth user, who accepts, then signs up and joins.
    assert invited["organization_id"] == accepted["organization_id"] == organization["id"]
    assert invited["inviter_id"] == users[0]["id"]
    assert invited["id"] == accepted["id"]
    assert (invited["status"], accepted["status"]) == ("pending", "accepted")
    assert "user_id" not in invited
    assert accepted["user_id"] == users[3]["id"]
    assert invited["email_address"] == users[3]["email_addresses"][0]["email_address"]
    assert invited["created_at"] == accepted["created_at"] < accepted["updated_at"]

    # The admin leaves: the full membership as last sent, its updated_at not bumped.
    assert left == promoted
    assert left["updated_at"] == promoted["updated_at"]

    # And the organization goes: the stub, with its slug.
    assert deleted == {
        "object": "organization",
        "id": organization["id"],
        "slug": organization["slug"],
        "deleted": True,
    }


def test_each_change_is_a_step_after_the_previous_all_in_the_recent_past() -> None:
    sent = org_lifecycle()
    stamps = [event(d)["timestamp"] for d in sent]
    assert all(type(t) is int and t >= 10**12 for t in stamps)
    assert [b - a for a, b in itertools.pairwise(stamps)] == [STEP_MS] * (len(STORY) - 1)
    assert stamps[0] > NOW - 60_000
    assert stamps[-1] < NOW
    for d, stamp in zip(sent, stamps, strict=True):
        if d.event_type.endswith((".created", ".updated", ".accepted")):
            assert data(d)["updated_at"] == stamp - DELIVERY_LAG_MS  # the change it reports
    left = sent[STORY.index("organizationMembership.deleted")]
    assert data(left)["updated_at"] < event(left)["timestamp"] - STEP_MS


def test_count_makes_independent_organizations() -> None:
    sent = org_lifecycle(count=3)
    assert [d.event_type for d in sent] == STORY * 3
    runs = [sent[n * len(STORY) : (n + 1) * len(STORY)] for n in range(3)]
    orgs = [data(run[0]) for run in runs]
    assert len({o["id"] for o in orgs}) == len({o["slug"] for o in orgs}) == 3
    users = [{data(d)["id"] for d in run if d.event_type == "user.created"} for run in runs]
    emails = {
        data(d)["email_addresses"][0]["email_address"]
        for d in sent
        if d.event_type == "user.created"
    }
    assert sum(len(u) for u in users) == len(set().union(*users)) == len(emails) == 12
    for organization, run, members in zip(orgs, runs, users, strict=True):
        for d in run:
            if d.event_type.startswith("organizationMembership."):
                assert data(d)["organization"]["id"] == organization["id"]
                assert data(d)["public_user_data"]["user_id"] in members


def test_every_event_is_one_the_core_decodes_about_its_subject() -> None:
    for d in org_lifecycle():
        routed = route(d.event_type)
        assert routed is not None, d.event_type
        kind, action = routed
        assert decide(kind, decode_envelope(d.body), action, NOW).subject_id == d.subject_id


def test_duplicate_sends_every_message_twice_with_the_same_bytes() -> None:
    sent = org_lifecycle(duplicate=True)
    assert len(sent) == 2 * len(STORY)
    assert set(Counter(d.msg_id for d in sent).values()) == {2}
    for first, second in zip(sent[::2], sent[1::2], strict=True):
        assert (first.msg_id, first.body) == (second.msg_id, second.body)
        assert (first.note, second.note) == ("", "second copy")
    assert [d.event_type for d in sent[::2]] == STORY


def test_shuffle_mixes_everything_and_keeps_every_delivery() -> None:
    shuffled = plan(
        PlanOptions(scenario="org-lifecycle", count=2, duplicate=True, shuffle=True),
        now_ms=NOW,
        rng=random.Random(7),
    )
    assert len(shuffled) == 2 * 2 * len(STORY)
    assert set(Counter(d.msg_id for d in shuffled).values()) == {2}
    # The same deliveries, in another order: sorted back by time they are the two stories.
    in_time = sorted(shuffled, key=lambda d: (event(d)["timestamp"], d.msg_id))
    assert [d.event_type for d in in_time] == [t for t in STORY for _ in range(4)]
    assert [d.event_type for d in shuffled] != [d.event_type for d in in_time]
    seen: set[str] = set()
    for d in shuffled:
        assert (d.note == "second copy") == (d.msg_id in seen)
        seen.add(d.msg_id)
    again = plan(
        PlanOptions(scenario="org-lifecycle", count=2, duplicate=True, shuffle=True),
        now_ms=NOW,
        rng=random.Random(7),
    )
    assert [d.event_type for d in again] == [d.event_type for d in shuffled]


def test_overrides_and_signing_apply_to_every_event() -> None:
    sent = org_lifecycle(
        overrides=(parse_override('data.public_metadata={"source":"trigger"}'),),
        bad_signature=True,
    )
    assert all(data(d)["public_metadata"] == {"source": "trigger"} for d in sent)
    # each event owns its objects: the override did not leak into an embedded organization
    memberships = [d for d in sent if d.event_type.startswith("organizationMembership.")]
    assert all(data(d)["organization"]["public_metadata"] == {} for d in memberships)
    assert {(d.signing, d.expects) for d in sent} == {("wrong-secret", "signature_mismatch")}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (PlanOptions(scenario="org-lifecycle", user_id="user_x"), "--user-id has nothing to name"),
        (
            PlanOptions(scenario="org-lifecycle", user_id="user_x", count=2),
            "--user-id has nothing to name",
        ),
        (PlanOptions(scenario="org-lifecycle", stale=True), "--stale re-sends an older version"),
        (PlanOptions(scenario="org-lifecycle", count=0), "--count must be at least 1"),
    ],
)
def test_options_that_do_not_apply_are_refused(options: PlanOptions, message: str) -> None:
    with pytest.raises(InvalidParameter) as caught:
        plan(options, now_ms=NOW)
    assert message in caught.value.detail


def test_listed_with_its_steps_on_one_line() -> None:
    summary = SCENARIOS["org-lifecycle"].summary
    assert "\n" not in summary
    assert f"{len(STORY)} events" in summary
    for step in ("organization.created", "org:admin", "organizationInvitation.created"):
        assert step in summary
    assert "organizationMembership.deleted, updated_at not bumped" in summary
