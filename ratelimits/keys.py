"""What a rule's `key` may be in each scope, in its one canonical spelling.

- `ip`: an address or a CIDR network (`10.0.0.0/8`, `2001:db8::/48`), or `*`. An IPv6 client is
  counted by its /64, so an IPv6 address key stands for its /64.
- `api_key`: the id of an API client (digits), or `*`.
- `user`: the id of a user (digits), or `*`.
- `path`: a path prefix starting with `/`, or `*`.
- `global`: only `*`.
"""

import ipaddress
from functools import lru_cache

ANY = "*"
MAX_ID = 2**63 - 1  # ids are bigint primary keys
SCOPES = ("ip", "api_key", "user", "path", "global")
MAX_KEY_LENGTH = 255
IPV6_GROUP_PREFIX = 64


class InvalidKey(ValueError):
    """The key does not fit the scope; the message says what would."""


def normalize_key(scope: str | None, key: str | None) -> str:
    """The canonical form of `key` for `scope`, or InvalidKey."""
    key = (key or "").strip()
    if not key:
        raise InvalidKey("A key is required: a concrete value or '*'.")
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidKey(f"A key has at most {MAX_KEY_LENGTH} characters.")
    if key == ANY:
        return key
    if scope == "ip":
        return _normalize_ip(key)
    if scope in ("api_key", "user"):
        if not key.isascii() or not key.isdigit() or not 1 <= int(key) <= MAX_ID:
            what = "an API client id" if scope == "api_key" else "a user id"
            raise InvalidKey(f"A {scope} key must be {what} (a number from 1 to {MAX_ID}) or '*'.")
        return str(int(key))
    if scope == "path":
        if not key.startswith("/") or any(char.isspace() for char in key):
            raise InvalidKey("A path key must start with '/' and contain no spaces, or be '*'.")
        return key
    if scope == "global":
        raise InvalidKey("A global rule's key must be '*'.")
    raise InvalidKey(f"Unknown scope {scope!r}; use one of {', '.join(SCOPES)}.")


def _normalize_ip(key: str) -> str:
    try:
        if "/" in key:
            return str(ipaddress.ip_network(key, strict=False))
        return str(ipaddress.ip_address(key))
    except ValueError:
        raise InvalidKey(
            f"{key!r} is not an IP address or CIDR network (e.g. 192.168.1.1, 10.0.0.0/8)."
        ) from None


def ip_identity(ip: str | None) -> str | None:
    """The value an `ip` counter is kept for: the IPv4 address, or the IPv6 /64 network."""
    if not ip:
        return None
    if ":" not in ip:  # IPv4 as the server or ipware spelled it: already canonical
        return ip
    return _ipv6_identity(ip)


@lru_cache(maxsize=4096)
def _ipv6_identity(ip: str) -> str | None:
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return None
    if address.version == 6:
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((int(address) >> 64 << 64, IPV6_GROUP_PREFIX)))
    return str(address)
