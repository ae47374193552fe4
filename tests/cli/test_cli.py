"""The ``clerk-sync`` command run as a user runs it: a subprocess with an explicit environment
and a temporary working directory, against real databases.

A command spends most of its time importing, so the independent commands of one test run at
the same time (``run_cli_many``).
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from clerk_sync.cli.common import ms_to_text
from clerk_sync.config import normalize_database_url
from clerk_sync.devtools import deleted_user_event, encode, new_msg_id, user_event, user_object
from clerk_sync.receiver import Delivery, Receiver
from clerk_sync.store import make_engine, upgrade
from clerk_sync.store.migrate import VERSION_TABLE, head_revision
from tests.conftest import PG_ADMIN_URL, SECRET, USER_KEYS, migrated_sqlite
from tests.e2e.server import CliResult, clean_env, free_port, run_cli, run_cli_many
from tests.helpers.databases import empty_database
from tests.helpers.instance import (
    MEMBERSHIP_KEYS,
    ODD_ORG_ID,
    ODD_SESSION_ID,
    ODD_USER_ID,
    ORGANIZATION_KEYS,
    SESSION_KEYS,
    Instance,
    build_instance,
    expected_membership,
    expected_organization,
    expected_session,
    shown,
)
from tests.helpers.tables import EVENT_STATUSES

UNKNOWN_REVISION = "ffffffffffff"


def _env(db_url: str | None = None, **settings: str) -> dict[str, str]:
    if db_url is not None:
        settings["DATABASE_URL"] = db_url
    return clean_env(settings)


def _one_clean_line(result: CliResult) -> str:
    """The error went to stderr as exactly one line, without a traceback, and stdout is empty."""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, str(result)
    assert "Traceback" not in result.stderr, str(result)
    assert result.stdout == "", str(result)
    return lines[0]


def _json(result: CliResult) -> Any:
    """``--json`` output: exit 0 and stdout that is one JSON document and nothing else."""
    assert result.returncode == 0, str(result)
    return json.loads(result.stdout)


@pytest.fixture
def empty_db_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """A database with no tables at all: a new SQLite file, or a new PostgreSQL database."""
    with empty_database(backend, tmp_path, "cli") as url:
        yield url


def test_refusals_are_one_clear_line(tmp_path: Path) -> None:
    """Bad settings, bad arguments and a database without tables: one line, no traceback."""
    never = tmp_path / "never_created.db"
    empty = tmp_path / "brand_new.db"
    placeholder = "whsec_your_secret_here"
    serve = ["serve", "--port", str(free_port())]
    unset, refused, bogus, empty_schema = run_cli_many(
        [
            (serve, _env(f"sqlite:///{never}")),
            (serve, _env(f"sqlite:///{never}", CLERK_WEBHOOK_SECRET=placeholder)),
            (["events", "list", "--status", "bogus"], _env(f"sqlite:///{never}")),
            (["users", "list", "--json"], _env(f"sqlite:///{empty}")),
        ],
        cwd=tmp_path,
        timeout=30,
    )

    for result in (unset, refused):
        assert result.returncode == 2, str(result)
        line = _one_clean_line(result)
        assert "CLERK_WEBHOOK_SECRET" in line
        assert "Clerk Dashboard" in line
        assert "Signing Secret" in line
    assert "not set" in unset.stderr
    assert "placeholder" in refused.stderr
    assert placeholder not in refused.stderr, str(refused)
    assert "your_secret_here" not in refused.stderr, str(refused)

    assert bogus.returncode != 0, str(bogus)
    line = _one_clean_line(bogus)
    assert "--status" in line
    assert all(status in line for status in EVENT_STATUSES), line

    # A command that needs the tables says what to run instead of failing on SQL.
    assert empty_schema.returncode == 3, str(empty_schema)
    assert "clerk-sync db upgrade" in _one_clean_line(empty_schema)

    # The refusals came before anything was touched: no database file was created.
    assert not never.exists()
    assert not (tmp_path / "clerk_sync.db").exists()


def test_db_upgrade_on_an_empty_database(empty_db_url: str, tmp_path: Path) -> None:
    env = _env(empty_db_url)
    first = run_cli("db", "upgrade", env=env, cwd=tmp_path)
    assert first.returncode == 0, str(first)
    assert f"revision {head_revision()}" in first.stdout
    assert "Traceback" not in first.stderr

    again, status = run_cli_many([(["db", "upgrade"], env), (["db", "status"], env)], cwd=tmp_path)
    assert again.returncode == 0, str(again)
    assert f"revision {head_revision()}" in again.stdout
    assert status.returncode == 0, str(status)
    assert "current" in status.stdout
    assert head_revision() in status.stdout


def _seed(engine: Engine) -> dict[str, Any]:
    """Deliveries applied through the receiver, as the server would apply them."""
    receiver = Receiver(engine)
    t0 = 1_700_000_000_000
    alice = user_object(
        user_id="user_aaaaaaaaaaaaaaaaaaaaaaaaaaa",
        email="alice@example.com",
        first_name="Alice",
        last_name="Liddell",
        created_at=t0,
        updated_at=t0,
    )
    bob = user_object(user_id="user_bbbbbbbbbbbbbbbbbbbbbbbbbbb", email="bob@example.com")
    carol = user_object(user_id="user_ccccccccccccccccccccccccccc", email="carol@example.com")
    alice_later = {**alice, "first_name": "Alicia", "updated_at": t0 + 1_000}
    failed_id = new_msg_id()
    for svix_id, body in [
        (new_msg_id(), encode(user_event("user.created", alice))),
        (new_msg_id(), encode(user_event("user.updated", alice_later))),
        (new_msg_id(), encode(user_event("user.created", bob))),
        (new_msg_id(), encode(user_event("user.created", carol))),
        (new_msg_id(), encode(deleted_user_event(carol["id"]))),
        (failed_id, b"<html>not an event</html>"),
    ]:
        receiver.receive(Delivery(svix_id, body))
    return {"alice": alice, "bob": bob, "carol": carol, "t0": t0, "failed_id": failed_id}


def test_users_and_events_commands(engine: Engine, db_url: str, tmp_path: Path) -> None:
    seeded = _seed(engine)
    alice, bob = seeded["alice"], seeded["bob"]
    env = _env(db_url)
    users, shown, missing, failed, created = run_cli_many(
        [
            (["users", "list", "--json"], env),
            (["users", "show", alice["id"], "--json"], env),
            (["users", "show", "user_missing"], env),
            (["events", "list", "--status", "failed", "--json"], env),
            (["events", "list", "--type", "user.created", "--json"], env),
        ],
        cwd=tmp_path,
    )

    listed = _json(users)
    assert [u["id"] for u in listed] == [alice["id"], bob["id"]]  # carol was deleted

    one = _json(shown)
    assert one["id"] == alice["id"]
    assert one["email"] == "alice@example.com"
    assert (one["first_name"], one["last_name"]) == ("Alicia", "Liddell")
    assert (one["created_at"], one["updated_at"]) == (seeded["t0"], seeded["t0"] + 1_000)
    assert one == next(u for u in listed if u["id"] == alice["id"])

    assert missing.returncode != 0, str(missing)
    line = _one_clean_line(missing)
    assert "user_missing" in line
    assert "No user" in line

    failures = _json(failed)
    assert [(e["svix_id"], e["status"]) for e in failures] == [(seeded["failed_id"], "failed")]
    assert failures[0]["error"]

    creations = _json(created)
    assert {e["type"] for e in creations} == {"user.created"}
    assert {e["subject_id"] for e in creations} == {
        alice["id"],
        bob["id"],
        seeded["carol"]["id"],
    }
    assert all("payload" not in e for e in creations)


def test_env_local_is_read(tmp_path: Path) -> None:
    wanted = tmp_path / "from_env_local.db"
    ignored = tmp_path / "from_dot_env.db"
    engine = make_engine(f"sqlite:///{wanted}")
    try:
        upgrade(engine)
        alice = user_object(email="alice@example.com")
        Receiver(engine).receive(Delivery(new_msg_id(), encode(user_event("user.created", alice))))
    finally:
        engine.dispose()
    # .env.local wins over .env; the environment itself holds nothing of clerk-sync's.
    (tmp_path / ".env").write_text(
        f"DATABASE_URL=sqlite:///{ignored}\nCLERK_WEBHOOK_SECRET=whsec_your_secret_here\n",
        encoding="utf-8",
    )
    (tmp_path / ".env.local").write_text(
        f"DATABASE_URL=sqlite:///{wanted}\nCLERK_WEBHOOK_SECRET={SECRET}\n", encoding="utf-8"
    )
    env = _env()

    listed = run_cli("users", "list", "--json", env=env, cwd=tmp_path)
    assert [u["email"] for u in _json(listed)] == ["alice@example.com"]
    assert not ignored.exists()


def test_serve_refuses_an_unknown_schema_revision(
    engine: Engine, db_url: str, tmp_path: Path
) -> None:
    with engine.begin() as conn:
        conn.execute(text(f"UPDATE {VERSION_TABLE} SET version_num = :v"), {"v": UNKNOWN_REVISION})
    try:
        env = _env(db_url, CLERK_WEBHOOK_SECRET=SECRET)
        served = run_cli("serve", "--port", str(free_port()), env=env, cwd=tmp_path, timeout=30)
        assert served.returncode == 3, str(served)
        line = _one_clean_line(served)
        assert "does not know" in line
        assert SECRET not in served.stderr
    finally:
        # The PostgreSQL database is shared by the session: put the real revision back.
        with engine.begin() as conn:
            conn.execute(
                text(f"UPDATE {VERSION_TABLE} SET version_num = :v"), {"v": head_revision()}
            )


def _seed_instance(engine: Engine) -> Instance:
    """The instance of ``tests.helpers.instance``, applied through the receiver."""
    instance = build_instance()
    receiver = Receiver(engine)
    for event in instance.events():
        outcome = receiver.receive(Delivery(new_msg_id(), encode(event)))
        assert outcome.status == "processed", outcome
    return instance


def _run_named(jobs: dict[str, list[str]], env: dict[str, str], cwd: Path) -> dict[str, CliResult]:
    results = run_cli_many([(args, env) for args in jobs.values()], cwd=cwd)
    return dict(zip(jobs, results, strict=True))


def test_orgs_members_sessions_and_user_search_json(
    engine: Engine, db_url: str, tmp_path: Path
) -> None:
    """The new commands' ``--json`` on both databases: the values as Clerk sent them."""
    instance = _seed_instance(engine)
    orgs, users = instance.organizations, instance.users
    acme, alice, bob = orgs["acme"], users["alice"], users["bob"]
    results = _run_named(
        {
            "orgs": ["orgs", "list", "--json"],
            "acme": ["orgs", "show", acme["id"], "--json"],
            "acme_members": ["members", "list", "--org", acme["id"], "--json"],
            "alice_members": ["members", "list", "--user", alice["id"], "--json"],
            "alice_sessions": ["sessions", "list", "--user", alice["id"], "--json"],
            "by_email": ["users", "list", "--email", "bob@example.com", "--json"],
            "by_query": ["users", "list", "--query", "LIDDELL", "--json"],
            "both": ["users", "list", "--email", "bob@example.com", "--query", "alice", "--json"],
        },
        _env(db_url),
        tmp_path,
    )

    listed = _json(results["orgs"])
    assert sorted(o["id"] for o in listed) == sorted(o["id"] for o in orgs.values())
    by_id = {o["id"]: o for o in listed}
    for org in orgs.values():
        assert shown(by_id[org["id"]], ORGANIZATION_KEYS) == expected_organization(org)
    one = _json(results["acme"])
    assert one == by_id[acme["id"]]
    assert (one["name"], one["members_count"], one["public_metadata"]) == (
        "Acme Corp",
        3,
        {"tier": "gold"},
    )

    memberships = {m["id"]: m for m in instance.memberships.values()}
    acme_members = _json(results["acme_members"])
    assert [m["id"] for m in acme_members] == instance.memberships_of(org="acme")
    for row in acme_members:
        assert shown(row, MEMBERSHIP_KEYS) == expected_membership(memberships[row["id"]])
    alice_members = _json(results["alice_members"])
    assert [m["id"] for m in alice_members] == instance.memberships_of(user="alice")
    assert {m["organization_id"]: m["role"] for m in alice_members} == {
        acme["id"]: "org:admin",
        orgs["globex"]["id"]: "org:member",
    }

    alice_sessions = _json(results["alice_sessions"])
    assert [s["id"] for s in alice_sessions] == instance.sessions_of("alice")
    sessions = {s["id"]: s for s in instance.sessions.values()}
    for row in alice_sessions:  # Clerk's millisecond epochs, unchanged
        assert shown(row, SESSION_KEYS) == expected_session(sessions[row["id"]])

    assert [u["id"] for u in _json(results["by_email"])] == [bob["id"]]
    found = _json(results["by_query"])
    assert [u["id"] for u in found] == [alice["id"]]
    assert set(found[0]) >= USER_KEYS
    assert _json(results["both"]) == []  # both must match


