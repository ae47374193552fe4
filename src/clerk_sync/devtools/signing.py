"""Sign a body exactly as Svix does, with the ``svix`` library's own signer."""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime

from .fixtures import new_id


def new_msg_id() -> str:
    return new_id("msg")


def sign_headers(
    secret: str | list[str],
    body: bytes,
    *,
    msg_id: str | None = None,
    timestamp: int | None = None,
) -> dict[str, str]:
    """The ``svix-*`` headers for ``body``; several secrets give several ``v1`` entries."""
    from svix.webhooks import Webhook  # lazily: see Verifier.__init__

    msg_id = msg_id or new_msg_id()
    timestamp = int(time.time()) if timestamp is None else timestamp
    when = datetime.fromtimestamp(timestamp, tz=UTC)
    keys = [secret] if isinstance(secret, str) else secret
    signature = " ".join(Webhook(k).sign(msg_id, when, body.decode("utf-8")) for k in keys)
    return {"svix-id": msg_id, "svix-timestamp": str(timestamp), "svix-signature": signature}


def random_secret() -> str:
    """A fresh development secret in Svix's format (24 random bytes, base64)."""
    import base64

    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
