"""``clerk-sync verify``'s reasoning, in-process: the first problem in the endpoint's words, and
how a body was modified. (The command itself is run as a subprocess in tests/cli.)"""

from __future__ import annotations

import json
import time

import pytest

from clerk_sync.devtools import encode, sign_headers, user_event, user_object
from clerk_sync.devtools.diagnose import diagnose
from clerk_sync.verify import Verifier, parse_headers
from tests.conftest import OTHER_SECRET, SECRET, load_fixture

NOW = time.time()
"""The verifier's clock, taken anew before each test: headers are signed at call time, and a
clock taken at collection is minutes old by the time a long suite gets here."""
CAPTURED = load_fixture("user.created.json")  # pretty-printed, ends with a newline


@pytest.fixture(autouse=True)
def _now() -> None:
    global NOW
    NOW = time.time()


def test_valid() -> None:
    headers = sign_headers(SECRET, CAPTURED)
    found = diagnose(Verifier([OTHER_SECRET, SECRET]), headers, CAPTURED, now=NOW)
    assert found.ok
    assert found.problem is None
    assert found.secret_index == 1


def test_matches_and_matching_secret() -> None:
    body = encode(user_event("user.created", user_object()))
    signed = parse_headers(sign_headers(SECRET, body))
    verifier = Verifier([OTHER_SECRET, SECRET])
    assert verifier.matches(signed, body)
    assert verifier.matching_secret(signed, body) == 1
    assert not verifier.matches(signed, body + b" ")
    assert verifier.matching_secret(signed, b"\xff") is None
    assert Verifier([OTHER_SECRET]).matching_secret(signed, body) is None


@pytest.mark.parametrize(
    ("change", "code"),
    [
        (lambda h: {k: v for k, v in h.items() if k != "svix-signature"}, "missing_header"),
        (lambda h: {**h, "svix-timestamp": "yesterday"}, "malformed_header"),
        (lambda h: {**h, "svix-signature": "v1a,abc"}, "signature_mismatch"),
    ],
)
def test_header_problems_are_the_endpoints(change: object, code: str) -> None:
    headers = change(sign_headers(SECRET, CAPTURED))  # type: ignore[operator]
    found = diagnose(Verifier([SECRET]), headers, CAPTURED, now=NOW)
    assert found.problem is not None
    assert found.problem.code == code
    assert found.body_modified is None


def test_expired_says_whether_the_signature_matches() -> None:
    old = int(NOW) - 3_600
    good = diagnose(
        Verifier([SECRET]), sign_headers(SECRET, CAPTURED, timestamp=old), CAPTURED, now=NOW
    )
    assert good.problem is not None
    assert good.problem.code == "timestamp_out_of_tolerance"
    assert "3600 s in the past" in good.problem.detail
    assert "±300 s" in good.problem.detail
    assert good.secret_index == 0
    bad = diagnose(
        Verifier([SECRET]), sign_headers(OTHER_SECRET, CAPTURED, timestamp=old), CAPTURED, now=NOW
    )
    assert bad.secret_index is None


def test_far_future_timestamp() -> None:
    headers = sign_headers(SECRET, CAPTURED, timestamp=int(NOW) + 10 * 365 * 86_400)
    found = diagnose(Verifier([SECRET]), headers, CAPTURED, now=NOW)
    assert found.problem is not None
    assert found.problem.code == "timestamp_out_of_tolerance"
    assert "in the future" in found.problem.detail
    assert found.secret_index == 0


def test_wrong_secret_is_a_mismatch_without_modification() -> None:
    headers = sign_headers(OTHER_SECRET, CAPTURED)
    found = diagnose(Verifier([SECRET]), headers, CAPTURED, now=NOW)
    assert found.problem is not None
    assert found.problem.code == "signature_mismatch"
    assert found.body_modified is None


def test_non_utf8_body() -> None:
    headers = sign_headers(SECRET, CAPTURED)
    found = diagnose(Verifier([SECRET]), headers, b"\xff\xfe{}", now=NOW)
    assert found.problem is not None
    assert found.problem.code == "body_not_utf8"


def test_trailing_newline_added() -> None:
    headers = sign_headers(SECRET, CAPTURED)
    found = diagnose(Verifier([SECRET]), headers, CAPTURED + b"\n", now=NOW)
    assert found.body_modified is not None
    assert "trailing newline is removed" in found.body_modified


def test_crlf_and_other_trailing_whitespace() -> None:
    body = encode(user_event("user.created", user_object()))
    headers = sign_headers(SECRET, body)
    crlf = diagnose(Verifier([SECRET]), headers, body + b"\r\n", now=NOW)
    assert crlf.body_modified is not None
    assert "newline" in crlf.body_modified
    spaces = diagnose(Verifier([SECRET]), headers, body + b" \n\n", now=NOW)
    assert spaces.body_modified is not None
    assert "whitespace" in spaces.body_modified


@pytest.mark.parametrize(
    ("reserialize", "label"),
    [
        (lambda o: json.dumps(o), "compact JSON"),
        (lambda o: json.dumps(o, indent=4), "compact JSON"),
        (lambda o: json.dumps(o, separators=(",", ":")), "JSON indented by 2 spaces"),
    ],
)
def test_reserialized_body_is_named(reserialize: object, label: str) -> None:
    """Signed compact (orjson) or pretty (the capture), received re-serialized another way."""
    original = CAPTURED if label.startswith("JSON indented") else encode(json.loads(CAPTURED))
    headers = sign_headers(SECRET, original)
    received = reserialize(json.loads(original)).encode()  # type: ignore[operator]
    found = diagnose(Verifier([SECRET]), headers, received, now=NOW)
    assert found.problem is not None
    assert found.problem.code == "signature_mismatch"
    assert found.body_modified is not None
    assert "parsed and re-serialized" in found.body_modified
    assert label in found.body_modified
