"""The log formatters: one readable (or JSON) line per delivery, nothing private in either."""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from clerk_sync.cli.common import configure_logging
from clerk_sync.config import Settings
from clerk_sync.devtools import encode, sign_headers, user_event, user_object
from clerk_sync.logformat import (
    JsonFormatter,
    TextFormatter,
    escape_controls,
    make_formatter,
    redact,
    wants_colour,
)
from clerk_sync.store import make_engine, upgrade
from clerk_sync.web import WEBHOOK_PATH, create_app
from tests.conftest import OTHER_SECRET, SECRET

RED = "\x1b[31m"
GREEN = "\x1b[32m"


def delivery_record(level: int = logging.INFO, **fields: Any) -> logging.LogRecord:
    """A record shaped as web/webhook.py logs a delivery: message plus ``extra["delivery"]``."""
    values = {
        "svix_id": "msg_2p",
        "type": "user.created",
        "subject_id": "user_2vX",
        "outcome": "processed",
        "ms": 3.7,
        "reason": None,
        **fields,
    }
    tail = f" — {values['reason']}" if values["reason"] else ""
    record = logging.LogRecord(
        "clerk_sync.delivery",
        level,
        __file__,
        1,
        "%s %s %s %s %.1fms%s",
        (
            values["svix_id"],
            values["type"] or "-",
            values["subject_id"] or "-",
            values["outcome"],
            values["ms"],
            tail,
        ),
        None,
    )
    record.delivery = values
    return record


class FakeTty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ada.lovelace@example.com", "a***@example.com"),
        ("to <grace@mail.example.co.uk>.", "to <g***@mail.example.co.uk>."),
        ("two: a@example.com, b.c@example.org", "two: a***@example.com, b***@example.org"),
        (
            "CLERK_WEBHOOK_SECRET=whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw x",
            "CLERK_WEBHOOK_SECRET=whsec_*** x",
        ),
        ("key sk_live_abc123XYZ and sk_test_q", "key sk_live_*** and sk_test_***"),
        ("msg_2p user_2vX processed", "msg_2p user_2vX processed"),
        ("postgresql://postgres@127.0.0.1:5432/db", "postgresql://postgres@127.0.0.1:5432/db"),
    ],
)
def test_redact(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_plain_text_delivery_line_keeps_the_documented_layout() -> None:
    record = delivery_record()
    line = TextFormatter(colour=False).format(record)
    stamp, level, rest = line[:19], line[20:27], line[28:]
    assert len(stamp) == 19
    assert stamp[4] == "-"
    assert stamp[13] == ":"
    assert level == "INFO   "
    assert rest == "msg_2p user.created user_2vX processed 3.7ms"
    assert rest == record.getMessage()
    assert "\x1b" not in line


def test_plain_text_failure_has_its_reason() -> None:
    record = delivery_record(
        logging.WARNING,
        type=None,
        subject_id=None,
        outcome="rejected:signature_mismatch",
        ms=0.3,
        reason="No signature matches",
    )
    line = TextFormatter(colour=False).format(record)
    assert line.endswith(
        "WARNING msg_2p - - rejected:signature_mismatch 0.3ms — No signature matches"
    )


def test_colour_marks_failures_red_and_success_green() -> None:
    failed = TextFormatter(colour=True).format(
        delivery_record(logging.WARNING, outcome="failed", reason="not JSON for ada@example.com")
    )
    assert f"{RED}failed" in failed
    assert f"{RED} — not JSON for a***@example.com" in failed
    ok = TextFormatter(colour=True).format(delivery_record())
    assert f"{GREEN}processed" in ok
    assert RED not in ok


def test_text_masks_emails_and_secrets_in_plain_messages_and_tracebacks() -> None:
    try:
        raise ValueError("boom for grace.hopper@example.com with whsec_c2VjcmV0c2VjcmV0c2VjcmV0")
    except ValueError:
        record = logging.LogRecord(
            "x", logging.ERROR, __file__, 1, "user %s", ("ada@example.com",), sys.exc_info()
        )
    line = TextFormatter().format(record)
    assert "ada@example.com" not in line
    assert "a***@example.com" in line
    assert "grace.hopper@" not in line
    assert "g***@example.com" in line
    assert "c2VjcmV0" not in line
    assert "whsec_***" in line


def test_json_is_one_object_per_line_with_the_delivery_fields() -> None:
    record = delivery_record(
        logging.INFO, outcome="stale", reason="updated_at 1 is not newer than the stored 2"
    )
    line = JsonFormatter().format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["level"] == "info"
    assert entry["logger"] == "clerk_sync.delivery"
    assert entry["time"].endswith("Z")
    assert {k: entry[k] for k in ("svix_id", "type", "subject_id", "outcome", "ms")} == {
        "svix_id": "msg_2p",
        "type": "user.created",
        "subject_id": "user_2vX",
        "outcome": "stale",
        "ms": 3.7,
    }
    assert entry["reason"] == "updated_at 1 is not newer than the stored 2"
    assert entry["message"] == record.getMessage()


def test_json_masks_every_string() -> None:
    record = delivery_record(svix_id="ada@example.com", reason="secret whsec_abcdefabcdefabcdef")
    entry = json.loads(JsonFormatter().format(record))
    assert entry["svix_id"] == "a***@example.com"
    assert entry["reason"] == "secret whsec_***"
    assert "ada@example.com" not in entry["message"]


def test_json_carries_exceptions_redacted() -> None:
    try:
        raise RuntimeError("for ada@example.com")
    except RuntimeError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "oops", (), sys.exc_info())
    entry = json.loads(JsonFormatter().format(record))
    assert "RuntimeError: for a***@example.com" in entry["exception"]


