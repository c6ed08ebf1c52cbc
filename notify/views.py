from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from notify import services
from notify.filters import NotificationChannelFilter, NotificationOutboxFilter
from notify.models import NotificationChannel, NotificationOutbox
from notify.serializers import (
    NotificationChannelCreateSerializer,
    NotificationChannelSerializer,
    NotificationChannelUpdateSerializer,
    NotificationChannelWithSecretSerializer,
    NotificationOutboxCreateSerializer,
    NotificationOutboxSerializer,
)
from valhalla_ops.idempotency import idempotent


class NotificationChannelViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    queryset = NotificationChannel.objects.all()
    serializer_class = NotificationChannelSerializer
    filterset_class = NotificationChannelFilter
    lookup_value_regex = r"[0-9]+"
    action_perms = {
        "rotate_secret": ["notify.change_notificationchannel"],
        "test": ["notify.add_notificationoutbox"],
    }

    @extend_schema(
        request=NotificationChannelCreateSerializer,
        responses={201: NotificationChannelWithSecretSerializer},
    )
    @idempotent
    def create(self, request: Request) -> Response:
        serializer = NotificationChannelCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        channel, secret = services.create_channel(actor=request.user, **serializer.validated_data)
        body = NotificationChannelWithSecretSerializer(channel, context={"secret": secret}).data
        return Response(body, status=status.HTTP_201_CREATED)

    @extend_schema(
        request=NotificationChannelUpdateSerializer, responses=NotificationChannelSerializer
    )
    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        serializer = NotificationChannelUpdateSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        channel = services.update_channel(
            actor=request.user, channel=self.get_object(), **serializer.validated_data
        )
        return Response(NotificationChannelSerializer(channel).data)

    @extend_schema(request=None, responses=NotificationChannelWithSecretSerializer)
    @action(detail=True, methods=["post"], url_path="rotate-secret")
    def rotate_secret(self, request: Request, pk: str | None = None) -> Response:
        channel, secret = services.rotate_channel_secret(
            actor=request.user, channel=self.get_object()
        )
        return Response(
            NotificationChannelWithSecretSerializer(channel, context={"secret": secret}).data
        )

    @extend_schema(request=None, responses={201: NotificationOutboxSerializer})
    @action(detail=True, methods=["post"])
    def test(self, request: Request, pk: str | None = None) -> Response:
        notification = services.send_test_notification(
            actor=request.user, channel=self.get_object()
        )
        body = NotificationOutboxSerializer(notification).data
        return Response(body, status=status.HTTP_201_CREATED)


class NotificationOutboxViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    queryset = NotificationOutbox.objects.all()
    serializer_class = NotificationOutboxSerializer
    filterset_class = NotificationOutboxFilter
    lookup_value_regex = r"[0-9]+"
    action_perms = {
        "retry": ["notify.change_notificationoutbox"],
        "requeue": ["notify.change_notificationoutbox"],
    }

    @extend_schema(
        request=NotificationOutboxCreateSerializer, responses={201: NotificationOutboxSerializer}
    )
    @idempotent
    def create(self, request: Request) -> Response:
        serializer = NotificationOutboxCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        notification = services.enqueue_notification(
            actor=request.user, **serializer.validated_data
        )
        body = NotificationOutboxSerializer(notification).data
        return Response(body, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses=NotificationOutboxSerializer)
    @action(detail=True, methods=["post"])
    def retry(self, request: Request, pk: str | None = None) -> Response:
        notification = services.retry_notification(
            actor=request.user, notification=self.get_object()
        )
        return Response(NotificationOutboxSerializer(notification).data)

    @extend_schema(request=None, responses=NotificationOutboxSerializer)
    @action(detail=True, methods=["post"])
    def requeue(self, request: Request, pk: str | None = None) -> Response:
        notification = services.requeue_notification(
            actor=request.user, notification=self.get_object()
        )
        return Response(NotificationOutboxSerializer(notification).data)
