"""Run the real ``clerk-sync`` command as a subprocess (a helper, not a test module).

Everything here talks to 127.0.0.1 only. The environment of a child is explicit: every setting
clerk-sync reads is removed from the inherited environment before the test's values are put in,
and the working directory is a fresh temporary one, so no stray ``.env`` is read.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Self

import httpx

from clerk_sync.config import Settings
from clerk_sync.web import WEBHOOK_PATH

HOST = "127.0.0.1"
STARTUP_TIMEOUT = 20.0
CLI_TIMEOUT = 60.0


def clerk_sync_command() -> list[str]:
    """The installed console script, as a user would run it (next to this interpreter first)."""
    beside = Path(sys.executable).parent / "clerk-sync"
    if beside.is_file() and os.access(beside, os.X_OK):
        return [str(beside)]
    found = shutil.which("clerk-sync")
    if found:
        return [found]
    return [sys.executable, "-c", "from clerk_sync.cli import main; main()"]


def clean_env(settings: Mapping[str, str] | None = None) -> dict[str, str]:
    """``os.environ`` without any variable clerk-sync would read, plus ``settings``."""
    ours = {name.upper() for name in Settings.model_fields}
    env = {k: v for k, v in os.environ.items() if k.upper() not in ours}
    env.update({"PYTHONUNBUFFERED": "1", "NO_COLOR": "1", "COLUMNS": "200"})
    if settings:
        env.update(settings)
    return env


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class CliResult:
    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    def __str__(self) -> str:
        return (
            f"clerk-sync {' '.join(self.args)} → exit {self.returncode}\n"
            f"--- stdout ---\n{self.stdout}\n--- stderr ---\n{self.stderr}"
        )


Job = tuple[Sequence[str], Mapping[str, str]]
"""One command: its arguments (after ``clerk-sync``) and its whole environment."""


def run_cli_many(
    jobs: Sequence[Job], *, cwd: Path, timeout: float = CLI_TIMEOUT
) -> list[CliResult]:
    """Run several ``clerk-sync`` commands at once (each is mostly import time); wait for all.

    Every process is waited for, and killed if it outlives ``timeout``, even when one fails.
    """
    base = clerk_sync_command()
    procs: list[subprocess.Popen[str]] = []
    finished: set[int] = set()
    try:
        for args, env in jobs:
            procs.append(
                subprocess.Popen(
                    [*base, *args],
                    env=dict(env),
                    cwd=cwd,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                    encoding="utf-8",
                )
            )
        deadline = time.monotonic() + timeout
        results: list[CliResult] = []
        for n, ((args, _), proc) in enumerate(zip(jobs, procs, strict=True)):
            remaining = max(0.1, deadline - time.monotonic())
            try:
                out, err = proc.communicate(timeout=remaining)
            except subprocess.TimeoutExpired:
                proc.kill()
                out, err = proc.communicate()
                finished.add(n)
                raise AssertionError(
                    f"clerk-sync {' '.join(args)} did not finish within {timeout} s:\n{err}"
                ) from None
            finished.add(n)
            results.append(CliResult(tuple(args), proc.returncode, out, err))
        return results
    finally:
        for n, proc in enumerate(procs):
            if n not in finished:
                proc.kill()
                proc.communicate()


def run_cli(
    *args: str, env: Mapping[str, str], cwd: Path, timeout: float = CLI_TIMEOUT
) -> CliResult:
    return run_cli_many([(args, env)], cwd=cwd, timeout=timeout)[0]


class ServerError(RuntimeError):
    """The server did not come up; the message carries its stderr."""


def wait_healthy(
    proc: subprocess.Popen[bytes],
    url: str,
    timeout: float,
    stderr_text: Callable[[], str],
    what: str,
    verify: ssl.SSLContext | bool = True,
) -> None:
    """Poll ``GET url/healthz`` until it answers 200; raise :class:`ServerError` with the
    process's stderr if it exits first or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=url, timeout=1.0, verify=verify) as probe:
        while True:
            code = proc.poll()
            if code is not None:
                raise ServerError(
                    f"{what} exited with {code} before it was healthy:\n{stderr_text()}"
                )
            try:
                if probe.get("/healthz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise ServerError(f"{what} was not healthy within {timeout} s:\n{stderr_text()}")
            time.sleep(0.05)


class ServerProcess:
    """A real ``clerk-sync serve`` on a free 127.0.0.1 port; use it as a context manager."""

    def __init__(
        self,
        *,
        database_url: str,
        secret: str,
        workdir: Path,
        admin_token: str = "",
        extra_env: Mapping[str, str] | None = None,
        via_dotenv_local: bool = False,
        startup_timeout: float = STARTUP_TIMEOUT,
        extra_args: Sequence[str] = (),
        tls_trust: ssl.SSLContext | None = None,
    ) -> None:
        """``via_dotenv_local``: write the secret, URL and token to ``workdir/.env.local``
        instead of passing them in the environment. ``tls_trust``: the server speaks HTTPS
        (``extra_args`` carry its ``--ssl-*`` options) and clients trust this context."""
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        settings = {
            "CLERK_WEBHOOK_SECRET": secret,
            "DATABASE_URL": database_url,
            "ADMIN_TOKEN": admin_token,
        }
        if via_dotenv_local:
            lines = "".join(f"{k}={v}\n" for k, v in settings.items())
            (workdir / ".env.local").write_text(lines, encoding="utf-8")
            settings = {}
        self.env = clean_env({**settings, **(extra_env or {})})
        self.startup_timeout = startup_timeout
        self.extra_args = tuple(extra_args)
        self.tls_trust = tls_trust
        self.stderr_path = workdir / "server.stderr.log"
        self.stdout_path = workdir / "server.stdout.log"
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self._files: list[IO[bytes]] = []
        self._client: httpx.Client | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"{'https' if self.tls_trust else 'http'}://{HOST}:{self.port}"

    @property
    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def start(self) -> Self:
        """Start the process and wait until ``GET /healthz`` answers 200."""
        for attempt in range(3):
            self._spawn()
            try:
                self._wait_healthy()
                return self
            except ServerError:
                log = self.stderr_text()
                self.kill()
                if "address already in use" in log.lower() and attempt < 2:
                    continue  # lost a race for the port: try another one
                raise
        raise AssertionError("unreachable")

    def _spawn(self) -> None:
        self._close_files()
        self.port = free_port()
        stderr = self.stderr_path.open("wb")
        stdout = self.stdout_path.open("wb")
        self._files = [stderr, stdout]
        self.proc = subprocess.Popen(
            [
                *clerk_sync_command(),
                "serve",
                "--host",
                HOST,
                "--port",
                str(self.port),
                *self.extra_args,
            ],
            env=self.env,
            cwd=self.workdir,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
        )

    def _wait_healthy(self) -> None:
        assert self.proc is not None
        wait_healthy(
            self.proc,
            self.url,
            self.startup_timeout,
            self.stderr_text,
            "clerk-sync serve",
            verify=self.tls_trust or True,
        )

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM, wait up to ``timeout``, then SIGKILL; returns the exit code."""
        if self.proc is None:
            raise RuntimeError("the server was never started")
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._close()
        return self.proc.returncode

    def kill(self) -> int:
        """SIGKILL now: no shutdown code runs in the server."""
        if self.proc is None:
            raise RuntimeError("the server was never started")
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._close()
        return self.proc.returncode

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.stop(timeout=5.0)
        self._close()

    def _close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        self._close_files()

    def _close_files(self) -> None:
        for f in self._files:
            f.close()
        self._files = []

    # -- talking to it -----------------------------------------------------------------------

    @property
    def client(self) -> httpx.Client:
        if self._client is None:
            self._client = httpx.Client(
                base_url=self.url, timeout=15.0, verify=self.tls_trust or True
            )
        return self._client

    def post(
        self,
        body: bytes | Iterable[bytes],
        headers: Mapping[str, str] | None = None,
        path: str = WEBHOOK_PATH,
    ) -> httpx.Response:
        """POST ``body`` (bytes: with Content-Length; an iterable: chunked) to the webhook."""
        return self.client.post(path, content=body, headers=dict(headers or {}))

    def get(self, path: str, token: str | None = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        return self.client.get(path, headers=headers)

    def stderr_text(self) -> str:
        """Everything the server has written to stderr so far (its log)."""
        for f in self._files:
            f.flush()
        if not self.stderr_path.exists():
            return ""
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")
