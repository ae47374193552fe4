"""Operational alerts: when to tell someone that deliveries stopped, hooks died or signatures
fail — decided in the database, so replicas agree.

The outbox worker calls :func:`check` periodically in a transaction. An alert that is due is
*enqueued* as an outbox row of its hook (``notify:alert:<name>``), whose ``data`` holds the
facts it is about, and the worker sends it like any other row: retried, then dead. Every row's
``key`` is derived from the state it reports, so replicas checking at the same moment insert
one row (the key is unique; a duplicate is skipped):

* ``no_deliveries`` — no delivery received for ``after`` (default 6h) since the newest
  ``events.received_at`` (``clerkSync.ping`` probes aside). Key: the alert and that
  ``received_at``, so one alert per quiet spell. An empty log never alerts: nothing was ever
  wired to compare with.
* ``dead_letters`` — outbox rows marked ``dead`` since the previous alert of this kind
  (rows of alert hooks aside, so a dead alert cannot alert about itself), at most one alert
  per ``after`` (default 15m). Rows count once they are :data:`SETTLE_MS` old, so a row
  committed just after a check is counted by the next one rather than lost.
* ``signature_failures`` — at least ``threshold`` (default 10) requests that failed signature
  verification within ``after`` (default 15m), counted in memory by the process that received
  them (:class:`SignatureFailures`); at most one alert per ``after``.
* ``reconcile_drift`` — the last ``reconcile`` (``RECONCILE_EVERY`` in ``serve``, or the
  command) found drift: one alert per run that found any (its summary is kept in
  ``sync_state`` under :data:`RECONCILE_DRIFT_STATE`); ``serve`` checks at once after such a
  run.

The rate-limited kinds chain their keys: the next key is derived from the previous alert's, so
two replicas that both see the same previous alert make the same next one.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from sqlalchemy import Connection, func, select

from ..hooks import ChangeEvent
from ..store import outbox, state
from ..store.activity import newest_delivery
from ..store.schema import Tables
from .send import Level, Message, send

Kind = Literal["no_deliveries", "dead_letters", "signature_failures", "reconcile_drift"]
RECONCILE_STATE = "reconcile:last"
"""The ``sync_state`` entry where reconcile leaves its last summary (JSON)."""
RECONCILE_DRIFT_STATE = "reconcile:last_drift"
"""The summary of the last reconcile that found drift (a clean run after it does not hide it)."""
HOOK_PREFIX = "notify:alert:"
"""Every alert hook's name starts so; ``dead_letters`` leaves their rows out."""
EVENT_TYPE_PREFIX = "clerkSync.alert."
SETTLE_MS = 10_000
"""How old a dead row must be to be counted: longer than any transaction that marks one."""
MAX_THRESHOLD = 10_000
_DURATION = re.compile(r"([1-9][0-9]{0,6})([smhd])")
_UNIT_MS = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


@dataclass(frozen=True, slots=True)
class KindSpec:
    """What one kind of alert defaults to."""

    after: str
    level: Level
    threshold: bool = False
    """Whether it takes ``threshold``."""


KINDS: dict[str, KindSpec] = {
    "no_deliveries": KindSpec("6h", "warning"),
    "dead_letters": KindSpec("15m", "failure"),
    "signature_failures": KindSpec("15m", "warning", threshold=True),
    "reconcile_drift": KindSpec("24h", "warning"),
}


class FailureCount(Protocol):
    """Where ``signature_failures`` gets its count: :class:`SignatureFailures`, or any source
    with the same method."""

    def count_since(self, ms: int) -> int: ...


class SignatureFailures:
    """Requests that failed signature verification, counted in memory by the web process.

    Thread-safe. Keeps the newest ``capacity`` timestamps, so memory stays bounded under a
    flood and counts saturate at ``capacity`` (thresholds are capped below it).
    """

    def __init__(self, capacity: int = MAX_THRESHOLD) -> None:
        self._times: deque[int] = deque(maxlen=capacity)
        self._lock = threading.Lock()

    def record(self, now_ms: int) -> None:
        """One failed verification at ``now_ms``."""
        with self._lock:
            self._times.append(now_ms)

    def count_since(self, ms: int) -> int:
        """Failures at or after ``ms`` (a full scan: wall clocks may step back)."""
        with self._lock:
            return sum(1 for at in self._times if at >= ms)


