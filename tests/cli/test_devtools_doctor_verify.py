"""``clerk-sync doctor`` and ``clerk-sync verify`` as a user runs them, against a real
``clerk-sync serve`` on 127.0.0.1: every failure class each names, its fix, its exit code.

``verify``'s wording is checked against what the running endpoint answers to the very same
delivery: the two must tell one story. (The all-pass ``doctor`` run, on SQLite and PostgreSQL,
is in test_devtools_trigger.py.)
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from clerk_sync.devtools import encode, generate_dev_secret, sign_headers, user_event, user_object
from clerk_sync.web import WEBHOOK_PATH
from tests.cli.devtools_support import (
    env,
    finish,
    one_error_line,
    start_with_input,
)
from tests.conftest import OTHER_SECRET, SECRET, load_fixture, migrated_sqlite
from tests.e2e.server import CliResult, ServerProcess, free_port, run_cli_many

PLACEHOLDER = "whsec_your_secret_here"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[ServerProcess, str]]:
    """A server on SQLite, and its database URL."""
    db_url = migrated_sqlite(tmp_path / "server.db")
    with ServerProcess(database_url=db_url, secret=SECRET, workdir=tmp_path / "srv") as server:
        yield server, db_url


def checks(result: CliResult) -> dict[str, tuple[str, str, str]]:
    """``{check id: (mark, summary, fix)}`` from doctor's output."""
    found: dict[str, tuple[str, str, str]] = {}
    last = ""
    for line in result.stdout.splitlines():
        if line[:1] in ("✓", "✗", "–"):
            mark, check, summary = line.split(maxsplit=2)
            found[check] = (mark, summary, "")
            last = check
        elif line.strip().startswith("fix: "):
            mark, summary, _ = found[last]
            found[last] = (mark, summary, line.strip().removeprefix("fix: "))
    return found


def test_doctor_and_verify_name_every_failure_class(
    served: tuple[ServerProcess, str], tmp_path: Path
) -> None:
    """Both commands' cases in one batch: each command is mostly import time, and the two cores
    are best shared by all of them at once."""
    server, db_url = served
    doctor_jobs, check_doctor = doctor_cases(server, db_url, tmp_path / "doctor")
    verify_jobs, piped, check_verify = verify_cases(server, tmp_path / "verify")
    results = run_cli_many([*doctor_jobs, *verify_jobs], cwd=tmp_path)
    check_doctor(results[: len(doctor_jobs)])
    check_verify(results[len(doctor_jobs) :], piped())


Job = tuple[list[str], dict[str, str]]


def doctor_cases(
    server: ServerProcess, db_url: str, tmp_path: Path
) -> tuple[list[Job], Callable[[list[CliResult]], None]]:
    """Five doctor runs that between them fail every check in every way it names."""
    tmp_path.mkdir()
    url = server.url + WEBHOOK_PATH
    empty_db = tmp_path / "empty.db"
    empty_db.write_bytes(b"")  # exists, but no tables
    elsewhere = migrated_sqlite(tmp_path / "elsewhere.db")
    refused = f"http://127.0.0.1:{free_port()}{WEBHOOK_PATH}"
    pg_down = f"postgresql://postgres@127.0.0.1:{free_port()}/nothing"
    jobs: list[Job] = [
        # No secret, no database file yet, nothing listening.
        (["doctor", "--url", refused], env(DATABASE_URL=f"sqlite:///{tmp_path / 'no.db'}")),
        # A placeholder secret and a database that refuses connections.
        (
            ["doctor", "--url", url],
            env(CLERK_WEBHOOK_SECRET=PLACEHOLDER, DATABASE_URL=pg_down),
        ),
        # Another endpoint's secret (the server refuses the ping), an unmigrated database.
        (
            ["doctor", "--url", url],
            env(
                CLERK_WEBHOOK_SECRET=OTHER_SECRET,
                DATABASE_URL=f"sqlite:///{empty_db}",
                CLERK_SECRET_KEY="sk_live_0123456789abcdef",
            ),
        ),
        # All good, but this shell reads another database than the server writes.
        (
            ["doctor", "--url", url],
            env(
                CLERK_WEBHOOK_SECRET=SECRET,
                DATABASE_URL=elsewhere,
                CLERK_SECRET_KEY="sk_test_0123456789abcdef",
            ),
        ),
        # The right server, the wrong path.
        (
            ["doctor", "--url", server.url + "/webhooks"],
            env(CLERK_WEBHOOK_SECRET=SECRET, DATABASE_URL=db_url),
        ),
    ]
    return jobs, lambda results: _check_doctor(results, tmp_path, refused)


