"""The seeds' maintenance API: the mode (GET/POST, and the `/state/{mode}` shortcut) and windows."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from maintenance import services
from maintenance.filters import MaintenanceWindowFilter
from maintenance.models import MaintenanceWindow, Mode
from maintenance.serializers import (
    MaintenanceStateSerializer,
    MaintenanceStateSetSerializer,
    MaintenanceWindowCreateSerializer,
    MaintenanceWindowSerializer,
    MaintenanceWindowUpdateSerializer,
)
from valhalla_ops.idempotency import idempotent
from valhalla_ops.permissions import HasPermission

VIEW = ["maintenance.view_maintenancestate"]
CHANGE = ["maintenance.change_maintenancestate"]


class MaintenanceStateView(APIView):
    """The system's mode: `normal`, `read_only` or `maintenance`."""

    permission_classes = [HasPermission]
    required_perms = {"GET": VIEW, "HEAD": VIEW, "OPTIONS": VIEW, "POST": CHANGE}

    @extend_schema(responses=MaintenanceStateSerializer)
    def get(self, request: Request) -> Response:
        return Response(MaintenanceStateSerializer(services.read_state()).data)

    @extend_schema(request=MaintenanceStateSetSerializer, responses=MaintenanceStateSerializer)
    def post(self, request: Request) -> Response:
        serializer = MaintenanceStateSetSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        state = services.set_mode(actor=request.user, **serializer.validated_data)
        return Response(MaintenanceStateSerializer(state).data)


class MaintenanceModeView(APIView):
    """The seed's shortcut: `POST /system/maintenance/state/read_only?reason=EMERGENCY`."""

    permission_classes = [HasPermission]
    required_perms = {"POST": CHANGE, "OPTIONS": VIEW}

    @extend_schema(
        operation_id="system_maintenance_state_set_mode",
        request=None,
        parameters=[
            OpenApiParameter("mode", OpenApiTypes.STR, OpenApiParameter.PATH, enum=Mode.values),
            OpenApiParameter("reason", OpenApiTypes.STR, OpenApiParameter.QUERY, required=False),
        ],
        responses=MaintenanceStateSerializer,
    )
    def post(self, request: Request, mode: str) -> Response:
        reason = request.query_params.get("reason", "")
        serializer = MaintenanceStateSetSerializer(data={"mode": mode, "reason": reason})
        serializer.is_valid(raise_exception=True)
        state = services.set_mode(actor=request.user, **serializer.validated_data)
        return Response(MaintenanceStateSerializer(state).data)


class MaintenanceWindowViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    queryset = MaintenanceWindow.objects.all()
    serializer_class = MaintenanceWindowSerializer
    filterset_class = MaintenanceWindowFilter

    @extend_schema(
        request=MaintenanceWindowCreateSerializer, responses={201: MaintenanceWindowSerializer}
    )
    @idempotent
    def create(self, request: Request) -> Response:
        serializer = MaintenanceWindowCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        window = services.create_window(actor=request.user, **serializer.validated_data)
        return Response(MaintenanceWindowSerializer(window).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=MaintenanceWindowUpdateSerializer, responses=MaintenanceWindowSerializer)
    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        serializer = MaintenanceWindowUpdateSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        window = services.update_window(
            actor=request.user, window=self.get_object(), **serializer.validated_data
        )
        return Response(MaintenanceWindowSerializer(window).data)
