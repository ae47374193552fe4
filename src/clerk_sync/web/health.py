"""``GET /healthz``: 200 only when a delivery would be committed now, for a load balancer to poll.

It reports the write path, not a connection: the writer is making progress
(:meth:`Committer.health <clerk_sync.committer.Committer.health>`), and the database could take
a write (:class:`~clerk_sync.store.health.WriteProbe`). Both are asked at once, each bounded in
time, and a probe still running is shared by the requests that come meanwhile, so a flood of
polls against a hung database does not pile up threads. Unauthenticated, never rate limited:
the 503 body names the cause in one sentence without paths or hosts.
"""

from __future__ import annotations

import asyncio

from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from ..committer import STALL_SECONDS, Committer
from ..errors import StoreUnavailable
from ..store.health import WriteProbe
from .responses import JSONResponse


class Health:
    """The health check of one app: its committer and its engine."""

    def __init__(self, committer: Committer, engine: Engine, timeout: float) -> None:
        self.committer = committer
        self.wait = min(STALL_SECONDS, timeout)
        self.probe = WriteProbe(engine, lock_wait=self.wait / 2)
        self._probing: asyncio.Future[str | None] | None = None

    async def healthz(self, _request: Request) -> Response:
        writer, database = await asyncio.gather(self.committer.health(), self._probe())
        cause = writer or database
        if cause is None:
            return JSONResponse({"status": "ok"})
        body = StoreUnavailable(cause).to_dict()
        body["check"] = "writer" if writer else "database"
        return JSONResponse(body, status_code=503)

    async def _probe(self) -> str | None:
        if self._probing is None or self._probing.done():
            self._probing = asyncio.ensure_future(run_in_threadpool(self._ask))
        try:
            return await asyncio.wait_for(asyncio.shield(self._probing), self.wait)
        except TimeoutError:
            return f"The database did not answer the health check within {self.wait:g} s."

    def _ask(self) -> str | None:
        try:
            return self.probe.problem()
        except Exception as exc:  # a probe that fails is an answer too, never a 500
            return f"The health check itself failed ({type(exc).__name__})."


__all__ = ["Health"]
