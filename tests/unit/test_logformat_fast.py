"""The delivery log line's fast path: byte for byte what the plain code wrote.

The formatters cache the formatted second and the level column and clean the delivery's three
values in one pass; ``_log_line`` makes its record itself. Each is checked against the
straightforward code it replaced, kept here as the reference.
"""

from __future__ import annotations

import gc
import io
import logging
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from clerk_sync.logformat import JsonFormatter, TextFormatter
from clerk_sync.web import webhook
from tests.helpers.old_logformat import OldJsonFormatter, OldTextFormatter, old_time
from tests.unit.test_logformat import delivery_record

# --- the reference: the formatters as they were (tests/helpers/old_logformat.py) -------------


def reference_text(record: logging.LogRecord, colour: bool) -> str:
    return OldTextFormatter(colour=colour).format(record)


def reference_json(record: logging.LogRecord) -> str:
    return OldJsonFormatter().format(record)


NASTY = st.sampled_from(
    [
        "ada@example.com",
        " b.c@mail.example.co.uk ",
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "sk_live_abc",
        "sk_test_",
        "x@",
        "@example.com",
        " ",
        "-",
        "\n",
        "\x1b[31m",
        "\u202e",
        "\x85",
        "é",
        "msg_2p",
        "user_2vX",
        "sec_",
    ]
)
VALUES = st.one_of(
    st.none(),
    st.just(""),
    st.text(max_size=30),
    st.lists(st.one_of(NASTY, st.text(max_size=4)), max_size=6).map("".join),
)
CREATED = st.one_of(
    st.floats(min_value=0, max_value=4_102_444_800, allow_nan=False),
    st.integers(min_value=0, max_value=4_102_444_800).map(float),
    # just under a second, a millisecond, a tie: where rounding and carrying live
    st.integers(min_value=1_600_000_000, max_value=1_900_000_000).flatmap(
        lambda s: st.sampled_from([s + 0.9999995, s + 0.9999996, s + 0.0005, s + 0.0015, s + 0.5])
    ),
)
LEVELS = st.sampled_from([logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR, 60])


@settings(max_examples=400, deadline=None, derandomize=True, database=None)
@given(
    level=LEVELS,
    svix_id=VALUES,
    event_type=VALUES,
    subject_id=VALUES,
    outcome=st.one_of(
        st.sampled_from(["processed", "processed (duplicate)", "stale", "failed", "rejected:x"]),
        VALUES,
    ),
    ms=st.one_of(
        st.none(), st.floats(), st.integers(-(10**12), 10**12), st.just("3"), st.just(True)
    ),
    reason=VALUES,
    created=st.lists(CREATED, min_size=1, max_size=4),
)
@example(
    level=logging.INFO,
    svix_id="a@example.com",
    event_type="b@example.com",
    subject_id="whsec_abc",
    outcome="processed",
    ms=1.0,
    reason=None,
    created=[1.0],
)
def test_delivery_lines_are_what_the_plain_formatters_wrote(
    level: int,
    svix_id: str | None,
    event_type: str | None,
    subject_id: str | None,
    outcome: str | None,
    ms: Any,
    reason: str | None,
    created: list[float],
) -> None:
    """One formatter of each kind across several records, so the cached second is both reused
    and replaced (and colour toggled on an existing formatter)."""
    text, json = TextFormatter(), JsonFormatter()
    for n, when in enumerate(created):
        record = delivery_record(level)
        record.delivery = {
            "svix_id": svix_id,
            "type": event_type,
            "subject_id": subject_id,
            "outcome": outcome,
            "ms": ms,
            "reason": reason,
        }
        record.created = when
        text.colour = n % 2 == 1
        assert text.format(record) == reference_text(record, colour=text.colour)
        assert json.format(record) == reference_json(record)


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(message=VALUES, created=st.lists(CREATED, min_size=1, max_size=3), level=LEVELS)
def test_plain_lines_are_what_the_plain_formatters_wrote(
    message: str | None, created: list[float], level: int
) -> None:
    text, colour, json = TextFormatter(), TextFormatter(colour=True), JsonFormatter()
    for when in created:
        record = logging.LogRecord("clerk_sync.guard", level, __file__, 1, "%s", (message,), None)
        record.created = when
        assert text.format(record) == reference_text(record, colour=False)
        assert colour.format(record) == reference_text(record, colour=True)
        assert json.format(record) == reference_json(record)


@settings(max_examples=2000, deadline=None, derandomize=True, database=None)
@given(created=CREATED)
def test_json_time_rounds_and_carries_as_datetime_does(created: float) -> None:
    assert JsonFormatter()._time(created) == old_time(created)


def test_tracebacks_and_stacks_are_what_they_were() -> None:
    try:
        raise ValueError("for ada@example.com\n1999-01-01 00:00:00 INFO forged")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "oops", (), sys.exc_info())
    record.stack_info = "Stack (most recent call last):\n  File x\x1b[2K"
    for colour in (False, True):
        assert TextFormatter(colour=colour).format(record) == reference_text(record, colour)
    assert JsonFormatter().format(record) == reference_json(record)


