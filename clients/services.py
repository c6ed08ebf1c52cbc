"""Every change to API clients: atomic, audited, key shown once."""

import time
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.contrib.auth.models import Group
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from clients import keys
from clients.lookup import invalidate_on_commit
from clients.models import ApiClient
from notify.services import emit_event
from valhalla_ops.audit import Actor, record_change, refuse
from valhalla_ops.exceptions import Conflict, ServiceError
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


def _unlimited(actor: Actor) -> bool:
    """The system (commands, workers) and superusers hold every power."""
    return actor is None or getattr(actor, "is_superuser", False) or not hasattr(actor, "has_perms")


def group_permissions(groups: Iterable[Group]) -> list[str]:
    return sorted(
        {
            f"{app}.{code}"
            for group in groups
            for app, code in group.permissions.values_list("content_type__app_label", "codename")
        }
    )


def check_grantable(*, actor: Actor, groups: list[Group]) -> None:
    """An actor may hand out only groups whose permissions it holds itself."""
    if _unlimited(actor):
        return
    for group in groups:
        if not actor.has_perms(group_permissions([group])):
            raise ServiceError(
                f"You cannot grant group {group.name!r}: it has permissions you lack.",
                field="groups",
            )


def holds_power_over(actor: Actor, client: ApiClient) -> bool:
    """Whether the actor holds every permission the client's groups give."""
    return _unlimited(actor) or actor.has_perms(group_permissions(client.groups.all()))


def check_power(*, actor: Actor, client: ApiClient, verb: str) -> None:
    """Refuse (403, audited) any change to a client more powerful than the actor.

    Every entry point (API, admin, admin ops, commands run as a user) goes through the
    services, so this one rule guards them all. It runs before the change's transaction,
    so the refusal's audit row stays.
    """
    if holds_power_over(actor, client):
        return
    raise refuse(
        actor=actor,
        action=f"clients.{verb}",
        target=client,
        message=f"You cannot {verb} API client {client.name!r}: its groups give permissions "
        "you do not hold.",
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


def update_client(
    *, actor: Actor, client: ApiClient, groups: list[Group] | None = None, **fields: object
) -> ApiClient:
    """Change name, type, description, expiry or groups (not the key: see rotate_client)."""
    check_power(actor=actor, client=client, verb="update")
    with transaction.atomic():
        return _update(actor=actor, client=client, groups=groups, **fields)


def _update(
    *, actor: Actor, client: ApiClient, groups: list[Group] | None, **fields: object
) -> ApiClient:
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


def activate_client(*, actor: Actor, client: ApiClient) -> ApiClient:
    check_power(actor=actor, client=client, verb="activate")
    with transaction.atomic():
        return _set_active(actor=actor, client=client, active=True)


def deactivate_client(*, actor: Actor, client: ApiClient) -> ApiClient:
    check_power(actor=actor, client=client, verb="deactivate")
    with transaction.atomic():
        return _set_active(actor=actor, client=client, active=False)


def rotate_client(
    *, actor: Actor, client: ApiClient, grace: timedelta = timedelta(0)
) -> tuple[ApiClient, str]:
    """Give the client a new key; the old one keeps working for `grace` (default: not at all)."""
    if grace < timedelta(0) or grace > MAX_GRACE:
        raise ServiceError(
            f"The grace period must be between 0 and {MAX_GRACE.days} days.", field="grace_seconds"
        )
    check_power(actor=actor, client=client, verb="rotate")
    with transaction.atomic():
        return _rotate(actor=actor, client=client, grace=grace)


def _rotate(*, actor: Actor, client: ApiClient, grace: timedelta) -> tuple[ApiClient, str]:
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


def delete_client(*, actor: Actor, client: ApiClient) -> None:
    """Delete an inactive client (its audit rows stay); an active one is a 409."""
    check_power(actor=actor, client=client, verb="delete")
    with transaction.atomic():
        client = ApiClient.objects.select_for_update().get(pk=client.pk)
        if client.active:
            raise Conflict(
                f"API client {client.name!r} is active: deactivate it before deleting it."
            )
        before = snapshot(client)
        record_change(
            actor=actor,
            action="clients.delete",
            target=client,
            before=before,
            message=f"API client {client.name} deleted",
        )
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
