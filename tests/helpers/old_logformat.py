"""The delivery log line as it was before its fast path: ``bench/log_line.py`` measures
against it and ``tests/unit/test_logformat_fast.py`` holds the new formatters equal to it."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any

import orjson

from clerk_sync.logformat import (
    _JSON_UNSAFE,
    _LEVEL_COLOURS,
    _RED,
    _RESET,
    _clean,
    _delivery_fields,
    _indented,
    _json_escape,
    _outcome_colour,
    escape_controls,
    redact,
)
from clerk_sync.web import webhook


class OldTextFormatter(logging.Formatter):
    def __init__(self, *, colour: bool = False) -> None:
        super().__init__(datefmt="%Y-%m-%d %H:%M:%S")
        self.colour = colour

    def format(self, record: logging.LogRecord) -> str:
        stamp = self.formatTime(record, self.datefmt)
        level = f"{record.levelname:<7}"
        fields = _delivery_fields(record)
        body = self._delivery(fields) if fields is not None else _clean(record.getMessage())
        if self.colour and record.levelname in _LEVEL_COLOURS:
            level = f"{_LEVEL_COLOURS[record.levelname]}{level}{_RESET}"
        line = f"{stamp} {level} {body}"
        if record.exc_info:
            line += _indented(self.formatException(record.exc_info))
        if record.stack_info:
            line += _indented(self.formatStack(record.stack_info))
        return line

    def _delivery(self, fields: dict[str, Any]) -> str:
        outcome = escape_controls(str(fields.get("outcome") or "-"))
        ms = fields.get("ms")
        head = " ".join(
            _clean(str(fields.get(key) or "-")) for key in ("svix_id", "type", "subject_id")
        )
        timing = f"{float(ms):.1f}ms" if isinstance(ms, int | float) else "-"
        reason = fields.get("reason")
        tail = f" — {_clean(str(reason))}" if reason else ""
        if not self.colour:
            return f"{head} {outcome} {timing}{tail}"
        colour = _outcome_colour(outcome)
        if colour == _RED:
            return f"{head} {_RED}{outcome}{_RESET} {timing}{_RED}{tail}{_RESET}"
        return f"{head} {colour}{outcome}{_RESET} {timing}{tail}"


class OldJsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": old_time(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        fields = _delivery_fields(record)
        if fields is not None:
            for key, value in fields.items():
                if key not in entry:
                    entry[key] = redact(value) if isinstance(value, str) else value
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        line = orjson.dumps(entry, default=str).decode()
        if line.isascii() and "\x7f" not in line:
            return line
        return _JSON_UNSAFE.sub(_json_escape, line)


def old_log_line(
    svix_id: str,
    event_type: str | None,
    subject: str | None,
    outcome: str,
    started: float,
    reason: str | None,
) -> None:
    log = webhook.log
    ms = (time.perf_counter() - started) * 1000
    level = logging.WARNING if outcome.startswith(("rejected", "failed")) else logging.INFO
    if log.isEnabledFor(level):
        tail = f" — {reason}" if reason else ""
        fields = {
            "svix_id": svix_id,
            "type": event_type,
            "subject_id": subject,
            "outcome": outcome,
            "ms": round(ms, 2),
            "reason": reason,
        }
        log.log(
            level,
            "%s %s %s %s %.1fms%s",
            svix_id,
            event_type or "-",
            subject or "-",
            outcome,
            ms,
            tail,
            extra={"delivery": fields},
        )


def old_time(created: float) -> str:
    """``OldJsonFormatter``'s ``time``."""
    when = datetime.fromtimestamp(created, tz=UTC)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")
