"""Notifications end to end: real apprise sending to a loopback HTTP receiver, and alerts
decided against a real database (a migrated SQLite file and PostgreSQL).

A rule's hook renders and sends; a refused connection or a 500 raises (so the outbox retries)
without a credential in the message. Alerts enqueue outbox rows once per quiet spell or
window, whichever replica checks, and each row's hook sends what it reports.
"""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, insert, update

from clerk_sync.entities import handled_types, tables
from clerk_sync.events import OutboxStatus
from clerk_sync.hooks import ChangeEvent, HookSet
from clerk_sync.notify import NotificationFailed, Notifications, SignatureFailures, load_rules
from clerk_sync.notify.alerts import SETTLE_MS
from clerk_sync.store import make_engine, outbox
from tests.helpers.json_receiver import JsonReceiver

T0 = 1_770_000_000_000
MINUTE = 60_000
HOUR = 60 * MINUTE
TABLES = tables()


@pytest.fixture
def hook() -> Iterator[JsonReceiver]:
    with JsonReceiver() as receiver:
        yield receiver


def rules(tmp_path: Path, text: str) -> Notifications:
    path = tmp_path / "notify.toml"
    path.write_text(text, encoding="utf-8")
    return load_rules(str(path))


def user_created(**data: Any) -> ChangeEvent:
    body = {
        "id": "user_29w83sxmDNGwOuEthce5gg56FcC",
        "first_name": "Ada",
        "last_name": "Lovelace",
        "primary_email_address_id": "idn_1",
        "email_addresses": [{"id": "idn_1", "email_address": "ada@example.com"}],
        **data,
    }
    return ChangeEvent(
        "msg_2bJ9", "user.created", body["id"], body, idempotency_key=secrets.token_hex(16)
    )


def run(notifications: Notifications, name: str, event: ChangeEvent) -> None:
    """Run a hook the way the outbox worker does: looked up by name in the deployment's set."""
    hooks = HookSet(tuple(notifications.hooks()))
    found = hooks.handler(name)
    assert found is not None, name
    found.fn(event)


# --- rules --------------------------------------------------------------------------------


def test_a_rule_sends_its_rendered_notification(tmp_path: Path, hook: JsonReceiver) -> None:
    notifications = rules(
        tmp_path,
        f"""
[[rule]]
name = "signups"
events = ["user.created"]
notify = ["{hook.url("/signups", "+X-Token=abc")}"]
title = "New user: {{data.first_name}} {{data.last_name}}"
body = "{{email}} signed up ({{type}} {{subject_id}}, {{svix_id}})"

[[rule]]
name = "audit"
events = ["user.*"]
level = "warning"
notify = ["{hook.url("/audit")}"]
""",
    )
    event = user_created()
    run(notifications, "notify:signups", event)
    run(notifications, "notify:audit", event)
    signups, audit = hook.wait_for(2)
    assert signups.path == "/signups"
    assert signups.body == {
        "version": "1.0",
        "title": "New user: Ada Lovelace",
        "message": f"ada@example.com signed up (user.created {event.subject_id}, msg_2bJ9)",
        "attachments": [],
        "type": "info",
    }
    assert signups.headers["X-Token"] == "abc"
    assert signups.headers["User-Agent"] == "clerk-sync"
    assert audit.body["title"] == f"user.created: {event.subject_id}"
    assert audit.body["message"] == (
        f"clerk-sync applied user.created to {event.subject_id} (delivery msg_2bJ9)."
    )
    assert audit.body["type"] == "warning"


def test_a_field_the_delivered_payload_lacks_renders_empty(
    tmp_path: Path, hook: JsonReceiver
) -> None:
    notifications = rules(
        tmp_path,
        f'[[rule]]\nevents = ["user.created"]\nnotify = ["{hook.url()}"]\n'
        'title = "[{data.last_name}] [{data.username}]"\n',
    )
    run(notifications, "notify:rule-1", user_created(last_name=None))
    assert hook.wait_for(1)[0].body["title"] == "[] []"


def failing_rule(tmp_path: Path, url: str) -> Notifications:
    return rules(tmp_path, f'[[rule]]\nname = "ops"\nevents = ["user.*"]\nnotify = ["{url}"]\n')


