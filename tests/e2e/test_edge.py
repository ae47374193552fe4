"""The connection edge of a real ``clerk-sync serve`` on loopback (``clerk_sync.web.edge``):
idle, slow and oversized clients, the connection cap under a lowered descriptor limit, and the
memory held for bodies not yet verified.

Each test starts its own server, bounds every wait, and closes what it opened. Clients here are
raw sockets: the point is to be the client no HTTP library would be.
"""

from __future__ import annotations

import contextlib
import os
import resource
import selectors
import socket
import sqlite3
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from clerk_sync.devtools import user_event, user_object
from clerk_sync.web import WEBHOOK_PATH
from tests.conftest import OTHER_SECRET, SECRET, signed
from tests.e2e import server as harness
from tests.e2e.server import HOST, ServerProcess

MIB = 1024 * 1024
_WITH_NOFILE = (
    "import os, resource, sys; n = int(sys.argv[1]); "
    "resource.setrlimit(resource.RLIMIT_NOFILE, (n, n)); os.execv(sys.argv[2], sys.argv[2:])"
)


# -- helpers ---------------------------------------------------------------------------------


@pytest.fixture
def nofile(monkeypatch: pytest.MonkeyPatch) -> Callable[[int], None]:
    """``nofile(n)``: servers started afterwards run with ``RLIMIT_NOFILE`` = n (soft and hard),
    set in the child before it execs ``clerk-sync``, as ``prlimit`` would."""

    def lower(n: int) -> None:
        base = harness.clerk_sync_command()
        if len(base) == 1:
            command = [sys.executable, "-c", _WITH_NOFILE, str(n), base[0]]
        else:  # the console script is missing: run the interpreter through the same exec
            command = [sys.executable, "-c", _WITH_NOFILE, str(n), sys.executable, *base[1:]]
        monkeypatch.setattr(harness, "clerk_sync_command", lambda: command)

    return lower


