"""Shared lookups and output for the API client commands."""

from typing import Any

from django.core.management.base import CommandError

from clients.models import ApiClient


def find_client(ref: str) -> ApiClient:
    """A client by id or by exact name."""
    query = {"pk": int(ref)} if ref.isdigit() else {"name": ref}
    try:
        return ApiClient.objects.get(**query)
    except ApiClient.DoesNotExist:
        raise CommandError(f"No API client with id or name {ref!r}.") from None


def client_data(client: ApiClient) -> dict[str, Any]:
    """What the commands print about a client (never its key or hash)."""
    return {
        "id": client.pk,
        "name": client.name,
        "client_type": client.client_type,
        "key_prefix": client.key_prefix,
        "active": client.active,
        "expires_at": client.expires_at,
        "last_used_at": client.last_used_at,
        "previous_key_expires_at": client.previous_key_expires_at,
        "groups": [group.name for group in client.groups.all()],
        "created_at": client.created_at,
    }