@dataclass(frozen=True, slots=True)
class Alert:
    """One ``[[alert]]`` of the rules file."""

    name: str
    kind: Kind
    after: str
    """As written (``"6h"``): what messages show."""
    notify: tuple[str, ...] = field(repr=False)
    threshold: int = 10
    position: int = 1

    @property
    def after_ms(self) -> int:
        ms = parse_duration(self.after)
        assert ms is not None  # checked when loaded
        return ms

    @property
    def hook_name(self) -> str:
        return HOOK_PREFIX + self.name

    @property
    def subject(self) -> str:
        """The rows' ``subject_id``: one alert's rows run one after another."""
        return f"alert:{self.name}"

    @property
    def level(self) -> Level:
        return KINDS[self.kind].level

    def due(
        self, conn: Connection, tables: Tables, now_ms: int, failures: FailureCount | None
    ) -> tuple[str, dict[str, Any]] | None:
        """``(key, facts)`` of the alert to enqueue now, or None."""
        facts: dict[str, Any] = {
            "kind": self.kind,
            "alert": self.name,
            "after": self.after,
            "checked_at": now_ms,
        }
        if self.kind == "no_deliveries":
            newest = newest_delivery(conn, tables)
            if newest is None or now_ms - newest < self.after_ms:
                return None
            return self._key(f"quiet since {newest}"), {**facts, "last_received_at": newest}
        if self.kind == "reconcile_drift":
            last = state.get(conn, tables, RECONCILE_DRIFT_STATE)
            summary = json.loads(last) if last else None
            if not isinstance(summary, dict) or not _int(summary.get("total")):
                return None
            at = _int(summary.get("at"))
            return self._key(f"reconcile at {at}"), {**facts, **summary}
        if self.kind == "signature_failures" and failures is None:
            return None  # this process does not count them (see SignatureFailures)
        previous = _previous(conn, tables, self)
        if previous is not None and now_ms - previous[1] < self.after_ms:
            return None
        key = self._key(f"after {previous[0] if previous else '-'}")
        if self.kind == "dead_letters":
            since = previous[1] - SETTLE_MS if previous else None
            until = now_ms - SETTLE_MS
            handlers = _dead_since(conn, tables, since, until)
            if not handlers:
                return None
            count = sum(handlers.values())
            return key, {**facts, "count": count, "handlers": handlers, "since": since}
        assert failures is not None
        count = failures.count_since(now_ms - self.after_ms)
        if count < self.threshold:
            return None
        return key, {**facts, "count": count, "threshold": self.threshold}

    def send(self, event: ChangeEvent) -> None:
        """The hook: send what the row's facts say; raise when apprise reports a failure."""
        what = f"alert {self.name!r}"
        send(self.notify, describe(event.data), what=what, once_key=event.idempotency_key)

    def sample(self, now_ms: int) -> dict[str, Any]:
        """Made-up facts for ``clerk-sync notify test``."""
        facts: dict[str, Any] = {
            "kind": self.kind,
            "alert": self.name,
            "after": self.after,
            "checked_at": now_ms,
            "test": True,
        }
        if self.kind == "no_deliveries":
            facts["last_received_at"] = now_ms - self.after_ms - 60_000
        elif self.kind == "dead_letters":
            facts.update(count=2, handlers={"notify:example": 2}, since=now_ms - self.after_ms)
        elif self.kind == "reconcile_drift":
            facts.update(
                at=now_ms,
                total=3,
                fixed=False,
                kinds={"users": {"missing": 2, "extra": 0, "stale": 1}},
            )
        else:
            facts.update(count=self.threshold, threshold=self.threshold)
        return facts

    def row(self, key: str, facts: Mapping[str, Any], now_ms: int) -> dict[str, Any]:
        """The outbox row that makes the worker send it."""
        return {
            "key": key,
            "handler": self.hook_name,
            "event_type": EVENT_TYPE_PREFIX + self.kind,
            "subject_id": self.subject,
            "data": json.dumps({**facts, "alert_key": key}, separators=(",", ":")),
            "now": now_ms,
        }

    def _key(self, state: str) -> str:
        digest = hashlib.sha256(f"{self.hook_name}\n{state}".encode()).hexdigest()
        return "alert:" + digest[:40]


def check(
    conn: Connection,
    tables: Tables,
    alerts: Sequence[Alert],
    now_ms: int,
    failures: FailureCount | None = None,
) -> int:
    """Enqueue every alert that is due; the number of rows that were new."""
    new = 0
    for alert in alerts:
        due = alert.due(conn, tables, now_ms, failures)
        if due is None or _enqueued(conn, tables, due[0]):
            continue  # e.g. every check of one quiet spell makes the same key
        inserted = outbox.enqueue(conn, tables, [alert.row(*due, now_ms)])
        # 0 when a replica inserted it meanwhile; -1 (unknown) on PostgreSQL, where the
        # implicit RETURNING hides the rowcount: it was absent a moment ago, so count it.
        new += 1 if inserted else 0
    return new


def _enqueued(conn: Connection, tables: Tables, key: str) -> bool:
    t = tables.outbox
    return conn.execute(select(t.c.id).where(t.c.key == key)).first() is not None