@pytest.fixture(autouse=True)
def _room_for_clients() -> None:
    """This process opens over a thousand sockets: raise its own soft limit to allow them."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 4096 if hard == resource.RLIM_INFINITY else min(hard, 4096)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    if max(soft, want) < 2400:
        pytest.fail(f"the tests need 2,400 file descriptors; the hard limit is {hard}")


@contextlib.contextmanager
def serving(tmp_path: Path, **env: str) -> Iterator[ServerProcess]:
    with ServerProcess(
        database_url=f"sqlite:///{tmp_path / 'clerk_sync.db'}",
        secret=SECRET,
        workdir=tmp_path / "srv",
        extra_env=env,
    ) as server:
        yield server


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for {pid}")


def open_descriptors(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def connect(server: ServerProcess) -> socket.socket:
    return socket.create_connection((HOST, server.port), timeout=5)


def request_head(body: bytes, headers: dict[str, str], path: str = WEBHOOK_PATH) -> bytes:
    lines = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    start = f"POST {path} HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: {len(body)}\r\n"
    return f"{start}{lines}\r\n".encode()


def read_answer(sock: socket.socket, timeout: float) -> tuple[int, dict[str, str], bytes] | None:
    """The response on ``sock`` once the server has closed it, or None if it stayed open for
    ``timeout`` seconds; (0, {}, b"") when it closed without a word."""
    sock.settimeout(timeout)
    data = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        else:
            return None
    except TimeoutError:
        return None
    except ConnectionResetError:
        pass
    return parse(data)


def parse(data: bytes) -> tuple[int, dict[str, str], bytes]:
    if not data:
        return 0, {}, b""
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines)
    return int(status_line.split()[1]), {k.lower(): v for k, v in headers.items()}, body


def valid_delivery() -> tuple[bytes, dict[str, str]]:
    return signed(user_event("user.created", user_object()))


def deliver(server: ServerProcess, timeout: float = 2.0) -> tuple[httpx.Response, float]:
    body, headers = valid_delivery()
    started = time.monotonic()
    response = httpx.post(
        f"{server.url}{WEBHOOK_PATH}", content=body, headers=headers, timeout=timeout
    )
    return response, time.monotonic() - started


def healthz(server: ServerProcess, timeout: float = 2.0) -> tuple[int, float]:
    started = time.monotonic()
    status = httpx.get(f"{server.url}/healthz", timeout=timeout).status_code
    return status, time.monotonic() - started


# -- idle and slow clients -------------------------------------------------------------------


def test_idle_sockets_past_the_descriptor_limit_do_not_keep_deliveries_out(
    tmp_path: Path, nofile: Callable[[int], None]
) -> None:
    """1,100 sockets that never send a byte, against a 1,024-descriptor server with default
    settings: the quietest are closed to make room (the server never runs out of
    descriptors), and a delivery and /healthz are answered at once."""
    nofile(1024)
    with serving(tmp_path) as server:
        pid = server.proc.pid  # type: ignore[union-attr]
        idle: list[socket.socket] = []
        try:
            for n in range(1100):
                if n % 50 == 0:
                    time.sleep(0.03)  # let the server accept: a burst overflows its queue
                sock = socket.socket()
                sock.setblocking(False)
                with contextlib.suppress(BlockingIOError):
                    sock.connect((HOST, server.port))
                idle.append(sock)
            time.sleep(0.5)
            assert open_descriptors(pid) < 1024

            response, took = deliver(server)
            assert response.status_code == 200, response.text
            assert took < 2.0
            status, took = healthz(server)
            assert (status, took < 2.0) == (200, True)

            closed = 0
            for sock in idle:
                try:
                    sock.recv(1)
                    closed += 1  # EOF: closed to make room
                except BlockingIOError:
                    pass
                except OSError:
                    closed += 1
            assert closed >= 200, closed  # 1,100 - 832 connections allowed at this limit
        finally:
            for sock in idle:
                sock.close()


@pytest.fixture(scope="module")
def quick_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """Every deadline at one second (one server for the tests of deadlines)."""
    with serving(
        tmp_path_factory.mktemp("quick"),
        HEADER_TIMEOUT_SECONDS="1",
        BODY_TIMEOUT_SECONDS="1",
        KEEP_ALIVE_TIMEOUT_SECONDS="1",
    ) as server:
        yield server


def test_idle_connections_are_closed_after_the_keep_alive_timeout(
    quick_server: ServerProcess,
) -> None:
    """Before its first request (never closed by uvicorn) and between requests."""
    with connect(quick_server) as sock:
        started = time.monotonic()
        assert read_answer(sock, 4.0) == (0, {}, b"")
        assert 0.7 < time.monotonic() - started < 2.5

    with connect(quick_server) as sock:
        sock.sendall(f"GET /healthz HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
        started = time.monotonic()
        answer = read_answer(sock, 4.0)
        assert answer is not None
        assert answer[0] == 200
        assert time.monotonic() - started < 2.5


def test_headers_sent_slowly_are_answered_408(quick_server: ServerProcess) -> None:
    """A slowloris: a byte of header every 0.1 s is never done; at the header deadline it
    gets 408 and is closed."""
    with connect(quick_server) as sock:
        sock.sendall(f"POST {WEBHOOK_PATH} HTTP/1.1\r\nHost: {HOST}\r\n".encode())
        started = time.monotonic()
        sock.settimeout(0.1)
        data = b""
        with contextlib.suppress(OSError):
            while time.monotonic() - started < 4.0:
                sock.send(b"x")
                with contextlib.suppress(TimeoutError):
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    data += chunk
        took = time.monotonic() - started
    status, headers, body = parse(data)
    assert status == 408, data
    assert orjson.loads(body)["error"] == "request_timeout"
    assert headers["connection"] == "close"
    assert took < 2.5


def test_a_body_sent_slowly_is_answered_408(quick_server: ServerProcess) -> None:
    """Valid signed headers, then the body a byte every 0.1 s: 408 at the body deadline, and
    nothing is recorded."""
    body, headers = valid_delivery()
    with connect(quick_server) as sock:
        sock.sendall(request_head(body, headers) + body[:10])
        started = time.monotonic()
        sock.settimeout(0.1)
        data = b""
        with contextlib.suppress(OSError):
            for byte in body[10:]:
                if time.monotonic() - started > 4.0:
                    break
                sock.send(bytes([byte]))
                with contextlib.suppress(TimeoutError):
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    data += chunk
        took = time.monotonic() - started
    status, _, answer = parse(data)
    assert status == 408, data
    assert orjson.loads(answer)["error"] == "request_timeout"
    assert took < 2.5
    assert headers["svix-id"] not in quick_server.stderr_text()


def test_request_headers_over_64_kib_are_answered_431(tmp_path: Path) -> None:
    with serving(tmp_path) as server:
        for size, expected in ((60 * 1024, 200), (70 * 1024, 431)):
            with connect(server) as sock:
                sock.sendall(
                    f"GET /healthz HTTP/1.1\r\nHost: {HOST}\r\nX-Pad: {'a' * size}\r\n"
                    "Connection: close\r\n\r\n".encode()
                )
                answer = read_answer(sock, 4.0)
            assert answer is not None
            status, headers, body = answer
            assert status == expected, (size, answer)
        assert orjson.loads(body)["error"] == "headers_too_large"
        assert headers["connection"] == "close"


def test_eight_32_mib_header_values_take_no_memory(tmp_path: Path) -> None:
    """Before: 458 MB and /healthz slowed to ~4 s. The parser is never fed more than 64 KiB
    of headers, so the server holds none of it."""
    with serving(tmp_path) as server:
        pid = server.proc.pid  # type: ignore[union-attr]
        before = rss_mb(pid)
        value = b"a" * (32 * MIB)
        answers: list[bytes] = []

        def send(n: int) -> None:
            with connect(server) as sock:
                with contextlib.suppress(OSError):
                    sock.sendall(
                        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big-%d: " % n + value + b"\r\n\r\n"
                    )
                with contextlib.suppress(OSError):
                    answers.append(sock.recv(100))

        senders = [threading.Thread(target=send, args=(n,)) for n in range(8)]
        for thread in senders:
            thread.start()
        for thread in senders:
            thread.join(30)
        assert rss_mb(pid) - before < 30
        status, took = healthz(server)
        assert (status, took < 1.0) == (200, True)
    assert any(a.startswith(b"HTTP/1.1 431") for a in answers), answers


# -- the connection cap ----------------------------------------------------------------------


def test_at_the_cap_with_every_connection_waiting_a_new_one_is_refused_at_once(
    tmp_path: Path,
) -> None:
    """MAX_CONNECTIONS=16, the database locked by another process so 16 deliveries wait for
    their commit: the 17th connection is answered 503 and closed at once; the 16 are
    committed when the lock goes."""
    with serving(tmp_path, MAX_CONNECTIONS="16") as server:
        db = sqlite3.connect(tmp_path / "clerk_sync.db", timeout=5, isolation_level=None)
        db.execute("BEGIN EXCLUSIVE")
        statuses: list[int] = []

        def wait_for_commit() -> None:
            response, _ = deliver(server, timeout=30)
            statuses.append(response.status_code)

        waiting = [threading.Thread(target=wait_for_commit) for _ in range(16)]
        try:
            for thread in waiting:
                thread.start()
            time.sleep(1.0)
            assert statuses == []
            with connect(server) as sock:
                started = time.monotonic()
                answer = read_answer(sock, 2.0)
                took = time.monotonic() - started
            assert answer is not None
            status, headers, body = answer
            assert status == 503, answer
            assert orjson.loads(body)["error"] == "server_busy"
            assert headers["retry-after"] == "1"
            assert took < 1.0  # at once: no waiting for the header deadline
        finally:
            db.execute("ROLLBACK")
            db.close()
            for thread in waiting:
                thread.join(30)
        assert statuses == [200] * 16


# -- memory before verification --------------------------------------------------------------


def stall_bodies(
    server: ServerProcess,
    count: int,
    size: int,
    *,
    kept: int = 1024,
    settle: float = 1.5,
    within: float = 20.0,
) -> tuple[list[socket.socket], Counter[int]]:
    """Open ``count`` connections that each send headers announcing a ``size``-byte body with
    a bad signature, then all of the body but its last ``kept`` bytes, and stall. Returns once
    all is sent and nothing has happened for ``settle`` seconds (the server has taken every
    connection in): the sockets, and the statuses of those answered."""
    body = b'{"data":"' + b"x" * (size - 11) + b'"}'
    _, headers = signed(body, secret=OTHER_SECRET)
    payload = request_head(body, headers) + body[:-kept]
    selector = selectors.DefaultSelector()
    opened: list[socket.socket] = []
    unsent: dict[socket.socket, memoryview] = {}
    received: dict[socket.socket, bytes] = {}
    for _ in range(count):
        sock = socket.socket()
        sock.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            sock.connect((HOST, server.port))
        opened.append(sock)
        unsent[sock] = memoryview(payload)
        selector.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE)
    deadline = time.monotonic() + within
    last_event = time.monotonic()
    while time.monotonic() < deadline and (unsent or time.monotonic() - last_event < settle):
        for key, events in selector.select(0.1):
            last_event = time.monotonic()
            sock = key.fileobj  # type: ignore[assignment]
            if events & selectors.EVENT_READ:
                try:
                    chunk = sock.recv(65536)
                except OSError:
                    chunk = b""
                received[sock] = received.get(sock, b"") + chunk
                if not chunk:
                    selector.unregister(sock)
                    unsent.pop(sock, None)
                    continue
            if events & selectors.EVENT_WRITE and sock in unsent:
                try:
                    sent = sock.send(unsent[sock])
                except BlockingIOError:
                    continue
                except OSError:
                    selector.unregister(sock)
                    del unsent[sock]
                    continue
                unsent[sock] = unsent[sock][sent:]
                if not unsent[sock]:
                    del unsent[sock]
                    selector.modify(sock, selectors.EVENT_READ)
    selector.close()
    statuses = Counter(parse(data)[0] for data in received.values() if data)
    for data in received.values():
        if data:
            _, headers, answer = parse(data)
            assert headers.get("retry-after") == "1", data[:300]
            assert orjson.loads(answer)["error"] == "server_busy"
    return opened, statuses


def test_stalled_unverified_bodies_are_capped_in_memory(
    tmp_path: Path, nofile: Callable[[int], None]
) -> None:
    """1,000 connections with ~1 MB of a badly signed body each, stalled: before, RSS went
    from 85 MB to over 1 GB. Now 64 MiB of body bytes are held at most, the rest get 503 with
    Retry-After, and a valid delivery still gets its 200 (taking the place of a stalled body)."""
    nofile(4096)
    with serving(tmp_path) as server:
        pid = server.proc.pid  # type: ignore[union-attr]
        before = rss_mb(pid)
        sockets, statuses = stall_bodies(server, 1000, 1_000_000)
        try:
            peak = rss_mb(pid)
            assert peak < 300, (before, peak)
            assert peak - before < 150, (before, peak)
            assert statuses[503] >= 300, statuses  # the rest hold bodies or wait to be accepted
            assert set(statuses) <= {503}, statuses
            # The bodies held were begun over a second ago: a delivery may take their place.
            response, took = deliver(server)
            assert response.status_code == 200, response.text
            assert took < 2.0
            assert healthz(server)[0] == 200
            assert rss_mb(pid) < 300
        finally:
            for sock in sockets:
                sock.close()


def test_a_body_that_does_not_fit_is_answered_503_with_retry_after(tmp_path: Path) -> None:
    """MAX_PENDING_BODY_BYTES=2 MiB held by two 1 MiB bodies begun under a second ago: a
    delivery gets 503 server_busy with Retry-After, unread; once they are over a second old it
    takes the place of one of them."""
    with serving(tmp_path, MAX_PENDING_BODY_BYTES=str(2 * MIB)) as server:
        sockets, statuses = stall_bodies(server, 2, MIB, kept=16, settle=0)  # 32 bytes left
        try:
            assert statuses == Counter()
            time.sleep(0.3)  # for the server to read what was sent (the bodies stay under 1 s)
            response, _ = deliver(server)
            assert response.status_code == 503, response.text
            assert response.json()["error"] == "server_busy"
            assert response.headers["retry-after"] == "1"
            time.sleep(1.0)
            response, took = deliver(server)
            assert response.status_code == 200, response.text
            assert took < 2.0
        finally:
            for sock in sockets:
                sock.close()


def test_default_connection_cap_leaves_descriptors_for_the_rest() -> None:
    from clerk_sync.config import Settings
    from clerk_sync.web.edge import EdgeLimits, default_max_connections

    assert default_max_connections(1024) == 832
    assert default_max_connections(4096) == 4096 - 128 - 256
    assert default_max_connections(1 << 20) == 10_000
    limits = EdgeLimits.from_settings(Settings(clerk_webhook_secret=SECRET), nofile=1024)
    assert (limits.max_connections, limits.backlog) == (832, 64)
    assert (limits.header_timeout, limits.body_timeout, limits.keep_alive_timeout) == (10, 10, 5)
    assert limits.max_pending_body_bytes == 64 * MIB
