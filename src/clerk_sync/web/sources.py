"""Who sent a request: source allowlists, Svix's published addresses, trusted proxies.

The TCP peer is the client unless it is one of ``TRUSTED_PROXIES``; then ``X-Forwarded-For`` is
walked from the right (the hop the nearest proxy appended) past every trusted proxy, and the first
other address is the client. Entries left of that are written by the client itself and never
believed. uvicorn's own proxy-header handling is switched off by ``serve`` so this is the one rule.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, MutableMapping, Sequence
from typing import Any

from ..errors import ConfigError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

SVIX_SOURCE_IPS: dict[str, tuple[str, ...]] = {
    "us": (
        "44.228.126.217",
        "50.112.21.217",
        "52.24.126.164",
        "54.148.139.208",
        "2600:1f24:64:8000::/56",
    ),
    "us-east": ("54.164.207.221", "54.90.7.123", "2600:1f28:37:4000::/56"),
    "eu": ("52.215.16.239", "54.216.8.72", "63.33.109.123", "2a05:d028:17:8000::/56"),
    "au": ("13.239.204.236", "54.66.246.217", "54.252.65.96", "2406:da2c:13:4000::/56"),
    "ca": ("52.60.44.49", "3.98.68.230", "3.96.105.27", "2600:1f21:1c:4000::/56"),
    "in": ("13.126.41.108", "15.207.218.84", "65.2.133.31"),
}
"""Svix's published webhook source addresses per region (docs.svix.com/webhook-ips.json, as of
2026-11). Which region Clerk's tenant sends from is not documented, hence the ``svix`` preset of
all of them; Svix says the addresses of existing customers do not change."""

PRESETS: dict[str, tuple[str, ...]] = {
    "svix": tuple(a for region in SVIX_SOURCE_IPS.values() for a in region),
    **{f"svix-{region}": addresses for region, addresses in SVIX_SOURCE_IPS.items()},
}


def parse_networks(raw: str, setting: str, *, presets: bool = False) -> tuple[Network, ...]:
    """Split a setting of IPs/CIDRs (and, where allowed, preset names); ConfigError names the bad
    entry, so a typo fails at startup instead of silently refusing (or admitting) everyone."""
    networks: list[Network] = []
    for entry in (e for e in re.split(r"[\s,]+", raw.strip()) if e):
        if presets and entry.lower() in PRESETS:
            networks += (ipaddress.ip_network(a) for a in PRESETS[entry.lower()])
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            known = f"; presets: {', '.join(PRESETS)}" if presets else ""
            raise ConfigError(
                f"{setting} entry {entry!r} is not an IP address or CIDR{known}."
            ) from None
    return tuple(networks)


def parse_address(value: str) -> IPAddress | None:
    """An address as a peer or a proxy writes it (``1.2.3.4``, ``1.2.3.4:80``, ``[::1]:80``)."""
    value = value.strip()
    if value.startswith("["):
        value = value[1 : value.find("]")] if "]" in value else value
    elif value.count(":") == 1:
        value = value.partition(":")[0]
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


def contains(networks: Iterable[Network], address: IPAddress) -> bool:
    return any(address in network for network in networks)


class ClientResolver:
    """Finds the client's address of an ASGI request under the trusted-proxy rule."""

    def __init__(self, trusted_proxies: Sequence[Network]) -> None:
        self.trusted = tuple(trusted_proxies)

    def https(self, scope: MutableMapping[str, Any]) -> bool:
        """Whether the client came over HTTPS: to this server, or to a trusted proxy that says
        so in ``X-Forwarded-Proto`` (the first hop's word)."""
        if scope.get("scheme") in ("https", "wss"):
            return True
        client = scope.get("client")
        peer = parse_address(str(client[0])) if client else None
        if peer is None or not self.trusted or not contains(self.trusted, peer):
            return False
        for name, value in scope["headers"]:
            if name == b"x-forwarded-proto":
                first: str = value.decode("latin-1").split(",")[0]
                return first.strip().lower() == "https"
        return False

    def __call__(self, scope: MutableMapping[str, Any]) -> IPAddress | None:
        """The client's address, or None when it cannot be known (no peer, unparseable hop)."""
        client = scope.get("client")
        if not client:
            return None
        peer = parse_address(str(client[0]))
        if peer is None or not self.trusted or not contains(self.trusted, peer):
            return peer
        hops: list[str] = []
        for name, value in scope["headers"]:
            if name == b"x-forwarded-for":
                hops += value.decode("latin-1").split(",")
        address = peer
        for hop in reversed([h for h in hops if h.strip()]):
            parsed = parse_address(hop)
            if parsed is None:
                return None
            address = parsed
            if not contains(self.trusted, address):
                break
        return address
