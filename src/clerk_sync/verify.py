"""Proof that a request comes from Clerk: Svix / Standard Webhooks signatures over the raw body.

Decisions this module owns:

* The HMAC is computed by the signer of ``standardwebhooks``, the Svix team's library that the
  ``svix`` package's own ``Webhook`` delegates to (``svix.webhooks`` is a thin shim over it).
  Importing ``svix`` would load its whole API client too — about 30 MB of RSS and a second of
  start-up, in a server that only needs the signer; tests and ``clerk-sync trigger`` sign with
  ``svix`` itself, so the two stay checked against each other. We wrap the signer rather than
  call ``Webhook.verify`` because that hard-codes a 5-minute tolerance, checks one secret,
  returns ``None`` in svix 2.x and leaks ``ValueError``/``binascii.Error``/``UnicodeDecodeError``
  on malformed input. Here every failure becomes a typed
  :class:`~clerk_sync.errors.RejectedDelivery` whose detail says what to check.
* Cheap checks come first: :meth:`Verifier.check_headers` needs no body, so a request with bad
  headers or a stale timestamp is refused before its body is read.
* Both header families are accepted (``svix-*`` and the unbranded ``webhook-*``); several
  secrets may be configured (rotation); any ``v1`` entry matching any secret passes, compared in
  constant time. Other versions (``v1a``, ``v2``) are skipped.
* The timestamp must be whole seconds, digits only: the signed content uses the header text
  verbatim, and a lenient parse would let two spellings of one instant both verify.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from standardwebhooks.webhooks import Webhook

from .errors import (
    MalformedHeader,
    MissingHeader,
    SignatureMismatch,
    TimestampOutOfTolerance,
    UnreadableBody,
)

MAX_ID_LENGTH = 255
MAX_TIMESTAMP = 253_402_300_799  # 9999-12-31T23:59:59Z, the last second datetime can hold
_HEADER_FAMILIES = (
    ("svix-id", "svix-timestamp", "svix-signature"),
    ("webhook-id", "webhook-timestamp", "webhook-signature"),
)


@dataclass(frozen=True, slots=True)
class SignedHeaders:
    """The three signing headers of one delivery, parsed."""

    msg_id: str
    timestamp: int
    timestamp_text: str
    signatures: tuple[bytes, ...]
    """Decoded ``v1`` signatures; empty when the header had only other versions."""
    prefix: str = "svix"
    """Which header family carried them (``svix`` or ``webhook``), for messages."""


class Verifier:
    """Checks deliveries against one or more signing secrets, with an owned tolerance."""

    def __init__(self, secrets: list[str], *, tolerance_seconds: int = 300) -> None:
        if not secrets:
            raise ValueError("at least one signing secret is required")
        self._signers = [Webhook(s) for s in secrets]
        self.tolerance_seconds = tolerance_seconds

    def check_headers(self, headers: Mapping[str, str], now: float | None = None) -> SignedHeaders:
        """Parse the signing headers and check the timestamp window; the body is not needed."""
        parsed = parse_headers(headers)
        now = time.time() if now is None else now
        skew = int(now) - parsed.timestamp
        if abs(skew) > self.tolerance_seconds:
            direction = "in the past" if skew > 0 else "in the future"
            raise TimestampOutOfTolerance(
                f"{parsed.prefix}-timestamp is {abs(skew)} s {direction}, outside the tolerance of "
                f"±{self.tolerance_seconds} s: check this server's clock (NTP), or the "
                "delivery is an old one being replayed."
            )
        return parsed

    def verify(self, headers: SignedHeaders, body: bytes) -> None:
        """Raise unless one of the header's ``v1`` signatures matches one configured secret."""
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise UnreadableBody(
                f"The body is not UTF-8 (bad byte at offset {exc.start}): Clerk sends UTF-8 "
                "JSON, so something between Clerk and clerk-sync changed it."
            ) from None
        if not headers.signatures:
            raise SignatureMismatch(
                f"{headers.prefix}-signature has no v1 signature: clerk-sync checks v1 "
                "(HMAC-SHA256) signatures as Clerk sends them."
            )
        when = datetime.fromtimestamp(headers.timestamp, tz=UTC)
        for signer in self._signers:
            expected = base64.b64decode(signer.sign(headers.msg_id, when, text)[3:])
            for candidate in headers.signatures:
                if hmac.compare_digest(expected, candidate):
                    return
        raise SignatureMismatch(
            f"No signature in {headers.prefix}-signature matches the configured "
            "CLERK_WEBHOOK_SECRET: "
            "check that the secret is this endpoint's (and the same Clerk instance, development "
            "or production), and that the raw body reaches clerk-sync unmodified."
        )

    def matching_secret(self, headers: SignedHeaders, body: bytes) -> int | None:
        """The position of the configured secret whose signature is in ``headers`` for
        ``body``, or None; never raises.

        :meth:`verify` raises the first failure, which is what the endpoint needs. A tool that
        diagnoses a captured delivery (``clerk-sync verify``) needs a plain answer instead: it
        tries variants of a body (without a trailing newline, re-serialized) to say *how* it was
        modified, and which secret matched during a rotation.
        """
        try:
            text = body.decode("utf-8")
            when = datetime.fromtimestamp(headers.timestamp, tz=UTC)
        except (UnicodeDecodeError, ValueError, OverflowError, OSError):
            return None
        for position, signer in enumerate(self._signers):
            expected = base64.b64decode(signer.sign(headers.msg_id, when, text)[3:])
            if any(hmac.compare_digest(expected, c) for c in headers.signatures):
                return position
        return None

    def matches(self, headers: SignedHeaders, body: bytes) -> bool:
        """Whether one ``v1`` signature in ``headers`` matches ``body`` under a configured
        secret (the timestamp window is not checked here: see :meth:`check_headers`)."""
        return self.matching_secret(headers, body) is not None


