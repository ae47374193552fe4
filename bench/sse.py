"""Dashboard listeners for the benchmark: `count` browsers' worth of live-feed subscribers,
each signed in and holding `GET /admin/live/stream` open while the load runs.

They run in one thread of the benchmark's process, on one event loop (httpx's async client):
what they cost the machine is what twenty open dashboards cost a server's host, not twenty
Python threads' worth of scheduling.
"""

from __future__ import annotations

import asyncio
import re
import threading

import httpx

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


class SseListeners(threading.Thread):
    """Signs in once, then holds `count` live streams open until :meth:`stop`; counts the
    `delivery` events each received (so a run proves the feed was really streaming)."""

    def __init__(self, port: int, count: int, token: str) -> None:
        super().__init__(daemon=True)
        self.base = f"http://127.0.0.1:{port}"
        self.count = count
        self.token = token
        self.ready = threading.Event()
        self.updates = [0] * count
        self.started = [False] * count
        self.error: str | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._halt: asyncio.Event | None = None

    def run(self) -> None:
        try:
            asyncio.run(self._main())
        except Exception as exc:  # reported by the benchmark, which then fails the run
            self.error = f"{type(exc).__name__}: {exc}"
            self.ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._halt = asyncio.Event()
        limits = httpx.Limits(max_connections=self.count + 2)
        async with httpx.AsyncClient(base_url=self.base, timeout=30.0, limits=limits) as client:
            form = await client.get("/admin/sign-in")
            found = CSRF.search(form.text)
            if found is None:
                raise RuntimeError(f"no sign-in form at /admin/sign-in ({form.status_code})")
            signed = await client.post(
                "/admin/sign-in",
                data={"token": self.token, "csrf_token": found.group(1)},
                follow_redirects=False,
            )
            if signed.status_code != 303:
                raise RuntimeError(f"sign-in answered {signed.status_code}")
            opened = asyncio.Semaphore(0)
            streams = [
                asyncio.create_task(self._listen(client, n, opened)) for n in range(self.count)
            ]
            for _ in range(self.count):
                await opened.acquire()
            self.ready.set()
            await self._halt.wait()
            for stream in streams:
                stream.cancel()
            await asyncio.gather(*streams, return_exceptions=True)

    async def _listen(self, client: httpx.AsyncClient, n: int, opened: asyncio.Semaphore) -> None:
        async with client.stream("GET", "/admin/live/stream") as stream:
            if stream.status_code != 200:
                raise RuntimeError(f"stream {n} answered {stream.status_code}")
            carried = b""
            async for chunk in stream.aiter_raw():  # bytes, as a browser gets them: no parsing
                seen = carried + chunk
                if b"event: ready" in seen and not self.started[n]:
                    self.started[n] = True
                    opened.release()
                self.updates[n] += seen.count(b"event: delivery") - carried.count(
                    b"event: delivery"
                )
                carried = seen[-32:]

    def stop(self) -> None:
        if self._loop is not None and self._halt is not None:
            self._loop.call_soon_threadsafe(self._halt.set)
        self.join(10)