def test_a_500_raises_and_names_the_url_by_scheme_only(tmp_path: Path, hook: JsonReceiver) -> None:
    hook.status = 500
    url = hook.url("/hook", "+X-Token=tok3n-value").replace("json://", "json://user:s3cretpw@")
    with pytest.raises(NotificationFailed) as caught:
        run(failing_rule(tmp_path, url), "notify:ops", user_created())
    message = str(caught.value)
    assert message.startswith("rule 'ops' (user.created user_29w83sxmDNGwOuEthce5gg56FcC)")
    assert "could not be sent to json://… (" in message
    assert "error=500" in message
    for secret in ("s3cretpw", "tok3n-value", str(hook.port), "127.0.0.1"):
        assert secret not in message
    assert len(hook.received) == 1  # apprise tried once; retrying is the outbox's job


def test_a_refused_connection_raises(tmp_path: Path, hook: JsonReceiver) -> None:
    with pytest.raises(NotificationFailed, match=r"could not be sent to json://… \("):
        run(failing_rule(tmp_path, hook.refused_url()), "notify:ops", user_created())


def test_a_retry_sends_only_to_the_urls_that_failed(tmp_path: Path) -> None:
    with JsonReceiver() as good, JsonReceiver() as flaky:
        flaky.status = 500
        notifications = rules(
            tmp_path,
            f'[[rule]]\nname = "two"\nevents = ["user.created"]\n'
            f'notify = ["{good.url()}", "{flaky.url()}"]\n',
        )
        event = user_created()
        with pytest.raises(NotificationFailed, match="; 1 other URL"):
            run(notifications, "notify:two", event)
        flaky.status = 200
        run(notifications, "notify:two", event)  # the outbox's retry: same idempotency key
        assert len(good.received) == 1
        assert len(flaky.received) == 2
        run(notifications, "notify:two", user_created())  # another delivery goes to both
        assert (len(good.received), len(flaky.received)) == (2, 3)


def test_the_hooks_fit_a_deployment(tmp_path: Path, hook: JsonReceiver) -> None:
    notifications = rules(
        tmp_path,
        f'[[rule]]\nevents = ["organization.*", "user.deleted"]\nnotify = ["{hook.url()}"]\n'
        f'[[alert]]\nkind = "dead_letters"\nnotify = ["{hook.url()}"]\n',
    )
    hooks = HookSet(tuple(notifications.hooks()))
    hooks.check_patterns(handled_types())
    assert [route[0] for route in hooks.routes()] == ["notify:rule-1", "notify:alert:dead_letters"]


# --- alerts -------------------------------------------------------------------------------


def alerts(tmp_path: Path, hook: JsonReceiver, *lines: str) -> Notifications:
    blocks = "\n".join(f'[[alert]]\n{line}\nnotify = ["{hook.url()}"]\n' for line in lines)
    return rules(tmp_path, blocks)


def check(engine: Engine, notifications: Notifications, now: int, **kwargs: Any) -> int:
    with engine.begin() as conn:
        return notifications.check_alerts(conn, TABLES, now, kwargs.get("failures"))


def deliver(engine: Engine, received_at: int, event_type: str = "user.created") -> None:
    with engine.begin() as conn:
        conn.execute(
            insert(TABLES.events).values(
                svix_id=f"msg_{secrets.token_hex(8)}",
                type=event_type,
                subject_id="user_1",
                received_at=received_at,
                last_received_at=received_at,
                delivery_count=1,
                status="processed",
            )
        )


def dead_row(engine: Engine, handler: str, finished_at: int) -> None:
    key = secrets.token_hex(16)
    with engine.begin() as conn:
        row = {"key": key, "handler": handler, "event_type": "user.created", "now": T0}
        outbox.enqueue(conn, TABLES, [{**row, "subject_id": "user_1", "data": "{}"}])
        conn.execute(
            update(TABLES.outbox)
            .where(TABLES.outbox.c.key == key)
            .values(status=outbox.DEAD, finished_at=finished_at, last_error="boom")
        )


def alert_rows(engine: Engine, name: str | None = None) -> list[outbox.OutboxRow]:
    """The rows the alert checker enqueued (of one alert, given its name), oldest first."""
    with engine.connect() as conn:
        found = outbox.list_rows(conn, TABLES, status=OutboxStatus.PENDING)
    prefix = "notify:alert:" + (name or "")
    return sorted((r for r in found if r.handler.startswith(prefix)), key=lambda r: r.id)


def facts(row: outbox.OutboxRow) -> dict[str, Any]:
    assert row.data is not None
    loaded = json.loads(row.data)
    assert isinstance(loaded, dict)
    return loaded


