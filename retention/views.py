from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from retention import services
from retention.filters import DataRetentionPolicyFilter
from retention.models import DataRetentionPolicy, PurgeRun
from retention.serializers import (
    DataRetentionPolicyCreateSerializer,
    DataRetentionPolicySerializer,
    PurgeRunSerializer,
)
from valhalla_ops.idempotency import idempotent


class DataRetentionPolicyViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    queryset = DataRetentionPolicy.objects.all()
    serializer_class = DataRetentionPolicySerializer
    filterset_class = DataRetentionPolicyFilter
    lookup_field = "category"
    # No NUL: PostgreSQL refuses it in a comparison, so such a path is a plain 404.
    lookup_value_regex = r"[^/\x00]+"
    action_perms = {
        # create-or-update: the caller must be allowed to do both
        "create": ["retention.add_dataretentionpolicy", "retention.change_dataretentionpolicy"],
        "runs": ["retention.view_dataretentionpolicy", "retention.view_purgerun"],
        "purge": ["retention.delete_dataretentionpolicy"],
    }

    @extend_schema(
        request=DataRetentionPolicyCreateSerializer,
        responses={201: DataRetentionPolicySerializer, 200: DataRetentionPolicySerializer},
        description="Create the category's policy (201), or update it (200).",
    )
    @idempotent
    def create(self, request: Request) -> Response:
        serializer = DataRetentionPolicyCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        policy, created = services.upsert_policy(actor=request.user, **serializer.validated_data)
        code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
        return Response(DataRetentionPolicySerializer(policy).data, status=code)

    @extend_schema(responses=PurgeRunSerializer(many=True), filters=False)
    @action(detail=True, methods=["get"], filterset_class=None)
    def runs(self, request: Request, category: str | None = None) -> Response:
        """The category's purge runs, newest first."""
        policy = self.get_object()
        page = self.paginate_queryset(PurgeRun.objects.filter(category=policy.category))
        return self.get_paginated_response(PurgeRunSerializer(page, many=True).data)

    @extend_schema(
        request=None,
        responses={202: PurgeRunSerializer},
        description=(
            "Purge now: schedule a run of the category for the worker and return at once "
            "(202 with the scheduled run; 409 if a run is already scheduled or running)."
        ),
    )
    @action(detail=True, methods=["post"], filterset_class=None)
    def purge(self, request: Request, category: str | None = None) -> Response:
        run = services.schedule_purge(actor=request.user, policy=self.get_object())
        return Response(PurgeRunSerializer(run).data, status=status.HTTP_202_ACCEPTED)
