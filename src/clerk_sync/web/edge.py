"""The connection edge: the limits that hold before the app sees a request.

A webhook URL is public, so a client that connects and sends nothing, sends its headers a byte
at a time, stalls in the middle of a body or sends megabytes of headers must cost a bounded
amount and never keep Clerk's deliveries out. uvicorn 0.54 gives part of this and not the rest:

- ``timeout_keep_alive`` closes a connection idle *between* requests (used, set to
  ``KEEP_ALIVE_TIMEOUT_SECONDS``), but not one that never sends its first request, and any byte
  disarms it, so a client trickling bytes is never closed;
- there is no deadline for headers or a body;
- the httptools parser has no limit on header size and concatenates a header value piece by
  piece (eight 32 MiB values: ~460 MB); ``h11_max_incomplete_event_size`` bounds headers only
  for the h11 protocol, which is slower and answers 400;
- ``limit_concurrency`` answers 503 once a request's headers are in, so sockets that never send
  any still exhaust the file descriptors, and then the listening socket, the database and
  ``/healthz`` fail together.

:class:`EdgeProtocol` is uvicorn's httptools protocol with the rest added; one :class:`Edge` per
server holds what its connections share:

- **a cap on open connections** (``MAX_CONNECTIONS``, sized from ``RLIMIT_NOFILE``). At the cap
  a new connection takes the place of the one that has received nothing for longest among
  those not waiting for their answer (an idle keep-alive connection, a slow header, a stalled
  body); only when every connection is waiting for its answer is the new one refused: 503
  ``server_busy`` and closed at once;
- **deadlines** per phase, checked by one sweep four times a second: keep-alive while no
  request is in progress, ``HEADER_TIMEOUT_SECONDS`` from a request's first byte to the end of
  its headers, ``BODY_TIMEOUT_SECONDS`` from there to the end of its body (408
  ``request_timeout``); a client that leaves its answer unread that long (its socket buffer
  full) is reset, and so is one that has not taken its last bytes two seconds after the edge
  closed it;
- **64 KiB of request line and headers** (431 ``headers_too_large``), counted on the raw bytes
  before they reach the parser;
- **a pool of body bytes** (``MAX_PENDING_BODY_BYTES``): every body byte received counts until
  its request is answered. A request whose announced ``Content-Length`` (``MAX_BODY_BYTES`` when
  chunked) does not fit, or a body whose next bytes do not, takes the place of bodies begun over
  a second ago (a delivery's body arrives in milliseconds: older ones are slow or stalled),
  oldest first; failing that it gets 503 ``server_busy`` with ``Retry-After`` and is closed,
  its body unread. Counting bytes received rather than announced means holding the pool costs
  an attacker the bytes, every second, not a header.
"""

from __future__ import annotations

import asyncio
import logging
import math
import resource
import time
from collections import Counter, OrderedDict
from dataclasses import dataclass
from typing import Any, ClassVar

import orjson
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from ..config import Settings
from ..errors import ConfigError, EdgeLimit
from .responses import Receive, Scope, Send, send_json

log = logging.getLogger("clerk_sync.edge")

MAX_HEADER_BYTES = 64 * 1024
"""Request line and headers of one request, in all."""
DESCRIPTORS_KEPT = 128
"""Descriptors left for everything but client connections: the database (three per SQLite
connection in the pool), the writer's pipes, logs, Redis, the event loop's own."""
DEFAULT_CONNECTIONS_CEILING = 10_000
"""The default cap never goes past this, whatever the descriptor limit: an idle connection
costs about 6 KB, so 10,000 of them stay within ~60 MB."""
BODY_GRACE_SECONDS = 1.0
"""A body begun this long ago and still arriving may be closed to make room for another."""
SWEEP_SECONDS = 0.25
CLOSE_GRACE_SECONDS = 2.0
"""A connection the edge closed whose last bytes the client has not taken by then is reset."""
RETRY_AFTER_SECONDS = 1
_SCAN = 64
"""Most connections looked at to find one to close (those waiting for an answer are skipped)."""
_REPORT_EVERY = 10.0
SETTINGS_PROTOCOL = "clerk_sync.web.edge:SettingsEdgeProtocol"