def describe(facts: Mapping[str, Any]) -> Message:
    """The notification an alert row's facts make: what happened, and what to check."""
    kind = str(facts.get("kind", ""))
    after = str(facts.get("after", ""))
    now = _int(facts.get("checked_at"))
    count = _int(facts.get("count"))
    level = KINDS[kind].level if kind in KINDS else "warning"
    test = " (a test of this alert)" if facts.get("test") else ""
    if kind == "no_deliveries":
        last = _int(facts.get("last_received_at"))
        quiet = format_duration(now - last)
        return Message(
            f"clerk-sync: no webhook deliveries for {quiet}{test}",
            f"No Clerk webhook has arrived since {_utc(last)} ({quiet} before the check at "
            f"{_utc(now)}; this alert fires after {after} of quiet). Svix may have disabled "
            "the endpoint after repeated failures: check Clerk Dashboard → Webhooks → the "
            "endpoint's status and failed messages, re-enable it and recover the messages "
            "missed meanwhile. If the app was simply quiet, raise this alert's `after`.",
            level,
        )
    if kind == "dead_letters":
        handlers = facts.get("handlers")
        listed = ", ".join(
            f"{name} ×{n}"
            for name, n in sorted(
                handlers.items() if isinstance(handlers, Mapping) else (),
                key=lambda item: (-_int(item[1]), str(item[0])),
            )[:5]
        )
        since = facts.get("since")
        when = f"since {_utc(_int(since))}" if since is not None else "so far"
        return Message(
            f"clerk-sync: {count} outbox run(s) failed for good{test}",
            f"{count} after-commit hook run(s) were marked dead {when} ({listed}): each "
            "failed on every attempt. The outbox rows' last_error says why; fix the cause, "
            "then retry the dead rows.",
            level,
        )
    if kind == "signature_failures":
        threshold = _int(facts.get("threshold"))
        return Message(
            f"clerk-sync: {count} webhook requests failed signature verification{test}",
            f"{count} requests to the webhook endpoint failed signature verification within "
            f"{after} (the alert threshold is {threshold}). If Clerk sent them, "
            "CLERK_WEBHOOK_SECRET does not match the endpoint's Signing Secret in Clerk "
            "Dashboard → Webhooks (after a rotation, list both secrets); otherwise someone is "
            "probing the endpoint: consider ALLOWED_SOURCE_IPS=svix.",
            level,
        )
    if kind == "reconcile_drift":
        kinds = facts.get("kinds")
        listed = ", ".join(
            f"{name}: {_int(c.get('missing'))} missing, {_int(c.get('extra'))} extra, "
            f"{_int(c.get('stale'))} stale"
            for name, c in (kinds.items() if isinstance(kinds, Mapping) else ())
            if isinstance(c, Mapping)
        )
        total = _int(facts.get("total"))
        repaired = "and repaired it" if facts.get("fixed") else "(not repaired: run with --fix)"
        return Message(
            f"clerk-sync: reconcile found {total} difference(s) with Clerk{test}",
            f"The reconcile of {_utc(_int(facts.get('at')))} found the local copy differed "
            f"from Clerk ({listed}) {repaired}. Drift means deliveries were missed: check "
            "Clerk Dashboard → Webhooks for failed or disabled endpoints.",
            level,
        )
    return Message(f"clerk-sync alert {kind or '?'}{test}", json.dumps(dict(facts)), level)


def parse_duration(text: str) -> int | None:
    """``"90s"``, ``"15m"``, ``"6h"``, ``"2d"`` in ms; None when it is not one."""
    match = _DURATION.fullmatch(text.strip()) if isinstance(text, str) else None
    return int(match[1]) * _UNIT_MS[match[2]] if match else None


def format_duration(ms: int) -> str:
    """``6h 2m``: the two largest units that are not zero, for messages."""
    seconds, parts = max(0, ms // 1000), []
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)):
        n, seconds = divmod(seconds, size)
        if n:
            parts.append(f"{n}{unit}")
    return " ".join(parts[:2]) or "0s"


def _previous(conn: Connection, tables: Tables, alert: Alert) -> tuple[str, int] | None:
    """The key and time of this alert's newest row."""
    t = tables.outbox
    found = conn.execute(
        select(t.c.key, t.c.created_at)
        .where(t.c.handler == alert.hook_name, t.c.subject_id == alert.subject)
        .order_by(t.c.id.desc())
        .limit(1)
    ).first()
    return None if found is None else (str(found[0]), int(found[1]))


def _dead_since(conn: Connection, tables: Tables, since: int | None, until: int) -> dict[str, int]:
    """Dead rows per hook that finished in ``(since, until]``, alert hooks aside."""
    t = tables.outbox
    query = select(t.c.handler, func.count()).where(
        t.c.status == outbox.DEAD,
        ~t.c.handler.startswith(HOOK_PREFIX, autoescape=True),
        t.c.finished_at <= until,
    )
    if since is not None:
        query = query.where(t.c.finished_at > since)
    return {str(h): int(n) for h, n in conn.execute(query.group_by(t.c.handler)).all()}


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _utc(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")
