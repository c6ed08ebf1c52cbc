import json
from collections.abc import Mapping
from typing import Any, ClassVar

from django.core.validators import MaxLengthValidator
from rest_framework import serializers

from valhalla_ops.limits import MAX_JSON_FIELD_BYTES, MAX_TEXT_LENGTH
from valhalla_ops.models import SystemLog


class InputSerializer(serializers.Serializer):
    """The base of every API input: unknown fields are refused, and every value is bounded.

    A text field without a `max_length` of its own gets MAX_TEXT_LENGTH (`text_limits` names
    exceptions), which the OpenAPI schema shows as maxLength; a JSON object or list takes at
    most MAX_JSON_FIELD_BYTES encoded (`json_limits` names exceptions).
    """

    text_limits: ClassVar[dict[str, int]] = {}
    json_limits: ClassVar[dict[str, int]] = {}

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        for name, field in fields.items():
            if isinstance(field, serializers.CharField) and field.max_length is None:
                limit = self.text_limits.get(name, MAX_TEXT_LENGTH)
                field.max_length = limit
                message = field.error_messages["max_length"].format(max_length=limit)
                field.validators.append(MaxLengthValidator(limit, message=message))
        return fields

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, Mapping):
            writable = {name for name, field in self.fields.items() if not field.read_only}
            unknown = sorted(set(data) - writable)
            if unknown:
                raise serializers.ValidationError(
                    {name: ["Unknown field: this endpoint does not take it."] for name in unknown}
                )
            oversized = self._oversized_json(data)
            if oversized:
                raise serializers.ValidationError(oversized)
        return super().to_internal_value(data)

    def _oversized_json(self, data: Mapping[str, Any]) -> dict[str, list[str]]:
        problems = {}
        for name, value in data.items():
            if isinstance(value, dict | list):
                limit = self.json_limits.get(name, MAX_JSON_FIELD_BYTES)
                size = len(json.dumps(value).encode())
                if size > limit:
                    problems[name] = [
                        f"Ensure this value is at most {limit} bytes as JSON (it is {size})."
                    ]
        return problems


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


class AdminActionRequestSerializer(InputSerializer):
    action = serializers.CharField(max_length=100)
    params = serializers.DictField(required=False, default=dict)


class AdminActionResponseSerializer(serializers.Serializer):
    ok = serializers.BooleanField()
    action = serializers.CharField()
    # The metaclass moves declared fields off the class, so this does not shadow
    # Serializer.data at run time; the stubs cannot express that.
    data = serializers.JSONField(allow_null=True)  # type: ignore[assignment]
    error = serializers.CharField(allow_null=True)
