"""``clerk-sync dev`` as a user runs it, and the README's "Testing webhooks locally" block run as
written: a reloading server on 127.0.0.1 in its own process group, always stopped."""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

import httpx

from clerk_sync.devtools import encode, is_dev_secret, sign_headers, user_event, user_object
from clerk_sync.web import WEBHOOK_PATH
from tests.cli.devtools_support import DevProcess, one_error_line
from tests.conftest import SECRET
from tests.e2e.server import clean_env, free_port, run_cli_many

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_block() -> list[str]:
    """The commands of the first shell block under "## Testing webhooks locally"."""
    text = README.read_text(encoding="utf-8")
    section = text.split("## Testing webhooks locally", 1)[1]
    block = section.split("```bash\n", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.strip() and not line.startswith("#")]


def bare_env() -> dict[str, str]:
    """Nothing of clerk-sync's configured (no secret, default SQLite in the working directory)."""
    env = clean_env()
    env.pop("CLERK_SECRET_KEY", None)
    return env


def test_readme_two_terminals(tmp_path: Path) -> None:
    """Run the README block as written: terminal 1's ``clerk-sync dev`` on a free port instead
    of 8000, terminal 2's commands with the ``--url`` the port implies.

    Alongside, to share the start-up time, a second project whose ``.env.local`` already has a
    secret runs ``dev --log-format json``: the file must be kept byte for byte.
    """
    commands = readme_block()
    assert commands[0] == "clerk-sync dev", commands
    assert all(c.startswith("clerk-sync ") for c in commands)
    fresh, configured = tmp_path / "fresh", tmp_path / "configured"
    fresh.mkdir()
    configured.mkdir()
    original = f"# mine\nexport ADMIN_TOKEN=t0ken\nCLERK_WEBHOOK_SECRET={SECRET}\n"
    (configured / ".env.local").write_text(original)
    os.chmod(configured / ".env.local", 0o644)
    env = bare_env()
    with (
        DevProcess(commands[0].split()[1:], workdir=fresh, env=env) as dev,
        DevProcess(["dev", "--log-format", "json"], workdir=configured, env=env) as json_dev,
    ):
        dev.wait_healthy()
        json_dev.wait_healthy()
        _check_generated_secret(dev, fresh)
        _check_json_dev(json_dev)
        _run_terminal_two(dev, fresh, commands[1:], env)
    assert "Stopping reloader process" in dev.stderr_text()
    assert "Finished server process" in dev.stderr_text()
    assert (configured / ".env.local").read_text() == original  # kept, byte for byte
    assert stat.S_IMODE((configured / ".env.local").stat().st_mode) == 0o644


def _check_generated_secret(dev: DevProcess, project: Path) -> None:
    """A development secret in .env.local, for its owner only, announced but never printed."""
    dotenv = project / ".env.local"
    secret = re.search(r"^CLERK_WEBHOOK_SECRET=(\S+)$", dotenv.read_text(), re.M)
    assert secret is not None
    assert is_dev_secret(secret.group(1))
    assert stat.S_IMODE(dotenv.stat().st_mode) == 0o600
    url = dev.base_url + WEBHOOK_PATH
    banner = dev.stderr_text()
    assert "generated a development signing secret and created .env.local" in banner
    assert "database: sqlite:///clerk_sync.db" in banner
    assert f"endpoint: {url}" in banner
    assert f"try, in another terminal: clerk-sync trigger user.created --url {url}" in banner
    assert secret.group(1) not in banner


def _run_terminal_two(
    dev: DevProcess, project: Path, commands: list[str], env: dict[str, str]
) -> None:
    """The README's terminal 2 (each trigger gets --url); meanwhile `serve` refuses dev's secret."""
    url = dev.base_url + WEBHOOK_PATH
    *triggers, last = commands
    triggered = run_cli_many([([*c.split()[1:], "--url", url], env) for c in triggers], cwd=project)
    for result in triggered:
        assert result.returncode == 0, str(result)
        assert "every answer as intended" in result.stdout
    listed, served = run_cli_many(
        [(last.split()[1:], env), (["serve", "--port", str(free_port())], env)], cwd=project
    )
    assert listed.returncode == 0, str(listed)
    assert served.returncode == 2, str(served)
    assert "is the development secret `clerk-sync dev` generated" in one_error_line(served)
    created = re.search(r"^✓ 200 user\.created (user_\w+) ", triggered[0].stdout, re.M)
    assert created is not None
    assert created.group(1) in listed.stdout
    assert "1 user(s)" in listed.stdout  # the lifecycle user was deleted
    assert f"user.created {created.group(1)} processed " in dev.stderr_text()


def _check_json_dev(dev: DevProcess) -> None:
    """JSON log lines only, deliveries with their fields, e-mail addresses masked."""
    body = encode(user_event("user.created", user_object(email="ada.lovelace@example.com")))
    headers = sign_headers(SECRET, body)
    answer = httpx.post(dev.base_url + WEBHOOK_PATH, content=body, headers=headers)
    assert answer.status_code == 200, answer.text
    odd = httpx.post(dev.base_url + WEBHOOK_PATH, content=body, headers={"svix-id": "a@b.io"})
    assert odd.status_code == 400
    log = dev.stderr_text()
    entries = [json.loads(line) for line in log.splitlines() if line.strip()]
    assert "secret: CLERK_WEBHOOK_SECRET as configured" in [e["message"] for e in entries]
    deliveries = [e for e in entries if e["logger"] == "clerk_sync.delivery"]
    assert [(d["svix_id"], d["outcome"]) for d in deliveries] == [
        (headers["svix-id"], "processed"),
        ("a***@b.io", "rejected:missing_header"),
    ]
    assert "ada.lovelace" not in log
    assert SECRET.removeprefix("whsec_") not in log
