"""Shared lookups for the API client commands."""

from django.core.management.base import CommandError

from clients.models import ApiClient


def find_client(ref: str) -> ApiClient:
    """A client by id or by exact name."""
    query = {"pk": int(ref)} if ref.isdigit() else {"name": ref}
    try:
        return ApiClient.objects.get(**query)
    except ApiClient.DoesNotExist:
        raise CommandError(f"No API client with id or name {ref!r}.") from None
