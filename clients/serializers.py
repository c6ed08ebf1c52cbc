from django.contrib.auth.models import Group
from rest_framework import serializers

from clients import keys
from clients.models import ApiClient
from valhalla_ops.serializers import InputSerializer


class GroupNamesField(serializers.SlugRelatedField):
    """Groups by name. A NUL byte is refused before the lookup (PostgreSQL cannot compare it)."""

    default_error_messages = {"null_characters_not_allowed": "Null characters are not allowed."}

    def __init__(self, **kwargs) -> None:
        super().__init__(slug_field="name", queryset=Group.objects.all(), **kwargs)

    def to_internal_value(self, data: object) -> Group:
        if isinstance(data, str) and "\x00" in data:
            self.fail("null_characters_not_allowed")
        return super().to_internal_value(data)


class ApiClientSerializer(serializers.ModelSerializer):
    groups: serializers.SlugRelatedField[Group] = serializers.SlugRelatedField(
        slug_field="name", many=True, read_only=True
    )

    class Meta:
        model = ApiClient
        fields = [
            "id",
            "name",
            "client_type",
            "key_prefix",
            "active",
            "description",
            "groups",
            "expires_at",
            "last_used_at",
            "previous_key_expires_at",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class ApiClientWithKeySerializer(ApiClientSerializer):
    """Output of create and rotate: the only place the plaintext key ever appears."""

    api_key = serializers.SerializerMethodField()

    class Meta(ApiClientSerializer.Meta):
        fields = [*ApiClientSerializer.Meta.fields, "api_key"]
        read_only_fields = fields

    def get_api_key(self, obj: ApiClient) -> str:
        return self.context["api_key"]


class ApiClientCreateSerializer(InputSerializer):
    name = serializers.CharField(max_length=150)
    client_type = serializers.RegexField(
        r"^[A-Za-z0-9_.-]{1,64}$",
        max_length=64,
        error_messages={"invalid": "Use 1-64 letters, digits, '.', '_' or '-'."},
    )
    description = serializers.CharField(required=False, allow_blank=True, default="")
    api_key = serializers.CharField(
        required=False,
        write_only=True,
        min_length=keys.MIN_SUPPLIED_LENGTH,
        max_length=keys.MAX_KEY_LENGTH,
        help_text="Optional: a key of your own. Leave out to get a generated `vo_live_`/`vo_test_` key.",
    )
    groups = GroupNamesField(many=True, required=False, default=list)
    expires_at = serializers.DateTimeField(required=False, allow_null=True, default=None)
    active = serializers.BooleanField(required=False, default=True)


class ApiClientUpdateSerializer(InputSerializer):
    name = serializers.CharField(max_length=150, required=False)
    client_type = serializers.RegexField(r"^[A-Za-z0-9_.-]{1,64}$", max_length=64, required=False)
    description = serializers.CharField(required=False, allow_blank=True)
    groups = GroupNamesField(many=True, required=False)
    expires_at = serializers.DateTimeField(required=False, allow_null=True)


class ApiClientRotateSerializer(InputSerializer):
    grace_seconds = serializers.IntegerField(
        required=False,
        default=0,
        min_value=0,
        max_value=30 * 24 * 3600,
        help_text="How long the old key keeps working (default 0: it stops at once).",
    )
