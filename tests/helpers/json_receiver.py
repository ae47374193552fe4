"""A real HTTP server on 127.0.0.1 where apprise's ``json://`` notifications land in tests.

``with JsonReceiver() as hook:`` listens on an ephemeral port in a thread of its own and records
every POSTed JSON body with its headers; ``hook.url()`` is the apprise URL that points at it.
``hook.status = 500`` makes it answer 500 instead, and ``hook.refused_url()`` is a URL whose
port is bound but not listening, so connecting to it is refused at once (and, held by us, no
other process can take the port meanwhile).

Bounded in every way a test can hang: requests are served one at a time with a socket timeout,
bodies and the number recorded are capped, and the server stops itself after ``lifetime``
seconds if the ``with`` block has not stopped it first.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from types import TracebackType
from typing import Any, Self

HOST = "127.0.0.1"


@dataclass(frozen=True)
class Received:
    """One POST as the receiver got it."""

    path: str
    headers: dict[str, str]
    body: Any
    """The parsed JSON (None when the body was not JSON)."""


class _Server(HTTPServer):
    receiver: JsonReceiver


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    timeout = 5.0  # per connection: a stuck client cannot hold the only serving thread

    def do_POST(self) -> None:
        receiver = self.server.receiver
        length = int(self.headers.get("Content-Length") or 0)
        if length > receiver.max_body:
            self._answer(413)
            return
        raw = self.rfile.read(length)
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        receiver._record(Received(self.path, dict(self.headers.items()), body))
        self._answer(receiver.status)

    def do_GET(self) -> None:
        self._answer(405)

    def _answer(self, status: int) -> None:
        payload = b'{"ok": true}' if status < 400 else b'{"error": "test receiver"}'
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the test asserts on what was received instead."""


class JsonReceiver:
    """The loopback receiver; use it as a context manager."""

    def __init__(
        self, *, lifetime: float = 60.0, max_requests: int = 100, max_body: int = 1 << 20
    ) -> None:
        self.lifetime = lifetime
        self.max_requests = max_requests
        self.max_body = max_body
        self.status = 200
        """What it answers; set to 500 to make every send fail."""
        self._received: list[Received] = []
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._timer: threading.Timer | None = None
        self._held: list[socket.socket] = []

    @property
    def port(self) -> int:
        assert self._server is not None, "use JsonReceiver as a context manager"
        return int(self._server.server_address[1])

    def url(self, path: str = "/hook", query: str = "") -> str:
        """The ``json://`` URL apprise sends to (``query`` without the ``?``)."""
        return f"json://{HOST}:{self.port}{path}" + (f"?{query}" if query else "")

    def refused_url(self, path: str = "/hook") -> str:
        """A ``json://`` URL whose port refuses connections while this receiver is open."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind((HOST, 0))  # bound, never listening: a connection gets RST at once
        self._held.append(sock)
        return f"json://{HOST}:{sock.getsockname()[1]}{path}"

    @property
    def received(self) -> list[Received]:
        with self._lock:
            return list(self._received)

    def wait_for(self, count: int, timeout: float = 5.0) -> list[Received]:
        """The first ``count`` requests, waiting at most ``timeout`` seconds for them."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while len(self._received) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"expected {count} request(s) within {timeout} s, got {len(self._received)}"
                    )
                self._arrived.wait(left)
            return list(self._received[:count])

    def _record(self, received: Received) -> None:
        with self._arrived:
            if len(self._received) < self.max_requests:
                self._received.append(received)
            self._arrived.notify_all()

    def __enter__(self) -> Self:
        server = _Server((HOST, 0), _Handler)
        server.receiver = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        self._timer = threading.Timer(self.lifetime, server.shutdown)
        self._timer.daemon = True
        self._timer.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        for sock in self._held:
            sock.close()
        self._held.clear()
