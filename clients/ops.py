"""Admin ops actions for incident containment: deactivate or rotate an API client.

Both run while the system is read-only or in maintenance for holders of the containment
permission (`lockdown=CONTAIN`); the changes go through the clients services.
"""

from datetime import timedelta
from typing import Any

from rest_framework import serializers
from rest_framework.exceptions import NotFound, PermissionDenied

from clients import services
from clients.models import ApiClient
from clients.serializers import (
    ApiClientRotateSerializer,
    ApiClientSerializer,
    ApiClientWithKeySerializer,
)
from valhalla_ops.audit import Actor
from valhalla_ops.ops import CONTAIN, OpsAction

CHANGE_PERM = "clients.change_apiclient"


class ClientParamsSerializer(serializers.Serializer):
    client_id = serializers.IntegerField(min_value=1, max_value=2**63 - 1)


class RotateParamsSerializer(ClientParamsSerializer, ApiClientRotateSerializer):
    pass


def _client(actor: Actor, params: dict[str, Any], shape: type[serializers.Serializer]) -> tuple:
    if not actor.has_perm(CHANGE_PERM):
        raise PermissionDenied(f"This action needs the {CHANGE_PERM} permission.")
    serializer = shape(data=params)
    serializer.is_valid(raise_exception=True)
    client = ApiClient.objects.filter(pk=serializer.validated_data["client_id"]).first()
    if client is None:
        raise NotFound(f"No API client with id {serializer.validated_data['client_id']}.")
    return client, serializer.validated_data


def deactivate_client(*, actor: Actor, params: dict[str, Any]) -> dict[str, Any]:
    """Params {"client_id": int}: the client's keys stop working at once."""
    client, _params = _client(actor, params, ClientParamsSerializer)
    return dict(ApiClientSerializer(services.deactivate_client(actor=actor, client=client)).data)


def rotate_client(*, actor: Actor, params: dict[str, Any]) -> dict[str, Any]:
    """Params {"client_id": int, "grace_seconds": int = 0}; returns the new key, once."""
    client, data = _client(actor, params, RotateParamsSerializer)
    grace = timedelta(seconds=data["grace_seconds"])
    client, raw_key = services.rotate_client(actor=actor, client=client, grace=grace)
    return dict(ApiClientWithKeySerializer(client, context={"api_key": raw_key}).data)


ACTIONS = {
    "deactivate_client": OpsAction(
        deactivate_client,
        'Deactivate an API client: params {"client_id": int}. Allowed in a lockdown for '
        "holders of the containment permission.",
        mutating=True,
        lockdown=CONTAIN,
    ),
    "rotate_client": OpsAction(
        rotate_client,
        'Give an API client a new key: params {"client_id": int, "grace_seconds": int = 0}; '
        "the new key is in the answer, once. Allowed in a lockdown for holders of the "
        "containment permission.",
        mutating=True,
        lockdown=CONTAIN,
    ),
}
