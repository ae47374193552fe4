"""``clerk-sync events …``: the delivery log — list, show, replay, prune.

Replay runs stored bodies through the same :class:`~clerk_sync.receiver.Receiver` (and the
deployment's hooks) as the server, on the configured database, never re-signed: the log holds
only bodies that verified when they came. The receiver's rule decides what a replay does: a
``failed`` delivery is decoded again (a newer clerk-sync may apply it); any other is answered
as a duplicate and nothing is applied twice. Either way the replay counts as a delivery
(``delivery_count`` + 1, ``last_received_at`` now).
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from ..errors import ClerkSyncError, InvalidParameter, NotFound, StoreUnavailable
from ..events import STATUSES as EVENT_STATUSES  # the log's statuses (store.schema's too)
from ..events import Source
from ..logformat import escape_controls
from .common import (
    deployment,
    load_settings,
    ms_to_text,
    open_engine,
    print_json,
    reports_errors,
    stderr,
    stdout,
)

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from ..config import Settings
    from ..receiver import Outcome, Receiver
    from ..store import Tables

app = typer.Typer(help="Inspect, replay and prune the delivery log.", no_args_is_help=True)
_STYLE = {"processed": "green", "stale": "yellow", "ignored": "dim", "failed": "red"}
_DURATION = re.compile(r"([1-9][0-9]{0,6})([smhd])")
_UNIT_MS = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_MAX_SEQ_DIGITS = 18


def parse_age(text: str, option: str) -> int:
    """``90s``, ``15m``, ``6h``, ``2d`` in ms; anything else is a one-line error naming
    ``option``."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        shown = text if len(text) <= 40 else text[:40] + "…"
        raise InvalidParameter(
            f"{option} must be a whole number above 0 and a unit (s, m, h or d), such as 90s, "
            f"15m, 6h or 2d (got {shown!r})."
        )
    return int(match[1]) * _UNIT_MS[match[2]]


def _since(text: str) -> int | None:
    return int(time.time() * 1000) - parse_age(text, "--since") if text else None


def _check_status(status: str) -> None:
    if status and status not in EVENT_STATUSES:
        raise InvalidParameter(f"--status must be one of {', '.join(EVENT_STATUSES)}.")


def _cell(value: object) -> str:
    """A value from a delivery as a table cell: no markup, no control characters."""
    return escape(escape_controls(str(value)))


