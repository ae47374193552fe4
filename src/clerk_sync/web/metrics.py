"""``GET /metrics``: the Prometheus text exposition of :class:`clerk_sync.observe.metrics.Metrics`.

Behind ``Authorization: Bearer $METRICS_TOKEN``, or ``$ADMIN_TOKEN`` when no metrics token is
set (so a scraper need not hold the read API's token); with neither it answers 404, like the
read API, and a wrong or missing token gets the same 401 whatever was sent. The guard spends
the read API's budget (``RATE_LIMIT_API``) on it. The database's figures are counted off the
event loop, at most every few seconds (:meth:`Metrics.refresh`).
"""

from __future__ import annotations

import hmac

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from ..errors import NotFound, Unauthorized
from ..observe.metrics import Metrics


class MetricsEndpoint:
    """The route's handler, holding the figures and the token that opens them."""

    def __init__(self, metrics: Metrics, metrics_token: str, admin_token: str) -> None:
        self.metrics = metrics
        self._token = (metrics_token or admin_token).encode()

    async def metrics_text(self, request: Request) -> Response:
        """``GET /metrics``: authorize, count the database's figures if due, render."""
        self._authorize(request)
        await run_in_threadpool(self.metrics.refresh)
        return Response(self.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    def _authorize(self, request: Request) -> None:
        if not self._token:
            raise NotFound("Not found: /metrics is off until METRICS_TOKEN or ADMIN_TOKEN is set.")
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            token.strip().encode(), self._token
        ):
            raise Unauthorized(
                "Send 'Authorization: Bearer <METRICS_TOKEN>' (ADMIN_TOKEN when METRICS_TOKEN "
                "is not set)."
            )
