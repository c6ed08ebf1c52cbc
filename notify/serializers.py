from typing import Any

from rest_framework import serializers

from notify import validators
from notify.models import NotificationChannel, NotificationOutbox
from valhalla_ops.limits import MAX_BODY_LENGTH, MAX_PAYLOAD_BYTES
from valhalla_ops.serializers import InputSerializer

EVENTS_HELP = (
    'Topic patterns this channel receives (fnmatch), e.g. ["maintenance.*", "ratelimit.exceeded"]. '
    "Empty: only notifications sent to the channel directly."
)


class NotificationChannelSerializer(serializers.ModelSerializer):
    """A channel as lists and details show it: never its secret."""

    class Meta:
        model = NotificationChannel
        fields = [
            "id",
            "name",
            "channel_type",
            "target",
            "active",
            "description",
            "events",
            "failing_since",
            "disabled_reason",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class NotificationChannelWithSecretSerializer(NotificationChannelSerializer):
    """Output of create and rotate-secret: the only place the signing secret appears."""

    secret = serializers.SerializerMethodField(
        help_text="Standard Webhooks signing secret (whsec_...). Shown once: store it now."
    )

    class Meta(NotificationChannelSerializer.Meta):
        fields = [*NotificationChannelSerializer.Meta.fields, "secret"]
        read_only_fields = fields

    def get_secret(self, obj: NotificationChannel) -> str:
        return self.context["secret"]


class EventsField(serializers.ListField):
    child = serializers.CharField(max_length=128)

    def to_internal_value(self, data: Any) -> list[str]:
        value = super().to_internal_value(data)
        error = validators.events_error(value)
        if error:
            raise serializers.ValidationError(error)
        return value


class NotificationChannelCreateSerializer(InputSerializer):
    name = serializers.CharField(max_length=256)
    channel_type = serializers.ChoiceField(choices=NotificationChannel.ChannelType.choices)
    target = serializers.CharField(
        max_length=512, trim_whitespace=False, help_text="Email address, http(s) URL or E.164."
    )
    description = serializers.CharField(required=False, allow_blank=True, default="")
    active = serializers.BooleanField(required=False, default=True)
    events = EventsField(required=False, default=list, help_text=EVENTS_HELP)


class NotificationChannelUpdateSerializer(InputSerializer):
    name = serializers.CharField(max_length=256, required=False)
    channel_type = serializers.ChoiceField(
        choices=NotificationChannel.ChannelType.choices, required=False
    )
    target = serializers.CharField(max_length=512, trim_whitespace=False, required=False)
    description = serializers.CharField(required=False, allow_blank=True)
    active = serializers.BooleanField(required=False)
    events = EventsField(required=False, help_text=EVENTS_HELP)


class NotificationOutboxSerializer(serializers.ModelSerializer):
    channel_id = serializers.IntegerField(read_only=True)

    class Meta:
        model = NotificationOutbox
        fields = [
            "id",
            "message_id",
            "channel_id",
            "topic",
            "subject",
            "body",
            "payload",
            "status",
            "attempts",
            "last_error",
            "next_attempt_at",
            "sent_at",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class NotificationOutboxCreateSerializer(InputSerializer):
    text_limits = {"body": MAX_BODY_LENGTH}
    json_limits = {"payload": MAX_PAYLOAD_BYTES}

    channel_id = serializers.IntegerField()
    subject = serializers.CharField(max_length=512)
    body = serializers.CharField(
        required=False, allow_blank=True, default="", help_text="At most 65,536 characters."
    )
    payload = serializers.DictField(
        required=False, default=dict, help_text="Any JSON object (at most 64 KiB encoded)."
    )