def descriptor_limit() -> int:
    """The soft ``RLIMIT_NOFILE`` of this process."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return 1 << 20 if soft == resource.RLIM_INFINITY else int(soft)


def listen_backlog(nofile: int) -> int:
    """The accept queue: the event loop accepts a whole queue at once, before a connection can
    be turned away, so the queue is descriptors that must be spare."""
    return max(64, min(2048, nofile // 16))


def default_max_connections(nofile: int) -> int:
    """What ``MAX_CONNECTIONS`` is when unset: the descriptor limit less a burst of accepts and
    the descriptors kept for the database, logs and pipes (1,024 → 832), at most 10,000."""
    spare = nofile - DESCRIPTORS_KEPT - listen_backlog(nofile)
    return max(16, min(DEFAULT_CONNECTIONS_CEILING, spare))


@dataclass(frozen=True)
class EdgeLimits:
    """The limits of one server, in seconds and bytes."""

    max_connections: int
    header_timeout: float
    body_timeout: float
    keep_alive_timeout: float
    max_pending_body_bytes: int
    max_body_bytes: int
    backlog: int
    max_header_bytes: int = MAX_HEADER_BYTES

    @classmethod
    def from_settings(cls, settings: Settings, nofile: int | None = None) -> EdgeLimits:
        """The limits ``settings`` ask for, checked against each other and the descriptor
        limit; a combination that cannot work is a :class:`ConfigError`."""
        nofile = descriptor_limit() if nofile is None else nofile
        if settings.max_pending_body_bytes < settings.max_body_bytes:
            raise ConfigError(
                f"MAX_PENDING_BODY_BYTES ({settings.max_pending_body_bytes}) is smaller than "
                f"MAX_BODY_BYTES ({settings.max_body_bytes}): a body of the largest size could "
                "never be read. Raise MAX_PENDING_BODY_BYTES or lower MAX_BODY_BYTES."
            )
        cap = settings.max_connections or default_max_connections(nofile)
        if settings.max_connections and cap > nofile - DESCRIPTORS_KEPT:
            log.warning(
                "MAX_CONNECTIONS=%d leaves fewer than %d of the %d file descriptors this process "
                "may open (ulimit -n) for the database and logs: raise the limit or lower "
                "MAX_CONNECTIONS.",
                cap,
                DESCRIPTORS_KEPT,
                nofile,
            )
        return cls(
            max_connections=cap,
            header_timeout=settings.header_timeout_seconds,
            body_timeout=settings.body_timeout_seconds,
            keep_alive_timeout=settings.keep_alive_timeout_seconds,
            max_pending_body_bytes=settings.max_pending_body_bytes,
            max_body_bytes=settings.max_body_bytes,
            backlog=min(listen_backlog(nofile), max(16, cap // 4)),
        )

    def describe(self) -> str:
        """One line for the start-up log."""
        return (
            f"connection limits: {self.max_connections} connections, headers "
            f"{self.max_header_bytes // 1024} KiB in {self.header_timeout:g} s, body in "
            f"{self.body_timeout:g} s, keep-alive {self.keep_alive_timeout:g} s, "
            f"{self.max_pending_body_bytes // 1024 // 1024} MiB of pending bodies"
        )

    def uvicorn_options(self, *, by_name: bool = False) -> dict[str, Any]:
        """What to pass to ``uvicorn.run`` / ``uvicorn.Config`` for these limits. ``by_name``:
        the protocol as an import string, for a reloading uvicorn, whose child process cannot
        be handed a class made here (it reads the same settings itself)."""
        return {
            "http": SETTINGS_PROTOCOL if by_name else protocol_for(self),
            "ws": "none",  # an upgraded connection would leave the edge's accounting
            "timeout_keep_alive": max(1, math.ceil(self.keep_alive_timeout)),
            "backlog": self.backlog,
        }


def protocol_for(limits: EdgeLimits) -> type[EdgeProtocol]:
    """An :class:`EdgeProtocol` class bound to a new :class:`Edge` (uvicorn makes one protocol
    object per connection from the class it is given)."""
    return type("EdgeProtocol", (EdgeProtocol,), {"_edge": Edge(limits)})


class Edge:
    """What every connection of one server shares: counts, the activity order, the body pool
    and the sweep that enforces deadlines."""

    def __init__(self, limits: EdgeLimits) -> None:
        self.limits = limits
        self.live = 0
        """Connections open and not being closed by the edge."""
        self.by_activity: OrderedDict[EdgeProtocol, None] = OrderedDict()
        """Every live connection, least recently active first."""
        self.holders: OrderedDict[EdgeProtocol, None] = OrderedDict()
        """Connections holding body bytes, the longest-held first."""
        self.pending_bytes = 0
        self.closing: dict[EdgeProtocol, float] = {}
        """Connections the edge closed, and when: reset if not gone in CLOSE_GRACE_SECONDS."""
        self.events: Counter[str] = Counter()
        self._sweeping: asyncio.TimerHandle | None = None
        self._reported = time.monotonic()

    # -- connections ------------------------------------------------------------------------

    def admit(self, conn: EdgeProtocol) -> bool:
        """Count a new connection in, closing the quietest one at the cap; False: refuse it."""
        if self._sweeping is None:
            self._sweeping = conn.loop.call_later(SWEEP_SECONDS, self._sweep, conn.loop)
        if self.live >= self.limits.max_connections:
            victim = self._quietest(self.by_activity)
            if victim is None:
                self.events["refused at the connection cap"] += 1
                return False
            self.events["closed to make room at the connection cap"] += 1
            victim.evict("The server is at its connection limit (MAX_CONNECTIONS).")
        self.live += 1
        self.by_activity[conn] = None
        return True

    def leave(self, conn: EdgeProtocol) -> None:
        """``conn`` is closing: it no longer counts."""
        self.release(conn)
        if conn in self.by_activity:
            del self.by_activity[conn]
            self.live -= 1

    def _quietest(self, order: OrderedDict[EdgeProtocol, None]) -> EdgeProtocol | None:
        """The first connection of ``order`` not waiting for its answer, or None. Those waiting
        are moved to the back, so the search is short on average."""
        for _ in range(min(_SCAN, len(order))):
            conn = next(iter(order))
            if not conn.waiting_for_answer():
                return conn
            order.move_to_end(conn)
        return None

    # -- body bytes -------------------------------------------------------------------------

    def room_for(self, conn: EdgeProtocol, size: int) -> bool:
        """Whether ``size`` more body bytes fit, after closing bodies begun over a second ago
        (never ``conn``'s own) if they do not."""
        limit = self.limits.max_pending_body_bytes
        while self.pending_bytes + size > limit:
            victim = self._quietest(self.holders)
            if victim is None or victim is conn or not victim.body_older_than(BODY_GRACE_SECONDS):
                self.events["answered 503: MAX_PENDING_BODY_BYTES in use"] += 1
                return False
            self.events["slow bodies closed to make room (MAX_PENDING_BODY_BYTES)"] += 1
            victim.evict("Too many request bodies are pending (MAX_PENDING_BODY_BYTES).")
        return True

    def take(self, conn: EdgeProtocol, size: int) -> bool:
        """Count ``size`` body bytes received for ``conn`` until its answer; False when they
        do not fit."""
        if not self.room_for(conn, size):
            return False
        self.pending_bytes += size
        if not conn.reserved:
            self.holders[conn] = None
        conn.reserved += size
        return True

    def release(self, conn: EdgeProtocol) -> None:
        if conn.reserved:
            self.pending_bytes -= conn.reserved
            conn.reserved = 0
            self.holders.pop(conn, None)

    # -- deadlines --------------------------------------------------------------------------

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        self._sweeping = loop.call_later(SWEEP_SECONDS, self._sweep, loop)
        now = time.monotonic()
        stuck = now - self.limits.body_timeout
        for conn in [c for c in self.by_activity if c.deadline <= now or c.stuck_since < stuck]:
            conn.expire()
        for conn, since in list(self.closing.items()):
            if now - since > CLOSE_GRACE_SECONDS:
                del self.closing[conn]
                conn.transport.abort()
        if now - self._reported >= _REPORT_EVERY:
            self._reported = now
            if self.events:
                summary = ", ".join(f"{n} {what}" for what, n in sorted(self.events.items()))
                log.warning(
                    "connection limits in the last %.0f s: %s (%d open, %d body bytes pending)",
                    _REPORT_EVERY,
                    summary,
                    self.live,
                    self.pending_bytes,
                )
                self.events.clear()


class EdgeProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, with the edge's limits (see the module docstring)."""

    _edge: ClassVar[Edge]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.edge = type(self).shared_edge()
        self.limits = self.edge.limits
        self.deadline = math.inf
        self.last_active = time.monotonic()
        self.reserved = 0
        """Body bytes received for the request in progress, counted in the edge's pool."""
        self.body_since = math.inf
        self.stuck_since = math.inf
        """Since when the client has not taken what is written to it (the buffer is full)."""
        self._in_message = False
        self._headers_done = False
        self._head_room = self.limits.max_header_bytes
        self._counted = False

    @classmethod
    def shared_edge(cls) -> Edge:
        """The :class:`Edge` of this server."""
        return cls._edge

    # -- uvicorn's protocol, extended --------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._idle(time.monotonic())
        if not self.edge.admit(self):
            self._answer_and_close(
                _busy(
                    "The server is at its connection limit (MAX_CONNECTIONS) with every "
                    "connection waiting for its answer."
                )
            )
            return
        self._counted = True

    def connection_lost(self, exc: Exception | None) -> None:
        self._leave()
        self.edge.closing.pop(self, None)
        super().connection_lost(exc)

    def pause_writing(self) -> None:
        super().pause_writing()
        self.stuck_since = time.monotonic()

    def resume_writing(self) -> None:
        super().resume_writing()
        self.stuck_since = math.inf

    def data_received(self, data: bytes) -> None:
        if self.transport.is_closing():
            return
        self.last_active = time.monotonic()
        if self._counted:
            self.edge.by_activity.move_to_end(self)
        # Until a request's headers end, feed the parser no more than the room they have
        # left: httptools would otherwise buffer an unending header value whole.
        while not self._headers_done and len(data) > self._head_room:
            piece, data = data[: self._head_room], data[self._head_room :]
            self._head_room = 0
            super().data_received(piece)
            if self.transport.is_closing():
                return
            if not self._headers_done and self._head_room == 0:
                self._answer_and_close(
                    EdgeLimit(
                        f"The request line and headers are over {self.limits.max_header_bytes} "
                        "bytes.",
                        code="headers_too_large",
                        http_status=431,
                    )
                )
                return
        if not self._headers_done:
            self._head_room -= len(data)
        super().data_received(data)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_message = True
        self.deadline = time.monotonic() + self.limits.header_timeout

    def on_headers_complete(self) -> None:
        self._headers_done = True
        self.body_since = time.monotonic()
        self.deadline = self.body_since + self.limits.body_timeout
        size = self._announced_body() if self._counted else 0
        if size and not self.edge.room_for(self, size):
            app = self.app
            self.app = _answer_busy  # uvicorn starts the app it finds here
            try:
                super().on_headers_complete()
            finally:
                self.app = app
            return
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if self.transport.is_closing():
            return
        cycle = self.cycle
        if self._counted and not cycle.response_complete and not self.edge.take(self, len(body)):
            self._answer_and_close(
                _busy("Too many request bodies are pending (MAX_PENDING_BODY_BYTES).")
            )
            return
        super().on_body(body)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_message = self._headers_done = False
        self._head_room = self.limits.max_header_bytes
        if self.waiting_for_answer():
            self.deadline = math.inf  # the app's turn: the delivery deadline is not the edge's
        else:
            self._idle(time.monotonic())

    def on_response_complete(self) -> None:
        self.edge.release(self)
        super().on_response_complete()
        if self._counted:
            self.edge.by_activity.move_to_end(self)
        if not self._in_message and not self.waiting_for_answer():
            self._idle(time.monotonic())

    def _unsupported_upgrade_warning(self) -> None:
        """Upgrades are off (``ws="none"``): no log line per attempt for anyone to flood."""

    # -- the edge's own -----------------------------------------------------------------------

    def body_older_than(self, seconds: float) -> bool:
        return time.monotonic() - self.body_since >= seconds

    def waiting_for_answer(self) -> bool:
        """A request is in whole and the app has not answered it yet."""
        cycle = self.cycle
        return cycle is not None and not cycle.response_complete and not cycle.more_body

    def expire(self) -> None:
        """The current phase's deadline has passed, or the client has not read its answer."""
        if self.stuck_since < math.inf:
            self.edge.events["reset: answer not read (BODY_TIMEOUT_SECONDS)"] += 1
            self._leave()
            self._abandon_cycle()
            self.transport.abort()
        elif not self._in_message:
            self.edge.events["idle connections closed (keep-alive)"] += 1
            self._close()
        elif not self._headers_done:
            self.edge.events["closed: headers too slow (HEADER_TIMEOUT_SECONDS)"] += 1
            self._answer_and_close(
                _timeout(f"The request headers took over {self.limits.header_timeout:g} s.")
            )
        else:
            self.edge.events["closed: body too slow (BODY_TIMEOUT_SECONDS)"] += 1
            self._answer_and_close(
                _timeout(f"The request body took over {self.limits.body_timeout:g} s.")
            )

    def evict(self, why: str) -> None:
        """Close to make room: silently if no request is in progress, else with a 503."""
        if not self._in_message and (self.cycle is None or self.cycle.response_complete):
            self._close()
        else:
            self._answer_and_close(_busy(why))

    def _idle(self, now: float) -> None:
        self.deadline = now + self.limits.keep_alive_timeout

    def _leave(self) -> None:
        self.edge.release(self)
        if self._counted:
            self._counted = False
            self.edge.leave(self)
        self.deadline = math.inf

    def _close(self) -> None:
        self._leave()
        if not self.transport.is_closing():
            self.transport.close()
            self.edge.closing[self] = time.monotonic()

    def _abandon_cycle(self) -> None:
        """Tell an app still reading the body, or writing its answer, that the client left."""
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            cycle.disconnected = True
            cycle.message_event.set()

    def _answer_and_close(self, exc: EdgeLimit) -> None:
        """Answer ``exc`` straight on the transport, unless the app has begun an answer, and
        close."""
        started = self.cycle is not None and self.cycle.response_started
        self._abandon_cycle()
        if not started and not self.transport.is_closing():
            self.transport.write(_raw_response(exc, self.server_state.default_headers))
        self._close()

    def _announced_body(self) -> int:
        """Body bytes this request says it will send: its Content-Length (at most
        MAX_BODY_BYTES, past which the webhook refuses it unread), MAX_BODY_BYTES when chunked,
        else 0."""
        for name, value in self.headers:
            if name == b"content-length":
                return min(int(value), self.limits.max_body_bytes) if value.isdigit() else 0
            if name == b"transfer-encoding":
                return self.limits.max_body_bytes
        return 0


class SettingsEdgeProtocol(EdgeProtocol):
    """For uvicorn's reloading child process (``clerk-sync dev``), which must import the
    protocol by name: its limits come from the settings, read when the first connection
    arrives."""

    _shared: ClassVar[Edge | None] = None

    @classmethod
    def shared_edge(cls) -> Edge:
        if cls._shared is None:
            cls._shared = Edge(EdgeLimits.from_settings(Settings.load()))
        return cls._shared


def _busy(detail: str) -> EdgeLimit:
    return EdgeLimit(f"{detail} Retry shortly.", retry_after=RETRY_AFTER_SECONDS)


def _timeout(detail: str) -> EdgeLimit:
    return EdgeLimit(detail, code="request_timeout", http_status=408)


def _headers(exc: EdgeLimit) -> dict[str, str]:
    headers = {"connection": "close"}
    if exc.retry_after is not None:
        headers["retry-after"] = str(exc.retry_after)
    return headers


async def _answer_busy(_scope: Scope, _receive: Receive, send: Send) -> None:
    """The app of a request whose body does not fit the pool: 503, body unread, then close."""
    exc = _busy("Too many request bodies are pending (MAX_PENDING_BODY_BYTES).")
    await send_json(send, exc.http_status, exc.to_dict(), _headers(exc))


def _raw_response(exc: EdgeLimit, default_headers: list[tuple[bytes, bytes]]) -> bytes:
    body = orjson.dumps(exc.to_dict())
    head = [STATUS_LINE[exc.http_status]]
    for name, value in default_headers:
        head += [name, b": ", value, b"\r\n"]
    head.append(b"content-type: application/json\r\n")
    head.append(b"content-length: %d\r\n" % len(body))
    for key, text in _headers(exc).items():
        head.append(f"{key}: {text}\r\n".encode())
    head += [b"\r\n", body]
    return b"".join(head)


__all__ = [
    "MAX_HEADER_BYTES",
    "Edge",
    "EdgeLimits",
    "EdgeProtocol",
    "SettingsEdgeProtocol",
    "default_max_connections",
    "descriptor_limit",
    "protocol_for",
]
