"""How ``trigger``/``send`` read an answer, pick the signing secret, and refuse a bad URL."""

from __future__ import annotations

import httpx
import pytest

from clerk_sync.cli.sending import signing_secret
from clerk_sync.config import Settings
from clerk_sync.devtools.sender import Answer, check_url, describe, unreachable
from clerk_sync.errors import ConfigError, InvalidParameter
from tests.conftest import OTHER_SECRET, SECRET

URL = "http://127.0.0.1:9/api/webhooks/clerk"


def settings(secret: str) -> Settings:
    return Settings(_env_file=None, clerk_webhook_secret=secret)  # type: ignore[call-arg]


def answer(status: int, **kwargs: object) -> Answer:
    return describe(httpx.Response(status, **kwargs))  # type: ignore[arg-type]


def test_clerk_sync_answers() -> None:
    ok = answer(200, json={"status": "processed", "duplicate": False, "type": "user.created"})
    assert (ok.outcome, ok.reason, ok.ok) == ("processed", None, True)
    dup = answer(200, json={"status": "stale", "duplicate": True, "reason": "older"})
    assert (dup.outcome, dup.reason) == ("stale (duplicate)", "older")
    refused = answer(401, json={"error": "signature_mismatch", "detail": "No signature …"})
    assert (refused.outcome, refused.reason, refused.ok) == (
        "signature_mismatch",
        "No signature …",
        False,
    )
    assert refused.meets("signature_mismatch")
    assert not refused.meets("2xx")
    failed = answer(
        422, json={"error": "payload_invalid", "detail": "not an object", "status": "failed"}
    )
    assert (failed.outcome, failed.reason) == ("payload_invalid", "not an object")


def test_other_answers_say_what_answered() -> None:
    moved = answer(308, headers={"location": "https://www.example.com/api/webhooks/clerk"})
    assert moved.outcome == "redirect"
    assert "Svix does not follow redirects" in (moved.reason or "")
    missing = answer(404, text="Not Found")
    assert (missing.outcome, missing.reason) == ("HTTP 404", "not clerk-sync's answer: Not Found")
    assert answer(502, text="").reason is None


def test_urls_are_checked_before_anything_is_signed() -> None:
    assert check_url(URL) == URL
    for bad in ("127.0.0.1:8000/api/webhooks/clerk", "ftp://x/y", "http://"):
        with pytest.raises(InvalidParameter, match="is not an http:// or https:// URL"):
            check_url(bad)


def test_transport_failures_are_one_sentence() -> None:
    refused = unreachable(URL, httpx.ConnectError("[Errno 111] Connection refused"))
    assert refused.detail == f"could not connect to {URL}: Connection refused."
    assert refused.exit_code == 1
    slow = unreachable(URL, httpx.ReadTimeout("timed out"))
    assert slow.detail == f"no answer from {URL} within 15 s."


def test_signing_secret() -> None:
    assert signing_secret(None, settings(f"{SECRET},{OTHER_SECRET}")) == SECRET
    assert signing_secret(f" {OTHER_SECRET} ", settings("")) == OTHER_SECRET
    with pytest.raises(ConfigError) as unset:
        signing_secret(None, settings(""))
    assert "CLERK_WEBHOOK_SECRET is not set" in unset.value.detail
    assert "`clerk-sync dev` generates one" in unset.value.detail
    with pytest.raises(ConfigError) as placeholder:
        signing_secret("whsec_your_secret_here", settings(SECRET))
    assert placeholder.value.detail.startswith("--secret is not valid base64")
    assert "your_secret_here" not in placeholder.value.detail