def send_row(notifications: Notifications, row: outbox.OutboxRow) -> None:
    """What the outbox worker does with an alert row: its data, through its hook."""
    event = ChangeEvent(
        row.svix_id or "", row.event_type, row.subject_id or "", facts(row), idempotency_key=row.key
    )
    run(notifications, row.handler, event)


def test_no_deliveries_alerts_once_per_quiet_spell(
    engine: Engine, tmp_path: Path, hook: JsonReceiver
) -> None:
    notifications = alerts(tmp_path, hook, 'kind = "no_deliveries"')
    assert check(engine, notifications, T0 + 7 * HOUR) == 0  # an empty log never alerts
    deliver(engine, T0)
    deliver(engine, T0 + HOUR, "clerkSync.ping")  # doctor's probe is not a delivery
    assert check(engine, notifications, T0 + 6 * HOUR - 1) == 0
    assert check(engine, notifications, T0 + 6 * HOUR) == 1
    assert check(engine, notifications, T0 + 9 * HOUR) == 0  # the same spell
    deliver(engine, T0 + 10 * HOUR)
    assert check(engine, notifications, T0 + 15 * HOUR) == 0
    assert check(engine, notifications, T0 + 16 * HOUR) == 1  # a new spell
    first, second = alert_rows(engine)
    assert (first.event_type, first.subject_id) == (
        "clerkSync.alert.no_deliveries",
        "alert:no_deliveries",
    )
    assert facts(first)["last_received_at"] == T0
    assert facts(second)["last_received_at"] == T0 + 10 * HOUR
    send_row(notifications, first)
    sent = hook.wait_for(1)[0].body
    assert sent["title"] == "clerk-sync: no webhook deliveries for 6h"
    assert "Svix may have disabled the endpoint" in sent["message"]
    assert "Clerk Dashboard → Webhooks" in sent["message"]
    assert sent["type"] == "warning"


def test_dead_letters_alert_at_most_once_per_window(
    engine: Engine, tmp_path: Path, hook: JsonReceiver
) -> None:
    notifications = alerts(tmp_path, hook, 'kind = "dead_letters"\nafter = "15m"')
    assert check(engine, notifications, T0) == 0
    dead_row(engine, "notify:signups", T0)
    dead_row(engine, "notify:signups", T0 + 1)
    dead_row(engine, "app.hooks:welcome", T0 + 2)
    dead_row(engine, "notify:alert:no_deliveries", T0)  # an alert's own: never counted
    assert check(engine, notifications, T0 + SETTLE_MS - 1) == 0  # too fresh to be sure of
    now = T0 + SETTLE_MS + 2
    assert check(engine, notifications, now) == 1
    dead_row(engine, "app.hooks:welcome", now + MINUTE)
    assert check(engine, notifications, now + 2 * MINUTE) == 0  # within the window
    assert check(engine, notifications, now + 15 * MINUTE) == 1
    assert check(engine, notifications, now + 31 * MINUTE) == 0  # nothing new died
    first, second = alert_rows(engine)
    assert facts(first)["count"] == 3
    assert facts(first)["handlers"] == {"notify:signups": 2, "app.hooks:welcome": 1}
    assert facts(second)["count"] == 1
    assert facts(second)["handlers"] == {"app.hooks:welcome": 1}
    send_row(notifications, first)
    sent = hook.wait_for(1)[0].body
    assert sent["title"] == "clerk-sync: 3 outbox run(s) failed for good"
    assert "notify:signups ×2, app.hooks:welcome ×1" in sent["message"]
    assert sent["type"] == "failure"


def test_signature_failures_alert_at_the_threshold_once_per_window(
    engine: Engine, tmp_path: Path, hook: JsonReceiver
) -> None:
    notifications = alerts(tmp_path, hook, 'kind = "signature_failures"\nthreshold = 3')
    failures = SignatureFailures()
    assert check(engine, notifications, T0) == 0  # no counter: nothing to decide on
    failures.record(T0 - 20 * MINUTE)  # outside the 15m window
    failures.record(T0 - MINUTE)
    failures.record(T0)
    assert check(engine, notifications, T0, failures=failures) == 0
    failures.record(T0 + 1)
    assert check(engine, notifications, T0 + 2, failures=failures) == 1
    for n in range(5):
        failures.record(T0 + 2 * MINUTE + n)
    assert check(engine, notifications, T0 + 3 * MINUTE, failures=failures) == 0
    assert check(engine, notifications, T0 + 15 * MINUTE + 2, failures=failures) == 1
    first, second = alert_rows(engine)
    assert (facts(first)["count"], facts(second)["count"]) == (3, 5)
    send_row(notifications, second)
    sent = hook.wait_for(1)[0].body
    assert sent["title"] == "clerk-sync: 5 webhook requests failed signature verification"
    assert "CLERK_WEBHOOK_SECRET" in sent["message"]


