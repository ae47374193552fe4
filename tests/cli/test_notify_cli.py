"""``clerk-sync notify test RULE``: renders a rule from an example payload (or an alert from
sample facts), sends it once to a loopback receiver, and says what went where — schemes only.

In-process through typer's runner for speed, and once as the real ``clerk-sync`` subprocess
reading ``NOTIFY_RULES`` from its environment.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from clerk_sync.cli import app
from clerk_sync.config import Settings
from tests.e2e.server import clean_env, run_cli
from tests.helpers.json_receiver import JsonReceiver


@pytest.fixture
def hook() -> Iterator[JsonReceiver]:
    with JsonReceiver() as receiver:
        yield receiver


@pytest.fixture
def here(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """An empty working directory (no stray .env) and no clerk-sync settings in the env."""
    monkeypatch.chdir(tmp_path)
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def rules_file(where: Path, hook: JsonReceiver) -> Path:
    path = where / "notify.toml"
    path.write_text(
        f"""
[[rule]]
name = "signups"
events = ["user.created"]
notify = ["{hook.url("/signups", "+X-Token=tok3n")}"]
title = "New user: {{name}}"
body = "{{email}} signed up"

[[rule]]
events = ["organization.*"]
notify = ["{hook.url("/orgs")}"]

[[alert]]
kind = "no_deliveries"
notify = ["{hook.url("/ops")}"]
""",
        encoding="utf-8",
    )
    return path


def invoke(*args: str) -> Result:
    return CliRunner().invoke(app, ["notify", "test", *args])


def test_a_rule_is_rendered_from_its_example_and_sent(here: Path, hook: JsonReceiver) -> None:
    result = invoke("signups", "--rules", str(rules_file(here, hook)))
    assert result.exit_code == 0, result.output
    sent = hook.wait_for(1)[0]
    assert sent.path == "/signups"
    assert sent.body["title"] == "New user: Ada Lovelace"
    assert sent.body["message"] == "ada.lovelace@example.com signed up"
    assert sent.body["type"] == "info"
    assert result.stdout.splitlines() == [
        "Sent rule 'signups', rendered from the user.created example payload, to json://…",
        "  title: New user: Ada Lovelace",
        "  body:  ada.lovelace@example.com signed up",
        "  level: info",
    ]
    assert str(hook.port) not in result.output
    assert "tok3n" not in result.output


def test_rules_by_position_and_alerts_by_kind(
    here: Path, hook: JsonReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTIFY_RULES", str(rules_file(here, hook)))
    first = invoke("rule-2")
    assert first.exit_code == 0, first.output
    assert "rendered from the organization.created example payload" in first.stdout
    second = invoke("no_deliveries")
    assert second.exit_code == 0, second.output
    assert "Sent alert 'no_deliveries', rendered from sample no_deliveries facts" in second.stdout
    orgs, ops = hook.wait_for(2)
    assert orgs.path == "/orgs"
    assert orgs.body["title"].startswith("organization.created: org_")
    assert ops.path == "/ops"
    assert ops.body["title"] == "clerk-sync: no webhook deliveries for 6h 1m (a test of this alert)"
    assert ops.body["type"] == "warning"


def test_an_unknown_rule_lists_the_known_ones(here: Path, hook: JsonReceiver) -> None:
    path = rules_file(here, hook)
    result = invoke("signup", "--rules", str(path))
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        f"error [not_found] {path} has no rule or alert 'signup' (it has: signups, rule-2, "
        "no_deliveries)."
    )
    assert hook.received == []


def test_a_failed_send_exits_non_zero_in_one_line(here: Path, hook: JsonReceiver) -> None:
    hook.status = 500
    result = invoke("signups", "--rules", str(rules_file(here, hook)))
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(
        "error [notification_failed] rule 'signups' could not be sent to json://… ("
    )
    assert "tok3n" not in result.stderr
    assert result.stdout == ""


def test_without_a_rules_file(here: Path) -> None:
    result = invoke("signups")
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "error [config_invalid] No rules file: set NOTIFY_RULES or pass --rules PATH."
    )


def test_a_bad_rules_file_is_the_loaders_one_line(here: Path) -> None:
    (here / "bad.toml").write_text('[[rule]]\nevents = ["user.created"]\n', encoding="utf-8")
    result = invoke("rule-1", "--rules", "bad.toml")
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "error [config_invalid] NOTIFY_RULES bad.toml, rule #1: notify is missing: a list of "
        'apprise URLs, e.g. ["slack://…"]'
    )


def test_the_installed_command_reads_notify_rules(tmp_path: Path, hook: JsonReceiver) -> None:
    env = clean_env({"NOTIFY_RULES": str(rules_file(tmp_path, hook))})
    result = run_cli("notify", "test", "signups", env=env, cwd=tmp_path)
    assert result.returncode == 0, str(result)
    assert result.stdout.startswith("Sent rule 'signups'")
    assert hook.wait_for(1)[0].body["title"] == "New user: Ada Lovelace"
