"""The audit log API and the admin ops endpoint."""

import logging

from django.core.exceptions import RequestDataTooBig
from django.db import DatabaseError
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, mixins, permissions, status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from valhalla_ops import ops, writeguard
from valhalla_ops.filters import SystemLogFilter
from valhalla_ops.idempotency import idempotent
from valhalla_ops.models import SystemLog
from valhalla_ops.serializers import (
    AdminActionRequestSerializer,
    AdminActionResponseSerializer,
    SystemLogSerializer,
)

logger = logging.getLogger(__name__)
ACTION_FAILED = "The action failed on the server; the error is in the server log."


class SystemLogViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    queryset = SystemLog.objects.all()
    serializer_class = SystemLogSerializer
    filterset_class = SystemLogFilter


class AdminOpsView(APIView):
    """Run one high-level action: `{"action": ..., "params": {...}}`.

    Each action checks its own permission (`ops.run_action`); every answer, errors included,
    is `{"ok", "action", "data", "error"}`.
    """

    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(request=AdminActionRequestSerializer, responses=AdminActionResponseSerializer)
    @idempotent
    def post(self, request: Request) -> Response:
        serializer = AdminActionRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        action, params = serializer.validated_data["action"], serializer.validated_data["params"]
        try:
            with ops.lockdown_permit(request, action):  # read-only / maintenance mode
                data = ops.run_action(actor=request.user, action=action, params=params)
        except ops.UnknownAction:
            known = ", ".join(sorted(ops.registry.ops_actions.names()))
            return _result(action, error=f"Unknown action {action!r}. Known: {known}.", code=400)
        except exceptions.APIException as error:
            return _result(action, error=ops.error_text(error.detail), code=error.status_code)
        except (DatabaseError, writeguard.WriteBlocked):
            raise  # the outage's or the shield's own 503 (with Retry-After) applies
        except Exception:
            logger.exception("admin ops action %s failed", action)
            return _result(action, error=ACTION_FAILED, code=500)
        return _result(action, data=data)

    def handle_exception(self, exc: Exception) -> Response:
        """DRF's error answer (401, 403, 405, a bad body) in the ops shape."""
        response = super().handle_exception(exc)
        if isinstance(exc, exceptions.APIException):
            detail = exc.detail
        else:  # Http404 and the like: the project's handler already wrote the detail
            detail = response.data.get("detail", response.data)
        response.data = {
            "ok": False,
            "action": _action_named(self.request),
            "data": None,
            "error": ops.error_text(detail),
        }
        return response


def _action_named(request: Request) -> str | None:
    """The action the body names, if the body can be read at all."""
    try:
        action = request.data.get("action") if isinstance(request.data, dict) else None
    except (exceptions.APIException, RequestDataTooBig):
        return None
    return action if isinstance(action, str) else None


def _result(
    action: str, *, data: object = None, error: str | None = None, code: int = 200
) -> Response:
    body = {"ok": error is None, "action": action, "data": data, "error": error}
    return Response(body, status=code if error else status.HTTP_200_OK)
