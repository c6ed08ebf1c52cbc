"""Resolve an API key to its client: cached, shared by authentication and the rate limiter."""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.contrib.auth.models import Permission
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from clients import keys
from clients.models import ApiClient
from valhalla_ops.cache import LocalTTLCache
from valhalla_ops.principals import ServicePrincipal


@dataclass(frozen=True)
class ResolvedKey:
    principal: ServicePrincipal
    active: bool
    expires_at: datetime | None
    valid_until: datetime | None  # set when the key is a previous key in its grace period

    def usable(self, now: datetime) -> bool:
        if not self.active:
            return False
        if self.expires_at is not None and self.expires_at <= now:
            return False
        return self.valid_until is None or self.valid_until > now


_cache: LocalTTLCache[ResolvedKey | None] = LocalTTLCache(
    ttl=lambda: settings.API_KEY_CACHE_SECONDS, maxsize=20_000
)


def _load(key_hash: str) -> ResolvedKey | None:
    client = ApiClient.objects.with_key_hash(key_hash).first()
    if client is None:
        return None
    perms = Permission.objects.filter(group__api_clients=client).values_list(
        "content_type__app_label", "codename"
    )
    principal = ServicePrincipal(
        client_id=client.pk,
        name=client.name,
        permissions=frozenset(f"{app}.{code}" for app, code in perms),
    )
    grace = client.previous_key_expires_at if client.previous_key_hash == key_hash else None
    return ResolvedKey(principal, client.active, client.expires_at, grace)


def resolve_key(raw_key: str) -> ServicePrincipal | None:
    """The principal for a usable key, or None. A malformed key never reaches the database."""
    if not keys.plausible(raw_key):
        return None
    key_hash = keys.hash_key(raw_key)
    resolved = _cache.get_or_load(key_hash, lambda: _load(key_hash))
    if resolved is None or not resolved.usable(timezone.now()):
        return None
    return resolved.principal


def invalidate_on_commit() -> None:
    """Forget cached keys once the change commits (other processes: within API_KEY_CACHE_SECONDS)."""
    transaction.on_commit(_cache.clear)


def key_from_headers(headers: Mapping[str, str]) -> str | None:
    """The key sent as `Authorization: Bearer <key>` or `X-API-Key: <key>`, if any."""
    authorization = headers.get("Authorization", "")
    if authorization[:7].lower() == "bearer ":
        return authorization[7:].strip()
    api_key = headers.get("X-API-Key")
    return api_key.strip() if api_key else None


def request_principal(request: HttpRequest) -> tuple[bool, ServicePrincipal | None]:
    """(whether a key was sent, its principal): resolved once per request.

    The rate limiter and DRF's authentication both need it; the second asks for free
    instead of paying the checksum and the HMAC again.
    """
    resolved = getattr(request, "_api_key_resolution", None)
    if resolved is None:
        raw_key = key_from_headers(request.headers)
        resolved = (raw_key is not None, resolve_key(raw_key) if raw_key is not None else None)
        request._api_key_resolution = resolved  # type: ignore[attr-defined]
    return resolved