def test_orgs_members_sessions_and_user_search_text(tmp_path: Path) -> None:
    """The same commands' tables (and the odd cases) once, on SQLite: rendering does not
    depend on the database."""
    url = migrated_sqlite(tmp_path / "clerk_sync.db")
    engine = make_engine(url)
    try:
        instance = _seed_instance(engine)
    finally:
        engine.dispose()
    orgs, users, sessions = instance.organizations, instance.users, instance.sessions
    acme, alice, bob = orgs["acme"], users["alice"], users["bob"]
    results = _run_named(
        {
            "orgs": ["orgs", "list"],
            "acme": ["orgs", "show", acme["id"]],
            "odd_org": ["orgs", "show", ODD_ORG_ID, "--json"],
            "no_org": ["orgs", "show", "org_missing"],
            "acme_members": ["members", "list", "--org", acme["id"]],
            "initech_members": ["members", "list", "--org", orgs["initech"]["id"], "--json"],
            "alice_sessions": ["sessions", "list", "--user", alice["id"]],
            "odd_sessions": ["sessions", "list", "--user", ODD_USER_ID, "--json"],
            "by_both": ["users", "list", "--email", "bob@example.com", "--query", "BUILD"],
        },
        _env(url),
        tmp_path,
    )

    listing = results["orgs"]
    assert listing.returncode == 0, str(listing)
    for org in orgs.values():
        assert org["id"] in listing.stdout
        assert org["name"] in listing.stdout
    assert f"{len(orgs)} organization(s)" in listing.stdout
    shown_acme = results["acme"]
    assert shown_acme.returncode == 0, str(shown_acme)
    for value in (acme["id"], "Acme Corp", "acme-corp", alice["id"], '{"tier":"gold"}'):
        assert value in shown_acme.stdout, value
    assert ms_to_text(acme["created_at"]) in shown_acme.stdout  # a Clerk time, in UTC
    assert _json(results["odd_org"])["id"] == ODD_ORG_ID
    missing = results["no_org"]
    assert missing.returncode != 0, str(missing)
    line = _one_clean_line(missing)
    assert "No organization" in line
    assert "org_missing" in line

    members = results["acme_members"]
    assert members.returncode == 0, str(members)
    for membership_id in instance.memberships_of(org="acme"):
        assert membership_id in members.stdout
    assert bob["id"] in members.stdout
    assert "org:admin" in members.stdout
    assert "3 membership(s)" in members.stdout
    assert _json(results["initech_members"]) == []

    listed_sessions = results["alice_sessions"]
    assert listed_sessions.returncode == 0, str(listed_sessions)
    first = sessions["alice-1"]
    for session_id in instance.sessions_of("alice"):
        assert session_id in listed_sessions.stdout
    assert "active" in listed_sessions.stdout
    assert ms_to_text(first["last_active_at"]) in listed_sessions.stdout
    assert ms_to_text(first["expire_at"]) in listed_sessions.stdout
    assert "2 session(s)" in listed_sessions.stdout
    assert [s["id"] for s in _json(results["odd_sessions"])] == [ODD_SESSION_ID]

    both = results["by_both"]
    assert both.returncode == 0, str(both)
    assert bob["id"] in both.stdout
    assert "bob@example.com" in both.stdout
    assert alice["id"] not in both.stdout
    assert "1 user(s)" in both.stdout


