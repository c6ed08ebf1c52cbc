"""Client IP resolution behind trusted proxies (django-ipware's engine)."""

import ipaddress
from functools import lru_cache

from django.conf import settings
from django.http import HttpRequest
from python_ipware import IpWare

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=8)
def _trusted(proxies: tuple[str, ...]) -> tuple[tuple[Network, ...], IpWare]:
    networks = tuple(ipaddress.ip_network(p, strict=False) for p in proxies)
    ipware = IpWare(precedence=("HTTP_X_FORWARDED_FOR",), proxy_list=list(proxies))
    return networks, ipware


def client_ip(request: HttpRequest) -> str | None:
    """The caller's address: REMOTE_ADDR, unless a trusted proxy forwarded the request.

    X-Forwarded-For is read only when the direct peer is a listed proxy, so a client
    that talks to us directly cannot choose its own address.
    """
    remote = request.META.get("REMOTE_ADDR") or None
    proxies = tuple(settings.TRUSTED_PROXIES)
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR")
    if not proxies or not remote or not forwarded:
        return remote
    networks, ipware = _trusted(proxies)
    try:
        peer = ipaddress.ip_address(remote)
    except ValueError:
        return remote
    if not any(peer in network for network in networks):
        return remote
    ip, trusted = ipware.get_client_ip({"HTTP_X_FORWARDED_FOR": f"{forwarded}, {remote}"})
    return str(ip) if ip is not None and trusted else remote
