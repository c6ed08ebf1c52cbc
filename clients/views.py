from datetime import timedelta

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from clients import services
from clients.filters import ApiClientFilter
from clients.models import ApiClient
from clients.serializers import (
    ApiClientCreateSerializer,
    ApiClientRotateSerializer,
    ApiClientSerializer,
    ApiClientUpdateSerializer,
    ApiClientWithKeySerializer,
)
from valhalla_ops.idempotency import idempotent
from valhalla_ops.writeguard import contain


class ApiClientViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    queryset = ApiClient.objects.prefetch_related("groups")
    serializer_class = ApiClientSerializer
    filterset_class = ApiClientFilter
    action_perms = {
        "activate": ["clients.change_apiclient"],
        "deactivate": ["clients.change_apiclient"],
        "rotate": ["clients.change_apiclient"],
    }

    @extend_schema(request=ApiClientCreateSerializer, responses={201: ApiClientWithKeySerializer})
    @idempotent
    def create(self, request: Request) -> Response:
        serializer = ApiClientCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        client, raw_key = services.create_client(actor=request.user, **serializer.validated_data)
        body = ApiClientWithKeySerializer(client, context={"api_key": raw_key}).data
        return Response(body, status=status.HTTP_201_CREATED)

    @extend_schema(request=ApiClientUpdateSerializer, responses=ApiClientSerializer)
    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        serializer = ApiClientUpdateSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        client = services.update_client(
            actor=request.user, client=self.get_object(), **serializer.validated_data
        )
        return Response(ApiClientSerializer(client).data)

    @extend_schema(responses={204: None})
    def destroy(self, request: Request, pk: str | None = None) -> Response:
        """Delete an inactive client; its audit rows stay. An active client is a 409."""
        services.delete_client(actor=request.user, client=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses=ApiClientSerializer)
    @action(detail=True, methods=["post"])
    def activate(self, request: Request, pk: str | None = None) -> Response:
        client = services.activate_client(actor=request.user, client=self.get_object())
        return Response(ApiClientSerializer(client).data)

    @extend_schema(request=None, responses=ApiClientSerializer)
    @action(detail=True, methods=["post"])
    def deactivate(self, request: Request, pk: str | None = None) -> Response:
        with contain(request):  # allowed in a lockdown to holders of the containment permission
            client = services.deactivate_client(actor=request.user, client=self.get_object())
        return Response(ApiClientSerializer(client).data)

    @extend_schema(request=ApiClientRotateSerializer, responses=ApiClientWithKeySerializer)
    @action(detail=True, methods=["post"])
    @idempotent
    def rotate(self, request: Request, pk: str | None = None) -> Response:
        with contain(request):  # allowed in a lockdown to holders of the containment permission
            serializer = ApiClientRotateSerializer(data=request.data)
            serializer.is_valid(raise_exception=True)
            grace = timedelta(seconds=serializer.validated_data["grace_seconds"])
            client, raw_key = services.rotate_client(
                actor=request.user, client=self.get_object(), grace=grace
            )
        return Response(ApiClientWithKeySerializer(client, context={"api_key": raw_key}).data)
