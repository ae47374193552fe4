"""Target (b), the limit: a bare ASGI endpoint that only verifies the Svix signature (with the
svix library, as the reference does) and answers 200. Same server, event loop and HTTP parser
as `clerk-sync serve` (uvicorn with its defaults: uvloop and httptools when installed)."""

from __future__ import annotations

import argparse
import os
from typing import Any

import uvicorn
from svix.webhooks import Webhook, WebhookVerificationError

WEBHOOK = Webhook(os.environ["CLERK_WEBHOOK_SECRET"])


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
        return
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
    try:
        WEBHOOK.verify(body, headers)
        status, reply = 200, b'{"ok":true}'
    except WebhookVerificationError:
        status, reply = 401, b'{"ok":false}'
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": reply})


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)
