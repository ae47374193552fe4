"""Helpers for the devtools CLI tests (a helper, not a test module).

They build on tests/e2e/server.py (the real ``clerk-sync`` as a subprocess, on 127.0.0.1, with
an explicit environment) and add what those tests need besides: a command fed on stdin, and a
long-running ``clerk-sync dev`` (a reloader and its child) that is always stopped.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Self

from tests.e2e.server import (
    CLI_TIMEOUT,
    HOST,
    STARTUP_TIMEOUT,
    CliResult,
    clean_env,
    clerk_sync_command,
    free_port,
    wait_healthy,
)


def env(**settings: str) -> dict[str, str]:
    """A child environment with only these clerk-sync settings (and no stray ``.env``)."""
    return clean_env(settings)


def one_error_line(result: CliResult) -> str:
    """The command failed with exactly one line on stderr, no traceback, nothing on stdout."""
    lines = result.stderr.strip().splitlines()
    assert result.returncode != 0, str(result)
    assert len(lines) == 1, str(result)
    assert "Traceback" not in result.stderr, str(result)
    assert result.stdout == "", str(result)
    return lines[0]


def start_with_input(
    args: Sequence[str], *, env: Mapping[str, str], cwd: Path, stdin: Path
) -> subprocess.Popen[bytes]:
    """Start a command reading ``stdin`` (a file, as ``< file`` would); it runs meanwhile, and
    :func:`finish` waits for it."""
    with stdin.open("rb") as source:
        return subprocess.Popen(
            [*clerk_sync_command(), *args],
            env=dict(env),
            cwd=cwd,
            stdin=source,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )


def finish(proc: subprocess.Popen[bytes], args: Sequence[str]) -> CliResult:
    try:
        out, err = proc.communicate(timeout=CLI_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise AssertionError(f"clerk-sync {' '.join(args)} did not finish") from None
    return CliResult(tuple(args), proc.returncode, out.decode(), err.decode())


class DevProcess:
    """``clerk-sync dev`` (or any long-running command) on a free port, in its own process
    group so that uvicorn's reloader child is stopped with it; use it as a context manager."""

    def __init__(self, args: Sequence[str], *, workdir: Path, env: Mapping[str, str]) -> None:
        self.port = free_port()
        self.args = [*args, "--host", HOST, "--port", str(self.port)]
        self.workdir = workdir
        self.env = dict(env)
        self.stderr_path = workdir / f"dev-{self.port}.stderr.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self) -> Self:
        self._stderr = self.stderr_path.open("wb")
        self.proc = subprocess.Popen(
            [*clerk_sync_command(), *self.args],
            env=self.env,
            cwd=self.workdir,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
            start_new_session=True,
        )
        return self

    def wait_healthy(self) -> None:
        assert self.proc is not None
        wait_healthy(self.proc, self.base_url, STARTUP_TIMEOUT, self.stderr_text, "dev")

    def stop(self, timeout: float = 10.0) -> int:
        """Ctrl-C (SIGINT) as a user would; then SIGKILL the group if anything is left."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        # The group is ours (start_new_session): its id is our child's pid.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None
        return self.proc.returncode

    def stderr_text(self) -> str:
        if self._stderr is not None:
            self._stderr.flush()
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.proc is not None:
            self.stop(timeout=5.0)
