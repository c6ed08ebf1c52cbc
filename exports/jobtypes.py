"""The export job types this project offers: what each exports and which params it takes.

Each type is an `ExportJobType` in `valhalla_ops.registry.export_job_types`; its params
serializer validates `filter_params` on create and again when the runner starts the job.
"""

from datetime import date, datetime, time, timedelta
from typing import Any

from django.apps import apps
from django.db import models
from django.utils import timezone
from rest_framework import serializers

from clients.models import ApiClient
from valhalla_ops import registry
from valhalla_ops.models import SystemLog
from valhalla_ops.registry import ExportJobType

FORMATS = ["csv", "jsonl"]


class ExportParamsSerializer(serializers.Serializer):
    """Params every job type takes; unknown keys are refused, not silently ignored."""

    format = serializers.ChoiceField(choices=FORMATS, default="csv")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(self.initial_data) - set(self.fields))
        if unknown:
            known = ", ".join(self.fields)
            raise serializers.ValidationError(
                {name: [f"Unknown parameter. Known: {known}."] for name in unknown}
            )
        return attrs


class DateRangeParamsSerializer(ExportParamsSerializer):
    start_date = serializers.DateField(required=False, help_text="First day, inclusive.")
    end_date = serializers.DateField(required=False, help_text="Last day, inclusive.")
    before_date = serializers.DateField(
        required=False, help_text="Only rows from before this day (what a retention purge takes)."
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs = super().validate(attrs)
        start, end = attrs.get("start_date"), attrs.get("end_date")
        if start and end and end < start:
            raise serializers.ValidationError(
                {"end_date": ["end_date must be on or after start_date."]}
            )
        return attrs


class AuditLogParamsSerializer(DateRangeParamsSerializer):
    category = serializers.CharField(required=False, max_length=64)
    level = serializers.ChoiceField(choices=SystemLog.Level.choices, required=False)


class ApiClientParamsSerializer(ExportParamsSerializer):
    active = serializers.BooleanField(required=False)
    client_type = serializers.CharField(required=False, max_length=64)


class SnapshotParamsSerializer(ExportParamsSerializer):
    scope = serializers.CharField(required=False, max_length=64)
    key = serializers.CharField(required=False, max_length=256)


def day_start(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


def within_dates(
    queryset: models.QuerySet, params: dict[str, Any], field: str = "created_at"
) -> models.QuerySet:
    """Rows from the start of start_date to the end of end_date (index-friendly bounds)."""
    if params.get("start_date"):
        queryset = queryset.filter(**{f"{field}__gte": day_start(params["start_date"])})
    if params.get("end_date"):
        end = day_start(params["end_date"] + timedelta(days=1))
        queryset = queryset.filter(**{f"{field}__lt": end})
    if params.get("before_date"):
        queryset = queryset.filter(**{f"{field}__lt": day_start(params["before_date"])})
    return queryset


AUDIT_FIELDS = [
    "id",
    "created_at",
    "level",
    "category",
    "action",
    "message",
    "actor_type",
    "actor_id",
    "actor",
    "target_type",
    "target_id",
    "target",
    "request_id",
    "client_ip",
    "context",
    "before",
    "after",
]


def audit_log_rows(params: dict[str, Any]) -> models.QuerySet:
    rows = within_dates(SystemLog.objects.all(), params)
    for name in ("category", "level"):
        if params.get(name):
            rows = rows.filter(**{name: params[name]})
    return rows.order_by("id").values(*AUDIT_FIELDS)


CLIENT_FIELDS = ["id", "name", "client_type", "key_prefix", "active", "created_at", "last_used_at"]


def api_client_rows(params: dict[str, Any]) -> models.QuerySet:
    rows = ApiClient.objects.all()
    if "active" in params:
        rows = rows.filter(active=params["active"])
    if params.get("client_type"):
        rows = rows.filter(client_type=params["client_type"])
    return rows.order_by("id").values(*CLIENT_FIELDS)


def snapshot_job_type(model: type[models.Model]) -> ExportJobType:
    """Rate-limit snapshots: every concrete column, filterable by scope and key."""
    fields = [field.attname for field in model._meta.concrete_fields]

    def rows(params: dict[str, Any]) -> models.QuerySet:
        found = model._default_manager.all()
        for name in ("scope", "key"):
            if params.get(name) and name in fields:
                found = found.filter(**{name: params[name]})
        return found.order_by("pk").values(*fields)

    return ExportJobType(
        name="ratelimit_snapshots_export",
        description="Rate-limit counters (snapshots), optionally for one scope and key.",
        params_serializer=SnapshotParamsSerializer,
        rows=rows,
        fields=fields,
        permission=f"{model._meta.app_label}.view_{model._meta.model_name}",
    )


def register_job_types() -> None:
    registry.export_job_types.register(
        "audit_log_export",
        ExportJobType(
            name="audit_log_export",
            description="Audit log (SystemLog) rows between start_date and end_date.",
            params_serializer=AuditLogParamsSerializer,
            rows=audit_log_rows,
            fields=AUDIT_FIELDS,
            permission="valhalla_ops.view_systemlog",
        ),
    )
    registry.export_job_types.register(
        "api_clients_export",
        ExportJobType(
            name="api_clients_export",
            description="API clients (no key material: only the displayed key prefix).",
            params_serializer=ApiClientParamsSerializer,
            rows=api_client_rows,
            fields=CLIENT_FIELDS,
            permission="clients.view_apiclient",
        ),
    )
    try:  # the rate-limit app may not (yet) offer snapshots
        snapshot_model = apps.get_model("ratelimits", "RateLimitSnapshot")
    except LookupError:
        return
    registry.export_job_types.register(
        "ratelimit_snapshots_export", snapshot_job_type(snapshot_model)
    )