def _check_doctor(results: list[CliResult], tmp_path: Path, refused: str) -> None:
    unset, malformed, mismatch, other_db, wrong_path = results

    found = checks(unset)
    assert unset.returncode == 2, str(unset)  # the first failure's: configuration
    assert found["secret"][:2] == ("✗", "CLERK_WEBHOOK_SECRET is not set")
    assert "Clerk Dashboard → Webhooks" in found["secret"][2]
    assert ".env.local" in found["secret"][2]
    assert "clerk-sync dev" in found["secret"][2]
    assert found["database"][0] == "✗"
    assert "no database at" in found["database"][1]
    assert "clerk-sync db upgrade" in found["database"][2]
    assert not (tmp_path / "no.db").exists()  # doctor does not create it
    assert found["server"][:2] == (
        "✗",
        f"could not connect to {refused.removesuffix(WEBHOOK_PATH)}/healthz: Connection refused",
    )
    assert "clerk-sync dev" in found["server"][2]
    assert found["round-trip"][0] == found["event-log"][0] == "–"
    assert "2 of 5 checks passed." not in unset.stdout
    assert "0 of 5 checks passed." in unset.stdout

    found = checks(malformed)
    assert malformed.returncode == 2, str(malformed)
    assert found["secret"][0] == "✗"
    assert "not valid base64" in found["secret"][1]
    assert PLACEHOLDER not in malformed.stdout
    assert found["database"][0] == "✗"
    assert found["database"][1].endswith("does not answer")
    assert "the database is running" in found["database"][2]
    assert found["server"][0] == "✓"

    found = checks(mismatch)
    assert mismatch.returncode == 3, str(mismatch)  # the first failure's: schema
    assert found["secret"][0] == "✓"
    assert "production key (sk_live_…)" in found["secret"][1]
    assert "sk_live_0123" not in mismatch.stdout
    assert found["database"][0] == "✗"
    assert "schema is empty" in found["database"][1]
    assert found["database"][2].startswith("run `clerk-sync db upgrade`")
    assert found["round-trip"][0] == "✗"
    assert "401 signature_mismatch" in found["round-trip"][1]
    assert "another CLERK_WEBHOOK_SECRET" in found["round-trip"][2]
    assert found["event-log"][0] == "–"

    found = checks(other_db)
    assert other_db.returncode == 1, str(other_db)
    assert "development key (sk_test_…)" in found["secret"][1]
    assert "public example secret" in found["secret"][1]
    assert [found[c][0] for c in ("database", "server", "round-trip")] == ["✓", "✓", "✓"]
    assert found["event-log"][0] == "✗"
    assert "is not in the event log of" in found["event-log"][1]
    assert "DATABASE_URL" in found["event-log"][2]
    assert "4 of 5 checks passed." in other_db.stdout

    found = checks(wrong_path)
    assert wrong_path.returncode == 1, str(wrong_path)
    assert found["server"][0] == "✓"
    assert found["round-trip"][0] == "✗"
    assert "404 HTTP 404" in found["round-trip"][1]
    assert (
        found["round-trip"][2]
        == f"nothing answers at this path: the webhook path is {WEBHOOK_PATH}"
    )

    for result in (unset, malformed, mismatch, other_db, wrong_path):
        assert "Traceback" not in result.stderr, str(result)
        assert SECRET not in result.stdout
        assert OTHER_SECRET not in result.stdout


def _headers_file(path: Path, headers: dict[str, str]) -> Path:
    """As copied from a request log: a request line, then ``Name: value`` lines."""
    lines = ["POST /api/webhooks/clerk HTTP/1.1", *(f"{k}: {v}" for k, v in headers.items())]
    path.write_text("\n".join(lines) + "\n")
    return path


def _args_for(headers: dict[str, str]) -> list[str]:
    return [arg for k, v in headers.items() for arg in ("-H", f"{k}: {v}")]


