"""Protections of a real ``clerk-sync serve`` on loopback: HTTPS with a certificate made here,
whose ``X-Forwarded-For`` is believed, budgets shared by two processes through the real Redis,
and the secret-rotation runbook of the README, step by step."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from clerk_sync.devtools import encode, sign_headers, user_event, user_object
from clerk_sync.web import WEBHOOK_PATH
from tests.conftest import OTHER_SECRET, SECRET

from .server import HOST, ServerProcess, clean_env, run_cli

ADMIN = "e2e-admin-token-0123456789"
SVIX_US = "44.228.126.217"


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, as PEM files, made now."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "clerk-sync test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(HOST))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def delivery(*secrets_: str) -> tuple[bytes, dict[str, str]]:
    body = encode(user_event("user.created", user_object()))
    return body, sign_headers(list(secrets_), body)


def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'clerk_sync.db'}"


def test_serve_speaks_https_with_the_given_certificate(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    trust = ssl.create_default_context(cafile=str(cert))
    server = ServerProcess(
        database_url=sqlite_url(tmp_path),
        secret=SECRET,
        workdir=tmp_path / "run",
        extra_args=["--ssl-certfile", str(cert), "--ssl-keyfile", str(key)],
        tls_trust=trust,
    )
    with server:
        assert server.url.startswith("https://")
        body, headers = delivery(SECRET)
        answer = server.post(body, headers)
        assert answer.status_code == 200, answer.text
        assert answer.json()["status"] == "processed"
        # Plain HTTP to the TLS port gets no answer from the app.
        with pytest.raises(httpx.HTTPError):
            httpx.post(f"http://{HOST}:{server.port}{WEBHOOK_PATH}", content=body, timeout=5)
        # A client that does not trust the certificate refuses the connection.
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{server.url}/healthz", timeout=5)
        assert f"https://{HOST}:{server.port}{WEBHOOK_PATH}" in server.stderr_text()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--ssl-certfile", "missing.pem"], "--ssl-certfile missing.pem: no such file"),
        (["--ssl-keyfile", "key.pem"], "--ssl-keyfile needs --ssl-certfile"),
        (["--ssl-certfile", "cert.pem", "--ssl-keyfile", "other.pem"], "cannot be loaded"),
        (["--ssl-certfile", "key.pem", "--ssl-keyfile", "cert.pem"], "cannot be loaded"),
    ],
)
def test_bad_tls_options_are_one_line_errors(tmp_path: Path, args: list[str], message: str) -> None:
    self_signed(tmp_path)
    other_dir = tmp_path / "other"
    other_dir.mkdir()
    (tmp_path / "other.pem").write_bytes((self_signed(other_dir)[1]).read_bytes())
    env = clean_env({"CLERK_WEBHOOK_SECRET": SECRET, "DATABASE_URL": sqlite_url(tmp_path)})
    result = run_cli("serve", "--port", "1", *args, env=env, cwd=tmp_path)
    assert result.returncode == 2, result
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_protection_settings_stop_serve_at_startup(tmp_path: Path) -> None:
    env = clean_env(
        {
            "CLERK_WEBHOOK_SECRET": SECRET,
            "DATABASE_URL": sqlite_url(tmp_path),
            "ALLOWED_SOURCE_IPS": "svix, 10.0.0.300",
        }
    )
    result = run_cli("serve", "--port", "1", env=env, cwd=tmp_path)
    assert result.returncode == 2, result
    assert "ALLOWED_SOURCE_IPS entry '10.0.0.300'" in result.stderr
    assert "Traceback" not in result.stderr


def test_forwarded_for_is_believed_only_from_trusted_proxies(tmp_path: Path) -> None:
    """uvicorn itself believes X-Forwarded-For from 127.0.0.1 by default; serve must not."""
    db = sqlite_url(tmp_path)
    body, headers = delivery(SECRET)
    spoofed = {**headers, "x-forwarded-for": SVIX_US}
    allow = {"ALLOWED_SOURCE_IPS": "svix"}
    with ServerProcess(
        database_url=db, secret=SECRET, workdir=tmp_path / "a", extra_env=allow
    ) as direct:
        answer = direct.post(body, spoofed)
        assert answer.status_code == 403, answer.text
        assert answer.json()["error"] == "source_not_allowed"
        assert "refused source_not_allowed: 127.0.0.1" in direct.stderr_text()
    proxied = {**allow, "TRUSTED_PROXIES": "127.0.0.1/32"}
    with ServerProcess(
        database_url=db, secret=SECRET, workdir=tmp_path / "b", extra_env=proxied
    ) as behind_proxy:
        assert behind_proxy.post(body, spoofed).status_code == 200
        elsewhere = {**headers, "x-forwarded-for": "198.51.100.7"}
        assert behind_proxy.post(body, elsewhere).status_code == 403


def test_two_processes_share_one_budget_through_redis(tmp_path: Path, redis_url: str) -> None:
    env = {"REDIS_URL": redis_url, "RATE_LIMIT_API": "3/minute"}
    db = sqlite_url(tmp_path)
    with (
        ServerProcess(
            database_url=db, secret=SECRET, workdir=tmp_path / "a", admin_token=ADMIN, extra_env=env
        ) as one,
        ServerProcess(
            database_url=db, secret=SECRET, workdir=tmp_path / "b", admin_token=ADMIN, extra_env=env
        ) as two,
    ):
        statuses = [s.get("/api/users", ADMIN).status_code for s in (one, two, one)]
        assert statuses == [200, 200, 200]
        for server in (two, one):
            refused = server.get("/api/users", ADMIN)
            assert refused.status_code == 429, refused.text
            assert refused.json()["error"] == "rate_limited"
            assert int(refused.headers["retry-after"]) >= 1


def test_secret_rotation_runbook(tmp_path: Path) -> None:
    """The README's runbook: add the new secret beside the old, rotate in Clerk (Svix then signs
    with both), drop the old one. No delivery is refused at any step that Svix could send."""
    old, new = SECRET, OTHER_SECRET
    db = sqlite_url(tmp_path)

    def serve(secret: str, name: str) -> ServerProcess:
        return ServerProcess(database_url=db, secret=secret, workdir=tmp_path / name)

    with serve(old, "0-before") as server:
        assert server.post(*delivery(old)).status_code == 200
    # Step 1: both secrets configured, before or right after rotating in Clerk.
    with serve(f"{new} {old}", "1-both") as server:
        for signers in ([old], [new], [new, old]):
            assert server.post(*delivery(*signers)).status_code == 200, signers
    # Step 2: the old secret removed once the overlap has passed.
    with serve(new, "2-after") as server:
        assert server.post(*delivery(new)).status_code == 200
        assert server.post(*delivery(new, old)).status_code == 200
        refused = server.post(*delivery(old))
        assert refused.status_code == 401
        assert refused.json()["error"] == "signature_mismatch"
