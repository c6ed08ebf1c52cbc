from typing import TYPE_CHECKING, Any

from rest_framework import serializers

from maintenance.models import MaintenanceState, MaintenanceWindow, Mode, WindowMode
from maintenance.services import VALID_MODES
from valhalla_ops.serializers import InputSerializer

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise

INVALID_MODE: "dict[str, StrOrPromise]" = {
    "invalid_choice": f'Unknown mode "{{input}}". Valid modes: {VALID_MODES}.'
}
INVALID_WINDOW_MODE: "dict[str, StrOrPromise]" = {
    "invalid_choice": f'"{{input}}" is not a window mode. Use one of: {", ".join(WindowMode.values)}.'
}


class ModeField(serializers.ChoiceField):
    """A mode; a bad one is refused with the list of valid modes."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(choices=Mode.choices, error_messages=INVALID_MODE, **kwargs)


class WindowModeField(serializers.ChoiceField):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(choices=WindowMode.choices, error_messages=INVALID_WINDOW_MODE, **kwargs)


class MaintenanceStateSerializer(serializers.ModelSerializer):
    mode = ModeField(read_only=True)

    class Meta:
        model = MaintenanceState
        fields = ["mode", "reason", "updated_at", "since", "changed_by", "window"]
        read_only_fields = fields


class MaintenanceStateSetSerializer(InputSerializer):
    mode = ModeField()
    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=1000)


class MaintenanceWindowSerializer(serializers.ModelSerializer):
    mode = WindowModeField(read_only=True)

    class Meta:
        model = MaintenanceWindow
        fields = [
            "id",
            "starts_at",
            "ends_at",
            "description",
            "active",
            "mode",
            "started_at",
            "ended_at",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class MaintenanceWindowCreateSerializer(InputSerializer):
    starts_at = serializers.DateTimeField()
    ends_at = serializers.DateTimeField()
    description = serializers.CharField(required=False, allow_blank=True, default="")
    active = serializers.BooleanField(required=False, default=True)
    mode = WindowModeField(
        required=False,
        default=WindowMode.MAINTENANCE,
        help_text="The mode the window switches to at its start (default maintenance).",
    )

    def validate(self, attrs: dict) -> dict:
        if attrs["ends_at"] <= attrs["starts_at"]:
            raise serializers.ValidationError({"ends_at": ["ends_at must be after starts_at."]})
        return attrs


class MaintenanceWindowUpdateSerializer(InputSerializer):
    """Every field optional; the service checks the resulting start and end."""

    starts_at = serializers.DateTimeField(required=False)
    ends_at = serializers.DateTimeField(required=False)
    description = serializers.CharField(required=False, allow_blank=True)
    active = serializers.BooleanField(required=False)
    mode = WindowModeField(required=False)
