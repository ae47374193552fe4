"""Settings and the checks on what they hold: secrets, database URL, cleanup hooks."""

from __future__ import annotations

import base64
import os.path
from pathlib import Path

import pytest

from clerk_sync.config import (
    Settings,
    normalize_database_url,
    parse_secrets,
    secret_problem,
)
from clerk_sync.errors import ConfigError
from clerk_sync.hooks import load_hooks
from tests.conftest import OTHER_SECRET, SECRET

SHORT_SECRET = "whsec_" + base64.b64encode(b"fifteen bytes!!").decode()
PLACEHOLDERS = [
    "whsec_your_secret_here",
    "whsec_...",
    "sk_test_abc",
    "whsec_abc",
    SHORT_SECRET,
    "whsec_!!!!!!!!!!!!!!!!!!!!!!!!",
    "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",  # a real secret's body without its prefix
]
_SETTINGS_ENV = [name.upper() for name in Settings.model_fields]


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """An empty working directory and no clerk-sync variables from the machine's env."""
    monkeypatch.chdir(tmp_path)
    for name in _SETTINGS_ENV:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    return tmp_path


def assert_config_error(exc: pytest.ExceptionInfo[ConfigError], *secrets: str) -> str:
    err = exc.value
    assert type(err) is ConfigError
    assert err.code == "config_invalid"
    assert err.exit_code == 2
    assert "Clerk Dashboard" in err.detail
    assert "Signing Secret" in err.detail
    for secret in secrets:
        assert secret not in err.detail
    return err.detail


# --- parse_secrets ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        f"{SECRET} {OTHER_SECRET}",
        f"{SECRET},{OTHER_SECRET}",
        f"{SECRET}, {OTHER_SECRET}",
        f"  {SECRET} ,\n {OTHER_SECRET},",
        f"{SECRET},,{OTHER_SECRET}",
        f"{SECRET}\t{OTHER_SECRET}",
    ],
    ids=["space", "comma", "comma-space", "messy", "double-comma", "tab"],
)
def test_secrets_split_on_spaces_commas_or_both(raw: str) -> None:
    assert parse_secrets(raw) == [SECRET, OTHER_SECRET]


def test_single_secret_is_a_list_of_one() -> None:
    assert parse_secrets(f"  {SECRET}\n") == [SECRET]


@pytest.mark.parametrize("raw", ["", "   ", ",", " , ,\n"])
def test_missing_secret_says_where_to_find_it(raw: str) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_secrets(raw)
    detail = assert_config_error(exc)
    assert detail.startswith("CLERK_WEBHOOK_SECRET is not set:")
    assert ".env.local" in detail


@pytest.mark.parametrize("placeholder", PLACEHOLDERS)
def test_placeholder_secret_is_refused_without_echoing_it(placeholder: str) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_secrets(placeholder)
    detail = assert_config_error(exc, placeholder)
    assert detail.startswith("CLERK_WEBHOOK_SECRET ")
    assert "secret #" not in detail


@pytest.mark.parametrize("placeholder", [*PLACEHOLDERS, "whsec_", ""])
def test_secret_problem_names_a_problem_for_placeholders(placeholder: str) -> None:
    assert secret_problem(placeholder)


@pytest.mark.parametrize(
    ("secret", "expected"),
    [
        ("sk_test_abc", "does not start with 'whsec_'"),
        ("whsec_your_secret_here", "is not valid base64"),
        (SHORT_SECRET, "is too short (15 bytes; Svix secrets are at least 16)"),
        ("whsec_", "is too short (0 bytes"),
    ],
)
def test_secret_problem_says_what_is_wrong(secret: str, expected: str) -> None:
    problem = secret_problem(secret)
    assert problem is not None
    assert problem.startswith(expected)


