"""Log lines for people and for machines, with nothing private in either.

``serve`` and ``dev`` log one line per delivery: the logger ``clerk_sync.delivery`` attaches the
fields (``svix_id``, ``type``, ``subject_id``, ``outcome``, ``ms``, ``reason``) as
``record.delivery``. :class:`TextFormatter` renders them for a terminal — coloured only when the
stream is one, so files and pipes get plain text — and :class:`JsonFormatter` as one JSON object
per line for log shippers.

Both pass everything they print through :func:`redact`: e-mail addresses are masked
(``a***@example.com``) and anything shaped like a signing secret or a Clerk secret key is
replaced. The code never logs either on purpose; this is the net under a payload or an exception
message that quotes one.

Logged values come from strangers (a svix id, an event type, an object id, a reason quoting a
payload), so neither format lets one forge a line or repaint a terminal. Text passes every value
through :func:`escape_controls`: control characters (C0, DEL, C1 — newline, carriage return,
ANSI escapes …), the Unicode line and paragraph separators and the bidirectional overrides are
written as ``\\n``, ``\\r``, ``\\t``, ``\\x1b`` or ``\\u202e``; a traceback's lines are
indented, so only a record's own first line starts with a timestamp. JSON escapes them inside
its strings (``\\u001b``), and one record is always one line.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

import orjson

LogFormat = Literal["text", "json"]
LOG_FORMATS: tuple[LogFormat, ...] = ("text", "json")

_EMAIL = re.compile(
    r"(?<![A-Za-z0-9._%+-])([A-Za-z0-9_%+-])[A-Za-z0-9._%+-]*"
    r"@((?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,})\b"
)
_SECRET = re.compile(r"\b(whsec|whsk|sk_test|sk_live)_[A-Za-z0-9+/=_-]+")

_UNSAFE = "\x7f-\x9f\u2028\u2029\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
"""DEL, C1 controls, line/paragraph separators, bidirectional marks and overrides."""
_CONTROLS = re.compile(f"[\x00-\x1f{_UNSAFE}]")
_JSON_UNSAFE = re.compile(f"[{_UNSAFE}]")  # orjson already escapes C0 controls
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}

_RESET = "\x1b[0m"
_RED = "\x1b[31m"
_GREEN = "\x1b[32m"
_YELLOW = "\x1b[33m"
_DIM = "\x1b[2m"
_BOLD_RED = "\x1b[1;31m"
_LEVEL_COLOURS = {"WARNING": _YELLOW, "ERROR": _BOLD_RED, "CRITICAL": _BOLD_RED, "DEBUG": _DIM}


def redact(text: str) -> str:
    """``text`` with e-mail addresses masked and secret-shaped tokens replaced."""
    if "@" in text:
        text = _EMAIL.sub(r"\1***@\2", text)
    if "sk_" in text or "sec_" in text:  # every prefix _SECRET knows ends in one of these
        text = _SECRET.sub(r"\1_***", text)
    return text


def escape_controls(text: str) -> str:
    """``text`` with every character that could end a log line or drive a terminal written as
    an escape (``\\n``, ``\\x1b``, ``\\u2028`` …); printable text is returned as it is."""
    if text.isprintable():
        return text
    return _CONTROLS.sub(_escape, text)


def escape_unsafe(text: str) -> str:
    """``text`` with bidirectional overrides, C1 controls and line separators written as
    ``\\uXXXX``, for text shown whole (pretty-printed JSON) where newlines stay newlines."""
    return _JSON_UNSAFE.sub(_json_escape, text)


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def _json_escape(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def _clean(text: str) -> str:
    return escape_controls(redact(text))


def _indented(block: str) -> str:
    """A traceback under its record: each line escaped and indented, so none can pass for a
    record of its own."""
    return "".join("\n  " + escape_controls(line) for line in redact(block).split("\n"))


def wants_colour(stream: TextIO) -> bool:
    """Colour for a terminal only; ``NO_COLOR`` turns it off and ``FORCE_COLOR`` on."""
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def _delivery_fields(record: logging.LogRecord) -> dict[str, Any] | None:
    fields = getattr(record, "delivery", None)
    return fields if isinstance(fields, dict) else None


def _outcome_colour(outcome: str) -> str:
    if outcome.startswith(("rejected", "failed")):
        return _RED
    if outcome.startswith("stale"):
        return _YELLOW
    if outcome.startswith("processed") and "duplicate" not in outcome:
        return _GREEN
    return _DIM


class TextFormatter(logging.Formatter):
    """``2026-11-27 03:03:02 INFO    msg_… user.created user_… processed 3.7ms``.

    A delivery line reads svix id, type, subject id, outcome and milliseconds, then `` — reason``
    for refusals, failures and stale deliveries; with colour, failures are red.
    """

    def __init__(self, *, colour: bool = False) -> None:
        super().__init__(datefmt="%Y-%m-%d %H:%M:%S")
        self.colour = colour

    def format(self, record: logging.LogRecord) -> str:
        stamp = self.formatTime(record, self.datefmt)
        level = f"{record.levelname:<7}"
        fields = _delivery_fields(record)
        body = self._delivery(fields) if fields is not None else self._plain(record.getMessage())
        if self.colour and record.levelname in _LEVEL_COLOURS:
            level = f"{_LEVEL_COLOURS[record.levelname]}{level}{_RESET}"
        line = f"{stamp} {level} {body}"
        if record.exc_info:
            line += _indented(self.formatException(record.exc_info))
        if record.stack_info:
            line += _indented(self.formatStack(record.stack_info))
        return line

    def _plain(self, message: str) -> str:
        return _clean(message)

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


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``time`` (UTC, ISO 8601), ``level``, ``logger``, ``message``,
    and for a delivery its fields at the top level (``svix_id``, ``type``, ``subject_id``,
    ``outcome``, ``ms``, ``reason``)."""

    def format(self, record: logging.LogRecord) -> str:
        when = datetime.fromtimestamp(record.created, tz=UTC)
        entry: dict[str, Any] = {
            "time": when.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
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


def make_formatter(log_format: LogFormat, stream: TextIO) -> logging.Formatter:
    """The formatter for ``--log-format``, deciding colour from ``stream``."""
    if log_format == "json":
        return JsonFormatter()
    return TextFormatter(colour=wants_colour(stream))


def configure_logging(level: str, log_format: LogFormat = "text") -> None:
    """Log to stderr: readable text (coloured on a terminal) or one JSON object per line.

    Either way e-mail addresses are masked and secret-shaped tokens replaced. The server and its
    writer process both call this, so their lines look alike.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(make_formatter(log_format, sys.stderr))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    logging.getLogger("alembic").setLevel(logging.WARNING)
