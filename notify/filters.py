import django_filters

from notify.models import NotificationChannel, NotificationOutbox
from valhalla_ops.filters import DateTimeFilter, IdFilter


class NotificationChannelFilter(django_filters.FilterSet):
    class Meta:
        model = NotificationChannel
        fields = ["channel_type", "active", "name"]


class NotificationOutboxFilter(django_filters.FilterSet):
    channel = IdFilter(field_name="channel_id")
    channel_id = IdFilter(field_name="channel_id")
    created_after = DateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = DateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = NotificationOutbox
        fields = ["status", "channel", "channel_id", "topic", "message_id"]
