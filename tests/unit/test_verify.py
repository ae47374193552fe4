"""Svix signature verification through ``Verifier`` and ``parse_headers``.

Every signature here is made by the ``svix`` library's own signer (directly or through
``clerk_sync.devtools.sign_headers``), and that signer is pinned to the published vectors first.
Time is passed explicitly (``now=``) so no test depends on the machine's clock.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.datastructures import Headers
from svix.webhooks import Webhook

from clerk_sync.devtools import encode, sign_headers, user_event, user_object
from clerk_sync.errors import (
    MalformedHeader,
    MissingHeader,
    RejectedDelivery,
    SignatureMismatch,
    TimestampOutOfTolerance,
    UnreadableBody,
)
from clerk_sync.verify import SignedHeaders, Verifier, parse_headers
from tests.conftest import FIXTURES, OTHER_SECRET, SECRET, load_fixture

NOW = 1_750_000_000
BODY = encode(
    user_event(
        "user.created",
        user_object(user_id="user_2vX11zP8kQm3TbR6wYcN0dLe5Hs", created_at=NOW * 1000),
    )
)
_VECTOR_FILE: dict[str, Any] = json.loads(
    (FIXTURES / "signature-vectors.json").read_text(encoding="utf-8")
)
VECTORS: list[dict[str, Any]] = _VECTOR_FILE["vectors"]
NEGATIVE_CASES: dict[str, dict[str, str]] = {
    case["case"]: case for case in _VECTOR_FILE["negative_cases_from_suites"]
}
EXPECTED_STATUS: dict[type[RejectedDelivery], int] = {
    MissingHeader: 400,
    MalformedHeader: 400,
    UnreadableBody: 400,
    TimestampOutOfTolerance: 401,
    SignatureMismatch: 401,
}
ALL_SECRETS = (SECRET, OTHER_SECRET, *(v["secret"] for v in VECTORS))


def signed_headers(
    body: bytes = BODY,
    secret: str | list[str] = SECRET,
    *,
    timestamp: int = NOW,
    msg_id: str = "msg_2vX11zP8kQm3TbR6wYcN0dLe5Hs",
) -> dict[str, str]:
    return sign_headers(secret, body, msg_id=msg_id, timestamp=timestamp)


def sig_of(headers: dict[str, str]) -> str:
    """The base64 part of the single ``v1`` entry in ``headers``."""
    version, _, sig = headers["svix-signature"].partition(",")
    assert version == "v1"
    return sig


def check(
    headers: Any,
    body: bytes = BODY,
    *,
    secrets: list[str] | None = None,
    now: float = NOW,
    tolerance_seconds: int = 300,
) -> SignedHeaders:
    """The full path the web layer takes: headers (and the clock) first, then the body."""
    verifier = Verifier(secrets or [SECRET], tolerance_seconds=tolerance_seconds)
    parsed = verifier.check_headers(headers, now=now)
    verifier.verify(parsed, body)
    return parsed


def assert_rejected(
    exc: pytest.ExceptionInfo[RejectedDelivery], cls: type[RejectedDelivery], code: str
) -> str:
    """Exactly ``cls`` with ``code``, the documented status, and a secret-free sentence."""
    err = exc.value
    assert type(err) is cls
    assert isinstance(err, RejectedDelivery)
    assert err.code == code
    assert err.http_status == EXPECTED_STATUS[cls]
    assert err.to_dict() == {"error": code, "detail": err.detail}
    detail = err.detail
    assert len(detail) > 40
    assert detail.endswith(".")
    for secret in ALL_SECRETS:
        assert secret not in detail
        assert secret.removeprefix("whsec_") not in detail
    return detail


# --- the signer is svix's, pinned by the published vectors -----------------------------------


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v["msg_id"])
def test_published_vector_reproduces_with_svix_signer(vector: dict[str, Any]) -> None:
    when = datetime.fromtimestamp(int(vector["timestamp"]), tz=UTC)
    signature = Webhook(vector["secret"]).sign(vector["msg_id"], when, vector["payload"])
    assert signature == vector["expected_signature_header"]


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v["msg_id"])
def test_published_vector_is_the_documented_hmac(vector: dict[str, Any]) -> None:
    """Independent of svix: base64(HMAC-SHA256(b64decode(secret), "id.ts.body"))."""
    key = base64.b64decode(vector["secret"].removeprefix("whsec_") + "==")
    content = f"{vector['msg_id']}.{vector['timestamp']}.{vector['payload']}"
    assert content == vector.get("signed_content", content)
    digest = hmac.new(key, content.encode(), hashlib.sha256).digest()
    assert "v1," + base64.b64encode(digest).decode() == vector["expected_signature_header"]


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v["msg_id"])
def test_published_vector_reproduces_with_devtools_signer(vector: dict[str, Any]) -> None:
    headers = sign_headers(
        vector["secret"],
        vector["payload"].encode(),
        msg_id=vector["msg_id"],
        timestamp=int(vector["timestamp"]),
    )
    assert headers == {
        "svix-id": vector["msg_id"],
        "svix-timestamp": vector["timestamp"],
        "svix-signature": vector["expected_signature_header"],
    }


def vector_headers(vector: dict[str, Any], signature: str | None = None) -> dict[str, str]:
    return {
        "svix-id": vector["msg_id"],
        "svix-timestamp": vector["timestamp"],
        "svix-signature": signature or vector["expected_signature_header"],
    }


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v["msg_id"])
def test_published_vector_verifies_at_its_timestamp(vector: dict[str, Any]) -> None:
    parsed = check(
        vector_headers(vector),
        vector["payload"].encode(),
        secrets=[vector["secret"]],
        now=int(vector["timestamp"]),
    )
    assert parsed.msg_id == vector["msg_id"]
    assert parsed.timestamp_text == vector["timestamp"]


def test_published_vector_is_too_old_against_the_real_clock() -> None:
    vector = VECTORS[0]
    verifier = Verifier([vector["secret"]])
    with pytest.raises(TimestampOutOfTolerance) as exc:
        verifier.check_headers(vector_headers(vector))
    assert "in the past" in assert_rejected(
        exc, TimestampOutOfTolerance, "timestamp_out_of_tolerance"
    )


def test_published_near_miss_signature_is_refused() -> None:
    vector = VECTORS[0]
    near_miss = NEGATIVE_CASES["near-miss signature (last char changed)"]["signature_header"]
    with pytest.raises(SignatureMismatch) as exc:
        check(
            vector_headers(vector, near_miss),
            vector["payload"].encode(),
            secrets=[vector["secret"]],
            now=int(vector["timestamp"]),
        )
    assert_rejected(exc, SignatureMismatch, "signature_mismatch")


def test_published_valid_among_junk_and_unknown_versions_passes() -> None:
    vector = VECTORS[0]
    template = NEGATIVE_CASES["valid sig mixed with junk + unknown versions"]["signature_header"]
    header = template.replace("<valid>", vector["expected_signature_header"])
    check(
        vector_headers(vector, header),
        vector["payload"].encode(),
        secrets=[vector["secret"]],
        now=int(vector["timestamp"]),
    )


# --- valid deliveries ------------------------------------------------------------------------


def test_valid_delivery_passes_and_is_parsed() -> None:
    headers = signed_headers()
    parsed = check(headers)
    assert parsed == SignedHeaders(
        msg_id="msg_2vX11zP8kQm3TbR6wYcN0dLe5Hs",
        timestamp=NOW,
        timestamp_text=str(NOW),
        signatures=(base64.b64decode(sig_of(headers)),),
    )
    assert len(parsed.signatures[0]) == 32  # HMAC-SHA256


def test_valid_captured_clerk_payload_passes() -> None:
    body = load_fixture("user.created.json")
    check(signed_headers(body), body)


def test_valid_with_unbranded_webhook_headers() -> None:
    svix = signed_headers()
    unbranded = {name.replace("svix-", "webhook-"): value for name, value in svix.items()}
    assert set(unbranded) == {"webhook-id", "webhook-timestamp", "webhook-signature"}
    parsed = check(unbranded)
    assert parsed.msg_id == svix["svix-id"]


@pytest.mark.parametrize(
    "names",
    [
        ("SVIX-ID", "SVIX-TIMESTAMP", "SVIX-SIGNATURE"),
        ("Svix-Id", "Svix-Timestamp", "Svix-Signature"),
        ("sViX-iD", "svix-TIMESTAMP", "Svix-signature"),
        ("Webhook-Id", "WEBHOOK-TIMESTAMP", "webhook-Signature"),
    ],
)
def test_valid_with_header_names_in_mixed_case(names: tuple[str, str, str]) -> None:
    svix = signed_headers()
    values = (svix["svix-id"], svix["svix-timestamp"], svix["svix-signature"])
    check(dict(zip(names, values, strict=True)))


def test_valid_through_starlette_headers() -> None:
    """The web layer passes ``request.headers``; that mapping type must work too."""
    raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in signed_headers().items()]
    check(Headers(raw=raw))


def test_surrounding_whitespace_in_header_values_is_tolerated() -> None:
    headers = {name: f"  {value} " for name, value in signed_headers().items()}
    check(headers)


# --- missing and empty headers ---------------------------------------------------------------


@pytest.mark.parametrize("missing", ["svix-id", "svix-timestamp", "svix-signature"])
def test_missing_header_is_named(missing: str) -> None:
    headers = signed_headers()
    del headers[missing]
    with pytest.raises(MissingHeader) as exc:
        parse_headers(headers)
    detail = assert_rejected(exc, MissingHeader, "missing_header")
    assert detail.startswith(f"Missing header {missing}:")


@pytest.mark.parametrize("missing", ["webhook-timestamp", "webhook-signature"])
def test_missing_unbranded_header_is_named(missing: str) -> None:
    headers = {k.replace("svix-", "webhook-"): v for k, v in signed_headers().items()}
    del headers[missing]
    with pytest.raises(MissingHeader) as exc:
        parse_headers(headers)
    assert assert_rejected(exc, MissingHeader, "missing_header").startswith(
        f"Missing header {missing}:"
    )


def test_no_headers_at_all_names_all_three() -> None:
    with pytest.raises(MissingHeader) as exc:
        Verifier([SECRET]).check_headers({"content-type": "application/json"}, now=NOW)
    detail = assert_rejected(exc, MissingHeader, "missing_header")
    assert detail.startswith("Missing header svix-id, svix-timestamp, svix-signature:")


@pytest.mark.parametrize("empty", ["", "   ", "\t"], ids=["empty", "spaces", "tab"])
@pytest.mark.parametrize("name", ["svix-id", "svix-timestamp", "svix-signature"])
def test_empty_header_value_counts_as_missing(name: str, empty: str) -> None:
    headers = signed_headers() | {name: empty}
    with pytest.raises(MissingHeader) as exc:
        parse_headers(headers)
    assert assert_rejected(exc, MissingHeader, "missing_header").startswith(
        f"Missing header {name}:"
    )


# --- garbled headers -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "timestamp",
    [
        "hello",
        "1.5",
        f"{NOW}.0",
        f"0{NOW}",
        "0",
        f"-{NOW}",
        f"+{NOW}",
        "1e9",
        "9" * 13,
        "9" * 400,
        f"{NOW} 1",
        "１７５００００００００",  # full-width digits: isdigit() but not ASCII
        "¹²³",  # superscripts: isdigit() but int() refuses them
    ],
)
def test_garbled_timestamp_is_malformed(timestamp: str) -> None:
    headers = signed_headers() | {"svix-timestamp": timestamp}
    with pytest.raises(MalformedHeader) as exc:
        Verifier([SECRET]).check_headers(headers, now=NOW)
    detail = assert_rejected(exc, MalformedHeader, "malformed_header")
    assert detail.startswith("svix-timestamp must be whole seconds")


def test_far_future_timestamp_within_digit_limit_is_out_of_tolerance() -> None:
    headers = signed_headers() | {"svix-timestamp": "9" * 11}
    with pytest.raises(TimestampOutOfTolerance) as exc:
        Verifier([SECRET]).check_headers(headers, now=NOW)
    assert "in the future" in assert_rejected(
        exc, TimestampOutOfTolerance, "timestamp_out_of_tolerance"
    )


@pytest.mark.parametrize(
    "msg_id",
    ["msg 2vX11zP8kQm3", "msg\t2vX11", "msg\x002vX11", "msg\u200b2vX11", "m" * 256],
    ids=["space", "tab", "nul", "zero-width", "too-long"],
)
def test_garbled_svix_id_is_malformed(msg_id: str) -> None:
    headers = signed_headers() | {"svix-id": msg_id}
    with pytest.raises(MalformedHeader) as exc:
        parse_headers(headers)
    assert assert_rejected(exc, MalformedHeader, "malformed_header").startswith(
        "svix-id is not a message id"
    )


def test_svix_id_at_the_length_limit_is_accepted() -> None:
    msg_id = "m" * 255
    check(signed_headers(msg_id=msg_id))


@pytest.mark.parametrize("signature", ["garbage", "v1", "v1,", "v1, v2,", "v1,  v1a,"])
def test_signature_header_without_any_entry_is_malformed(signature: str) -> None:
    headers = signed_headers() | {"svix-signature": signature}
    with pytest.raises(MalformedHeader) as exc:
        parse_headers(headers)
    detail = assert_rejected(exc, MalformedHeader, "malformed_header")
    assert detail.startswith("svix-signature has no entry of the form 'v1,<base64 signature>'")


@pytest.mark.parametrize(
    "bad_b64",
    ["abc", "!!!!", "@@notbase64@@==", "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE"],
    ids=["bad-padding", "bad-chars", "mixed", "unpadded"],
)
def test_bad_base64_in_v1_entry_is_a_mismatch_not_a_binascii_error(bad_b64: str) -> None:
    headers = signed_headers() | {"svix-signature": f"v1,{bad_b64}"}
    with pytest.raises(SignatureMismatch) as exc:
        check(headers)
    assert "has no v1 signature" in assert_rejected(exc, SignatureMismatch, "signature_mismatch")


# --- signatures that do not match ------------------------------------------------------------


def test_wrong_secret_is_a_mismatch() -> None:
    with pytest.raises(SignatureMismatch) as exc:
        check(signed_headers(secret=OTHER_SECRET))
    detail = assert_rejected(exc, SignatureMismatch, "signature_mismatch")
    assert "CLERK_WEBHOOK_SECRET" in detail


def _flip_one_byte(body: bytes) -> bytes:
    middle = len(body) // 2
    return body[:middle] + bytes([body[middle] ^ 0x01]) + body[middle + 1 :]


@pytest.mark.parametrize(
    "tamper",
    [
        _flip_one_byte,
        lambda b: json.dumps(json.loads(b), indent=2).encode(),
        lambda b: json.dumps(json.loads(b)).encode(),
        lambda b: b + b"\n",
        lambda b: b"",
    ],
    ids=["one-byte-changed", "reindented", "reserialized-json-dumps", "trailing-newline", "empty"],
)
def test_body_that_is_not_the_signed_bytes_is_a_mismatch(
    tamper: Callable[[bytes], bytes],
) -> None:
    headers = signed_headers()
    changed = tamper(BODY)
    assert changed != BODY
    with pytest.raises(SignatureMismatch) as exc:
        check(headers, changed)
    assert_rejected(exc, SignatureMismatch, "signature_mismatch")


def test_signature_for_another_svix_id_is_a_mismatch() -> None:
    headers = signed_headers(msg_id="msg_aaaaaaaaaaaaaaaaaaaaaaaaaaa")
    headers["svix-id"] = "msg_bbbbbbbbbbbbbbbbbbbbbbbbbbb"
    with pytest.raises(SignatureMismatch) as exc:
        check(headers)
    assert_rejected(exc, SignatureMismatch, "signature_mismatch")


@pytest.mark.parametrize("delta", [-1, 1, 60])
def test_signature_for_another_timestamp_is_a_mismatch(delta: int) -> None:
    headers = signed_headers(timestamp=NOW) | {"svix-timestamp": str(NOW + delta)}
    with pytest.raises(SignatureMismatch) as exc:
        check(headers)
    assert_rejected(exc, SignatureMismatch, "signature_mismatch")


@pytest.mark.parametrize("version", ["v2", "v1a", "V1", "v0", "v11"])
def test_valid_signature_under_another_version_is_a_mismatch(version: str) -> None:
    headers = signed_headers()
    headers["svix-signature"] = f"{version},{sig_of(headers)}"
    with pytest.raises(SignatureMismatch) as exc:
        check(headers)
    detail = assert_rejected(exc, SignatureMismatch, "signature_mismatch")
    assert detail.startswith("svix-signature has no v1 signature")


def test_only_v1a_entry_is_a_mismatch() -> None:
    ed25519_sig = base64.b64encode(bytes(range(64))).decode()
    headers = signed_headers() | {"svix-signature": f"v1a,{ed25519_sig}"}
    with pytest.raises(SignatureMismatch) as exc:
        check(headers)
    assert_rejected(exc, SignatureMismatch, "signature_mismatch")


# --- the timestamp window --------------------------------------------------------------------


@pytest.mark.parametrize(("offset", "direction"), [(-360, "in the past"), (360, "in the future")])
def test_timestamp_six_minutes_off_is_refused(offset: int, direction: str) -> None:
    headers = signed_headers(timestamp=NOW + offset)
    with pytest.raises(TimestampOutOfTolerance) as exc:
        check(headers)
    detail = assert_rejected(exc, TimestampOutOfTolerance, "timestamp_out_of_tolerance")
    assert "360 s" in detail
    assert direction in detail
    assert "±300 s" in detail


@pytest.mark.parametrize("offset", [-240, 240, -300, 300, 0])
def test_timestamp_within_five_minutes_passes(offset: int) -> None:
    check(signed_headers(timestamp=NOW + offset))


@pytest.mark.parametrize("offset", [-301, 301])
def test_timestamp_one_second_past_the_limit_is_refused(offset: int) -> None:
    with pytest.raises(TimestampOutOfTolerance) as exc:
        check(signed_headers(timestamp=NOW + offset))
    assert "301 s" in assert_rejected(exc, TimestampOutOfTolerance, "timestamp_out_of_tolerance")


def test_tight_tolerance_refuses_two_minutes() -> None:
    with pytest.raises(TimestampOutOfTolerance) as exc:
        check(signed_headers(timestamp=NOW - 120), tolerance_seconds=60)
    detail = assert_rejected(exc, TimestampOutOfTolerance, "timestamp_out_of_tolerance")
    assert "120 s in the past" in detail
    assert "±60 s" in detail


@pytest.mark.parametrize("offset", [-600, 600])
def test_wide_tolerance_accepts_ten_minutes(offset: int) -> None:
    check(signed_headers(timestamp=NOW + offset), tolerance_seconds=900)


def test_default_tolerance_is_five_minutes() -> None:
    assert Verifier([SECRET]).tolerance_seconds == 300


# --- several signatures in one header --------------------------------------------------------


def test_junk_v1_first_then_valid_passes() -> None:
    headers = signed_headers()
    junk = sig_of(signed_headers(secret=OTHER_SECRET))
    headers["svix-signature"] = f"v1,{junk} v1,{sig_of(headers)}"
    assert len(check(headers).signatures) == 2


def test_valid_entry_among_junk_v1_and_v2_entries_passes() -> None:
    headers = signed_headers()
    junk = sig_of(signed_headers(secret=OTHER_SECRET))
    headers["svix-signature"] = (
        f"  v2,{junk}  v1,{junk}   v1,notbase64 garbage v1a,{junk} v1,{sig_of(headers)} v1,{junk}"
    )
    check(headers)


# --- secret rotation -------------------------------------------------------------------------


@pytest.mark.parametrize("signed_with", [SECRET, OTHER_SECRET], ids=["old", "new"])
def test_rotation_accepts_either_configured_secret(signed_with: str) -> None:
    check(signed_headers(secret=signed_with), secrets=[SECRET, OTHER_SECRET])


def test_after_rotation_the_old_secret_is_refused() -> None:
    with pytest.raises(SignatureMismatch) as exc:
        check(signed_headers(secret=SECRET), secrets=[OTHER_SECRET])
    assert_rejected(exc, SignatureMismatch, "signature_mismatch")


@pytest.mark.parametrize(
    "configured", [[SECRET], [OTHER_SECRET], [SECRET, OTHER_SECRET]], ids=["old", "new", "both"]
)
def test_header_signed_by_both_secrets_passes_with_either(configured: list[str]) -> None:
    headers = signed_headers(secret=[SECRET, OTHER_SECRET])
    assert headers["svix-signature"].count("v1,") == 2
    check(headers, secrets=configured)


def test_verifier_needs_at_least_one_secret() -> None:
    with pytest.raises(ValueError, match="at least one signing secret"):
        Verifier([])


# --- the body --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "offset"), [(b"\xff{}", 0), (b'{"name": "Zo\xeb"}', 12), (b"{}\x80", 2)]
)
def test_non_utf8_body_is_unreadable(body: bytes, offset: int) -> None:
    headers = signed_headers()
    with pytest.raises(UnreadableBody) as exc:
        check(headers, body)
    detail = assert_rejected(exc, UnreadableBody, "body_not_utf8")
    assert f"offset {offset}" in detail


# --- the error classes -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "code", "status"),
    [
        (MissingHeader, "missing_header", 400),
        (MalformedHeader, "malformed_header", 400),
        (UnreadableBody, "body_not_utf8", 400),
        (TimestampOutOfTolerance, "timestamp_out_of_tolerance", 401),
        (SignatureMismatch, "signature_mismatch", 401),
    ],
)
def test_every_verification_error_is_a_rejected_delivery(
    cls: type[RejectedDelivery], code: str, status: int
) -> None:
    assert issubclass(cls, RejectedDelivery)
    assert cls.code == code
    assert cls.http_status == status
    assert cls("x").to_dict() == {"error": code, "detail": "x"}


# --- nothing but RejectedDelivery ever escapes -----------------------------------------------


def assert_only_rejections(run: Callable[[], object]) -> None:
    """``run`` passes or raises one of the verification errors; anything else propagates."""
    rejected: RejectedDelivery | None = None
    try:
        run()
    except RejectedDelivery as exc:
        rejected = exc
    if rejected is not None:
        assert type(rejected) in EXPECTED_STATUS
        assert rejected.http_status == EXPECTED_STATUS[type(rejected)]


_NAMES = st.sampled_from(
    [
        "svix-id",
        "svix-timestamp",
        "svix-signature",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "SVIX-ID",
        "Svix-Signature",
    ]
)
_SIG_ENTRY = st.builds(
    lambda version, sep, sig: f"{version}{sep}{sig}",
    st.sampled_from(["v1", "v2", "v1a", "", "V1"]),
    st.sampled_from([",", "", ",,"]),
    st.one_of(
        st.text(max_size=60), st.binary(max_size=40).map(lambda b: base64.b64encode(b).decode())
    ),
)
_VALUES = st.one_of(
    st.text(max_size=40),
    st.just(str(NOW)),
    st.integers(min_value=-(10**15), max_value=10**15).map(str),
    st.lists(_SIG_ENTRY, max_size=4).map(" ".join),
)


@settings(max_examples=300, deadline=None)
@given(
    headers=st.dictionaries(_NAMES, _VALUES, max_size=6),
    body=st.one_of(st.binary(max_size=64), st.just(BODY)),
)
def test_only_rejected_delivery_ever_escapes(headers: dict[str, str], body: bytes) -> None:
    assert_only_rejections(lambda: check(headers, body, secrets=[SECRET, OTHER_SECRET]))


@settings(max_examples=300, deadline=None)
@given(
    field=st.sampled_from(["svix-id", "svix-timestamp", "svix-signature"]),
    value=_VALUES,
    body=st.one_of(st.binary(max_size=64), st.just(BODY)),
)
def test_one_garbled_header_in_a_valid_delivery_never_leaks(
    field: str, value: str, body: bytes
) -> None:
    headers = signed_headers() | {field: value}
    assert_only_rejections(lambda: check(headers, body))


def test_verify_with_timestamp_beyond_year_9999_is_rejected_not_value_error() -> None:
    headers = signed_headers() | {"svix-timestamp": "999999999999"}
    with pytest.raises(RejectedDelivery):
        parse_headers(headers)
