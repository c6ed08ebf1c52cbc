"""The enabled rules, compiled for matching and cached in-process (no query per request).

Each process keeps its compiled rule set for `RATELIMIT_RULES_CACHE_SECONDS`. When that runs
out it reads a generation token from Django's cache (Redis when `REDIS_URL` is set) and reloads
from the database only if a change bumped the token, so a change made anywhere is seen
everywhere within about a second. Without Redis the cache is per process, so the rules are
simply reloaded each period. A rule change bumps the token on commit.
"""

import hashlib
import ipaddress
import logging
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, TypeGuard

from django.conf import settings
from django.core.cache import cache

from ratelimits.keys import ANY, ip_identity

logger = logging.getLogger(__name__)

GENERATION_KEY = "ratelimits:rules:generation"
MAX_STALE_SECONDS = 60.0  # reload at least this often, even if no bump was seen
MAX_PLAIN_PATH = 128  # longer paths are counted under a hash of the path


@dataclass(frozen=True, slots=True)
class Rule:
    """One enabled rule as the limiter sees it."""

    id: int
    scope: str
    key: str
    window_seconds: int
    max_requests: int
    counter_prefix: str = ""  # every counter of this rule starts with it

    @property
    def policy(self) -> str:
        """This rule as an IETF `RateLimit-Policy` item: `100;w=60`."""
        return f"{self.max_requests};w={self.window_seconds}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "scope": self.scope,
            "key": self.key,
            "max_requests": self.max_requests,
            "window_seconds": self.window_seconds,
        }


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a request is, in every scope: the client IP, API client id, user id and path."""

    ip: str | None = None
    client_id: int | None = None
    user_id: int | None = None
    path: str = "/"


@dataclass(slots=True)  # built per request: a frozen dataclass costs more to build
class Match:
    """A rule that applies to a request, and the value it counts (its counter's name)."""

    rule: Rule
    value: str
    counter: str


def counter_prefix(rule_id: int, window_seconds: int) -> str:
    """Where a rule's counters live; the window is part of it so a changed window starts afresh."""
    cache_prefix = settings.CACHES["default"].get("KEY_PREFIX") or "vo"
    return f"{cache_prefix}:rl:{rule_id}:{window_seconds}:"


def path_token(path: str) -> str:
    """A path as it appears in a counter name: itself, or a hash when it is long."""
    if len(path) <= MAX_PLAIN_PATH:
        return path
    return "sha1:" + hashlib.sha1(path.encode(), usedforsecurity=False).hexdigest()


@dataclass
class RuleSet:
    """Rules indexed by scope, so matching a request costs a few dict lookups."""

    ip_exact: dict[str, list[Rule]] = field(default_factory=dict)
    ip_networks: list[tuple[int, int, int, Rule]] = field(default_factory=list)
    by_value: dict[str, dict[str, list[Rule]]] = field(default_factory=dict)
    any_value: dict[str, list[Rule]] = field(default_factory=dict)
    paths: list[tuple[str, str, Rule]] = field(default_factory=list)
    rules: list[Rule] = field(default_factory=list)
    empty: bool = True
    needs_client: bool = False
    needs_user: bool = False

    @classmethod
    def build(cls, rules: Iterable[Any]) -> "RuleSet":
        """Compile rules (models or anything with id, scope, key, window_seconds, max_requests)."""
        ruleset = cls()
        for source in rules:
            ruleset._add(compile_rule(source))
        return ruleset

    def _add(self, rule: Rule) -> None:
        self.rules.append(rule)
        self.empty = False
        self.needs_client = self.needs_client or rule.scope == "api_key"
        self.needs_user = self.needs_user or rule.scope == "user"
        if rule.key == ANY:
            self.any_value.setdefault(rule.scope, []).append(rule)
        elif rule.scope == "ip" and "/" in rule.key:
            network = ipaddress.ip_network(rule.key)
            mask = int(network.netmask)
            self.ip_networks.append((network.version, int(network.network_address), mask, rule))
        elif rule.scope == "ip":
            self.ip_exact.setdefault(ip_identity(rule.key) or rule.key, []).append(rule)
        elif rule.scope == "path":
            with_slash = rule.key if rule.key.endswith("/") else rule.key + "/"
            self.paths.append((rule.key, with_slash, rule))
        else:
            self.by_value.setdefault(rule.scope, {}).setdefault(rule.key, []).append(rule)

    def match(self, identity: Identity) -> list[Match]:
        """Every rule that applies to this identity, with the counter each one uses."""
        found: list[Match] = []
        ip = ip_identity(identity.ip)
        if ip is not None:
            self._match_ip(identity.ip, ip, found)
        if identity.client_id is not None:
            self._match_value("api_key", str(identity.client_id), found)
        if identity.user_id is not None:
            self._match_value("user", str(identity.user_id), found)
        self._match_path(identity.path, found)
        for rule in self.any_value.get("global", ()):
            found.append(Match(rule, ANY, rule.counter_prefix + ANY))
        return found

    def _match_ip(self, raw: str | None, ip: str, found: list[Match]) -> None:
        for rule in self.ip_exact.get(ip, ()):
            found.append(Match(rule, rule.key, rule.counter_prefix + rule.key))
        if self.ip_networks:
            version, number = _address(raw)
            for net_version, net_number, mask, rule in self.ip_networks:
                if version == net_version and number & mask == net_number:
                    found.append(Match(rule, rule.key, rule.counter_prefix + rule.key))
        for rule in self.any_value.get("ip", ()):
            found.append(Match(rule, ip, rule.counter_prefix + ip))

    def _match_value(self, scope: str, value: str, found: list[Match]) -> None:
        for rule in self.by_value.get(scope, {}).get(value, ()):
            found.append(Match(rule, value, rule.counter_prefix + value))
        for rule in self.any_value.get(scope, ()):
            found.append(Match(rule, value, rule.counter_prefix + value))

    def _match_path(self, path: str, found: list[Match]) -> None:
        for prefix, with_slash, rule in self.paths:
            if path == prefix or path.startswith(with_slash):
                found.append(Match(rule, prefix, rule.counter_prefix + prefix))
        any_path = self.any_value.get("path")
        if any_path:
            token = path_token(path)
            for rule in any_path:
                found.append(Match(rule, path[:255], rule.counter_prefix + token))


@lru_cache(maxsize=4096)
def _address(ip: str) -> tuple[int, int]:
    """(version, integer) of an address; an IPv4-mapped IPv6 address counts as IPv4."""
    address = ipaddress.ip_address(ip)
    address = getattr(address, "ipv4_mapped", None) or address
    return address.version, int(address)


def compile_rule(source: Any) -> Rule:
    return Rule(
        id=source.id,
        scope=source.scope,
        key=source.key,
        window_seconds=source.window_seconds,
        max_requests=source.max_requests,
        counter_prefix=counter_prefix(source.id, source.window_seconds),
    )


# --- the per-process cache ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Loaded:
    ruleset: RuleSet
    generation: str | None
    checked: float  # time.monotonic() of the last load or generation check
    loaded: float  # time.monotonic() of the last load from the database


_loaded: _Loaded | None = None
_reload_lock = threading.Lock()


def _fresh(loaded: _Loaded | None) -> TypeGuard[_Loaded]:
    # The TTL is read now, not stored, so a changed setting applies to the rules in hand.
    ttl = settings.RATELIMIT_RULES_CACHE_SECONDS
    return loaded is not None and time.monotonic() - loaded.checked < ttl


def current_rules() -> RuleSet:
    """The enabled rules, from this process's cache while it is fresh."""
    loaded = _loaded
    if _fresh(loaded):
        return loaded.ruleset
    with _reload_lock:  # one thread reloads; the others wait for its result
        loaded = _loaded
        if _fresh(loaded):
            return loaded.ruleset
        return _refresh(loaded).ruleset


def _refresh(previous: _Loaded | None) -> _Loaded:
    global _loaded
    now = time.monotonic()
    generation = _read_generation() if settings.REDIS_URL else None
    if (
        previous is not None
        and generation is not None
        and generation == previous.generation
        and now - previous.loaded < MAX_STALE_SECONDS
    ):
        _loaded = _Loaded(previous.ruleset, generation, now, previous.loaded)
    else:
        _loaded = _Loaded(load_rules(), generation, now, now)
    return _loaded


def load_rules() -> RuleSet:
    from ratelimits.models import RateLimitRule

    rules = RateLimitRule.objects.enabled().only(
        "id", "scope", "key", "window_seconds", "max_requests"
    )
    return RuleSet.build(rules)


def _read_generation() -> str | None:
    """The shared generation token; None (reload from the database) if the cache is down."""
    try:
        value = cache.get(GENERATION_KEY)
        if value is None:
            cache.add(GENERATION_KEY, uuid.uuid4().hex, timeout=None)
            value = cache.get(GENERATION_KEY)
    except Exception as error:  # any cache backend error: fall back to the database
        logger.warning("rate-limit rule generation unreadable, reloading rules: %s", error)
        return None
    return value


def invalidate() -> None:
    """Drop this process's rules and bump the shared generation (run on commit)."""
    global _loaded
    _loaded = None
    try:
        cache.set(GENERATION_KEY, uuid.uuid4().hex, timeout=None)
    except Exception as error:  # other processes then see the change within MAX_STALE_SECONDS
        logger.warning("could not publish a rate-limit rule change: %s", error)