def test_members_and_sessions_refuse_bad_selections(tmp_path: Path) -> None:
    """Exactly one of --org and --user; --user is required for sessions. Refused before the
    database is opened (the file is never created)."""
    never = tmp_path / "never_created.db"
    env = _env(f"sqlite:///{never}")
    neither, both, empty, no_user = run_cli_many(
        [
            (["members", "list"], env),
            (["members", "list", "--org", "org_x", "--user", "user_x", "--json"], env),
            (["members", "list", "--org", ""], env),
            (["sessions", "list", "--json"], env),
        ],
        cwd=tmp_path,
    )
    for result in (neither, both, empty):
        assert result.returncode != 0, str(result)
        line = _one_clean_line(result)
        assert "invalid_parameter" in line
        assert "--org" in line
        assert "--user" in line
    assert no_user.returncode == 2, str(no_user)
    assert "--user" in no_user.stderr
    assert "Traceback" not in no_user.stderr
    assert no_user.stdout == ""
    assert not never.exists()


# -- errors that name their cause and fix (one line, a distinct exit status each) -------------

PG = make_url(normalize_database_url(PG_ADMIN_URL))
EXIT_STATUS = {
    "database_directory_missing": 5,
    "database_not_writable": 6,
    "database_unreachable": 7,
    "database_unknown": 8,
    "database_auth_failed": 9,
    "database_locked": 10,
    "port_in_use": 11,
}
"""The README's table: each cause its own code and exit status (2, 3 and 4 are taken)."""