@pytest.mark.parametrize(
    "secret",
    [
        SECRET,
        OTHER_SECRET,
        "whsec_" + base64.b64encode(bytes(16)).decode(),
        "whsec_" + base64.b64encode(bytes(24)).decode().rstrip("="),
        "whsec_plJ3nmyCDGBKInavdOK15jsl",
    ],
    ids=["conftest", "conftest-other", "16-bytes", "unpadded", "svix-docs"],
)
def test_real_secrets_have_no_problem(secret: str) -> None:
    assert secret_problem(secret) is None
    assert parse_secrets(secret) == [secret]


def test_bad_second_secret_is_named_by_position() -> None:
    with pytest.raises(ConfigError) as exc:
        parse_secrets(f"{SECRET} whsec_your_secret_here")
    detail = assert_config_error(exc, SECRET, "whsec_your_secret_here")
    assert detail.startswith("CLERK_WEBHOOK_SECRET (secret #2) is not valid base64")
    assert "#1" not in detail


def test_bad_first_secret_is_named_by_position() -> None:
    with pytest.raises(ConfigError) as exc:
        parse_secrets(f"sk_test_abc,{SECRET}")
    detail = assert_config_error(exc, SECRET, "sk_test_abc")
    assert "(secret #1)" in detail


# --- Settings sources and precedence ---------------------------------------------------------


def write(path: Path, **values: str) -> None:
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items()), encoding="utf-8")


@pytest.mark.usefixtures("clean_env")
def test_defaults_with_nothing_configured() -> None:
    settings = Settings()
    assert settings.clerk_webhook_secret == ""
    assert settings.database_url == "sqlite:///clerk_sync.db"
    assert settings.sqlalchemy_url() == "sqlite:///clerk_sync.db"
    assert settings.admin_token == ""
    assert settings.webhook_tolerance_seconds == 300
    assert settings.hook_paths() == []
    with pytest.raises(ConfigError):
        settings.webhook_secrets()


def test_dotenv_is_read(clean_env: Path) -> None:
    write(clean_env / ".env", CLERK_WEBHOOK_SECRET=SECRET, ADMIN_TOKEN="from-env-file")
    settings = Settings()
    assert settings.webhook_secrets() == [SECRET]
    assert settings.admin_token == "from-env-file"


def test_dotenv_local_overrides_dotenv(clean_env: Path) -> None:
    write(clean_env / ".env", CLERK_WEBHOOK_SECRET=SECRET, ADMIN_TOKEN="from-env")
    write(clean_env / ".env.local", CLERK_WEBHOOK_SECRET=OTHER_SECRET)
    settings = Settings()
    assert settings.clerk_webhook_secret == OTHER_SECRET
    assert settings.admin_token == "from-env", "keys absent from .env.local still come from .env"


def test_environment_overrides_both_files(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(clean_env / ".env", DATABASE_URL="sqlite:///env.db", ADMIN_TOKEN="from-env")
    write(clean_env / ".env.local", DATABASE_URL="sqlite:///local.db", ADMIN_TOKEN="from-local")
    monkeypatch.setenv("DATABASE_URL", "postgres://u@db/clerk")
    settings = Settings()
    assert settings.database_url == "postgres://u@db/clerk"
    assert settings.sqlalchemy_url() == "postgresql+psycopg://u@db/clerk"
    assert settings.admin_token == "from-local"


def test_environment_secrets_list(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(clean_env / ".env.local", CLERK_WEBHOOK_SECRET="whsec_your_secret_here")
    monkeypatch.setenv("CLERK_WEBHOOK_SECRET", f"{SECRET}, {OTHER_SECRET}")
    assert Settings().webhook_secrets() == [SECRET, OTHER_SECRET]


def test_placeholder_in_dotenv_is_refused_at_startup(clean_env: Path) -> None:
    write(clean_env / ".env", CLERK_WEBHOOK_SECRET="whsec_your_secret_here")
    with pytest.raises(ConfigError) as exc:
        Settings().webhook_secrets()
    assert_config_error(exc, "whsec_your_secret_here")


def test_variable_names_are_case_insensitive(clean_env: Path) -> None:
    write(clean_env / ".env", admin_token="lower", Database_Url="sqlite:///mixed.db")
    settings = Settings()
    assert settings.admin_token == "lower"
    assert settings.database_url == "sqlite:///mixed.db"


def test_files_are_read_from_the_working_directory(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(clean_env / ".env", ADMIN_TOKEN="in-tmp")
    elsewhere = clean_env / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert Settings().admin_token == ""


def test_hook_paths_split_on_commas(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ON_USER_DELETED", " os.path:join ,, json:dumps ,")
    assert Settings().hook_paths() == ["os.path:join", "json:dumps"]


# --- database URL ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgres://u:p@h:5432/db", "postgresql+psycopg://u:p@h:5432/db"),
        ("postgresql://u:p@h:5432/db", "postgresql+psycopg://u:p@h:5432/db"),
        ("postgresql://h/db?sslmode=require", "postgresql+psycopg://h/db?sslmode=require"),
    ],
)
def test_postgres_urls_use_psycopg3(url: str, expected: str) -> None:
    assert normalize_database_url(url) == expected


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:///clerk_sync.db",
        "sqlite:////var/lib/clerk/users.db",
        "sqlite://",
        "postgresql+psycopg://u@h/db",
        "postgresql+psycopg2://u@h/db",
        "postgresql+asyncpg://u@h/db",
        "mysql+pymysql://u@h/db",
        "sqlite:///postgres://not-a-prefix.db",
    ],
)
def test_other_urls_are_untouched(url: str) -> None:
    assert normalize_database_url(url) == url


