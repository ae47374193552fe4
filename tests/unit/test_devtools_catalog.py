"""The fixture catalog behind ``clerk-sync trigger``: every handled type has a fixture, and every
fixture is something the real decoders accept."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from clerk_sync.devtools import Subject, all_fixtures, fixture, fixture_for, fixture_types
from clerk_sync.devtools.catalog import PING_TYPE, persona
from clerk_sync.events import decode_envelope
from clerk_sync.sync import handled_types
from clerk_sync.sync.registry import decoder_for

REFERENCE = Path(__file__).resolve().parents[1] / "fixtures"
SUBJECT = Subject("user_2vX11zP8kQm3TbR6wYcN0dLe5Hs", 0, 1_744_276_393_608, 1_744_362_011_337)


def test_every_handled_type_has_a_fixture() -> None:
    """A new handler must come with its fixture (register it in devtools/catalog.py)."""
    missing = sorted(set(handled_types()) - set(fixture_types()))
    assert not missing, f"handled event types without a trigger fixture: {missing}"


@pytest.mark.parametrize("event_type", fixture_types())
def test_fixture_is_an_envelope_the_receiver_decodes(event_type: str) -> None:
    spec = fixture_for(event_type)
    assert spec is not None
    event = spec.build(SUBJECT)
    assert event["type"] == event_type
    assert event["object"] == "event"
    assert event["instance_id"].startswith("ins_")
    assert event["data"]["id"] == SUBJECT.id
    envelope = decode_envelope(json.dumps(event).encode())
    decoder = decoder_for(event_type)
    if event_type == PING_TYPE:
        assert decoder is None  # clerk-sync's probe is never handled: recorded as ignored
        return
    assert decoder is not None
    assert decoder(envelope).subject_id == SUBJECT.id


@pytest.mark.parametrize(
    ("event_type", "reference"),
    [
        ("user.created", "user.created.json"),
        ("user.updated", "user.updated.json"),
        ("user.deleted", "user.deleted.json"),
    ],
)
def test_fixture_has_the_keys_of_the_captured_payload(event_type: str, reference: str) -> None:
    """Shaped like Clerk's: every key of the captured delivery is there, at both levels."""
    captured: dict[str, Any] = json.loads((REFERENCE / reference).read_text())
    spec = fixture_for(event_type)
    assert spec is not None
    built = spec.build(SUBJECT)
    assert set(captured) <= set(built)
    assert set(captured["data"]) <= set(built["data"])
    if event_type != "user.deleted":
        assert built["data"]["updated_at"] == SUBJECT.at_ms
        assert built["data"]["created_at"] == SUBJECT.created_ms
        assert built["timestamp"] > SUBJECT.at_ms  # stamped a few ms after the change
        primary = built["data"]["primary_email_address_id"]
        emails = {e["id"]: e["email_address"] for e in built["data"]["email_addresses"]}
        assert emails[primary] == "ada.lovelace@example.com"
    else:
        assert built["data"] == {"deleted": True, "id": SUBJECT.id, "object": "user"}


def test_updated_fixture_differs_from_created() -> None:
    created, updated = (fixture_for(t) for t in ("user.created", "user.updated"))
    assert created is not None
    assert updated is not None
    a, b = created.build(SUBJECT)["data"], updated.build(SUBJECT)["data"]
    assert (a["username"], b["username"]) == (None, "adal")
    assert b["public_metadata"] == {"plan": "pro"}


def test_personas_are_distinct() -> None:
    emails = {persona(i)[2] for i in range(20)}
    assert len(emails) == 20
    assert persona(0) == ("Ada", "Lovelace", "ada.lovelace@example.com")
    assert persona(8)[2] == "ada.lovelace+1@example.com"


def test_a_type_gets_one_fixture() -> None:
    with pytest.raises(ValueError, match="already has a fixture"):
        fixture("user.created", summary="again")(lambda s: {})


def test_catalog_lists_in_order() -> None:
    assert [f.event_type for f in all_fixtures()] == fixture_types() == sorted(fixture_types())