def _pg_url(**parts: Any) -> str:
    return PG.set(**parts).render_as_string(hide_password=False)


@contextmanager
def _immutable(path: Path) -> Iterator[None]:
    """``path`` cannot be written, even by root (who ignores file modes): ``chattr +i``."""
    if os.geteuid() != 0:
        path.chmod(0o444)
        try:
            yield
        finally:
            path.chmod(0o644)
        return
    done = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"root cannot make a read-only file here (chattr +i: {done.stderr.strip()})")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


@contextmanager
def _sqlite_lock_held(path: Path) -> Iterator[None]:
    """Another process's exclusive lock on a SQLite file (rollback journal: readers wait too)."""
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute("CREATE TABLE IF NOT EXISTS held (x)")
        holder.execute("BEGIN EXCLUSIVE")
        yield
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_each_database_failure_says_its_cause_and_fix(tmp_path: Path) -> None:
    """Before: every one of these was `The database did not answer: OperationalError`, exit 4."""
    read_only = tmp_path / "read_only.db"
    read_only.touch()
    locked = tmp_path / "locked.db"
    refused_port = free_port()  # nothing listens there
    missing_dir = "no/such/dir/x.db"
    jobs: dict[str, tuple[list[str], dict[str, str]]] = {
        "missing_dir": (["db", "upgrade"], _env(f"sqlite:///{missing_dir}")),
        "missing_dir_read": (["users", "list"], _env(f"sqlite:///{missing_dir}")),
        "not_writable": (["db", "upgrade"], _env(f"sqlite:///{read_only}")),
        "refused": (["db", "upgrade"], _env(_pg_url(host="127.0.0.1", port=refused_port))),
        "refused_read": (["users", "list"], _env(_pg_url(host="127.0.0.1", port=refused_port))),
        "unknown": (["db", "status"], _env(_pg_url(database="clerk_sync_no_such_database"))),
        "auth": (["orgs", "list"], _env(_pg_url(username="clerk_sync_no_such_role"))),
        "locked": (["db", "upgrade"], _env(f"sqlite:///{locked}?timeout=1")),
        "locked_read": (["events", "list"], _env(f"sqlite:///{locked}?timeout=1")),
    }
    with _immutable(read_only), _sqlite_lock_held(locked):
        results = dict(
            zip(jobs, run_cli_many(list(jobs.values()), cwd=tmp_path, timeout=60), strict=True)
        )

    def failed(name: str, code: str) -> str:
        result = results[name]
        assert result.returncode == EXIT_STATUS[code], str(result)
        line = _one_clean_line(result)
        assert line.startswith(f"error [{code}] "), line
        assert "OperationalError" not in line, line
        return line

    for name in ("missing_dir", "missing_dir_read"):
        line = failed(name, "database_directory_missing")
        assert str(tmp_path / "no/such/dir") in line
    assert "mkdir -p" in failed("missing_dir", "database_directory_missing")
    assert not (tmp_path / "no").exists()

    line = failed("not_writable", "database_not_writable")
    assert str(read_only) in line
    assert "writable" in line

    for name in ("refused", "refused_read"):
        line = failed(name, "database_unreachable")
        assert f"127.0.0.1:{refused_port}" in line
        assert "connection refused" in line
        assert "start PostgreSQL" in line

    line = failed("unknown", "database_unknown")
    assert "'clerk_sync_no_such_database'" in line
    assert "createdb" in line

    line = failed("auth", "database_auth_failed")
    assert "'clerk_sync_no_such_role'" in line
    assert "user and password in DATABASE_URL" in line

    for name in ("locked", "locked_read"):
        line = failed(name, "database_locked")
        assert str(locked) in line
        assert "another process" in line
        assert "timeout=" in line


