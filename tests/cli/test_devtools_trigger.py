"""``clerk-sync trigger`` and ``send`` as a user runs them: subprocesses against a real
``clerk-sync serve`` on 127.0.0.1, with what lands in the database read through a second engine.

Commands spend most of their time importing, so the independent ones of a test run together.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from clerk_sync.devtools import fixture_types, new_id
from clerk_sync.devtools.catalog import persona
from clerk_sync.entities import handled_types
from clerk_sync.web import WEBHOOK_PATH
from tests.cli.devtools_support import (
    env,
    finish,
    one_error_line,
    start_with_input,
)
from tests.conftest import FIXTURES, SECRET, load_fixture
from tests.e2e.server import CliResult, ServerProcess, free_port, run_cli_many
from tests.helpers.tables import events_table, tombstones_table, users_table

ANSWER = re.compile(r"^(✓|✗) (\d{3}) (\S+) (\S+) (msg_\S+)(?: \(([^)]*)\))? (.*)$")
CAPTURED_USER = "user_2vX11zP8kQm3TbR6wYcN0dLe5Hs"  # the id in tests/fixtures/user.*.json


def answers(result: CliResult) -> list[dict[str, str]]:
    """The per-delivery lines of ``trigger``/``send``, parsed."""
    parsed = []
    for line in result.stdout.splitlines():
        match = ANSWER.match(line)
        if match:
            mark, status, event_type, subject, msg_id, note, said = match.groups()
            parsed.append(
                {
                    "mark": mark,
                    "status": status,
                    "type": event_type,
                    "subject": subject,
                    "msg_id": msg_id,
                    "note": note or "",
                    "said": said,
                }
            )
    return parsed


def users(observer: Engine) -> dict[str, dict[str, Any]]:
    with observer.connect() as conn:
        return {r.id: dict(r._mapping) for r in conn.execute(select(users_table))}


def events(observer: Engine) -> list[dict[str, Any]]:
    with observer.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(events_table))]


@pytest.fixture
def server(db_url: str, tmp_path: Path) -> Iterator[ServerProcess]:
    with ServerProcess(database_url=db_url, secret=SECRET, workdir=tmp_path / "srv") as proc:
        yield proc


def test_what_trigger_send_and_doctor_send_lands_in_the_database(
    server: ServerProcess, backend: str, db_url: str, observer: Engine, tmp_path: Path
) -> None:
    """On both backends what writes users; on SQLite also what is backend-agnostic (send, the
    refusals on purpose), in the same batch so the commands share the two cores."""
    url = server.url + WEBHOOK_PATH
    settings = env(CLERK_WEBHOOK_SECRET=SECRET, DATABASE_URL=db_url)
    capture = tmp_path / "from-the-dashboard.json"
    capture.write_bytes(load_fixture("user.updated.json"))
    lifecycle_id, bad_id, expired_id = new_id("user"), new_id("user"), new_id("user")
    at = ["--url", url]
    overrides = ["--set", "data.last_name=Hopper", "--set", 'data.public_metadata={"plan":"team"}']
    hard_cases = ["--duplicate", "--shuffle", "--stale"]
    jobs: list[tuple[list[str], dict[str, str]]] = [
        (
            ["trigger", "user.created", "--count", "3", *at, *overrides],
            settings,
        ),
        (
            ["trigger", "--scenario", "lifecycle", "--user-id", lifecycle_id, *at, *hard_cases],
            settings,
        ),
        (["doctor", "--url", url], settings),
    ]
    piped = None
    if backend == "sqlite":
        jobs += [
            (["send", str(capture), *at], settings),
            (
                ["trigger", "user.created", "--bad-signature", "--user-id", bad_id, "--url", url],
                settings,
            ),
            (
                ["trigger", "user.created", "--expired", "--user-id", expired_id, "--url", url],
                settings,
            ),
        ]
        piped = start_with_input(
            ["send", "-", "--url", url],
            env=settings,
            cwd=tmp_path,
            stdin=FIXTURES / "user.deleted.json",
        )
    created, lifecycle, doctor, *sqlite_only = run_cli_many(jobs, cwd=tmp_path)
    piped_result = [finish(piped, ["send", "-"])] if piped is not None else []
    stored = users(observer)
    logged = {e["svix_id"]: e for e in events(observer)}

    # --count 3: three distinct users, each processed, each in the database as its persona;
    # --set changed every event before it was signed.
    assert created.returncode == 0, str(created)
    lines = answers(created)
    assert [(a["mark"], a["status"], a["said"]) for a in lines] == [("✓", "200", "processed")] * 3
    assert f"POST {url}" in created.stdout
    assert "3 sent, every answer as intended." in created.stdout
    for n, line in enumerate(lines):
        row = stored[line["subject"]]
        assert (row["email"], row["first_name"]) == (persona(n)[2], persona(n)[0])
        assert (row["last_name"], row["public_metadata"]) == ("Hopper", {"plan": "team"})

    # lifecycle, every hard case at once: all acknowledged, every copy a duplicate, delete wins.
    assert lifecycle.returncode == 0, str(lifecycle)
    lines = answers(lifecycle)
    assert len(lines) == 8
    assert {a["status"] for a in lines} == {"200"}
    assert {a["subject"] for a in lines} == {lifecycle_id}
    copies = [a for a in lines if "second copy" in a["note"]]
    assert len(copies) == 4
    assert all(a["said"].endswith("(duplicate)") for a in copies)
    assert sum("stale on purpose" in a["note"] for a in lines) == 2
    assert lifecycle_id not in stored
    with observer.connect() as conn:
        tomb = conn.execute(
            select(tombstones_table).where(tombstones_table.c.id == lifecycle_id)
        ).first()
    assert tomb is not None
    mine = [e for e in logged.values() if e["subject_id"] == lifecycle_id]
    assert len(mine) == 4
    assert {e["delivery_count"] for e in mine} == {2}
    assert {e["type"] for e in mine} == {"user.created", "user.updated", "user.deleted"}

    # doctor against the same server and database: every check passes.
    assert doctor.returncode == 0, str(doctor)
    checks = [line.split()[:2] for line in doctor.stdout.splitlines() if line[:1] in "✓✗–"]
    assert checks == [
        ["✓", "secret"],
        ["✓", "database"],
        ["✓", "server"],
        ["✓", "round-trip"],
        ["✓", "event-log"],
    ], str(doctor)
    assert "All 5 checks passed." in doctor.stdout
    pings = [e for e in logged.values() if e["type"] == "clerkSync.ping"]
    assert [(p["status"], p["svix_id"] in doctor.stdout) for p in pings] == [("ignored", True)]
    assert not any(u.startswith("ping_") for u in stored)

    for result in (created, lifecycle, doctor, *sqlite_only, *piped_result):
        assert SECRET not in result.stdout + result.stderr
    if backend != "sqlite":
        return
    sent, bad_sig, expired = sqlite_only

    # send: the capture's bytes, as they are (a file), and from stdin.
    assert sent.returncode == 0, str(sent)
    (line,) = answers(sent)
    assert (line["status"], line["type"], line["subject"]) == ("200", "user.updated", CAPTURED_USER)
    (from_stdin,) = piped_result
    assert from_stdin.returncode == 0, str(from_stdin)
    (line,) = answers(from_stdin)
    assert (line["status"], line["type"], line["said"]) == ("200", "user.deleted", "processed")
    # The two raced; either way the delete wins and the capture's user is gone for good.
    assert CAPTURED_USER not in stored
    assert {logged[m]["type"] for m in re.findall(r"msg_\w+", sent.stdout + from_stdin.stdout)} == {
        "user.updated",
        "user.deleted",
    }

    # --bad-signature / --expired: the 401 aimed at counts as success; nothing is recorded.
    for result, code, detail in [
        (bad_sig, "signature_mismatch", "No signature in svix-signature matches"),
        (expired, "timestamp_out_of_tolerance", "s in the past, outside the tolerance of ±300 s"),
    ]:
        assert result.returncode == 0, str(result)
        (line,) = answers(result)
        assert (line["mark"], line["status"]) == ("✓", "401"), str(result)
        assert line["said"].startswith(f"{code} — ")
        assert detail in line["said"]
        assert line["msg_id"] not in logged
    assert "1 sent, every answer as intended." in bad_sig.stdout


def test_bad_input_is_one_line(tmp_path: Path) -> None:
    """Refused before anything is sent: one line on stderr, no traceback, exit 1."""
    settings = env(CLERK_WEBHOOK_SECRET=SECRET)
    bad_json = tmp_path / "bad.json"
    bad_json.write_text('{\n  "type": "user.created",\n  "data" {"id": "user_x"}\n}\n')
    refused_url = f"http://127.0.0.1:{free_port()}{WEBHOOK_PATH}"
    unknown, refused, listed, invalid = run_cli_many(
        [
            (["trigger", "user.create"], settings),
            (["trigger", "user.created", "--url", refused_url], settings),
            (["trigger", "--list"], env()),
            (["send", str(bad_json)], settings),
        ],
        cwd=tmp_path,
    )

    # An unknown type lists the known ones.
    assert unknown.returncode == 1
    line = one_error_line(unknown)
    assert "'user.create'" in line
    assert all(t in line for t in fixture_types())

    # A URL that refuses connections.
    assert refused.returncode == 1
    assert one_error_line(refused) == (
        f"error [server_unreachable] could not connect to {refused_url}: Connection refused."
    )

    # --list: every handled type (and the probe), and the scenarios; no secret needed.
    assert listed.returncode == 0, str(listed)
    kinds = dict(line.split()[:2] for line in listed.stdout.splitlines() if "." in line.split()[0])
    assert {t: "handled" for t in handled_types()}.items() <= kinds.items()
    assert kinds["clerkSync.ping"] == "ignored"
    assert "--scenario lifecycle: user.created → user.updated → user.deleted" in listed.stdout

    # send: invalid JSON says where, and nothing is sent.
    assert invalid.returncode == 1
    line = one_error_line(invalid)
    assert "bad.json is not valid JSON: line 3, column 10: Expecting ':' delimiter" in line
    assert "nothing was sent" in line
