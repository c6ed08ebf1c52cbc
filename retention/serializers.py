from rest_framework import serializers

from retention.models import DataRetentionPolicy, PurgeRun
from retention.services import MAX_DAYS
from valhalla_ops.serializers import InputSerializer


class DataRetentionPolicySerializer(serializers.ModelSerializer):
    class Meta:
        model = DataRetentionPolicy
        fields = [
            "id",
            "category",
            "days_to_keep",
            "enabled",
            "description",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class DataRetentionPolicyCreateSerializer(InputSerializer):
    """Create or update by category; on update, fields left out keep their value."""

    category = serializers.CharField(max_length=128, help_text="A registered category.")
    days_to_keep = serializers.IntegerField(min_value=1, max_value=MAX_DAYS)
    enabled = serializers.BooleanField(required=False, help_text="Default true on create.")
    description = serializers.CharField(required=False, allow_blank=True, max_length=2000)


class PurgeRunSerializer(serializers.ModelSerializer):
    class Meta:
        model = PurgeRun
        fields = [
            "id",
            "category",
            "dry_run",
            "status",
            "cutoff",
            "deleted",
            "cascaded",
            "batches",
            "resumes",
            "error",
            "triggered_by",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields
