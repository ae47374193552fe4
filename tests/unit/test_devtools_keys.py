"""Development secrets, what a secret says about itself, and the .env.local writer."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from clerk_sync.config import parse_secrets, secret_problem
from clerk_sync.devtools import generate_dev_secret, is_dev_secret, random_secret
from clerk_sync.devtools.envfile import set_if_absent
from clerk_sync.devtools.keys import instance_hint, instance_kind, secret_note
from tests.conftest import SECRET

NAME = "CLERK_WEBHOOK_SECRET"


def test_dev_secret_is_a_valid_secret_that_knows_what_it_is() -> None:
    first, second = generate_dev_secret(), generate_dev_secret()
    assert first != second
    assert secret_problem(first) is None
    assert parse_secrets(first) == [first]
    assert is_dev_secret(first)
    assert first.startswith("whsec_Y2xlcmstc3luYy1kZXY6")
    for other in (SECRET, random_secret(), "whsec_!!!", "sk_test_x", ""):
        assert not is_dev_secret(other)


def test_secret_notes() -> None:
    assert "clerk-sync dev" in (secret_note(generate_dev_secret()) or "")
    assert "public example" in (secret_note(SECRET) or "")
    assert secret_note(random_secret()) is None


@pytest.mark.parametrize(
    ("key", "kind"),
    [("sk_test_abc", "development"), ("sk_live_abc", "production"), ("", None), ("pk_x", None)],
)
def test_instance_from_the_clerk_secret_key(key: str, kind: str | None) -> None:
    assert instance_kind(key) == kind
    hint = instance_hint(key)
    if kind is None:
        assert hint is None
    else:
        assert hint is not None
        assert f"your {kind} instance" in hint
        assert key not in hint  # only the prefix is shown


def test_creates_the_file_for_its_owner_only(tmp_path: Path) -> None:
    path = tmp_path / ".env.local"
    assert set_if_absent(path, NAME, "whsec_new", comment="made by a test") == "created"
    assert path.read_text() == "# made by a test\nCLERK_WEBHOOK_SECRET=whsec_new\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_adds_to_an_existing_file_keeping_every_line(tmp_path: Path) -> None:
    path = tmp_path / ".env.local"
    path.write_text("# mine\nexport DATABASE_URL='sqlite:///x.db'\nADMIN_TOKEN=abc")
    assert set_if_absent(path, NAME, "whsec_new", comment="c") == "added"
    assert path.read_text() == (
        "# mine\nexport DATABASE_URL='sqlite:///x.db'\nADMIN_TOKEN=abc\n# c\n"
        "CLERK_WEBHOOK_SECRET=whsec_new\n"
    )


@pytest.mark.parametrize(
    "existing",
    [
        "CLERK_WEBHOOK_SECRET=whsec_mine\n",
        "export clerk_webhook_secret = 'whsec_mine'\n",
        "CLERK_WEBHOOK_SECRET=\nCLERK_WEBHOOK_SECRET=whsec_mine\n",
    ],
)
def test_never_overwrites_a_value(tmp_path: Path, existing: str) -> None:
    path = tmp_path / ".env.local"
    path.write_text(existing)
    assert set_if_absent(path, NAME, "whsec_new", comment="c") == "kept"
    assert path.read_text() == existing


@pytest.mark.parametrize("empty", ["CLERK_WEBHOOK_SECRET=", 'CLERK_WEBHOOK_SECRET=""'])
def test_fills_an_empty_assignment(tmp_path: Path, empty: str) -> None:
    path = tmp_path / ".env.local"
    path.write_text(f"A=1\n{empty}\nB=2\n")
    assert set_if_absent(path, NAME, "whsec_new", comment="c") == "filled"
    assert path.read_text() == "A=1\nCLERK_WEBHOOK_SECRET=whsec_new\nB=2\n"