def test_replicas_checking_at_once_enqueue_one_alert(
    engine: Engine, db_url: str, tmp_path: Path, hook: JsonReceiver
) -> None:
    notifications = alerts(
        tmp_path,
        hook,
        'kind = "no_deliveries"',
        'kind = "dead_letters"',
        'kind = "signature_failures"',
    )
    failures = SignatureFailures()
    for n in range(10):
        failures.record(T0 + n)
    deliver(engine, T0 - 7 * HOUR)
    dead_row(engine, "notify:x", T0 - HOUR)
    other = make_engine(db_url)
    try:
        # Both decide before either writes, as two replicas' checks racing would.
        decided = []
        for replica in (engine, other):
            with replica.connect() as conn:
                decided.append(
                    [a.due(conn, TABLES, T0 + 10, failures) for a in notifications.alerts]
                )
        assert decided[0] == decided[1]
        assert all(d is not None for d in decided[0])
        for replica, due in zip((engine, other), decided, strict=True):
            with replica.begin() as conn:
                rows = [a.row(*d, T0 + 10) for a, d in zip(notifications.alerts, due, strict=True)]
                outbox.enqueue(conn, TABLES, rows)  # the second replica's are duplicates
        assert len(alert_rows(engine)) == 3
        assert check(other, notifications, T0 + 20, failures=failures) == 0
    finally:
        other.dispose()
    assert len(alert_rows(engine)) == 3


def test_signature_failures_counter_is_thread_safe_and_bounded() -> None:
    failures = SignatureFailures(capacity=5_000)

    def record(start: int) -> None:
        for n in range(1_000):
            failures.record(start + n)

    threads = [threading.Thread(target=record, args=(T0 + k * 1_000,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert failures.count_since(T0) == 4_000
    assert failures.count_since(T0 + 3_500) == 500
    record(T0 + 10_000)
    record(T0 + 11_000)
    assert failures.count_since(0) == 5_000  # the oldest were let go


def test_an_alert_that_cannot_be_sent_raises(tmp_path: Path, hook: JsonReceiver) -> None:
    hook.status = 500
    notifications = alerts(tmp_path, hook, 'name = "ops"\nkind = "dead_letters"')
    alert = notifications.alerts[0]
    row_facts = {**alert.sample(T0), "alert_key": "alert:abc"}
    event = ChangeEvent("", "clerkSync.alert.dead_letters", "alert:ops", row_facts)
    with pytest.raises(NotificationFailed, match=r"^alert 'ops' could not be sent to json://…"):
        run(notifications, "notify:alert:ops", event)


def test_reconcile_drift_alerts_once_per_run_that_found_drift(
    engine: Engine, tmp_path: Path, hook: JsonReceiver
) -> None:
    from clerk_sync import tables as deployment
    from clerk_sync.notify.alerts import RECONCILE_DRIFT_STATE, RECONCILE_STATE
    from clerk_sync.store import state

    notifications = alerts(tmp_path, hook, 'kind = "reconcile_drift"')
    assert check(engine, notifications, T0) == 0  # never reconciled
    summary = {"at": T0, "total": 0, "fixed": True, "kinds": {}}
    with engine.begin() as conn:
        state.put(conn, deployment(), RECONCILE_STATE, json.dumps(summary), T0)
    assert check(engine, notifications, T0 + 1) == 0  # no drift
    drift = {"users": {"missing": 2, "extra": 1, "stale": 0}}
    summary = {"at": T0 + 5, "total": 3, "fixed": True, "kinds": drift}
    with engine.begin() as conn:
        state.put(conn, deployment(), RECONCILE_DRIFT_STATE, json.dumps(summary), T0 + 5)
    assert check(engine, notifications, T0 + 10) == 1
    assert check(engine, notifications, T0 + 20) == 0  # the same run
    [row] = alert_rows(engine)
    send_row(notifications, row)
    sent = hook.wait_for(1)[0].body
    assert sent["title"] == "clerk-sync: reconcile found 3 difference(s) with Clerk"
    assert "users: 2 missing, 1 extra, 0 stale" in sent["message"]
    assert "and repaired it" in sent["message"]