@app.command("list")
@reports_errors
def list_cmd(
    status: str = typer.Option("", help=f"Only this status: {', '.join(EVENT_STATUSES)}."),
    event_type: str = typer.Option("", "--type", help="Only this event type, e.g. user.created."),
    since: str = typer.Option("", help="Only events received within this long: 90s, 15m, 6h, 2d."),
    cursor: str = typer.Option("", help="The next page: the cursor the previous page printed."),
    limit: int = typer.Option(50, min=1, max=10_000, help="Most events to show."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON only (a list of events)."),
) -> None:
    """List deliveries, newest first (payloads are not shown: see `events show`)."""
    _check_status(status)
    since_ms = _since(since)
    if cursor and not (cursor.isascii() and cursor.isdigit() and len(cursor) <= _MAX_SEQ_DIGITS):
        raise InvalidParameter("--cursor must be the next-page cursor a previous page printed.")
    from rich.table import Column, Table

    from ..store import reads

    settings = load_settings()
    with open_engine(settings) as engine:
        rows, next_cursor = reads.list_events(
            engine,
            deployment(settings),
            limit=limit,
            cursor=int(cursor) if cursor else None,
            status=status or None,
            event_type=event_type or None,
            since=since_ms,
        )
    if as_json:
        print_json(rows)
        return
    table = Table(
        "received (UTC)",
        Column("svix id", no_wrap=True),  # ids are for copying: never cut
        "type",
        "subject",
        "status",
        "n",
        "error",
    )
    for row in rows:
        style = _STYLE.get(row["status"], "")
        table.add_row(
            ms_to_text(row["received_at"]),
            _cell(row["svix_id"]),
            _cell(row["type"] or "-"),
            _cell(row["subject_id"] or "-"),
            f"[{style}]{row['status']}[/]",
            str(row["delivery_count"]),
            _cell(row["error"] or ""),
        )
    stdout.print(table)
    stdout.print(f"{len(rows)} event(s)")
    if next_cursor is not None:
        stdout.print(f"next page: --cursor {next_cursor}", highlight=False)


def _when(ms: int | None) -> str:
    if ms is None:
        return "-"
    text = datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")
    return f"{text}.{ms % 1000:03d} UTC ({ms} ms)"


def _gone(event: dict[str, Any]) -> str:
    """Why ``event`` has no body, as the end of ``no payload stored: …``."""
    from ..retention import GONE_REASONS, RESEND

    return f"{GONE_REASONS[event['payload_gone']]} ({RESEND})"


def _pretty(text: str) -> str:
    """The body indented when it is JSON, else as stored (a failed body may be anything)."""
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except (ValueError, RecursionError):
        return text


def _find(engine: Engine, tables: Tables, svix_id: str) -> dict[str, Any]:
    from ..store import reads

    event = reads.get_event(engine, tables, svix_id)
    if event is None:
        raise NotFound(f"No event with svix id {svix_id!r} in the log.")
    return event


@app.command("show")
@reports_errors
def show_cmd(
    svix_id: str = typer.Argument(..., metavar="SVIX_ID", help="The delivery's svix id (msg_…)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON only."),
) -> None:
    """Show one delivery: what became of it, when, and its stored payload (or why it is gone)."""
    settings = load_settings()
    with open_engine(settings) as engine:
        event = _find(engine, deployment(settings), svix_id)
    if as_json:
        print_json(event)
        return
    fields = [
        ("svix id", event["svix_id"]),
        ("type", event["type"] or "-"),
        ("subject", event["subject_id"] or "-"),
        ("user", event["user_id"] or "-"),
        ("status", event["status"]),
        ("reason", event["error"] or "-"),
        ("deliveries", event["delivery_count"]),
        ("received", _when(event["received_at"])),
        ("last received", _when(event["last_received_at"])),
        ("event time", _when(event["event_timestamp"])),
        ("source", event["source"]),
        ("seq", event["seq"]),
    ]
    out = [f"{name:<14} {escape_controls(str(value))}" for name, value in fields]
    if event["payload"] is None:
        out.append(f"{'payload':<14} no payload stored: {_gone(event)}")
    else:
        out.append("payload:")
        out += [escape_controls(line) for line in _pretty(event["payload"]).splitlines()]
    sys.stdout.write("\n".join(out) + "\n")


def _replayer(engine: Engine, tables: Tables, settings: Settings) -> Receiver:
    """A receiver like the server's: its in-transaction hooks run (``ON_USER_DELETED``
    included), and a delivery a replay applies gets the outbox rows of its after-commit
    hooks, which the server's worker (or ``clerk-sync worker``) runs."""
    from .. import wiring
    from ..hooks import load_hooks
    from ..receiver import Receiver

    hook_set = wiring.deployment(settings).hooks
    return Receiver(
        engine,
        tables=tables,
        on_user_deleted=load_hooks(settings.hook_paths()),
        hooks=hook_set.in_transaction,
        outbox=hook_set.routes(),
    )


Found = tuple[str, dict[str, Any] | None]
"""A svix id asked for, and its event (None: not in the log)."""


def _selected(
    engine: Engine,
    tables: Tables,
    svix_ids: list[str],
    status: str,
    event_type: str,
    since_ms: int | None,
    page: int,
) -> Iterator[list[Found]]:
    """The events to replay, a page at a time: the ids given (in their order, once each), or
    every event of ``status`` (and type, and age), oldest first."""
    from ..store import reads

    if svix_ids:
        ids = list(dict.fromkeys(svix_ids))
        for start in range(0, len(ids), page):
            yield [(i, reads.get_event(engine, tables, i)) for i in ids[start : start + page]]
        return
    after = 0
    while True:
        rows = reads.events_with_payloads(
            engine,
            tables,
            limit=page,
            after=after,
            status=status,
            event_type=event_type or None,
            since=since_ms,
        )
        if not rows:
            return
        after = rows[-1]["seq"]
        yield [(r["svix_id"], r) for r in rows]


def _problem(svix_id: str, event: dict[str, Any] | None) -> ClerkSyncError | None:
    """Why ``event`` cannot be replayed, if it cannot."""
    if event is None:
        return NotFound(f"No event with svix id {svix_id!r} in the log.")
    if event["payload"] is None:
        from ..retention import payload_gone

        return payload_gone(svix_id, event["payload_gone"])
    return None


def _about(event: dict[str, Any] | None) -> dict[str, Any]:
    if event is None:
        return {"type": None, "subject_id": None, "previous_status": None}
    return {
        "type": event["type"],
        "subject_id": event["subject_id"],
        "previous_status": event["status"],
    }


def _outcome(
    svix_id: str, event: dict[str, Any], result: Outcome | StoreUnavailable
) -> dict[str, Any]:
    if isinstance(result, StoreUnavailable):
        failed = StoreUnavailable(f"{svix_id!r} was not replayed: {result.detail}")
        return {"svix_id": svix_id, **_about(event), **_error(failed)}
    return {
        "svix_id": svix_id,
        **_about(event),
        "type": result.event_type,
        "subject_id": result.subject_id,
        "status": result.status.value,
        "duplicate": result.duplicate,
        "reason": result.reason,
    }


def _error(exc: ClerkSyncError) -> dict[str, Any]:
    return {"error": exc.code, "detail": exc.detail, "exit_code": exc.exit_code}


def _line(entry: dict[str, Any], dry_run: bool) -> str:
    """One event's replay (or what a dry run would do), as a line for people."""
    about = " ".join(
        escape_controls(str(v)) for v in (entry["svix_id"], entry["type"], entry["subject_id"]) if v
    )
    was = entry["previous_status"]
    if dry_run:
        if entry["action"] == "decode_again":
            return f"{about}: {was} → would be decoded again"
        return (
            f"{about}: {was} → would be answered duplicate (only a failed delivery is "
            "decoded again)"
        )
    if entry["duplicate"]:
        return (
            f"{about}: duplicate ({entry['status']}), nothing applied again — only a failed "
            "delivery is decoded again"
        )
    reason = f" — {escape_controls(entry['reason'])}" if entry["reason"] else ""
    return f"{about}: {was} → {entry['status']}{reason}"


@app.command("replay")
@reports_errors
def replay_cmd(
    svix_ids: Annotated[
        list[str] | None,
        typer.Argument(metavar="SVIX_ID…", help="Svix ids of the deliveries to replay."),
    ] = None,
    status: str = typer.Option(
        "", help=f"Replay every event of this status ({', '.join(EVENT_STATUSES)}), e.g. failed."
    ),
    event_type: str = typer.Option("", "--type", help="With --status: only this event type."),
    since: str = typer.Option(
        "", help="With --status: only events received within this long: 90s, 15m, 6h, 2d."
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="List what would be replayed; change nothing."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON only (a list, one per event)."),
) -> None:
    """Run stored payloads through the receiver again: a failed delivery is decoded again (a
    newer clerk-sync may apply it); any other is answered as a duplicate, nothing applied twice."""
    if bool(svix_ids) == bool(status):
        raise InvalidParameter("Give svix ids, or --status (e.g. --status failed): one of the two.")
    if svix_ids and (event_type or since):
        raise InvalidParameter("--type and --since select events with --status, not with svix ids.")
    _check_status(status)
    since_ms = _since(since)
    settings = load_settings()
    entries: list[dict[str, Any]] = []
    with open_engine(settings) as engine:
        tables = deployment(settings)
        receiver = None if dry_run else _replayer(engine, tables, settings)
        pages = _selected(
            engine, tables, svix_ids or [], status, event_type, since_ms, settings.batch_max
        )
        for page in pages:
            entries += _replay_page(receiver, page)
    _report(entries, dry_run=dry_run, as_json=as_json)


def _replay_page(receiver: Receiver | None, page: list[Found]) -> list[dict[str, Any]]:
    """One page's entries, in its order: replayed together in one batch (as the server
    commits concurrent deliveries), or with no receiver (a dry run) what would be done."""
    entries: list[dict[str, Any]] = []
    ready: list[tuple[int, str, dict[str, Any]]] = []
    for svix_id, event in page:
        problem = _problem(svix_id, event)
        if problem is not None:
            entries.append({"svix_id": svix_id, **_about(event), **_error(problem)})
            continue
        assert event is not None
        if receiver is None:
            action = "decode_again" if event["status"] == "failed" else "duplicate"
            entries.append({"svix_id": svix_id, **_about(event), "action": action})
        else:
            ready.append((len(entries), svix_id, event))
            entries.append({})
    if receiver is not None and ready:
        from ..receiver import Delivery

        results = receiver.receive_batch(
            [
                Delivery(i, e["payload"].encode("utf-8"), source=Source(e["source"]))
                for _, i, e in ready
            ]
        )
        for (at, svix_id, event), result in zip(ready, results, strict=True):
            entries[at] = _outcome(svix_id, event, result)
    return entries


def _report(entries: list[dict[str, Any]], *, dry_run: bool, as_json: bool) -> None:
    """Print each event's line in order — an event that could not be replayed as an
    ``error [code] …`` line on stderr — or the JSON list (errors on stderr too); exit with the
    status of the first error, if any, once every event had its turn."""
    failures = [e for e in entries if "error" in e]
    if as_json:
        print_json([{k: v for k, v in e.items() if k != "exit_code"} for e in entries])
    for entry in entries:
        if "error" in entry:
            tag = escape(f"[{entry['error']}]")
            detail = escape(escape_controls(entry["detail"]))
            stderr.print(f"[bold red]error[/] {tag} {detail}", highlight=False)
        elif not as_json:
            stdout.print(_line(entry, dry_run), markup=False, highlight=False)
    if not as_json:
        done = len(entries) - len(failures)
        verb = "would replay" if dry_run else "replayed"
        tail = f"; {len(failures)} could not be (see above)" if failures else ""
        stdout.print(f"{verb} {done} event(s){tail}", highlight=False)
        if not entries:
            stdout.print("no event matches", highlight=False)
    if failures:
        raise typer.Exit(failures[0]["exit_code"])


@app.command("prune")
@reports_errors
def prune_cmd(
    older_than: str = typer.Option(
        "",
        "--older-than",
        help="Erase payloads of events received longer ago than this (90s, 15m, 6h, 2d); "
        "default EVENT_RETENTION_DAYS.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON only."),
) -> None:
    """Erase stored payloads older than the retention period; the log rows stay."""
    from ..retention import DAY_MS, clear_wal, cutoff_ms, prune

    settings = load_settings()
    if older_than:
        age, label = parse_age(older_than, "--older-than"), older_than.strip()
    elif settings.event_retention_days == 0:
        if as_json:
            print_json(
                {
                    "erased": 0,
                    "older_than_ms": None,
                    "received_before": None,
                    "wal_checkpointed": None,
                }
            )
        else:
            stdout.print(
                "EVENT_RETENTION_DAYS=0 keeps stored payloads forever: nothing pruned "
                "(give --older-than, e.g. --older-than 30d, to prune anyway).",
                highlight=False,
            )
        return
    else:
        days = settings.event_retention_days
        age, label = days * DAY_MS, f"{days}d (EVENT_RETENTION_DAYS)"
    before = cutoff_ms(int(time.time() * 1000), age)
    with open_engine(settings) as engine:
        erased = prune(engine, deployment(settings), before)
        checkpointed = clear_wal(engine, tries=5)
    if as_json:
        print_json(
            {
                "erased": erased,
                "older_than_ms": age,
                "received_before": before,
                "wal_checkpointed": checkpointed,
            }
        )
    else:
        stdout.print(
            f"erased {erased} stored payload(s) of events received before "
            f"{ms_to_text(before)} UTC (older than {escape(label)}); their log rows stay",
            highlight=False,
        )
    if checkpointed is False:
        stderr.print(
            "warning: readers kept the SQLite write-ahead log from being checkpointed, so it "
            "may still hold erased payloads until the next checkpoint; run `clerk-sync events "
            "prune` again once they are done.",
            highlight=False,
        )
