"""``clerk-sync events show | replay | prune`` and ``list --cursor/--since``, run as a user runs
them (a subprocess with an explicit environment), on both databases.

Independent commands of one test run at the same time (``run_cli_many``): each is mostly
import time.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from clerk_sync import tables
from clerk_sync.devtools import deleted_user_event, encode, envelope, user_event, user_object
from clerk_sync.receiver import Delivery, Receiver
from clerk_sync.retention import DAY_MS, prune
from tests.e2e.server import CliResult, clean_env, run_cli, run_cli_many
from tests.helpers.entity_cases import log_row, row
from tests.helpers.event_log import record_failed
from tests.helpers.tables import EVENT_STATUSES, users_table

NOW_MS = int(time.time() * 1000)
EVENT_KEYS = {
    "seq",
    "svix_id",
    "type",
    "subject_id",
    "user_id",
    "event_timestamp",
    "received_at",
    "last_received_at",
    "delivery_count",
    "status",
    "error",
}


def _env(db_url: str, **settings: str) -> dict[str, str]:
    return clean_env({"DATABASE_URL": db_url, **settings})


def _json(result: CliResult) -> Any:
    assert result.returncode == 0, str(result)
    return json.loads(result.stdout)


def _one_clean_line(result: CliResult) -> str:
    """A refusal: exit 1, one line on stderr, no traceback, nothing on stdout."""
    assert result.returncode == 1, str(result)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, str(result)
    assert "Traceback" not in result.stderr, str(result)
    assert result.stdout == "", str(result)
    return lines[0]


def _seed_gone(engine: Engine) -> dict[str, Any]:
    """A stored event, an erased one (its user deleted) and a pruned one."""
    receiver = Receiver(engine)
    kept, gone = user_object(first_name="Grace"), user_object()
    receiver.receive(Delivery("msg_kept", encode(user_event("user.created", kept))))
    receiver.receive(Delivery("msg_erased", encode(user_event("user.created", gone))))
    receiver.receive(Delivery("msg_deletion", encode(deleted_user_event(gone["id"]))))
    old = NOW_MS - 40 * DAY_MS
    receiver.receive(
        Delivery("msg_pruned", encode(user_event("user.updated", kept)), received_at=old)
    )
    assert prune(engine, tables(), old + 1) == 1
    return {"kept": kept, "gone": gone, "old": old}


def test_show_prints_the_event_and_its_payload_or_why_it_is_gone(
    engine: Engine, db_url: str, tmp_path: Path
) -> None:
    seeded = _seed_gone(engine)
    hostile = b"<html>[bold red]markup[/] \x1b[2J\xe2\x80\xae</html>"
    Receiver(engine).receive(Delivery("msg_hostile", hostile))
    env = _env(db_url)
    text, as_json, erased, pruned, odd, unknown = run_cli_many(
        [
            (["events", "show", "msg_kept"], env),
            (["events", "show", "msg_kept", "--json"], env),
            (["events", "show", "msg_erased"], env),
            (["events", "show", "msg_pruned", "--json"], env),
            (["events", "show", "msg_hostile"], env),
            (["events", "show", "msg_unknown"], env),
        ],
        cwd=tmp_path,
    )

    assert text.returncode == 0, str(text)
    event = log_row(engine, "msg_kept")
    assert "status         processed" in text.stdout
    assert "deliveries     1" in text.stdout
    assert "source         webhook" in text.stdout
    received = event["received_at"]
    assert f"({received} ms)" in text.stdout
    assert " UTC " in text.stdout
    assert '  "type": "user.created"' in text.stdout  # pretty-printed
    assert '"first_name": "Grace"' in text.stdout

    shown = _json(as_json)
    assert set(shown) == {*EVENT_KEYS, "source", "payload", "payload_gone"}
    assert shown["payload"] == encode(user_event("user.created", seeded["kept"])).decode()
    assert shown["payload_gone"] is None
    assert shown["received_at"] == received

    assert erased.returncode == 0, str(erased)
    assert "no payload stored: erased because the user it names was deleted" in erased.stdout

    gone = _json(pruned)
    assert (gone["payload"], gone["payload_gone"]) == (None, "pruned")
    assert gone["received_at"] == seeded["old"]

    assert odd.returncode == 0, str(odd)
    assert "\x1b" not in odd.stdout
    assert "\u202e" not in odd.stdout
    assert "\\x1b[2J" in odd.stdout
    assert "[bold red]markup[/]" in odd.stdout  # shown as it was sent, not rendered
    assert "failed" in odd.stdout

    line = _one_clean_line(unknown)
    assert line == "error [not_found] No event with svix id 'msg_unknown' in the log."


def test_replay_decodes_failed_deliveries_again_and_nothing_else(
    engine: Engine, db_url: str, tmp_path: Path
) -> None:
    _seed_gone(engine)
    late = user_object()
    record_failed(engine, "msg_failed", encode(user_event("user.created", late)))
    env = _env(db_url)

    dry = run_cli(
        "events", "replay", "--status", "failed", "--dry-run", "--json", env=env, cwd=tmp_path
    )
    assert _json(dry) == [
        {
            "svix_id": "msg_failed",
            "type": "user.created",
            "subject_id": None,
            "previous_status": "failed",
            "action": "decode_again",
        }
    ]
    assert log_row(engine, "msg_failed")["delivery_count"] == 1  # a dry run changes nothing
    assert row(engine, users_table, late["id"]) is None

    result = run_cli(
        "events",
        "replay",
        "msg_failed",
        "msg_kept",
        "msg_unknown",
        "msg_erased",
        "--json",
        env=env,
        cwd=tmp_path,
    )
    assert result.returncode == 1, str(result)
    entries = json.loads(result.stdout)
    by_id = {e["svix_id"]: e for e in entries}
    assert [e["svix_id"] for e in entries] == [
        "msg_failed",
        "msg_kept",
        "msg_unknown",
        "msg_erased",
    ]
    assert by_id["msg_failed"] == {
        "svix_id": "msg_failed",
        "type": "user.created",
        "subject_id": late["id"],
        "previous_status": "failed",
        "status": "processed",
        "duplicate": False,
        "reason": None,
    }
    assert by_id["msg_kept"]["duplicate"] is True
    assert by_id["msg_kept"]["status"] == "processed"
    assert by_id["msg_unknown"]["error"] == "not_found"
    assert by_id["msg_erased"]["error"] == "payload_gone"
    assert "erased because the user it names was deleted" in by_id["msg_erased"]["detail"]
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 2, result.stderr
    assert errors[0].startswith("error [not_found] No event with svix id 'msg_unknown'")
    assert errors[1].startswith("error [payload_gone] No payload stored for 'msg_erased'")
    assert row(engine, users_table, late["id"]) is not None
    assert log_row(engine, "msg_failed")["status"] == "processed"
    assert log_row(engine, "msg_kept")["delivery_count"] == 2  # counted, not applied again

    text = run_cli("events", "replay", "msg_failed", env=env, cwd=tmp_path)
    assert text.returncode == 0, str(text)
    assert "duplicate (processed), nothing applied again" in text.stdout
    assert "only a failed delivery is decoded again" in text.stdout


def test_replay_selects_by_status_type_and_age(engine: Engine, db_url: str, tmp_path: Path) -> None:
    users = [user_object() for _ in range(3)]
    record_failed(engine, "msg_new", encode(user_event("user.created", users[0])))
    record_failed(
        engine, "msg_old", encode(user_event("user.created", users[1])), NOW_MS - 3 * DAY_MS
    )
    receiver = Receiver(engine)
    receiver.receive(Delivery("msg_html", b"<html>not an event</html>"))
    env = _env(db_url)
    text = run_cli(
        "events",
        "replay",
        "--status",
        "failed",
        "--type",
        "user.created",
        "--since",
        "2d",
        env=env,
        cwd=tmp_path,
    )
    assert text.returncode == 0, str(text)
    assert f"msg_new user.created {users[0]['id']}: failed → processed" in text.stdout
    assert "msg_old" not in text.stdout
    assert "msg_html" not in text.stdout
    assert "replayed 1 event(s)" in text.stdout
    assert log_row(engine, "msg_old")["status"] == "failed"
    assert log_row(engine, "msg_html")["delivery_count"] == 1

    everything = _json(
        run_cli("events", "replay", "--status", "failed", "--json", env=env, cwd=tmp_path)
    )
    assert [(e["svix_id"], e["status"]) for e in everything] == [
        ("msg_old", "processed"),
        ("msg_html", "failed"),
    ]
    none = run_cli("events", "replay", "--status", "ignored", env=env, cwd=tmp_path)
    assert none.returncode == 0, str(none)
    assert "no event matches" in none.stdout


def test_list_pages_with_a_cursor_and_filters_by_age(
    engine: Engine, db_url: str, tmp_path: Path
) -> None:
    receiver = Receiver(engine)
    ids = [f"msg_{n}" for n in range(5)]
    for n, svix_id in enumerate(ids):
        body = encode(envelope("email.created", {"id": f"ema_{n}"}))
        receiver.receive(Delivery(svix_id, body, received_at=NOW_MS - (4 - n) * DAY_MS))
    env = _env(db_url)
    first, recent = run_cli_many(
        [
            (["events", "list", "--limit", "2"], env),
            (["events", "list", "--since", "36h", "--json"], env),
        ],
        cwd=tmp_path,
    )
    assert first.returncode == 0, str(first)
    cursor = log_row(engine, "msg_3")["seq"]
    assert f"next page: --cursor {cursor}" in first.stdout
    assert [e["svix_id"] for e in _json(recent)] == ["msg_4", "msg_3"]
    assert set(_json(recent)[0]) == EVENT_KEYS  # --json stays a list of events

    second, last = run_cli_many(
        [
            (["events", "list", "--limit", "2", "--cursor", str(cursor), "--json"], env),
            (
                [
                    "events",
                    "list",
                    "--limit",
                    "2",
                    "--cursor",
                    str(log_row(engine, "msg_1")["seq"]),
                ],
                env,
            ),
        ],
        cwd=tmp_path,
    )
    assert [e["svix_id"] for e in _json(second)] == ["msg_2", "msg_1"]
    assert last.returncode == 0, str(last)
    assert "msg_0" in last.stdout
    assert "next page" not in last.stdout


def test_prune_erases_old_payloads(engine: Engine, db_url: str, tmp_path: Path) -> None:
    receiver = Receiver(engine)
    for svix_id, age_days in [("msg_ancient", 90), ("msg_month", 31), ("msg_hours", 0.2)]:
        body = encode(envelope("email.created", {"id": f"ema_{svix_id}"}))
        receiver.receive(Delivery(svix_id, body, received_at=NOW_MS - int(age_days * DAY_MS)))

    forever = run_cli("events", "prune", env=_env(db_url, EVENT_RETENTION_DAYS="0"), cwd=tmp_path)
    assert forever.returncode == 0, str(forever)
    assert "EVENT_RETENTION_DAYS=0 keeps stored payloads forever: nothing pruned" in forever.stdout
    assert log_row(engine, "msg_ancient")["payload"] is not None

    started = int(time.time() * 1000)
    default = _json(run_cli("events", "prune", "--json", env=_env(db_url), cwd=tmp_path))
    finished = int(time.time() * 1000)
    assert set(default) == {"erased", "older_than_ms", "received_before", "wal_checkpointed"}
    assert default["erased"] == 2
    assert started - 30 * DAY_MS <= default["received_before"] <= finished - 30 * DAY_MS
    assert default["older_than_ms"] == 30 * DAY_MS
    expected_wal = True if db_url.startswith("sqlite") else None
    assert default["wal_checkpointed"] is expected_wal
    assert log_row(engine, "msg_month")["payload"] is None
    assert log_row(engine, "msg_hours")["payload"] is not None

    hours = run_cli(
        "events",
        "prune",
        "--older-than",
        "1h",
        env=_env(db_url, EVENT_RETENTION_DAYS="0"),
        cwd=tmp_path,
    )
    assert hours.returncode == 0, str(hours)
    assert "erased 1 stored payload(s) of events received before" in hours.stdout
    assert "their log rows stay" in hours.stdout
    assert log_row(engine, "msg_hours")["payload"] is None
    assert log_row(engine, "msg_hours")["status"] == "ignored"  # the row stays


def test_bad_input_is_one_clear_line(engine: Engine, db_url: str, tmp_path: Path) -> None:
    env = _env(db_url)
    cases = {
        "since": ["events", "list", "--since", "2 days"],
        "cursor": ["events", "list", "--cursor", "abc"],
        "older": ["events", "prune", "--older-than", "30"],
        "zero": ["events", "prune", "--older-than", "0d"],
        "replay_since": ["events", "replay", "--status", "failed", "--since", "yesterday"],
        "status": ["events", "replay", "--status", "bogus"],
        "neither": ["events", "replay"],
        "both": ["events", "replay", "msg_x", "--status", "failed"],
        "type_with_ids": ["events", "replay", "msg_x", "--type", "user.created"],
    }
    results = dict(
        zip(cases, run_cli_many([(a, env) for a in cases.values()], cwd=tmp_path), strict=True)
    )
    lines = {name: _one_clean_line(result) for name, result in results.items()}
    assert all(line.startswith("error [invalid_parameter] ") for line in lines.values()), lines
    for name, option in [("since", "--since"), ("older", "--older-than"), ("zero", "--older-than")]:
        assert option in lines[name]
        assert "90s, 15m, 6h or 2d" in lines[name]
    assert "'2 days'" in lines["since"]
    assert "--since" in lines["replay_since"]
    assert "--cursor" in lines["cursor"]
    assert all(s in lines["status"] for s in EVENT_STATUSES)
    assert "--status" in lines["neither"]
    assert "one of the two" in lines["both"]
    assert "--type" in lines["type_with_ids"]
