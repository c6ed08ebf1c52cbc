from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from ratelimits import services
from ratelimits.containment import contain_change
from ratelimits.filters import RateLimitRuleFilter, RateLimitSnapshotFilter
from ratelimits.models import RateLimitRule, RateLimitSnapshot
from ratelimits.serializers import (
    RateLimitRuleCreateSerializer,
    RateLimitRuleSerializer,
    RateLimitSnapshotSerializer,
)
from valhalla_ops.idempotency import idempotent
from valhalla_ops.pagination import SnapshotPagination
from valhalla_ops.writeguard import contain


class RateLimitRuleViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    queryset = RateLimitRule.objects.all()
    serializer_class = RateLimitRuleSerializer
    filterset_class = RateLimitRuleFilter

    @extend_schema(request=RateLimitRuleCreateSerializer, responses={201: RateLimitRuleSerializer})
    @idempotent
    def create(self, request: Request) -> Response:
        with contain(request):  # a new rule contains an incident: allowed in a lockdown
            serializer = RateLimitRuleCreateSerializer(data=request.data)
            serializer.is_valid(raise_exception=True)
            rule = services.create_rule(actor=request.user, **serializer.validated_data)
        return Response(RateLimitRuleSerializer(rule).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=RateLimitRuleCreateSerializer, responses=RateLimitRuleSerializer)
    def update(self, request: Request, pk: str | None = None) -> Response:
        return self._update(request, partial=False)

    @extend_schema(request=RateLimitRuleCreateSerializer, responses=RateLimitRuleSerializer)
    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        return self._update(request, partial=True)

    def destroy(self, request: Request, pk: str | None = None) -> Response:
        services.delete_rule(actor=request.user, rule=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    def _update(self, request: Request, *, partial: bool) -> Response:
        with contain(request):  # in a lockdown: only for the containment permission
            rule = self.get_object()
            serializer = RateLimitRuleCreateSerializer(rule, data=request.data, partial=partial)
            serializer.is_valid(raise_exception=True)
            changes = serializer.validated_data
            with contain_change(request, rule, changes):  # and only to enable or tighten
                rule = services.update_rule(actor=request.user, rule=rule, **changes)
        return Response(RateLimitRuleSerializer(rule).data)


class RateLimitSnapshotViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """Counter snapshots, newest first (200 per page by default); read-only."""

    queryset = RateLimitSnapshot.objects.all()
    serializer_class = RateLimitSnapshotSerializer
    filterset_class = RateLimitSnapshotFilter
    pagination_class = SnapshotPagination