def test_the_stamp_is_computed_once_a_second(monkeypatch: pytest.MonkeyPatch) -> None:
    formatter = TextFormatter()
    calls: list[float] = []
    real = logging.Formatter.formatTime

    def counting(self: logging.Formatter, record: logging.LogRecord, datefmt: Any = None) -> str:
        calls.append(record.created)
        return real(self, record, datefmt)

    monkeypatch.setattr(logging.Formatter, "formatTime", counting)
    lines = []
    for created in (1_700_000_000.0, 1_700_000_000.5, 1_700_000_000.999, 1_700_000_001.0):
        record = delivery_record()
        record.created = created
        lines.append(formatter.format(record))
    assert calls == [1_700_000_000.0, 1_700_000_001.0]
    assert [line[:19] for line in lines] == [
        time.strftime("%Y-%m-%d %H:%M:%S", t)
        for t in map(time.localtime, (1_700_000_000, 1_700_000_000, 1_700_000_000, 1_700_000_001))
    ]


def test_the_stamp_follows_the_formatters_converter() -> None:
    """``converter`` (say ``time.gmtime``, as some deployments set it) is still honoured."""
    formatter = TextFormatter()
    formatter.converter = time.gmtime
    record = delivery_record()
    record.created = 1_700_000_000.25
    assert formatter.format(record).startswith("2023-11-14 22:13:20 INFO    ")


# --- _log_line ---------------------------------------------------------------------------------


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def delivery_log() -> Iterator[Collect]:
    log = webhook.log
    handlers, level, propagate = log.handlers[:], log.level, log.propagate
    collect = Collect()
    log.handlers[:] = [collect]
    log.setLevel(logging.DEBUG)
    log.propagate = False
    yield collect
    log.handlers[:] = handlers
    log.setLevel(level)
    log.propagate = propagate


@pytest.mark.parametrize(
    ("event_type", "subject", "outcome", "reason", "level", "message"),
    [
        (
            "user.created",
            "user_2vX",
            "processed",
            None,
            logging.INFO,
            "msg_2p user.created user_2vX processed 12.0ms",
        ),
        (None, None, "rejected:sig", "No match", logging.WARNING, "msg_2p - - rejected:sig "),
        ("user.updated", "user_2vX", "failed", "bad", logging.WARNING, "msg_2p user.updated "),
    ],
)
def test_log_line_makes_the_record_logger_log_made(
    delivery_log: Collect,
    event_type: str | None,
    subject: str | None,
    outcome: str,
    reason: str | None,
    level: int,
    message: str,
) -> None:
    started = time.perf_counter() - 0.012
    webhook._log_line("msg_2p", event_type, subject, outcome, started, reason)
    [record] = delivery_log.records
    assert record.name == "clerk_sync.delivery"
    assert record.levelno == level
    assert record.getMessage().startswith(message)
    assert record.getMessage().endswith(f" — {reason}" if reason else "ms")
    assert (record.pathname, record.funcName) == (webhook.__file__, "_log_line")
    assert record.module == "webhook"
    assert record.exc_info is None
    assert record.stack_info is None
    fields = record.delivery  # type: ignore[attr-defined]
    assert fields == {
        "svix_id": "msg_2p",
        "type": event_type,
        "subject_id": subject,
        "outcome": outcome,
        "ms": fields["ms"],
        "reason": reason,
    }
    assert isinstance(fields["ms"], float)
    assert fields["ms"] >= 12.0
    assert f"{fields['ms']:.0f}" in record.getMessage()


def test_log_line_honours_level_filters_and_disabled(delivery_log: Collect) -> None:
    log = webhook.log
    log.setLevel(logging.WARNING)
    webhook._log_line("msg_1", "user.created", "user_1", "processed", time.perf_counter(), None)
    assert delivery_log.records == []
    webhook._log_line("msg_2", None, None, "rejected:x", time.perf_counter(), "no")
    assert [r.delivery["svix_id"] for r in delivery_log.records] == ["msg_2"]  # type: ignore[attr-defined]
    log.addFilter(lambda record: False)
    try:
        webhook._log_line("msg_3", None, None, "rejected:x", time.perf_counter(), "no")
    finally:
        log.filters.clear()
    log.disabled = True
    try:
        webhook._log_line("msg_4", None, None, "rejected:x", time.perf_counter(), "no")
    finally:
        log.disabled = False
    assert len(delivery_log.records) == 1


def test_a_delivery_line_leaves_no_garbage_for_the_collector() -> None:
    """Once logged, a line's record and fields are freed by reference counting: a reference
    cycle per line (a frame kept in a local) had made the server's collector run three times
    as often and pushed the p99 up (bench/README.md)."""
    log = webhook.log
    handlers, level, propagate = log.handlers[:], log.level, log.propagate
    log.handlers[:] = [logging.StreamHandler(io.StringIO())]
    log.setLevel(logging.DEBUG)
    log.propagate = False
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        for n in range(50):
            webhook._log_line(f"msg_{n}", "user.created", "user_1", "processed", 0.0, None)
        gc.collect()
        garbage = list(gc.garbage)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        log.handlers[:] = handlers
        log.setLevel(level)
        log.propagate = propagate
    assert garbage == []
