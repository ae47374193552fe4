"""``clerk-sync doctor``: each link of the chain, checked in order, with the fix when it breaks.

=============  ===========================================================  ==========
check id       passes when                                                  exit code
=============  ===========================================================  ==========
``secret``     ``CLERK_WEBHOOK_SECRET`` is set and well formed              2
``database``   ``DATABASE_URL`` answers and its schema is current           3 or 4
``server``     ``GET /healthz`` at the ``--url``'s origin answers 200       1
``round-trip`` a signed ``clerkSync.ping`` POSTed to ``--url`` gets a 2xx   1
``event-log``  that ping's svix id is in the event log at ``DATABASE_URL``  1 or 4
=============  ===========================================================  ==========

The exit codes are those of the errors module (config 2, schema 3, database unavailable 4, else
1); the command exits with the first failed check's. A check whose input failed is *skipped*
(no round trip without a secret), which is not a pass.

The round trip uses an event type no handler claims (``clerkSync.ping``): the server records it
as ``ignored`` and writes no user, so doctor is safe against a real database. Its only trace is
that row in the event log, which the last check looks up — proving that the server this shell
talks to writes to the database this shell reads.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
from sqlalchemy import Engine, select
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from ..config import Settings
from ..errors import ClerkSyncError, ConfigError, SchemaError, ServerUnreachable, StoreUnavailable
from ..events import PING_TYPE
from ..store import Tables, make_engine, schema_state
from ..store.engine import redacted
from ..store.migrate import head_revision
from .catalog import Subject, fixture_for
from .fixtures import encode, new_id
from .keys import DEV_HINT, instance_hint, secret_note
from .sender import Sender, unreachable

_PG_CONNECT_TIMEOUT = "5"


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One ✓/✗ line: a stable id, what was found, and for a failure the fix."""

    id: str
    ok: bool
    summary: str
    fix: str | None = None
    exit_code: int = 0
    skipped: bool = False


@dataclass(frozen=True, slots=True)
class Target:
    """Where the server is: its webhook URL and its health URL."""

    webhook_url: str
    health_url: str
    webhook_path: str
    """The path the endpoint is served at, for the fix when ``--url`` points elsewhere."""


def _fail(check: str, summary: str, fix: str, error: type[ClerkSyncError]) -> CheckResult:
    return CheckResult(check, False, summary, fix, error.exit_code)


def _skip(check: str, because: str) -> CheckResult:
    return CheckResult(check, False, f"skipped: {because}", skipped=True)


def run_checks(
    settings: Settings, target: Target, *, clerk_secret_key: str
) -> Iterator[CheckResult]:
    """Yield each check's result as soon as it is known."""
    secret_result, secrets = check_secret(settings, clerk_secret_key)
    yield secret_result
    engine: Engine | None = None
    try:
        database_result, engine = check_database(settings)
        yield database_result
        with httpx.Client(timeout=5.0, follow_redirects=False) as client:
            server_result, reachable = check_server(client, target)
        yield server_result
        msg_id: str | None = None
        if not secrets:
            yield _skip("round-trip", "needs a usable CLERK_WEBHOOK_SECRET")
        elif not reachable:
            yield _skip("round-trip", "the server does not answer")
        else:
            round_trip, msg_id = check_round_trip(target, secrets[0], settings)
            yield round_trip
        if msg_id is None:
            yield _skip("event-log", "needs an accepted round trip")
        elif engine is None:
            yield _skip("event-log", "needs a reachable database")
        else:
            yield check_event_log(engine, msg_id, settings)
    finally:
        if engine is not None:
            engine.dispose()


def check_secret(settings: Settings, clerk_secret_key: str) -> tuple[CheckResult, list[str]]:
    try:
        secrets = settings.webhook_secrets()
    except ConfigError as exc:
        problem, sep, where = exc.detail.partition(": copy it")
        fix = f"copy it{where.rstrip('.')}; {DEV_HINT}." if sep else f"{DEV_HINT}."
        return _fail("secret", problem if sep else exc.detail, fix, ConfigError), []
    count = f"{len(secrets)} secrets" if len(secrets) > 1 else "1 secret"
    notes = [n for n in (secret_note(s) for s in secrets) if n]
    hint = instance_hint(clerk_secret_key)
    if hint:
        notes.append(hint)
    tail = "; " + "; ".join(notes) if notes else ""
    return CheckResult(
        "secret", True, f"CLERK_WEBHOOK_SECRET is set and well formed ({count}){tail}"
    ), secrets


def _sqlite_file(parsed: URL) -> Path | None:
    """The file of a SQLite URL (None for memory or URI forms, and other databases)."""
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    if str(parsed.database).startswith("file:"):
        return None
    return Path(str(parsed.database))


def _with_connect_timeout(parsed: URL) -> str:
    """Fail fast on an unreachable PostgreSQL host, rather than after the OS's TCP timeout."""
    if parsed.get_backend_name() == "postgresql" and "connect_timeout" not in parsed.query:
        parsed = parsed.update_query_dict({"connect_timeout": _PG_CONNECT_TIMEOUT})
    return parsed.render_as_string(hide_password=False)


