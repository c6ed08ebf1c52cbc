"""The client IP behind trusted proxies: one function for rate limits, audit, logs and /metrics.

`TRUSTED_PROXIES` is a set of networks. When the direct peer (`REMOTE_ADDR`) is inside one of
them, `X-Forwarded-For` is walked from the right, skipping the addresses inside trusted
networks; the first address that is not trusted is the client. Everything to the left of it
was written by someone we do not trust, so a client cannot choose its own address by sending
the header. A direct peer outside the trusted networks is the client whatever the header says.

An entry may carry a port (`192.0.2.1:443`, `[2001:db8::1]:443`) or brackets; IPv4-mapped IPv6
addresses count as IPv4. An entry that is empty or not an address ends the walk: the client is
then the last address known, the trusted proxy that handed the request over, which a client
cannot forge. Addresses come back in canonical form (`2001:db8::1`, never `2001:DB8:0::1`).

python-ipware is not used: it reads its `proxy_list` as an ordered list of hops, not a set of
networks, and resolves a proxy as the client behind two trusted hops.
"""

import ipaddress
from functools import lru_cache

from django.conf import settings
from django.http import HttpRequest

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_UNSET = object()


@lru_cache(maxsize=8)
def trusted_networks(proxies: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(proxy.strip(), strict=False) for proxy in proxies)


@lru_cache(maxsize=4096)
def parse_address(entry: str) -> Address | None:
    """One address as a peer or an X-Forwarded-For entry gives it; None if it is not one."""
    text = entry.strip().strip('"')
    if text.startswith("["):  # [2001:db8::1] or [2001:db8::1]:443
        text, bracket, _port = text[1:].partition("]")
        if not bracket:
            return None
    elif text.count(":") == 1:  # 192.0.2.1:443
        text, _, port = text.partition(":")
        if not port.isdigit():
            return None
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address.scope_id:  # fe80::1%eth0: the zone names our interface, not the client
            return ipaddress.IPv6Address(int(address))
    return address


def resolve_client(
    remote: str | None, forwarded: str | None, networks: tuple[Network, ...]
) -> str | None:
    """The client's address from the peer, the X-Forwarded-For header and the trusted networks."""
    peer = parse_address(remote) if remote else None
    if peer is None:
        return None
    if not forwarded or not _trusted(peer, networks):
        return str(peer)
    known = peer
    for entry in reversed(forwarded.split(",")):
        address = parse_address(entry)
        if address is None:
            break  # empty or garbage: the proxy that handed this over is the last address known
        if not _trusted(address, networks):
            return str(address)
        known = address
    return str(known)


def _trusted(address: Address, networks: tuple[Network, ...]) -> bool:
    return any(address in network for network in networks)


def client_ip(request: HttpRequest) -> str | None:
    """The caller's address, found through TRUSTED_PROXIES (None without a usable peer).

    RequestContextMiddleware stores it as `request.client_ip` for every later reader; a
    request that never went through it is resolved here the same way.
    """
    known = request.__dict__.get("client_ip", _UNSET)
    if known is not _UNSET:
        return known
    networks = trusted_networks(tuple(settings.TRUSTED_PROXIES))
    meta = request.META
    return resolve_client(meta.get("REMOTE_ADDR"), meta.get("HTTP_X_FORWARDED_FOR"), networks)
