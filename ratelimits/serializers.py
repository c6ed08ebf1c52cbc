from rest_framework import serializers

from ratelimits.keys import MAX_KEY_LENGTH, InvalidKey, normalize_key
from ratelimits.models import RateLimitRule, RateLimitSnapshot
from valhalla_ops.serializers import InputSerializer


class RateLimitRuleSerializer(serializers.ModelSerializer):
    class Meta:
        model = RateLimitRule
        fields = [
            "id",
            "scope",
            "key",
            "window_seconds",
            "max_requests",
            "enabled",
            "description",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class RateLimitRuleCreateSerializer(InputSerializer):
    """Input of POST and PUT (every field), and of PATCH (partial)."""

    scope = serializers.ChoiceField(choices=RateLimitRule.Scope.choices)
    key = serializers.CharField(
        max_length=MAX_KEY_LENGTH,
        help_text="IP or CIDR, API client id, user id, path prefix, or '*' (global: only '*').",
    )
    window_seconds = serializers.IntegerField(min_value=1, max_value=2**31 - 1, default=60)
    max_requests = serializers.IntegerField(min_value=1, max_value=2**31 - 1)
    enabled = serializers.BooleanField(default=True)
    description = serializers.CharField(allow_blank=True, default="")

    def validate(self, attrs: dict) -> dict:
        if "scope" not in attrs and "key" not in attrs:
            return attrs
        rule = self.instance
        scope = attrs.get("scope", rule.scope if rule else None)
        key = attrs.get("key", rule.key if rule else None)
        try:
            attrs["key"] = normalize_key(scope, key)
        except InvalidKey as error:
            raise serializers.ValidationError({"key": [str(error)]}) from None
        return attrs


class RateLimitSnapshotSerializer(serializers.ModelSerializer):
    rule_id = serializers.IntegerField(read_only=True, allow_null=True)

    class Meta:
        model = RateLimitSnapshot
        fields = [
            "id",
            "rule_id",
            "scope",
            "key",
            "window_seconds",
            "max_requests",
            "current_count",
            "window_started_at",
            "keys_over",
            "top_offenders",
            "report",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields
