"""What a ``clerk-sync`` command imports before it does anything: only what it uses.

Start-up is most of a command's time (and of this suite's, which runs the CLI as a subprocess
hundreds of times). Timing is never asserted here; what is pinned instead is *which* modules a
command loads, read from ``sys.modules`` of a real ``clerk-sync`` process at its exit: the help
needs typer and rich, and ``users list`` needs the settings and SQLAlchemy Core — never the web
layer, the receiver, uvicorn or Alembic. ``bench/run.py`` measures what that buys.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from clerk_sync.devtools import encode, new_msg_id, user_event, user_object
from clerk_sync.receiver import Delivery, Receiver
from clerk_sync.store import make_engine, migrate
from clerk_sync.store.migrate import head_revision, shipped_head
from tests.conftest import migrated_sqlite
from tests.e2e.server import CLI_TIMEOUT, clean_env

RECORD_MODULES = """
import json, sys
out = sys.argv.pop(1)
sys.argv[0] = "clerk-sync"
try:
    from clerk_sync.cli import main
    main()
finally:
    with open(out, "w", encoding="utf-8") as f:
        json.dump(sorted(sys.modules), f)
"""
"""``clerk-sync ARGS…`` as the console script runs it, then the names of every module loaded."""

HEAVY = (
    "alembic",
    "anyio",
    "asyncio",
    "clerk_backend_api",
    "clerk_sync.config",
    "clerk_sync.entities",
    "clerk_sync.receiver",
    "clerk_sync.store",
    "clerk_sync.web",
    "httpx",
    "jinja2",
    "limits",
    "prometheus_client",
    "pydantic",
    "pydantic_settings",
    "sqlalchemy",
    "standardwebhooks",
    "starlette",
    "svix",
    "uvicorn",
)
"""What no help text needs."""
NOT_FOR_READING = (
    "alembic",
    "anyio",
    "clerk_backend_api",
    "clerk_sync.backfill",
    "clerk_sync.receiver",
    "clerk_sync.web",
    "clerk_sync.wiring",
    "httpx",
    "jinja2",
    "limits",
    "prometheus_client",
    "sqlalchemy.orm",
    "standardwebhooks",
    "starlette",
    "svix",
    "uvicorn",
)
"""What ``users list`` on a current schema needs none of (SQLAlchemy Core and the settings it
does need)."""


def run_recording(args: list[str], tmp_path: Path, **settings: str) -> tuple[str, set[str]]:
    """Run ``clerk-sync ARGS…``; its stdout (exit 0 required) and the modules it loaded."""
    record = tmp_path / f"modules-{len(list(tmp_path.iterdir()))}.json"
    result = subprocess.run(
        [sys.executable, "-c", RECORD_MODULES, str(record), *args],
        env=clean_env(settings),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=CLI_TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result.stdout, set(json.loads(record.read_text(encoding="utf-8")))


def loaded(modules: set[str], names: tuple[str, ...]) -> list[str]:
    """Which of ``names`` (packages count with their submodules) are among ``modules``."""
    return sorted(n for n in names if any(m == n or m.startswith(n + ".") for m in modules))


@pytest.mark.parametrize("args", [["--help"], ["--version"]], ids=" ".join)
def test_help_loads_only_the_command_line(args: list[str], tmp_path: Path) -> None:
    out, modules = run_recording(args, tmp_path)
    assert loaded(modules, HEAVY) == []
    assert out.strip(), "the help (or version) was printed"


@pytest.mark.parametrize(
    "args",
    [
        ["users", "list", "--help"],
        ["events", "replay", "--help"],
        ["serve", "--help"],
        ["trigger", "--help"],
    ],
    ids=" ".join,
)
def test_a_commands_help_loads_only_the_command_line(args: list[str], tmp_path: Path) -> None:
    """Below the top level, typer parses the options met on the way (``--version``) with
    pydantic: that is typer's own, and all a command's help costs beside it."""
    out, modules = run_recording(args, tmp_path)
    assert loaded(modules, tuple(n for n in HEAVY if n != "pydantic")) == []
    assert "Usage: clerk-sync " + " ".join(args[:-1]) in out


def test_the_help_still_lists_every_command(tmp_path: Path) -> None:
    out, _ = run_recording(["--help"], tmp_path)
    commands = ["serve", "dev", "trigger", "send", "doctor", "verify", "reconcile", "worker"]
    groups = ["db", "users", "orgs", "members", "sessions", "events", "notify", "outbox"]
    for name in [*commands, "backfill", *groups]:
        assert f" {name} " in out, out


def test_users_list_reads_without_the_web_layer_or_alembic(tmp_path: Path) -> None:
    url = migrated_sqlite(tmp_path / "clerk_sync.db")
    engine = make_engine(url)
    ids = [f"user_{n:027d}" for n in range(3)]
    try:
        receiver = Receiver(engine)
        for user_id in ids:
            body = encode(user_event("user.created", user_object(user_id=user_id)))
            receiver.receive(Delivery(new_msg_id(), body))
    finally:
        engine.dispose()

    out, modules = run_recording(["users", "list", "--json"], tmp_path, DATABASE_URL=url)
    assert [u["id"] for u in json.loads(out)] == ids
    assert loaded(modules, NOT_FOR_READING) == []
    assert "sqlalchemy" in modules  # it did read the database


def test_a_current_schema_is_known_without_alembic() -> None:
    """The head read from the migration files (what spares a read-only command Alembic) is
    Alembic's own."""
    assert shipped_head() == head_revision()


def test_history_that_is_not_one_line_is_left_to_alembic(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    head = head_revision()
    versions = tmp_path / "migrations" / "versions"
    shutil.copytree(migrate.MIGRATIONS / "versions", versions)
    monkeypatch.setattr(migrate, "MIGRATIONS", tmp_path / "migrations")
    revision = 'revision: str = "9998"\ndown_revision: str | None = "{}"\n'
    (versions / "9998_next.py").write_text(revision.format(head))
    assert shipped_head() == "9998"  # annotated, as newer Alembic templates write it

    (versions / "9999_branch.py").write_text(revision.format(head).replace("9998", "9999"))
    assert shipped_head() is None  # two heads
    (versions / "9999_branch.py").write_text(
        'revision = "9999"\ndown_revision = ("9998", "0001")\n'
    )
    assert shipped_head() is None  # a merge
    (versions / "9999_branch.py").write_text("revision = make_id()\n")
    assert shipped_head() is None  # not written as the template writes it


def test_the_default_url_names_the_webhook_path() -> None:
    """``cli.sending`` spells the path for the ``--url`` default rather than import the web
    layer: it must be the one the web layer serves."""
    from clerk_sync.cli.sending import DEFAULT_URL, WEBHOOK_PATH
    from clerk_sync.web import WEBHOOK_PATH as SERVED

    assert WEBHOOK_PATH == SERVED
    assert DEFAULT_URL.endswith(SERVED)
