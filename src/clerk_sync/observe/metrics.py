"""The Prometheus metrics of one server process: what it answered, refused and committed.

Decisions this module owns:

* **Per replica, in memory, one registry per app.** Each ``serve`` counts what it answered in
  its own :class:`~prometheus_client.CollectorRegistry` (never the global one: two apps in one
  process, as in tests or an embedding host, never mix figures); Prometheus adds replicas up.
  With the writer in a child process the child's figures — each batch's size, each envelope's
  ``timestamp`` — come back in the answer frames it sends anyway (:mod:`clerk_sync.writer`),
  and are recorded here, on the server's event loop.
* **The hot path pays a dict lookup and a few increments.** A delivery's counter is a label
  child looked up once per (type, status, duplicate) and cached; both histograms are observed
  with bound methods. About 2 µs a delivery, against ~50 µs to verify one.
* **Labels stay bounded.** ``event_type`` is a type clerk-sync syncs or one Clerk documents,
  else ``other`` (``unknown`` when the body had none): only verified bodies are counted, but a
  new Clerk type must not grow a series per spelling. ``reason`` is an error ``code`` of
  :mod:`clerk_sync.errors`, a closed set.
* **Figures of the database** — rows per entity kind, outbox rows and events by status — are
  counted when scraped, at most every :data:`DATABASE_EVERY` seconds whatever the scrape rate
  (:meth:`Metrics.refresh`, which the caller runs off the event loop; one count at a time). A
  database that fails leaves them out of that scrape and adds one to
  ``clerk_sync_scrape_errors_total``; everything else is still served.
* **The last delivery survives a restart.** It is read from the event log at start (the query
  of the ``no_deliveries`` alert, :func:`clerk_sync.store.activity.newest_delivery`) and moved
  forward by every verified delivery this process answers, so a restarted replica does not
  report "never" and set off an alert. While it is unknown (an empty log) the series is left
  out rather than shown as 0, which an alert on its age would take for 1970.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from sqlalchemy import Engine, func, select

from ..entities import handled_types
from ..events import OUTBOX_STATUSES, PING_TYPE, STATUSES, Status
from ..receiver import Outcome
from ..store import Tables
from ..store.activity import newest_delivery

log = logging.getLogger("clerk_sync.metrics")

DOCUMENTED_TYPES = (
    "email.created",
    "sms.created",
    "paymentAttempt.created",
    "paymentAttempt.updated",
    "subscription.created",
    "subscription.updated",
    "subscription.active",
    "subscription.pastDue",
    "subscription.past_due",
    "subscriptionItem.created",
    "subscriptionItem.updated",
    "subscriptionItem.active",
    "subscriptionItem.canceled",
    "subscriptionItem.upcoming",
    "subscriptionItem.ended",
    "subscriptionItem.abandoned",
    "subscriptionItem.incomplete",
    "subscriptionItem.pastDue",
    "subscriptionItem.past_due",
    "subscriptionItem.freeTrialEnding",
)
"""Types Clerk documents that clerk-sync records as ``ignored``: labelled as themselves."""
OTHER_TYPE = "other"
UNKNOWN_TYPE = "unknown"
DUPLICATE = "duplicate"
REFUSAL_REASONS = (
    "source_not_allowed",
    "rate_limited",
    "payload_too_large",
    "missing_header",
    "malformed_header",
    "timestamp_out_of_tolerance",
    "signature_mismatch",
    "body_not_utf8",
    "store_unavailable",
)
"""Reasons shown from the start at 0, so ``rate()`` and ``increase()`` see their first one."""
PROCESSING_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15)
"""Seconds from a request's first byte to its answer; Svix waits 15 s at most."""
LAG_BUCKETS = (
    *(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
    *(300, 1800, 7200, 5 * 3600, 10 * 3600, 24 * 3600, 48 * 3600),
)
"""Seconds from the event (its envelope's ``timestamp``) to its arrival: a fraction of a second
first time, then Svix's retries (5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h)."""
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
DATABASE_EVERY = 5.0
"""Seconds the database's figures are kept before a scrape counts them again."""
_MAX_CACHED = 4096
_ERROR_LOG_EVERY = 60.0


class Metrics:
    """The figures of one app: give it to what records them, and :meth:`render` to scrapes."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.deliveries = Counter(
            "clerk_sync_deliveries",
            "Verified webhook deliveries answered, by event type and outcome "
            "(processed, duplicate, stale, ignored, failed).",
            ("event_type", "outcome"),
            registry=r,
        )
        self.refusals = Counter(
            "clerk_sync_refusals",
            "Webhook requests refused before or at verification (or, once verified, not "
            "committed: store_unavailable), by error code.",
            ("reason",),
            registry=r,
        )
        self.processing = Histogram(
            "clerk_sync_delivery_processing_seconds",
            "Seconds from a verified delivery's first byte to its answer.",
            buckets=PROCESSING_BUCKETS,
            registry=r,
        )
        self.lag = Histogram(
            "clerk_sync_delivery_lag_seconds",
            "Seconds from the event's envelope timestamp to the delivery's arrival "
            "(Svix's retries and backlog show here).",
            buckets=LAG_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "clerk_sync_batch_size",
            "Deliveries the writer took together, one transaction (replays included).",
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.outbox_runs = Counter(
            "clerk_sync_outbox_runs",
            "Runs of after-commit hooks by this process's outbox worker, by hook and result "
            "(done, skipped, failed: retried later, dead).",
            ("handler", "result"),
            registry=r,
        )
        self.scrape_errors = Counter(
            "clerk_sync_scrape_errors",
            "Scrapes whose figures of the database could not be read (left out of them).",
            registry=r,
        )
        ProcessCollector(registry=r)
        r.register(_Live(self))
        self.database: DatabaseFigures | None = None
        self.last_delivery_ms = 0
        """``received_at`` of the newest webhook delivery (ms), 0 while unknown."""
        self._known = frozenset((*handled_types(), *DOCUMENTED_TYPES, PING_TYPE))
        self._delivered: dict[tuple[str | None, str, bool], Callable[[], None]] = {}
        self._refused: dict[str, Callable[[], None]] = {}
        self._observe_processing = self.processing.observe
        self._observe_lag = self.lag.observe
        self._observe_batch = self.batch_size.observe
        for reason in REFUSAL_REASONS:  # shown at 0 from the start
            self._refused[reason] = self.refusals.labels(reason).inc

    # -- recorded on the server's event loop ----------------------------------------------------

    def delivered(self, outcome: Outcome, received_at: int, seconds: float) -> None:
        """A verified delivery answered: ``received_at`` as stamped on it (ms), ``seconds``
        since its request began."""
        key = (outcome.event_type, outcome.status, outcome.duplicate)
        count = self._delivered.get(key)
        if count is None:
            count = self._delivery_counter(key)
        count()
        self._observe_processing(seconds)
        stamp = outcome.event_timestamp
        if stamp is not None:
            self._observe_lag((received_at - stamp) / 1000 if received_at > stamp else 0.0)
        if received_at > self.last_delivery_ms and outcome.event_type != PING_TYPE:
            self.last_delivery_ms = received_at

    def refused(self, reason: str) -> None:
        """A webhook request refused, ``reason`` its error code."""
        count = self._refused.get(reason)
        if count is None:
            count = self.refusals.labels(reason).inc
            if len(self._refused) < _MAX_CACHED:
                self._refused[reason] = count
        count()

    def batch(self, size: int) -> None:
        """A batch the writer took (a committer's ``on_batch``)."""
        self._observe_batch(size)

    def outbox_run(self, handler: str, result: str) -> None:
        """How one run of an outbox row ended (the outbox worker's ``on_run``)."""
        self.outbox_runs.labels(handler, result).inc()

    def type_label(self, event_type: str | None) -> str:
        """The ``event_type`` label of a type: itself when known, else ``other``/``unknown``."""
        if event_type is None:
            return UNKNOWN_TYPE
        return event_type if event_type in self._known else OTHER_TYPE

    def _delivery_counter(self, key: tuple[str | None, str, bool]) -> Callable[[], None]:
        event_type, status, duplicate = key
        outcome = DUPLICATE if duplicate else Status(status).value
        inc = self.deliveries.labels(self.type_label(event_type), outcome).inc
        if len(self._delivered) < _MAX_CACHED:
            self._delivered[key] = inc
        return inc

    # -- the database -------------------------------------------------------------------------

    def watch(self, engine: Engine, tables: Tables, *, every: float = DATABASE_EVERY) -> None:
        """Count ``tables``' rows when scraped (see :meth:`refresh`)."""
        self.database = DatabaseFigures(engine, tables, self.scrape_errors.inc, every=every)
        self.registry.register(self.database)

    def load_last_delivery(self) -> None:
        """Read the newest webhook delivery's time from the event log (blocking: at start, off
        the event loop). A database that cannot answer leaves it unknown, with a warning."""
        if self.database is None:
            return
        try:
            with self.database.engine.connect() as conn:
                newest = newest_delivery(conn, self.database.tables)
        except Exception as exc:
            log.warning("metrics: the last delivery's time could not be read: %s", _cause(exc))
            return
        if newest is not None and newest > self.last_delivery_ms:
            self.last_delivery_ms = newest

    def refresh(self) -> None:
        """Count the database's figures if they are older than ``every`` (blocking: run it off
        the event loop, before :meth:`render`)."""
        if self.database is not None:
            self.database.refresh()

    def render(self) -> bytes:
        """The Prometheus text exposition of everything."""
        return generate_latest(self.registry)


class _Live:
    """The figures kept as plain values: the last delivery's time (left out while unknown)."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def describe(self) -> list[Metric]:
        return [_last_delivery(None)]

    def collect(self) -> Iterator[Metric]:
        ms = self._metrics.last_delivery_ms
        if ms:
            yield _last_delivery(ms / 1000)


def _last_delivery(seconds: float | None) -> GaugeMetricFamily:
    return GaugeMetricFamily(
        "clerk_sync_last_delivery_timestamp_seconds",
        "When the newest webhook delivery arrived (its received_at), seconds since the epoch: "
        "read from the event log at start, then moved by every delivery this process answers.",
        value=seconds,
    )


@dataclass(frozen=True, slots=True)
class _Counted:
    entities: dict[str, int]
    outbox: dict[str, int]
    events: dict[str, int]


class DatabaseFigures:
    """Rows per entity kind, outbox rows and events by status: a collector whose figures are
    counted by :meth:`refresh`, at most every ``every`` seconds and one count at a time."""

    def __init__(
        self,
        engine: Engine,
        tables: Tables,
        on_error: Callable[[], None],
        *,
        every: float = DATABASE_EVERY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self.tables = tables
        self.every = every
        self._on_error = on_error
        self._clock = clock
        self._lock = threading.Lock()
        self._counted: _Counted | None = None
        self._counted_at = float("-inf")
        self._logged_at = float("-inf")

    def refresh(self) -> None:
        """Count again if the last count is older than ``every`` seconds. While another
        thread counts, return at once: that scrape gets the figures in hand."""
        if self._clock() - self._counted_at < self.every or not self._lock.acquire(False):
            return
        try:
            if self._clock() - self._counted_at < self.every:
                return
            try:
                self._counted = self._count()
            except Exception as exc:
                self._counted = None
                self._on_error()
                now = self._clock()
                if now - self._logged_at > _ERROR_LOG_EVERY:
                    self._logged_at = now
                    log.warning("metrics: the database's figures are left out: %s", _cause(exc))
            self._counted_at = self._clock()
        finally:
            self._lock.release()

    def _count(self) -> _Counted:
        t = self.tables
        kinds = list(t.entities)
        per_kind = select(
            *[
                select(func.count()).select_from(t.entities[k]).scalar_subquery().label(f"n{i}")
                for i, k in enumerate(kinds)
            ]
        )
        with self.engine.connect() as conn:
            sizes = conn.execute(per_kind).one() if kinds else ()
            outbox = conn.execute(
                select(t.outbox.c.status, func.count()).group_by(t.outbox.c.status)
            ).all()
            events = conn.execute(
                select(t.events.c.status, func.count()).group_by(t.events.c.status)
            ).all()
        return _Counted(
            {k: int(n) for k, n in zip(kinds, sizes, strict=True)},
            _by_status(OUTBOX_STATUSES, outbox),
            _by_status(STATUSES, events),
        )

    def describe(self) -> list[Metric]:
        return list(self._families(_Counted({}, {}, {})))

    def collect(self) -> Iterator[Metric]:
        counted = self._counted
        if counted is not None:
            yield from self._families(counted)

    def _families(self, counted: _Counted) -> Iterator[Metric]:
        entities = GaugeMetricFamily(
            "clerk_sync_entities", "Rows in each entity kind's table.", labels=("kind",)
        )
        for kind, n in counted.entities.items():
            entities.add_metric((kind,), n)
        outbox = GaugeMetricFamily(
            "clerk_sync_outbox_rows", "Outbox rows by status.", labels=("status",)
        )
        for status, n in counted.outbox.items():
            outbox.add_metric((status,), n)
        events = GaugeMetricFamily(
            "clerk_sync_events", "Rows of the event log by status.", labels=("status",)
        )
        for status, n in counted.events.items():
            events.add_metric((status,), n)
        yield from (entities, outbox, events)


def _by_status(statuses: Sequence[str], rows: Iterable[Any]) -> dict[str, int]:
    """Every status, 0 when it has no row (a series that appears only once it is non-zero
    defeats ``increase()`` and alerts on it)."""
    found = {str(status): int(n) for status, n in rows}
    return {status: found.get(status, 0) for status in statuses}


def _cause(exc: BaseException) -> str:
    """The driver's error when there is one, first line only."""
    orig = getattr(exc, "orig", None) or exc
    lines = str(orig).strip().splitlines()
    return f"{type(orig).__name__}: {lines[0] if lines else ''}"
