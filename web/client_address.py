"""The client's address: the TCP peer, or what our own proxies say in X-Forwarded-For.

X-Forwarded-For is written by whoever sends the request, so it is believed only when the
peer is one of TRUSTED_PROXIES (none by default, loopback included), and then only as far
as our proxies wrote it: walking the list from the right, the first address that is not a
trusted proxy is the client. A client that sends its own X-Forwarded-For only adds
entries to the left of that one. The middleware puts the result in the ASGI scope, so
`request.client.host` is the client's address for every face (rate limits, history, the
feedback's IP); uvicorn's own proxy header handling is off (`relance serve`).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from functools import lru_cache

from litestar import Request
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Receive, Scope, Send

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(entries: Iterable[str]) -> tuple[Network, ...]:
    """TRUSTED_PROXIES entries (IP addresses or CIDR blocks) as networks; ValueError names
    the first bad one."""
    networks = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            raise ValueError(entry) from None
    return tuple(networks)


@lru_cache(maxsize=8)
def _networks(entries: tuple[str, ...]) -> tuple[Network, ...]:
    return parse_networks(entries)


def _address(text: str) -> Address | None:
    """An address as proxies write it: `1.2.3.4`, `1.2.3.4:5678`, `::1` or `[::1]:5678`."""
    text = text.strip().strip('"')
    if text.startswith("["):
        text = text[1 : text.find("]")] if "]" in text else ""
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def _trusted(address: Address, networks: Sequence[Network]) -> bool:
    return any(address in network for network in networks)


def client_address(peer: str, forwarded_for: Sequence[str], trusted: tuple[str, ...]) -> str:
    """The client's address from the TCP `peer`, the X-Forwarded-For header values (in the
    order received) and the TRUSTED_PROXIES entries."""
    networks = _networks(trusted)
    current = _address(peer)
    if current is None or not networks or not _trusted(current, networks):
        return peer
    hops = [hop for value in forwarded_for for hop in value.split(",") if hop.strip()]
    for hop in reversed(hops):
        address = _address(hop)
        if address is None:  # not written by a proxy of ours: the last sure hop stands
            break
        current = address
        if not _trusted(address, networks):
            break
    return str(current)


class ClientAddressMiddleware(ASGIMiddleware):
    """Puts the client's address (see `client_address`) in the scope, for every request."""

    def __init__(self, trusted_proxies: tuple[str, ...]) -> None:
        self.trusted = tuple(trusted_proxies)
        _networks(self.trusted)  # a bad entry fails at start, not on the first request

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        client = scope.get("client")
        if self.trusted and client:
            values = [
                value.decode("latin-1")
                for name, value in scope.get("headers", [])
                if name.lower() == b"x-forwarded-for"
            ]
            if values:
                scope["client"] = (client_address(client[0], values, self.trusted), client[1])
        await next_app(scope, receive, send)


def client_ip(request: Request) -> str:
    """The client's address of a request ('' when the server gave none)."""
    return request.client.host if request.client else ""
