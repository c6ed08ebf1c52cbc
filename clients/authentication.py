"""DRF authentication with API keys: `Authorization: Bearer <key>` or `X-API-Key: <key>`."""

import logging

from django.conf import settings
from django.utils.functional import SimpleLazyObject
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from clients.lookup import request_principal
from clients.models import ApiClient
from clients.services import touch_last_used
from valhalla_ops.metrics import api_key_failures
from valhalla_ops.principals import ServicePrincipal

logger = logging.getLogger(__name__)

INVALID = "Invalid or inactive API key."


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """Unknown, inactive and expired keys all get the same 401: no hint which."""

    def authenticate(self, request: Request) -> tuple[ServicePrincipal, ApiClient] | None:
        """(principal, client): `request.user` answers permission checks from the cache;
        `request.auth` is the `ApiClient`, loaded only if a view reads it."""
        sent, principal = request_principal(request._request)
        if not sent:
            return None
        if principal is None:
            api_key_failures.inc()
            raise exceptions.AuthenticationFailed(INVALID)
        touch_last_used(client_id=principal.client_id, interval=settings.API_KEY_LAST_USED_INTERVAL)
        client_id = principal.client_id
        client = SimpleLazyObject(lambda: ApiClient.objects.get(pk=client_id))
        return principal, client  # type: ignore[return-value]  # a lazy ApiClient

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="valhalla-ops"'