def test_colour_only_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    assert wants_colour(FakeTty()) is True
    assert wants_colour(io.StringIO()) is False
    monkeypatch.setenv("NO_COLOR", "1")
    assert wants_colour(FakeTty()) is False
    monkeypatch.delenv("NO_COLOR")
    monkeypatch.setenv("FORCE_COLOR", "1")
    assert wants_colour(io.StringIO()) is True
    assert isinstance(make_formatter("json", FakeTty()), JsonFormatter)
    text = make_formatter("text", io.StringIO())
    assert isinstance(text, TextFormatter)
    assert text.colour is True


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.usefixtures("restore_logging")
@pytest.mark.parametrize("log_format", ["text", "json"])
def test_real_deliveries_through_configure_logging(
    log_format: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The webhook route's own records, through the formatter ``configure_logging`` installs."""
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    monkeypatch.setenv("NO_COLOR", "1")
    configure_logging("INFO", log_format)  # type: ignore[arg-type]
    url = f"sqlite:///{tmp_path / 'log.db'}"
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    settings = Settings(_env_file=None, clerk_webhook_secret=SECRET, database_url=url)  # type: ignore[call-arg]
    user = user_object(email="ada.lovelace@example.com")
    body = encode(user_event("user.created", user))
    with TestClient(create_app(settings)) as client:
        ok = client.post(WEBHOOK_PATH, content=body, headers=sign_headers(SECRET, body))
        bad = client.post(WEBHOOK_PATH, content=body, headers=sign_headers(OTHER_SECRET, body))
        # A svix-id that is an e-mail address is logged as received: masked.
        odd = client.post(WEBHOOK_PATH, content=body, headers={"svix-id": "ada@example.com"})
    assert (ok.status_code, bad.status_code, odd.status_code) == (200, 401, 400)
    lines = [line for line in stream.getvalue().splitlines() if "msg_" in line or "***@" in line]
    assert len(lines) == 3, stream.getvalue()
    output = stream.getvalue()
    assert "ada@example.com" not in output
    assert "ada.lovelace" not in output
    assert SECRET.removeprefix("whsec_") not in output
    if log_format == "json":
        entries = [json.loads(line) for line in lines]
        assert [e["outcome"] for e in entries] == [
            "processed",
            "rejected:signature_mismatch",
            "rejected:missing_header",
        ]
        assert entries[0]["subject_id"] == user["id"]
        assert entries[2]["svix_id"] == "a***@example.com"
        assert all(isinstance(e["ms"], float | int) for e in entries)
    else:
        assert f"user.created {user['id']} processed " in lines[0]
        assert " rejected:signature_mismatch " in lines[1]
        assert " — No signature" in lines[1]
        assert lines[2].split()[3] == "a***@example.com"


# --- no value can forge a line -----------------------------------------------------------------

FORGED_LINE = "\n1999-01-01 00:00:00 INFO    msg_forged user.deleted user_admin processed 1.0ms"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("user_2vX", "user_2vX"),
        ("é ü 中文 🙂", "é ü 中文 🙂"),
        ("a\nb\rc\td", "a\\nb\\rc\\td"),
        ("\x1b[31mred\x1b[0m", "\\x1b[31mred\\x1b[0m"),
        ("\x00\x07\x7f\x85\x9b", "\\x00\\x07\\x7f\\x85\\x9b"),
        ("line\u2028sep\u2029", "line\\u2028sep\\u2029"),
        ("abc\u202edcba\u2066", "abc\\u202edcba\\u2066"),
    ],
)
def test_escape_controls(text: str, expected: str) -> None:
    assert escape_controls(text) == expected


