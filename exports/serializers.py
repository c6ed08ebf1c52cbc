from rest_framework import serializers

from exports.models import ExportJob
from valhalla_ops.serializers import InputSerializer


class ExportJobSerializer(serializers.ModelSerializer):
    class Meta:
        model = ExportJob
        fields = [
            "id",
            "job_type",
            "filter_params",
            "status",
            "storage_url",
            "error_message",
            "requested_by",
            "requested_by_actor",
            "row_count",
            "rows_written",
            "attempts",
            "created_at",
            "updated_at",
            "started_at",
            "completed_at",
        ]
        read_only_fields = fields


class ExportJobCreateSerializer(InputSerializer):
    job_type = serializers.CharField(max_length=128, help_text="A registered export job type.")
    filter_params = serializers.DictField(
        required=False,
        default=dict,
        allow_null=True,
        help_text='Validated by the job type; every type takes "format": "csv" or "jsonl".',
    )
    requested_by = serializers.CharField(
        max_length=256,
        required=False,
        allow_blank=True,
        default="",
        help_text="Who asked for the export (free text); defaults to the caller.",
    )


class ExportJobStatusSerializer(InputSerializer):
    status = serializers.ChoiceField(choices=ExportJob.Status.choices)
    storage_url = serializers.RegexField(
        r"^([A-Za-z][A-Za-z0-9+.-]*://|/)\S+$",
        max_length=512,
        required=False,
        allow_blank=True,
        default="",
        error_messages={"invalid": "Enter a URL (scheme://...) or an absolute path."},
        help_text="Where the result is; required for status completed.",
    )
    error_message = serializers.CharField(
        required=False, allow_blank=True, default="", max_length=2000
    )


class ExportJobTypeSerializer(serializers.Serializer):
    name = serializers.CharField()
    description = serializers.CharField()
    # The metaclass moves declared fields off the class, so this does not shadow
    # Serializer.fields at run time; the stubs cannot express that.
    fields = serializers.ListField(child=serializers.CharField())  # type: ignore[assignment]
    permission = serializers.CharField()
