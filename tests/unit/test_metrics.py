"""``clerk_sync.observe.Metrics`` on its own: labels, histograms, the last delivery, isolation.

What it is fed here is what the server feeds it (:class:`Outcome` values as the writer frames
them); the app around it, the writer process and the database are ``tests/web/test_metrics.py``
and ``tests/e2e/test_metrics.py``.
"""

from __future__ import annotations

import prometheus_client

from clerk_sync.entities import handled_types
from clerk_sync.events import PING_TYPE, Status
from clerk_sync.observe.metrics import DOCUMENTED_TYPES, REFUSAL_REASONS, Metrics
from clerk_sync.receiver import Outcome
from clerk_sync.writer import _outcome_fields
from tests.helpers.prometheus import Scrape, parse

NOW = 1_800_000_000_000


def outcome(
    event_type: str | None,
    status: Status = Status.PROCESSED,
    *,
    duplicate: bool = False,
    stamp: int | None = NOW - 2_000,
) -> Outcome:
    return Outcome("msg_x", status, duplicate, event_type, "user_x", event_timestamp=stamp)


def scrape(metrics: Metrics) -> Scrape:
    return parse(metrics.render().decode())


def test_event_type_labels_are_the_known_types_else_other() -> None:
    metrics = Metrics()
    for event_type in [*handled_types(), *DOCUMENTED_TYPES, PING_TYPE]:
        assert metrics.type_label(event_type) == event_type
    assert metrics.type_label("widget.exploded") == "other"
    assert metrics.type_label("user.created\x00") == "other"
    assert metrics.type_label(None) == "unknown"
    assert not set(DOCUMENTED_TYPES) & set(handled_types())


def test_deliveries_count_by_type_and_outcome() -> None:
    metrics = Metrics()
    for delivered in [
        outcome("user.created"),
        outcome("user.created"),
        outcome("user.created", duplicate=True),
        outcome("user.updated", Status.STALE),
        outcome("email.created", Status.IGNORED),
        outcome("widget.exploded", Status.IGNORED),
        outcome("subscriptionItem.newThing", Status.IGNORED),
        outcome(None, Status.FAILED, stamp=None),
    ]:
        metrics.delivered(delivered, NOW, 0.004)
    figures = scrape(metrics)
    assert figures.pairs("clerk_sync_deliveries_total", "event_type", "outcome") == {
        ("user.created", "processed"): 2,
        ("user.created", "duplicate"): 1,
        ("user.updated", "stale"): 1,
        ("email.created", "ignored"): 1,
        ("other", "ignored"): 2,
        ("unknown", "failed"): 1,
    }
    assert figures.families["clerk_sync_deliveries"] == "counter"
    assert figures.value("clerk_sync_delivery_processing_seconds_count") == 8
    assert figures.value("clerk_sync_delivery_processing_seconds_bucket", le="0.005") == 8
    assert figures.value("clerk_sync_delivery_processing_seconds_bucket", le="0.0025") == 0
    # The lag: 2 s each, for the seven that had an envelope timestamp.
    assert figures.value("clerk_sync_delivery_lag_seconds_count") == 7
    assert figures.value("clerk_sync_delivery_lag_seconds_sum") == 14.0
    assert figures.value("clerk_sync_delivery_lag_seconds_bucket", le="1.0") == 0
    assert figures.value("clerk_sync_delivery_lag_seconds_bucket", le="2.5") == 7


def test_a_clock_behind_the_sender_counts_no_negative_lag() -> None:
    metrics = Metrics()
    metrics.delivered(outcome("user.created", stamp=NOW + 5_000), NOW, 0.001)
    figures = scrape(metrics)
    assert figures.value("clerk_sync_delivery_lag_seconds_sum") == 0.0
    assert figures.value("clerk_sync_delivery_lag_seconds_count") == 1


def test_the_last_delivery_moves_forward_only_and_not_for_probes() -> None:
    metrics = Metrics()
    name = "clerk_sync_last_delivery_timestamp_seconds"
    assert scrape(metrics).value(name) is None  # unknown: left out, not 0 (1970)
    metrics.delivered(outcome(PING_TYPE, Status.IGNORED), NOW, 0.001)
    assert scrape(metrics).value(name) is None
    metrics.delivered(outcome("user.created"), NOW, 0.001)
    # One received earlier but answered later does not move it back.
    metrics.delivered(outcome("user.created"), NOW - 60_000, 0.001)
    metrics.delivered(outcome(PING_TYPE, Status.IGNORED), NOW + 60_000, 0.001)
    assert scrape(metrics).value(name) == NOW / 1000


def test_refusals_start_at_zero_and_count_by_code() -> None:
    metrics = Metrics()
    metrics.refused("signature_mismatch")
    metrics.refused("signature_mismatch")
    metrics.refused("method_not_allowed")
    counted = scrape(metrics).by("clerk_sync_refusals_total", "reason")
    assert counted == {
        **dict.fromkeys(REFUSAL_REASONS, 0.0),
        "signature_mismatch": 2,
        "method_not_allowed": 1,
    }


def test_batches_and_outbox_runs() -> None:
    metrics = Metrics()
    for size in (1, 3, 64):
        metrics.batch(size)
    metrics.outbox_run("myapp.hooks:welcome", "done")
    metrics.outbox_run("myapp.hooks:welcome", "failed")
    figures = scrape(metrics)
    assert figures.value("clerk_sync_batch_size_count") == 3
    assert figures.value("clerk_sync_batch_size_sum") == 68
    assert figures.value("clerk_sync_batch_size_bucket", le="4.0") == 2
    assert figures.pairs("clerk_sync_outbox_runs_total", "handler", "result") == {
        ("myapp.hooks:welcome", "done"): 1,
        ("myapp.hooks:welcome", "failed"): 1,
    }


def test_each_app_has_its_own_registry() -> None:
    first, second = Metrics(), Metrics()
    first.delivered(outcome("user.created"), NOW, 0.001)
    first.batch(1)
    assert scrape(second).pairs("clerk_sync_deliveries_total", "event_type", "outcome") == {}
    assert scrape(second).value("clerk_sync_batch_size_count") == 0
    global_names = {m.name for m in prometheus_client.REGISTRY.collect()}
    assert not any(name.startswith("clerk_sync") for name in global_names)


def test_the_writer_frames_every_outcome_field() -> None:
    """The child's answer carries the envelope timestamp the server's lag is computed from."""
    sent = Outcome("msg_1", Status.STALE, False, "user.updated", "user_1", "older", None, NOW)
    assert Outcome(*_outcome_fields(sent)) == sent