def parse_headers(headers: Mapping[str, str]) -> SignedHeaders:
    """Find one complete header family and parse it, naming exactly what is missing or wrong."""
    lowered = {k.lower(): v for k, v in headers.items()}
    names = next((f for f in _HEADER_FAMILIES if f[0] in lowered), _HEADER_FAMILIES[0])
    id_name, ts_name, sig_name = names
    missing = [n for n in names if not lowered.get(n, "").strip()]
    if missing:
        raise MissingHeader(
            f"Missing header {', '.join(missing)}: Clerk (through Svix) sends svix-id, "
            "svix-timestamp and svix-signature; check that a proxy is not stripping them."
        )
    msg_id = lowered[id_name].strip()
    # isprintable() is False for every whitespace character except the ASCII space.
    if len(msg_id) > MAX_ID_LENGTH or not msg_id.isprintable() or " " in msg_id:
        raise MalformedHeader(
            f"{id_name} is not a message id (printable, no spaces, at most {MAX_ID_LENGTH} "
            "characters)."
        )
    ts_text = lowered[ts_name].strip()
    if (
        not (ts_text.isascii() and ts_text.isdigit() and len(ts_text) <= 12)
        or ts_text[0] == "0"
        or int(ts_text) > MAX_TIMESTAMP
    ):
        raise MalformedHeader(
            f"{ts_name} must be whole seconds since the Unix epoch (digits only)."
        )
    return SignedHeaders(
        msg_id=msg_id,
        timestamp=int(ts_text),
        timestamp_text=ts_text,
        signatures=_parse_signatures(sig_name, lowered[sig_name]),
        prefix=id_name.split("-")[0],
    )


def _parse_signatures(name: str, value: str) -> tuple[bytes, ...]:
    entries = [e.partition(",") for e in value.split()]
    if not any(sep and sig for _, sep, sig in entries):
        raise MalformedHeader(
            f"{name} has no entry of the form 'v1,<base64 signature>'; check that it is "
            "passed through exactly as received."
        )
    found: list[bytes] = []
    for version, _, sig in entries:
        if version != "v1" or not sig:
            continue
        try:
            found.append(base64.b64decode(sig, validate=True))
        except (binascii.Error, ValueError):
            continue
    return tuple(found)
