"""The retention categories whose data belongs to the base: the audit log and the admin log."""

from django.contrib.admin.models import LogEntry

from retention.models import PurgeRun
from valhalla_ops import registry
from valhalla_ops.models import SystemLog
from valhalla_ops.registry import RetentionCategory


def register_categories() -> None:
    for category in (
        RetentionCategory(
            name="audit_logs",
            description="The audit log (SystemLog): one row per state change.",
            queryset=SystemLog.objects.all,
            date_field="created_at",
        ),
        RetentionCategory(
            name="admin_log",
            description="Django admin's change history (LogEntry).",
            queryset=LogEntry.objects.all,
            date_field="action_time",
        ),
        RetentionCategory(
            name="purge_runs",
            description="The purger's own records (PurgeRun); each purge also has an audit row.",
            queryset=PurgeRun.objects.all,
            date_field="started_at",
            protected=PurgeRun.objects.active,
        ),
    ):
        registry.retention_categories.register(category.name, category)