CONTROL_VALUES = [FORGED_LINE, "\r\x1b[2K\x1b[1A", "\x85next", "\u2028next", "x\u202eredro"]


@pytest.mark.parametrize("value", CONTROL_VALUES)
@pytest.mark.parametrize("field", ["svix_id", "type", "subject_id", "reason", "outcome"])
def test_no_logged_value_reaches_the_text_line_raw(field: str, value: str) -> None:
    record = delivery_record(logging.WARNING, **{field: value})
    for colour in (False, True):
        line = TextFormatter(colour=colour).format(record)
        assert len(line.splitlines()) == 1, line
        assert value not in line
        assert "\x1b[2K" not in line
        assert "\r" not in line
    plain = TextFormatter().format(
        logging.LogRecord("clerk_sync.guard", logging.WARNING, __file__, 1, "x %s", (value,), None)
    )
    assert len(plain.splitlines()) == 1
    assert value not in plain


@pytest.mark.parametrize("value", CONTROL_VALUES)
def test_no_logged_value_reaches_the_json_line_raw(value: str) -> None:
    record = delivery_record(logging.WARNING, subject_id=value, reason=value)
    line = JsonFormatter().format(record)
    assert len(line.splitlines()) == 1, line
    assert line.isprintable()
    entry = json.loads(line)
    assert entry["subject_id"] == value  # escaped in the line, faithful to a JSON reader
    assert entry["reason"] == value


def test_a_traceback_cannot_pass_for_a_record() -> None:
    try:
        raise ValueError(f"bad id{FORGED_LINE}")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "oops", (), sys.exc_info())
    lines = TextFormatter().format(record).splitlines()
    assert lines[0].endswith("oops")
    assert all(line.startswith("  ") for line in lines[1:])
    assert any("ValueError: bad id" in line for line in lines)
    assert any(line.strip().startswith("1999-01-01 00:00:00 INFO") for line in lines)  # indented


@pytest.mark.usefixtures("restore_logging")
@pytest.mark.parametrize("log_format", ["text", "json"])
def test_a_signed_newline_in_data_id_is_one_log_line(
    log_format: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    monkeypatch.setenv("FORCE_COLOR", "1")  # colour too: it must not re-open what was escaped
    configure_logging("INFO", log_format)  # type: ignore[arg-type]
    url = f"sqlite:///{tmp_path / 'log.db'}"
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    settings = Settings(_env_file=None, clerk_webhook_secret=SECRET, database_url=url)  # type: ignore[call-arg]
    forged_id = "user_2vX" + FORGED_LINE + "\x1b[0m"
    body = encode(user_event("user.created", user_object(user_id=forged_id)))
    with TestClient(create_app(settings)) as client:
        response = client.post(WEBHOOK_PATH, content=body, headers=sign_headers(SECRET, body))
    assert response.status_code == 200, response.text
    delivery_lines = [line for line in stream.getvalue().splitlines() if "user_2vX" in line]
    assert len(delivery_lines) == 1, stream.getvalue()
    assert not [line for line in stream.getvalue().splitlines() if line.startswith("1999")]
    if log_format == "json":
        assert json.loads(delivery_lines[0])["subject_id"] == forged_id
    else:
        assert "user_2vX\\n1999-01-01" in delivery_lines[0]