def check_database(settings: Settings) -> tuple[CheckResult, Engine | None]:
    url = settings.sqlalchemy_url()
    shown = redacted(url)
    try:
        parsed = make_url(url)
    except ArgumentError:
        return (
            _fail(
                "database",
                f"DATABASE_URL is not a valid SQLAlchemy URL ({shown})",
                "set it like sqlite:///clerk_sync.db or postgresql://user@host:5432/db",
                ConfigError,
            ),
            None,
        )
    missing = _sqlite_file(parsed)
    if missing is not None and not missing.exists():
        return (
            _fail(
                "database",
                f"there is no database at {missing} yet (DATABASE_URL {shown})",
                "start `clerk-sync dev` or `clerk-sync serve`, which create it, or run "
                "`clerk-sync db upgrade`; or give this shell the server's DATABASE_URL",
                SchemaError,
            ),
            None,
        )
    try:
        engine = make_engine(
            _with_connect_timeout(parsed), sqlite_synchronous=settings.sqlite_synchronous
        )
    except ConfigError as exc:
        return _fail("database", exc.detail, "fix DATABASE_URL", ConfigError), None
    try:
        state = schema_state(engine, _deployment(settings).naming)
    except (StoreUnavailable, SQLAlchemyError):
        engine.dispose()
        return (
            _fail(
                "database",
                f"{shown} does not answer",
                "check DATABASE_URL and that the database is running",
                StoreUnavailable,
            ),
            None,
        )
    if state == "current":
        return CheckResult(
            "database", True, f"{shown} answers; schema current ({head_revision()})"
        ), engine
    fixes = {
        "empty": "run `clerk-sync db upgrade` (or start `clerk-sync serve`, which creates it)",
        "outdated": "run `clerk-sync db upgrade`",
        "unknown": "a newer clerk-sync migrated it: upgrade clerk-sync, or point DATABASE_URL "
        "elsewhere",
    }
    return _fail(
        "database", f"{shown} answers, but its schema is {state}", fixes[state], SchemaError
    ), engine


def check_server(client: httpx.Client, target: Target) -> tuple[CheckResult, bool]:
    """The health check's result, and whether anything answered at all."""
    try:
        response = client.get(target.health_url)
    except httpx.TransportError as exc:
        failed = _fail(
            "server",
            unreachable(target.health_url, exc).detail.rstrip("."),
            "start it with `clerk-sync dev` (or `clerk-sync serve`), or pass its address "
            "with --url",
            ServerUnreachable,
        )
        return failed, False
    if response.status_code == 200:
        return CheckResult("server", True, f"{target.health_url} answers 200"), True
    if response.status_code == 503:
        summary = f"{target.health_url} answers 503: the server cannot reach its database"
        fix = "check the server's DATABASE_URL and that the database is running"
    else:
        summary = (
            f"{target.health_url} answers {response.status_code}, not clerk-sync's health check"
        )
        fix = "check that --url points at clerk-sync (a tunnel or proxy may answer instead)"
    return _fail("server", summary, fix, ClerkSyncError), True


def check_round_trip(
    target: Target, secret: str, settings: Settings
) -> tuple[CheckResult, str | None]:
    ping = fixture_for(PING_TYPE)
    assert ping is not None
    now = int(time.time() * 1000)
    body = encode(ping.build(Subject(new_id(ping.id_prefix), 0, now, now)))
    msg_id = new_id("msg")
    sent = f"a signed {PING_TYPE} ({msg_id})"
    try:
        with Sender(
            target.webhook_url, secret, tolerance_seconds=settings.webhook_tolerance_seconds
        ) as sender:
            answer = sender.send(body, msg_id)
    except ServerUnreachable as exc:
        return _fail(
            "round-trip", exc.detail.rstrip("."), "start the server", ServerUnreachable
        ), None
    said = f"{answer.status_code} {answer.outcome}"
    if answer.ok:
        return CheckResult("round-trip", True, f"{sent} was accepted: {said}"), msg_id
    fixes = {
        "signature_mismatch": "the server runs with another CLERK_WEBHOOK_SECRET than this shell: "
        "run doctor with the server's settings (same directory and environment), and restart "
        "the server after changing the secret",
        "timestamp_out_of_tolerance": "this machine's clock and the server's differ by more "
        "than the tolerance: sync both with NTP",
        "redirect": f"Svix does not follow redirects: use the final URL ({answer.reason})",
        "HTTP 404": f"nothing answers at this path: the webhook path is {target.webhook_path}",
        "HTTP 401": "something in front of the route (auth middleware, a tunnel's login) "
        "answers 401: exclude the webhook route from authentication",
    }
    fix = fixes.get(answer.outcome, "see the reason above; `clerk-sync verify` explains a refusal")
    reason = f" — {answer.reason}" if answer.reason else ""
    return _fail("round-trip", f"{sent} was refused: {said}{reason}", fix, ClerkSyncError), None


def check_event_log(engine: Engine, msg_id: str, settings: Settings) -> CheckResult:
    shown = redacted(settings.sqlalchemy_url())
    events_table = _deployment(settings).events
    try:
        with engine.connect() as conn:
            status = conn.execute(
                select(events_table.c.status).where(events_table.c.svix_id == msg_id)
            ).scalar_one_or_none()
    except SQLAlchemyError:
        return _fail(
            "event-log",
            f"{shown} does not answer",
            "check DATABASE_URL and that the database is running",
            StoreUnavailable,
        )
    if status is None:
        return _fail(
            "event-log",
            f"the server accepted {msg_id}, but it is not in the event log of {shown}",
            "the server writes to another database: give this shell the server's DATABASE_URL "
            "(or run doctor from the server's directory)",
            ClerkSyncError,
        )
    return CheckResult("event-log", True, f"{msg_id} is in the event log of {shown} ({status})")


def _deployment(settings: Settings) -> Tables:
    from ..entities import tables

    return tables(settings.table_prefix, settings.schema_name())
