"""Log lines for people and for machines, with nothing private in either.

``serve`` and ``dev`` log one line per delivery: the logger ``clerk_sync.delivery`` attaches the
fields (``svix_id``, ``type``, ``subject_id``, ``outcome``, ``ms``, ``reason``) as
``record.delivery``. :class:`TextFormatter` renders them for a terminal — coloured only when the
stream is one, so files and pipes get plain text — and :class:`JsonFormatter` as one JSON object
per line for log shippers. :func:`configure_logging` puts them on stderr.

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
import math
import os
import re
import sys
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

import orjson

DELIVERY_LOGGER = "clerk_sync.delivery"
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

    The timestamp has whole seconds and the level column one spelling per level, so both are
    computed once and reused: this runs once per delivery on the server's event loop.
    """

    def __init__(self, *, colour: bool = False) -> None:
        super().__init__(datefmt="%Y-%m-%d %H:%M:%S")
        self.colour = colour
        self._stamp: tuple[int, str] = (-1, "")  # one tuple, so threads never see half of it
        self._levels: dict[tuple[str, bool], str] = {}

    def format(self, record: logging.LogRecord) -> str:
        second, stamp = self._stamp
        if int(record.created) != second:
            stamp = self.formatTime(record, self.datefmt)
            self._stamp = (int(record.created), stamp)
        level = self._levels.get((record.levelname, self.colour))
        if level is None:
            level = self._level(record.levelname)
        fields = _delivery_fields(record)
        body = self._delivery(fields) if fields is not None else self._plain(record.getMessage())
        line = f"{stamp} {level} {body}"
        if record.exc_info:
            line += _indented(self.formatException(record.exc_info))
        if record.stack_info:
            line += _indented(self.formatStack(record.stack_info))
        return line

    def _level(self, name: str) -> str:
        level = f"{name:<7}"
        if self.colour and name in _LEVEL_COLOURS:
            level = f"{_LEVEL_COLOURS[name]}{level}{_RESET}"
        self._levels[name, self.colour] = level
        return level

    def _plain(self, message: str) -> str:
        return _clean(message)

    def _delivery(self, fields: dict[str, Any]) -> str:
        get = fields.get
        outcome = escape_controls(str(get("outcome") or "-"))
        ms = get("ms")
        # One pass over the three values joined: neither a mask nor an escape can span the
        # spaces between them, so this is what cleaning each one alone gives.
        head = _clean(
            f"{get('svix_id') or '-'!s} {get('type') or '-'!s} {get('subject_id') or '-'!s}"
        )
        timing = f"{float(ms):.1f}ms" if isinstance(ms, (int, float)) else "-"
        reason = get("reason")
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
    ``outcome``, ``ms``, ``reason``).

    ``time`` is the second, formatted once per second, plus the milliseconds.
    """

    def __init__(self) -> None:
        super().__init__()
        self._second: tuple[int, str] = (-1, "")

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self._time(record.created),
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

    def _time(self, created: float) -> str:
        """``datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")`` with
        ``Z``: microseconds rounded half-even as ``fromtimestamp`` does (carrying into the
        second), then truncated to milliseconds as ``isoformat`` does."""
        fraction, whole = math.modf(created)
        second, micros = int(whole), round(fraction * 1e6)
        if micros >= 1_000_000:
            second, micros = second + 1, micros - 1_000_000
        elif micros < 0:  # before 1970
            second, micros = second - 1, micros + 1_000_000
        cached, prefix = self._second
        if second != cached:
            prefix = datetime.fromtimestamp(second, tz=UTC).isoformat()[:19]
            self._second = (second, prefix)
        return f"{prefix}.{micros // 1000:03d}Z"


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
