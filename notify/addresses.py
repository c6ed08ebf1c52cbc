"""Which IP addresses a webhook may reach: globally reachable unicast only.

The tables follow the IANA IPv4 and IPv6 Special-Purpose Address Registries: every block
whose "Globally Reachable" is not True is refused, as are multicast, limited broadcast, and
IPv6 outside the global unicast space 2000::/3. IPv6 forms that carry an IPv4 address
(IPv4-mapped, IPv4-compatible, NAT64, 6to4, Teredo) are unwrapped first and the IPv4
address inside is judged by the IPv4 rules, so `64:ff9b::a9fe:a9fe` is refused like
169.254.169.254.
"""

import ipaddress
from collections.abc import Iterable
from functools import cache

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# IANA IPv4 Special-Purpose Address Registry: blocks that are not globally reachable.
IPV4_REFUSED = (
    "0.0.0.0/8",  # "this network"
    "10.0.0.0/8",  # private use
    "100.64.0.0/10",  # shared address space (carrier-grade NAT)
    "127.0.0.0/8",  # loopback
    "169.254.0.0/16",  # link local (cloud metadata services live here)
    "172.16.0.0/12",  # private use
    "192.0.0.0/24",  # IETF protocol assignments (DS-Lite, dummy, NAT64 discovery)
    "192.0.2.0/24",  # documentation (TEST-NET-1)
    "192.88.99.0/24",  # deprecated 6to4 relay anycast
    "192.168.0.0/16",  # private use
    "198.18.0.0/15",  # benchmarking
    "198.51.100.0/24",  # documentation (TEST-NET-2)
    "203.0.113.0/24",  # documentation (TEST-NET-3)
    "224.0.0.0/4",  # multicast
    "240.0.0.0/4",  # reserved, and 255.255.255.255 limited broadcast
)
# Inside a refused block, but globally reachable per the registry.
IPV4_GLOBAL_EXCEPTIONS = ("192.0.0.9/32", "192.0.0.10/32")  # PCP and TURN anycast

# IANA IPv6 Special-Purpose Address Registry: blocks that are not globally reachable.
IPV6_REFUSED = (
    "::/128",  # unspecified
    "::1/128",  # loopback
    "64:ff9b:1::/48",  # local-use IPv4/IPv6 translation
    "100::/64",  # discard-only
    "100:0:0:1::/64",  # dummy prefix
    "2001::/23",  # IETF protocol assignments (Teredo is unwrapped before this)
    "2001:db8::/32",  # documentation
    "3fff::/20",  # documentation
    "5f00::/16",  # segment routing (SRv6) SIDs
    "fc00::/7",  # unique local
    "fe80::/10",  # link local
    "ff00::/8",  # multicast
)
IPV6_GLOBAL_EXCEPTIONS = (
    "2001:1::1/128",  # PCP anycast
    "2001:1::2/128",  # TURN anycast
    "2001:1::3/128",  # DNS-SD service registration anycast
    "2001:3::/32",  # AMT
    "2001:4:112::/48",  # AS112-v6
    "2001:20::/28",  # ORCHIDv2
    "2001:30::/28",  # drone remote ID
)
GLOBAL_UNICAST_V6 = ipaddress.IPv6Network("2000::/3")

NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
LOCAL_NAT64 = ipaddress.IPv6Network("64:ff9b:1::/48")
IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")


@cache
def _networks(blocks: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(block) for block in blocks)


def _inside(ip: IPAddress, blocks: tuple[str, ...]) -> bool:
    return any(ip.version == net.version and ip in net for net in _networks(blocks))


def embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries (and would reach through a translator)."""
    if ip.ipv4_mapped is not None:
        return [ip.ipv4_mapped]
    if ip.teredo is not None:
        return list(ip.teredo)  # the Teredo server and the (de-obfuscated) client
    if ip.sixtofour is not None:
        return [ip.sixtofour]
    value = int(ip)
    if ip in NAT64 or (ip in IPV4_COMPATIBLE and value > 1):
        return [ipaddress.IPv4Address(value & 0xFFFFFFFF)]
    if ip in LOCAL_NAT64:  # RFC 6052 /48: octets 6-7 and 9-10, around the zero "u" octet
        packed = ip.packed
        return [ipaddress.IPv4Address(packed[6:8] + packed[9:11])]
    return []


def globally_reachable(ip: IPAddress) -> bool:
    """True for an address the IANA registries call globally reachable unicast."""
    if isinstance(ip, ipaddress.IPv4Address):
        return not _inside(ip, IPV4_REFUSED) or _inside(ip, IPV4_GLOBAL_EXCEPTIONS)
    if ip not in GLOBAL_UNICAST_V6:
        return False
    return not _inside(ip, IPV6_REFUSED) or _inside(ip, IPV6_GLOBAL_EXCEPTIONS)


@cache
def _allowed_networks(blocks: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(block, strict=False) for block in blocks)


def allowed(ip: IPAddress, allowed_networks: Iterable[str] = ()) -> bool:
    """Whether a webhook may connect to `ip`, given the operator's allowed networks.

    An address inside an allowed network is accepted as it is. An IPv6 address that embeds
    IPv4 addresses is judged by them (each must be globally reachable or allowed); the
    local-use NAT64 prefix is refused whatever it carries. Any other address must be
    globally reachable.
    """
    networks = _allowed_networks(tuple(allowed_networks))

    def listed(address: IPAddress) -> bool:
        return any(address.version == net.version and address in net for net in networks)

    if listed(ip):
        return True
    inner = embedded_ipv4(ip) if isinstance(ip, ipaddress.IPv6Address) else []
    if not inner:
        return globally_reachable(ip)
    if ip in LOCAL_NAT64:
        return False
    return all(listed(address) or globally_reachable(address) for address in inner)