def verify_cases(
    server: ServerProcess, tmp_path: Path
) -> tuple[list[Job], Callable[[], CliResult], Callable[[list[CliResult], CliResult], None]]:
    """Captured deliveries, one per failure class verify names (and a valid one); the one with a
    trailing newline is piped through stdin."""
    tmp_path.mkdir()
    settings = env(CLERK_WEBHOOK_SECRET=f"{OTHER_SECRET} {SECRET}")  # mid-rotation
    compact = encode(user_event("user.created", user_object(email="ada@example.com")))
    pretty = load_fixture("user.created.json")  # pretty-printed, with a final newline
    now = int(time.time())
    cases: dict[str, tuple[dict[str, str], bytes]] = {}  # the headers, the body received

    def case(
        name: str,
        signed: bytes,
        received: bytes | None = None,
        *,
        secret: str = SECRET,
        timestamp: int | None = None,
    ) -> None:
        headers = sign_headers(secret, signed, timestamp=timestamp)
        cases[name] = (headers, signed if received is None else received)

    case("valid", compact)
    case("expired", compact, timestamp=now - 3_600)
    case("wrong_secret", compact, secret=generate_dev_secret())
    case("newline", compact, compact + b"\n")
    case("reserialized", pretty, json.dumps(json.loads(pretty)).encode())
    case("not_utf8", compact, b"\xff" + compact)
    cases["missing"] = ({"svix-id": "msg_only"}, compact)
    malformed = dict(sign_headers(SECRET, compact))
    malformed["svix-timestamp"] = "yesterday"
    cases["malformed"] = (malformed, compact)

    jobs: list[tuple[list[str], dict[str, str]]] = []
    for name, (headers, received) in cases.items():
        body = tmp_path / f"{name}.body"
        body.write_bytes(received)
        if name == "newline":
            continue  # through stdin, below
        if name in ("valid", "missing"):
            jobs.append((["verify", *_args_for(headers), "--body", str(body)], settings))
        else:
            headers_path = _headers_file(tmp_path / f"{name}.headers", headers)
            jobs.append((["verify", "--headers", str(headers_path), "--body", str(body)], settings))
    no_secret_headers = _headers_file(tmp_path / "ns.headers", cases["valid"][0])
    jobs.append(
        (
            ["verify", "--headers", str(no_secret_headers), "--body", str(tmp_path / "valid.body")],
            env(),
        )
    )
    newline_args = ["verify", *_args_for(cases["newline"][0]), "--body", "-"]
    piped = start_with_input(
        newline_args, env=settings, cwd=tmp_path, stdin=tmp_path / "newline.body"
    )
    names = [n for n in cases if n != "newline"]

    def check(batch: list[CliResult], from_stdin: CliResult) -> None:
        results = dict(zip([*names, "no_secret"], batch, strict=True))
        results["newline"] = from_stdin
        # What the endpoint answers to each of the same deliveries.
        endpoint = {
            name: server.post(received, headers).json()
            for name, (headers, received) in cases.items()
        }
        _check_verify(results, endpoint, cases["valid"][0]["svix-id"])

    return jobs, lambda: finish(piped, newline_args), check


def _check_verify(
    results: dict[str, CliResult], endpoint: dict[str, dict[str, str]], valid_id: str
) -> None:
    valid = results["valid"]
    assert valid.returncode == 0, str(valid)
    assert valid.stdout.startswith(f"✓ valid: {valid_id} is signed by")
    assert "(secret #2 of 2)" in valid.stdout
    assert "tolerance ±300 s" in valid.stdout

    expected = {
        "missing": "missing_header",
        "malformed": "malformed_header",
        "expired": "timestamp_out_of_tolerance",
        "wrong_secret": "signature_mismatch",
        "newline": "signature_mismatch",
        "reserialized": "signature_mismatch",
        "not_utf8": "body_not_utf8",
    }
    for name, code in expected.items():
        result = results[name]
        assert result.returncode == 1, str(result)
        first = result.stdout.splitlines()[0]
        assert first.startswith(f"✗ {code}: "), str(result)
        said = first.removeprefix(f"✗ {code}: ")
        answer = endpoint[name]
        assert answer["error"] == code, answer
        # One story: the endpoint's detail, word for word (seconds may tick between the two).
        assert _no_digits(said) == _no_digits(answer["detail"]), (said, answer)

    assert "svix-timestamp, svix-signature" in results["missing"].stdout
    skew = re.search(r"svix-timestamp is (\d+) s in the past", results["expired"].stdout)
    assert skew
    assert 3_600 <= int(skew.group(1)) <= 3_660
    assert "outside the tolerance of ±300 s" in results["expired"].stdout
    assert "The signature itself matches the configured secret (secret #2 of 2)" in (
        results["expired"].stdout
    )
    wrong = results["wrong_secret"].stdout
    assert "The body was modified" not in wrong
    assert "It is the public example secret from Svix's documentation" in wrong
    modified = "The body was modified before verification: the signature matches"
    assert f"{modified} once the trailing newline is removed." in results["newline"].stdout
    assert (
        f"{modified} the same JSON written as JSON indented by 2 spaces, so the body was "
        "parsed and re-serialized." in results["reserialized"].stdout
    )
    assert "bad byte at offset 0" in results["not_utf8"].stdout

    no_secret = results["no_secret"]
    assert no_secret.returncode == 2
    line = one_error_line(no_secret)
    assert "CLERK_WEBHOOK_SECRET is not set" in line
    assert ".env.local" in line
    assert "clerk-sync dev" in line

    for result in results.values():
        assert "Traceback" not in result.stderr, str(result)
        assert SECRET.removeprefix("whsec_") not in result.stdout + result.stderr


def _no_digits(text: str) -> str:
    return re.sub(r"\d+", "N", text)