# --- load_hooks ------------------------------------------------------------------------------


def test_load_hooks_imports_module_function() -> None:
    assert load_hooks(["os.path:join"]) == [os.path.join]


def test_load_hooks_keeps_order() -> None:
    assert load_hooks(["os.path:join", "os.path:basename"]) == [
        os.path.join,
        os.path.basename,
    ]


def test_load_hooks_of_nothing_is_empty() -> None:
    assert load_hooks([]) == []


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("os.path", "must look like 'module:function'"),
        (":join", "must look like 'module:function'"),
        ("os.path:", "must look like 'module:function'"),
        ("", "must look like 'module:function'"),
        ("os.path.join", "must look like 'module:function'"),
        ("clerk_sync_no_such_module_xyz:hook", "cannot be loaded"),
        ("os.path:no_such_function", "cannot be loaded"),
        ("os.path:join:extra", "cannot be loaded"),
        ("os..path:join", "cannot be loaded"),
        ("os:sep", "is not callable"),
    ],
)
def test_load_hooks_refuses_bad_entries(path: str, expected: str) -> None:
    with pytest.raises(ConfigError) as exc:
        load_hooks(["os.path:join", path])
    assert exc.value.code == "config_invalid"
    assert exc.value.detail.startswith(f"ON_USER_DELETED entry {path!r} ")
    assert expected in exc.value.detail


@pytest.mark.parametrize("path", [".hooks:cleanup", "..hooks:cleanup"])
def test_load_hooks_refuses_relative_module(path: str) -> None:
    with pytest.raises(ConfigError):
        load_hooks([path])


def test_every_setting_is_in_the_readme_configuration_table() -> None:
    """A setting users cannot find is a setting they cannot use."""
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    table = readme.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    rows = {line.split("|")[1].strip().strip("`") for line in table.splitlines() if "| `" in line}
    assert {name.upper() for name in Settings.model_fields} <= rows


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("WRITER", "fork"),
        ("LOG_LEVEL", "verbose"),
        ("MAX_BODY_BYTES", "abc"),
        ("BATCH_MAX", "0"),
        ("SQLITE_SYNCHRONOUS", "OFF"),
    ],
)
def test_a_bad_setting_is_one_line_naming_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, name: str, value: str
) -> None:
    monkeypatch.chdir(tmp_path)  # no stray .env
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as exc:
        Settings.load()
    assert str(exc.value.detail).startswith(f"{name} is invalid:")
    assert "\n" not in exc.value.detail


def test_writer_accepts_either_case(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WRITER", "Thread")
    assert Settings.load().writer == "thread"
