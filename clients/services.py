"""Every change to API clients: atomic, audited, key shown once."""

import time
from datetime import datetime, timedelta

from django.contrib.auth.models import Group
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from clients import keys
from clients.lookup import invalidate_on_commit
from clients.models import ApiClient
from notify.services import emit_event
from valhalla_ops.audit import Actor, record_change
from valhalla_ops.exceptions import ServiceError
from valhalla_ops.writeguard import bookkeeping

MAX_GRACE = timedelta(days=30)
_last_touch: dict[int, float] = {}


def snapshot(client: ApiClient) -> dict:
    """The audited view of a client (never the key or its hash)."""
    return {
        "name": client.name,
        "client_type": client.client_type,
        "active": client.active,
        "description": client.description,
        "expires_at": client.expires_at.isoformat() if client.expires_at else None,
        "groups": sorted(client.groups.values_list("name", flat=True)) if client.pk else [],
        "key_prefix": client.key_prefix,
    }


def check_grantable(*, actor: Actor, groups: list[Group]) -> None:
    """An actor may hand out only groups whose permissions it holds itself."""
    if getattr(actor, "is_superuser", False) or actor is None or not hasattr(actor, "has_perms"):
        return
    for group in groups:
        perms = [
            f"{app}.{code}"
            for app, code in group.permissions.values_list("content_type__app_label", "codename")
        ]
        if not actor.has_perms(perms):
            raise ServiceError(
                f"You cannot grant group {group.name!r}: it has permissions you lack.",
                field="groups",
            )


def _assign_key(client: ApiClient, raw_key: str) -> None:
    if not keys.plausible(raw_key):
        raise ServiceError(
            f"An API key needs {keys.MIN_SUPPLIED_LENGTH} to {keys.MAX_KEY_LENGTH} printable characters without "
            "spaces; a key starting with 'vo_' must be a generated key.",
            field="api_key",
        )
    key_hash = keys.hash_key(raw_key)
    if (
        ApiClient.objects.filter(Q(key_hash=key_hash) | Q(previous_key_hash=key_hash))
        .exclude(pk=client.pk)
        .exists()
    ):
        raise ServiceError("This API key is already in use.", field="api_key")
    client.key_hash = key_hash
    client.key_prefix = keys.display_prefix(raw_key)


@transaction.atomic
def create_client(
    *,
    actor: Actor,
    name: str,
    client_type: str,
    description: str = "",
    api_key: str | None = None,
    groups: list[Group] | None = None,
    expires_at: datetime | None = None,
    active: bool = True,
) -> tuple[ApiClient, str]:
    """Register a client; returns it with the plaintext key, which is never stored."""
    groups = groups or []
    check_grantable(actor=actor, groups=groups)
    if ApiClient.objects.filter(name=name).exists():
        raise ServiceError(f"A client named {name!r} already exists.", field="name")
    raw_key = api_key or keys.generate_key(keys.kind_for(client_type))
    client = ApiClient(
        name=name,
        client_type=client_type,
        description=description,
        expires_at=expires_at,
        active=active,
    )
    _assign_key(client, raw_key)
    client.save()
    client.groups.set(groups)
    record_change(
        actor=actor,
        action="clients.create",
        target=client,
        after=snapshot(client),
        message=f"API client {name} created",
    )
    invalidate_on_commit()
    return client, raw_key


@transaction.atomic
def update_client(
    *, actor: Actor, client: ApiClient, groups: list[Group] | None = None, **fields: object
) -> ApiClient:
    """Change name, type, description, expiry or groups (not the key: see rotate_client)."""
    before = snapshot(client)
    allowed = {"name", "client_type", "description", "expires_at"}
    unknown = set(fields) - allowed
    if unknown:
        raise ServiceError(f"Cannot change {', '.join(sorted(unknown))} here.")
    if (
        "name" in fields
        and ApiClient.objects.filter(name=fields["name"]).exclude(pk=client.pk).exists()
    ):
        raise ServiceError(f"A client named {fields['name']!r} already exists.", field="name")
    for field, value in fields.items():
        setattr(client, field, value)
    client.save(update_fields=[*fields, "updated_at"])
    if groups is not None:
        check_grantable(actor=actor, groups=groups)
        client.groups.set(groups)
    record_change(
        actor=actor, action="clients.update", target=client, before=before, after=snapshot(client)
    )
    invalidate_on_commit()
    return client


def _set_active(*, actor: Actor, client: ApiClient, active: bool) -> ApiClient:
    before = snapshot(client)
    client.active = active
    client.save(update_fields=["active", "updated_at"])
    verb = "activate" if active else "deactivate"
    record_change(
        actor=actor, action=f"clients.{verb}", target=client, before=before, after=snapshot(client)
    )
    emit_event(
        topic=f"client.{verb}d",
        subject=f"API client {client.name} {verb}d",
        payload={"client_id": client.pk, "name": client.name, "by": str(actor)},
    )
    invalidate_on_commit()
    return client


@transaction.atomic
def activate_client(*, actor: Actor, client: ApiClient) -> ApiClient:
    return _set_active(actor=actor, client=client, active=True)


@transaction.atomic
def deactivate_client(*, actor: Actor, client: ApiClient) -> ApiClient:
    return _set_active(actor=actor, client=client, active=False)


@transaction.atomic
def rotate_client(
    *, actor: Actor, client: ApiClient, grace: timedelta = timedelta(0)
) -> tuple[ApiClient, str]:
    """Give the client a new key; the old one keeps working for `grace` (default: not at all)."""
    if grace < timedelta(0) or grace > MAX_GRACE:
        raise ServiceError(
            f"The grace period must be between 0 and {MAX_GRACE.days} days.", field="grace_seconds"
        )
    client = ApiClient.objects.select_for_update().get(pk=client.pk)
    before = snapshot(client)
    old_hash = client.key_hash
    raw_key = keys.generate_key(keys.kind_for(client.client_type))
    _assign_key(client, raw_key)
    client.previous_key_hash = old_hash if grace else None
    client.previous_key_expires_at = timezone.now() + grace if grace else None
    client.save(
        update_fields=[
            "key_hash",
            "key_prefix",
            "previous_key_hash",
            "previous_key_expires_at",
            "updated_at",
        ]
    )
    record_change(
        actor=actor,
        action="clients.rotate",
        target=client,
        before=before,
        after=snapshot(client),
        context_data={"grace_seconds": int(grace.total_seconds())},
    )
    invalidate_on_commit()
    return client, raw_key


@transaction.atomic
def delete_client(*, actor: Actor, client: ApiClient) -> None:
    before = snapshot(client)
    record_change(actor=actor, action="clients.delete", target=client, before=before)
    client.delete()
    invalidate_on_commit()


def touch_last_used(*, client_id: int, interval: int) -> None:
    """Record a client's last use, at most once per `interval` seconds per client."""
    now = time.monotonic()
    if now - _last_touch.get(client_id, float("-inf")) < interval:
        return
    _last_touch[client_id] = now
    moment = timezone.now()
    stale = Q(last_used_at__isnull=True) | Q(last_used_at__lt=moment - timedelta(seconds=interval))
    with bookkeeping():
        ApiClient.objects.filter(stale, pk=client_id).update(last_used_at=moment)
