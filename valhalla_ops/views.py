"""The audit log API and the admin ops endpoint."""

from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, mixins, status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from valhalla_ops import ops
from valhalla_ops.filters import SystemLogFilter
from valhalla_ops.models import SystemLog
from valhalla_ops.permissions import HasPermission
from valhalla_ops.serializers import (
    AdminActionRequestSerializer,
    AdminActionResponseSerializer,
    SystemLogSerializer,
)


class SystemLogViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    queryset = SystemLog.objects.all()
    serializer_class = SystemLogSerializer
    filterset_class = SystemLogFilter


class AdminOpsView(APIView):
    """Run one high-level action: `{"action": ..., "params": {...}}`."""

    permission_classes = [HasPermission]
    required_perms = {"POST": ["valhalla_ops.run_admin_ops"]}

    @extend_schema(request=AdminActionRequestSerializer, responses=AdminActionResponseSerializer)
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
        return _result(action, data=data)


def _result(
    action: str, *, data: object = None, error: str | None = None, code: int = 200
) -> Response:
    body = {"ok": error is None, "action": action, "data": data, "error": error}
    return Response(body, status=code if error else status.HTTP_200_OK)