def test_a_port_in_use_is_its_own_error(tmp_path: Path) -> None:
    """Before: uvicorn's `[Errno 98] … address already in use` and exit 3 (the schema's)."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = _env(f"sqlite:///{tmp_path / 'served.db'}", CLERK_WEBHOOK_SECRET=SECRET)
        served = run_cli("serve", "--port", str(port), env=env, cwd=tmp_path, timeout=30)
    assert served.returncode == EXIT_STATUS["port_in_use"], str(served)
    line = _one_clean_line(served)
    assert line.startswith("error [port_in_use] "), line
    assert f"Port {port} on 127.0.0.1" in line
    assert "--port" in line
    assert not (tmp_path / "served.db").exists()  # refused before the database was touched


def test_exit_statuses_are_distinct_and_in_the_readme() -> None:
    from clerk_sync import errors

    classes = [
        cls
        for cls in vars(errors).values()
        if isinstance(cls, type) and issubclass(cls, errors.ClerkSyncError)
    ]
    by_code = {cls.code: cls.exit_code for cls in classes if cls.code in EXIT_STATUS}
    assert by_code == EXIT_STATUS
    taken = {errors.ConfigError.exit_code, errors.SchemaError.exit_code}
    taken.add(errors.StoreUnavailable.exit_code)
    assert taken.isdisjoint(EXIT_STATUS.values())
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    for code, status in EXIT_STATUS.items():
        assert f"`{code}` (exit {status})" in readme, code


READ_ONLY_COMMANDS = [
    ["users", "list"],
    ["users", "show", "user_x"],
    ["orgs", "list", "--json"],
    ["members", "list", "--org", "org_x"],
    ["sessions", "list", "--user", "user_x"],
    ["events", "list"],
    ["db", "status"],
]


def test_read_only_commands_never_create_a_database(tmp_path: Path) -> None:
    """Before: `users list` in an empty directory left an empty clerk_sync.db behind."""
    results = run_cli_many([(args, _env()) for args in READ_ONLY_COMMANDS], cwd=tmp_path)
    for result in results:
        assert result.returncode == 3, str(result)
        line = _one_clean_line(result)
        assert line.startswith("error [database_missing] "), line
        assert str(tmp_path / "clerk_sync.db") in line
        assert "clerk-sync db upgrade" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_version_and_python_m(tmp_path: Path) -> None:
    from clerk_sync import __version__

    env = _env(f"sqlite:///{tmp_path / 'x.db'}")
    script = run_cli("--version", env=env, cwd=tmp_path)
    module = subprocess.run(
        [sys.executable, "-m", "clerk_sync", "--version"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    for out, code in ((script.stdout, script.returncode), (module.stdout, module.returncode)):
        assert code == 0, out
        assert out == f"clerk-sync {__version__}\n"
    helped = subprocess.run(
        [sys.executable, "-m", "clerk_sync", "db", "--help"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert helped.returncode == 0, helped.stderr
    assert "clerk-sync db" in helped.stdout  # named like the script, not "__main__.py"
