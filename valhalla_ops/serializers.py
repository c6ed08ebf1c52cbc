from rest_framework import serializers

from valhalla_ops.models import SystemLog


class SystemLogSerializer(serializers.ModelSerializer):
    class Meta:
        model = SystemLog
        fields = [
            "id",
            "created_at",
            "level",
            "category",
            "action",
            "message",
            "context",
            "before",
            "after",
            "actor_type",
            "actor_id",
            "actor",
            "target_type",
            "target_id",
            "target",
            "request_id",
            "client_ip",
        ]
        read_only_fields = fields


class AdminActionRequestSerializer(serializers.Serializer):
    action = serializers.CharField(max_length=100)
    params = serializers.DictField(required=False, default=dict)


class AdminActionResponseSerializer(serializers.Serializer):
    ok = serializers.BooleanField()
    action = serializers.CharField()
    # The metaclass moves declared fields off the class, so this does not shadow
    # Serializer.data at run time; the stubs cannot express that.
    data = serializers.JSONField(allow_null=True)  # type: ignore[assignment]
    error = serializers.CharField(allow_null=True)
