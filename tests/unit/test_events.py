"""Decoding Clerk events: the envelope, then ``data`` as a user or a deleted object
(:func:`clerk_sync.entities.kind.decode` with the kind's model)."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest

from clerk_sync.devtools import encode, user_event, user_object
from clerk_sync.entities.kind import DeletedObject, decode
from clerk_sync.entities.users import UserData
from clerk_sync.errors import InvalidPayload
from clerk_sync.events import Envelope, decode_envelope, event_ms
from clerk_sync.events.envelope import MAX_MS
from tests.conftest import load_fixture

USER_FIXTURES = [
    "user.created.json",
    "user.created.oauth_google.json",
    "user.created.clerk-docs-example.json",
    "user.updated.json",
]
DELETED_FIXTURES = ["user.deleted.json", "user.deleted.with_external_id.json"]


def fixture_json(name: str) -> dict[str, Any]:
    raw: dict[str, Any] = json.loads(load_fixture(name))
    return raw


def envelope_of(name: str) -> Envelope:
    return decode_envelope(load_fixture(name))


def decode_user(data: dict[str, Any]) -> UserData:
    user = decode(UserData, data)
    assert isinstance(user, UserData)
    return user


def decode_deleted(data: dict[str, Any]) -> DeletedObject:
    deleted = decode(DeletedObject, data)
    assert isinstance(deleted, DeletedObject)
    return deleted


def decode_user_body(body: bytes) -> UserData:
    return decode_user(decode_envelope(body).data)


def assert_invalid(exc: pytest.ExceptionInfo[InvalidPayload], code: str = "payload_invalid") -> str:
    err = exc.value
    assert type(err) is InvalidPayload
    assert err.code == code
    assert err.http_status == 422
    assert err.detail.endswith(".")
    return err.detail


# --- captured payloads -----------------------------------------------------------------------


@pytest.mark.parametrize("name", USER_FIXTURES)
def test_captured_user_payloads_decode(name: str) -> None:
    raw = fixture_json(name)
    envelope = envelope_of(name)
    assert envelope.type == raw["type"]
    assert envelope.object == "event"
    assert envelope.timestamp == raw["timestamp"]
    assert envelope.instance_id == raw["instance_id"]
    assert envelope.subject_id == raw["data"]["id"]
    user = decode_user(envelope.data)
    assert user.id == raw["data"]["id"]
    assert user.updated_at == raw["data"]["updated_at"]
    assert user.created_at == raw["data"]["created_at"]
    assert user.first_name == raw["data"]["first_name"]
    assert user.primary_email == raw["data"]["email_addresses"][0]["email_address"]
    assert user.primary_phone is None


@pytest.mark.parametrize("name", DELETED_FIXTURES)
def test_captured_deleted_payloads_decode(name: str) -> None:
    raw = fixture_json(name)
    envelope = envelope_of(name)
    assert envelope.type == "user.deleted"
    deleted = decode_deleted(envelope.data)
    assert deleted == DeletedObject(id=raw["data"]["id"], deleted=True, object="user")
    assert (deleted.updated_at, deleted.created_at) == (None, None)  # a stub has no times
    # ``external_id`` is not modelled any more; it stays in the raw data beside.
    assert envelope.data.get("external_id") == raw["data"].get("external_id")


def test_capture_whose_verification_lacks_object_decodes() -> None:
    raw = fixture_json("user.created.json")
    assert "object" not in raw["data"]["email_addresses"][0]["verification"]
    user = decode_user_body(load_fixture("user.created.json"))
    assert user.primary_email == "ada.lovelace@example.com"
    assert user.first_name is None
    assert user.last_name is None


def test_oauth_google_capture_decodes() -> None:
    user = decode_user_body(load_fixture("user.created.oauth_google.json"))
    assert (user.first_name, user.last_name) == ("Grace", "Hopper")
    assert user.primary_email == "grace.hopper@example.com"
    assert user.last_sign_in_at == 1768619811674
    assert user.banned is False


def test_legacy_docs_example_with_birthday_and_gender_decodes() -> None:
    raw = fixture_json("user.created.clerk-docs-example.json")
    assert {"birthday", "gender"} <= raw["data"].keys()
    user = decode_user_body(load_fixture("user.created.clerk-docs-example.json"))
    assert user.external_id == "567772"
    assert user.primary_email == "example@example.org"
    assert user.last_sign_in_at == 1654012591514
    assert user.locked is False  # absent from this example: defaulted
    assert envelope_of("user.created.clerk-docs-example.json").instance_id == "ins_123"


def test_updated_capture_decodes_metadata_and_username() -> None:
    user = decode_user_body(load_fixture("user.updated.json"))
    assert user.username == "ada"
    assert user.public_metadata == {"plan": "pro"}
    assert user.unsafe_metadata == {}
    assert not hasattr(user, "private_metadata")


# --- tolerance: unknown fields ignored, optional ones default --------------------------------


def test_unknown_fields_are_ignored_everywhere() -> None:
    event = user_event("user.created", user_object(user_id="user_unknown_fields"))
    event["brand_new_envelope_field"] = {"nested": [1, 2]}
    event["data"]["brand_new_user_field"] = "x"
    event["data"]["email_addresses"][0]["brand_new_email_field"] = True
    envelope = decode_envelope(encode(event))
    user = decode_user(envelope.data)
    assert user.id == "user_unknown_fields"
    assert not hasattr(envelope, "brand_new_envelope_field")
    assert not hasattr(user, "brand_new_user_field")
    assert user.primary_email == "ada.lovelace@example.com"


def test_minimal_envelope_defaults() -> None:
    envelope = decode_envelope(b'{"type": "session.created", "data": {}}')
    assert envelope == Envelope(type="session.created", data={})
    assert envelope.object is None
    assert envelope.timestamp is None
    assert envelope.instance_id is None
    assert envelope.subject_id is None


@pytest.mark.parametrize("subject", [None, "", 42, ["user_1"]])
def test_subject_id_is_none_when_unusable(subject: object) -> None:
    body = orjson.dumps({"type": "user.updated", "data": {"id": subject}})
    assert decode_envelope(body).subject_id is None


def test_minimal_user_defaults() -> None:
    user = decode_user({"id": "user_minimal", "updated_at": 1})
    assert user == UserData(id="user_minimal", updated_at=1)
    assert user.created_at is None
    assert user.first_name is None
    assert user.email_addresses == []
    assert user.phone_numbers == []
    assert user.public_metadata is None
    assert (user.banned, user.locked) == (False, False)
    assert user.primary_email is None
    assert user.primary_phone is None


def test_minimal_deleted_defaults() -> None:
    assert decode_deleted({"id": "user_gone"}) == DeletedObject(
        id="user_gone", deleted=True, object=None
    )


# --- bodies that are not an event ------------------------------------------------------------


@pytest.mark.parametrize(
    "body", [b"not json", b"", b"{", b'{"type": "user.created",}', b"\xff\xfe{}", b"{} {}"]
)
def test_not_json_is_payload_not_json(body: bytes) -> None:
    with pytest.raises(InvalidPayload) as exc:
        decode_envelope(body)
    assert assert_invalid(exc, "payload_not_json").startswith("The body is not JSON (")


@pytest.mark.parametrize(
    ("body", "type_name"),
    [
        (b"[]", "list"),
        (b'[{"type": "user.created"}]', "list"),
        (b'"user.created"', "str"),
        (b"42", "int"),
        (b"null", "NoneType"),
        (b"true", "bool"),
    ],
)
def test_json_that_is_not_an_object_is_payload_invalid(body: bytes, type_name: str) -> None:
    with pytest.raises(InvalidPayload) as exc:
        decode_envelope(body)
    detail = assert_invalid(exc)
    assert f"not an object (got {type_name})" in detail


@pytest.mark.parametrize(
    ("event", "field"),
    [
        ({"data": {"id": "user_1"}}, "type: Field required"),
        ({"type": "user.created"}, "data: Field required"),
        ({"type": "user.created", "data": ["user_1"]}, "data: Input should be a valid dict"),
        ({"type": "user.created", "data": None}, "data: Input should be a valid dict"),
        ({"type": 7, "data": {}}, "type: Input should be a valid string"),
        ({"type": "user.created", "data": {}, "timestamp": "soon"}, "timestamp: "),
    ],
)
def test_envelope_shape_problems_name_the_field(event: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidPayload) as exc:
        decode_envelope(orjson.dumps(event))
    detail = assert_invalid(exc)
    assert detail.startswith(f"The event does not have the shape Clerk sends: {field}")


def test_several_problems_are_counted() -> None:
    with pytest.raises(InvalidPayload) as exc:
        decode_envelope(b"{}")
    assert assert_invalid(exc).endswith("(and 1 more problem).")


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"id": None}, "data.id"),
        ({"id": ""}, "data.id"),
        ({"updated_at": None}, "data.updated_at"),
        ({"updated_at": "yesterday"}, "data.updated_at"),
        ({"first_name": 123}, "data.first_name"),
        ({"email_addresses": "ada@example.com"}, "data.email_addresses"),
        ({"email_addresses": [{"id": 5}]}, "data.email_addresses.0.id"),
        ({"public_metadata": ["plan"]}, "data.public_metadata"),
    ],
)
def test_user_with_wrong_types_names_the_field(change: dict[str, Any], where: str) -> None:
    data = user_object() | change
    with pytest.raises(InvalidPayload) as exc:
        decode_user(data)
    assert assert_invalid(exc).startswith(
        f"The event does not have the shape Clerk sends: {where}: "
    )


@pytest.mark.parametrize("field", ["id", "updated_at"])
def test_user_without_a_required_field_names_it(field: str) -> None:
    data = user_object()
    del data[field]
    with pytest.raises(InvalidPayload) as exc:
        decode_user(data)
    detail = assert_invalid(exc)
    assert detail == f"The event does not have the shape Clerk sends: data.{field}: Field required."


@pytest.mark.parametrize("data", [{"deleted": True, "object": "user"}, {"id": ""}, {"id": 5}])
def test_deleted_without_usable_id_is_invalid(data: dict[str, Any]) -> None:
    with pytest.raises(InvalidPayload) as exc:
        decode_deleted(data)
    assert "data.id: " in assert_invalid(exc)


# --- primary e-mail and phone ----------------------------------------------------------------


def test_primary_email_is_found_by_id_not_position() -> None:
    data = user_object(
        email="primary@example.com", extra_emails=("old@example.com", "work@example.com")
    )
    assert data["email_addresses"][0]["email_address"] == "old@example.com"
    user = decode_user(data)
    assert user.primary_email == "primary@example.com"


def test_primary_email_id_pointing_nowhere_is_none() -> None:
    data = user_object() | {"primary_email_address_id": "idn_not_among_the_addresses"}
    assert decode_user(data).primary_email is None


def test_phone_only_user() -> None:
    user = decode_user(user_object(email=None, phone="+15555550100"))
    assert user.email_addresses == []
    assert user.primary_email is None
    assert user.primary_phone == "+15555550100"


@pytest.mark.parametrize(
    ("first", "last"),
    [
        ("Zoë 👩🏽‍💻", "Ōtsuka-Łukasz"),
        ("דוד", "בן-גוריון"),
        ("محمد", "الخوارزمي"),
        ("\u202eevil", "mixed עברית and English"),
    ],
    ids=["emoji", "hebrew", "arabic", "rtl-override"],
)
def test_names_with_emoji_and_right_to_left_text_survive(first: str, last: str) -> None:
    event = user_event("user.created", user_object(first_name=first, last_name=last))
    for body in (encode(event), json.dumps(event, ensure_ascii=True).encode()):
        user = decode_user_body(body)
        assert (user.first_name, user.last_name) == (first, last)


# --- times: milliseconds, or seconds below 10^12; bounded ------------------------------------


@pytest.mark.parametrize(
    ("timestamp", "ms"),
    [
        (1_716_883_200, 1_716_883_200_000),  # Clerk's OpenAPI examples: seconds
        (0, 0),
        (999_999_999_999, 999_999_999_999_000),
        (1_000_000_000_000, 1_000_000_000_000),
        (1_744_400_000_021, 1_744_400_000_021),
        (MAX_MS - 1, MAX_MS - 1),
        (None, None),
    ],
)
def test_timestamp_ms_reads_small_values_as_seconds(timestamp: int | None, ms: int | None) -> None:
    event: dict[str, Any] = {"type": "user.deleted", "data": {"id": "user_1"}}
    if timestamp is not None:
        event["timestamp"] = timestamp
    envelope = decode_envelope(orjson.dumps(event))
    assert envelope.timestamp == timestamp  # kept as sent
    assert envelope.timestamp_ms == ms
    assert event_ms(timestamp) == ms


@pytest.mark.parametrize("name", [*USER_FIXTURES, *DELETED_FIXTURES])
def test_captured_timestamps_are_milliseconds(name: str) -> None:
    envelope = envelope_of(name)
    assert envelope.timestamp_ms == fixture_json(name)["timestamp"] >= 10**12


@pytest.mark.parametrize("timestamp", [MAX_MS, 2**63, 2**64 + 5, -1, -(2**63)])
def test_timestamp_out_of_range_is_payload_invalid(timestamp: int) -> None:
    body = b'{"type": "user.deleted", "data": {"id": "user_1"}, "timestamp": %d}' % timestamp
    with pytest.raises(InvalidPayload) as exc:
        decode_envelope(body)
    detail = assert_invalid(exc)
    assert detail.startswith("The event does not have the shape Clerk sends: timestamp: ")


@pytest.mark.parametrize("value", [MAX_MS, 2**63, -1, -1_744_400_000_000])
@pytest.mark.parametrize("field", ["updated_at", "created_at", "last_sign_in_at"])
def test_user_times_out_of_range_are_payload_invalid(field: str, value: int) -> None:
    data = user_object(updated_at=1_744_400_000_000) | {field: value}
    with pytest.raises(InvalidPayload) as exc:
        decode_user(data)
    assert assert_invalid(exc).startswith(
        f"The event does not have the shape Clerk sends: data.{field}: "
    )


@pytest.mark.parametrize("value", [MAX_MS, -1])
def test_deleted_object_times_out_of_range_are_payload_invalid(value: int) -> None:
    with pytest.raises(InvalidPayload) as exc:
        decode_deleted({"id": "orgmem_1", "deleted": True, "updated_at": value})
    assert "data.updated_at: " in assert_invalid(exc)


def test_the_largest_accepted_time_decodes() -> None:
    user = decode_user(user_object(updated_at=MAX_MS - 1, created_at=0))
    assert (user.updated_at, user.created_at) == (MAX_MS - 1, 0)


# --- the user whose personal data a body holds ----------------------------------------------

USER_ID = "user_2vX11zP8kQm3TbR6wYcN0dLe5Hs"


@pytest.mark.parametrize(
    ("event_type", "data", "named"),
    [
        ("user.created", {"object": "user", "id": USER_ID, "updated_at": 1}, USER_ID),
        ("user.deleted", {"object": "user", "id": USER_ID, "deleted": True}, USER_ID),
        (
            "session.created",
            {"object": "session", "id": "sess_1", "user_id": USER_ID, "user": {"id": "x"}},
            USER_ID,
        ),
        ("session.ended", {"object": "session", "id": "sess_1", "user": {"id": USER_ID}}, USER_ID),
        (
            "organizationMembership.created",
            {
                "object": "organization_membership",
                "id": "orgmem_1",
                "organization": {"id": "org_1", "created_by": "user_creator"},
                "public_user_data": {"user_id": USER_ID},
            },
            USER_ID,
        ),
        (
            "email.created",
            {"object": "email", "id": "ema_1", "user_id": USER_ID, "to_email_address": "a@b.c"},
            USER_ID,
        ),
        ("sms.created", {"object": "sms_message", "id": "sms_1", "user_id": USER_ID}, USER_ID),
        (
            "organization.created",
            {"object": "organization", "id": "org_1", "created_by": USER_ID},
            USER_ID,
        ),
        (
            "organizationInvitation.accepted",
            {"object": "organization_invitation", "id": "orginv_1", "user_id": USER_ID},
            USER_ID,
        ),
        (
            "waitlistEntry.created",
            {"object": "waitlist_entry", "id": "wle_1", "email_address": "a@example.com"},
            None,
        ),
        ("organization.deleted", {"object": "organization", "id": "org_1", "deleted": True}, None),
        ("role.created", {"object": "role", "id": "role_1", "key": "org:x"}, None),
        ("user.created", {"object": "user", "id": ""}, None),
        ("session.created", {"object": "session", "id": "s", "user_id": ""}, None),
        ("session.created", {"object": "session", "id": "s", "user_id": 7}, None),
    ],
)
def test_named_user_id(event_type: str, data: dict[str, Any], named: str | None) -> None:
    envelope = decode_envelope(orjson.dumps({"type": event_type, "data": data}))
    assert envelope.named_user_id == named


@pytest.mark.parametrize(
    "name",
    [
        "user.created.json",
        "user.updated.json",
        "user.deleted.json",
        "session.created.json",
        "session.ended.json",
        "organizationMembership.created.json",
        "organizationMembership.updated.json",
        "organizationMembership.deleted.json",
        "organization.created.json",
        "organization.updated.json",
    ],
)
def test_example_payloads_name_ada(name: str) -> None:
    assert envelope_of(name).named_user_id == USER_ID


def test_example_payloads_naming_other_users_or_none() -> None:
    assert envelope_of("organizationInvitation.accepted.json").named_user_id == (
        "user_38MqVc3Fexample0Q7PewRxW0b"
    )
    assert envelope_of("waitlistEntry.created.json").named_user_id is None
    assert envelope_of("organization.deleted.json").named_user_id is None


@pytest.mark.parametrize("event_type", ["user.created", "user.updated", "user.deleted"])
def test_a_user_body_without_object_still_names_its_user(event_type: str) -> None:
    data = {"id": USER_ID, "updated_at": 1_744_400_000_000, "first_name": "Ada"}
    envelope = decode_envelope(orjson.dumps({"type": event_type, "data": data}))
    assert envelope.named_user_id == USER_ID
