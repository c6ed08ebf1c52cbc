import json
from collections.abc import Mapping
from typing import Any, ClassVar

from rest_framework import serializers

from valhalla_ops.limits import MAX_JSON_FIELD_BYTES, MAX_TEXT_LENGTH
from valhalla_ops.models import SystemLog


class InputSerializer(serializers.Serializer):
    """The base of every API input: unknown fields are refused, and every value is bounded.

    A text field without a `max_length` of its own takes at most MAX_TEXT_LENGTH characters
    (`text_limits` names exceptions); a JSON object or list at most MAX_JSON_FIELD_BYTES
    encoded (`json_limits` names exceptions). Both are checked on the parsed value, so a field message names the field.
    """

    text_limits: ClassVar[dict[str, int]] = {}
    json_limits: ClassVar[dict[str, int]] = {}

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, Mapping):
            unknown = sorted(
                set(data) - {name for name, f in self.fields.items() if not f.read_only}
            )
            if unknown:
                raise serializers.ValidationError(
                    {name: ["Unknown field: this endpoint does not take it."] for name in unknown}
                )
        values = super().to_internal_value(data)
        errors = {name: [problem] for name, problem in self._oversized(values).items()}
        if errors:
            raise serializers.ValidationError(errors)
        return values

    def _oversized(self, values: Mapping[str, Any]) -> dict[str, str]:
        problems = {}
        for name, value in values.items():
            field = self.fields.get(name)
            if isinstance(value, str) and getattr(field, "max_length", None) is None:
                limit = self.text_limits.get(name, MAX_TEXT_LENGTH)
                if len(value) > limit:
                    problems[name] = f"Ensure this field has no more than {limit} characters."
            elif isinstance(value, dict | list):
                limit = self.json_limits.get(name, MAX_JSON_FIELD_BYTES)
                size = len(json.dumps(value, default=str).encode())
                if size > limit:
                    problems[name] = (
                        f"Ensure this value is at most {limit} bytes as JSON (it is {size})."
                    )
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
