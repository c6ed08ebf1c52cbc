"""What retention adds to the ops console: a preview of what a purge would delete now."""

from datetime import timedelta
from typing import Any

from django.utils import timezone
from rest_framework import serializers

from retention import modes, services
from retention.models import DataRetentionPolicy
from retention.purger import expired_rows
from valhalla_ops.audit import Actor
from valhalla_ops.ops import VIEW_ADMIN_OPS, OpsAction


class RetentionPreviewParams(serializers.Serializer):
    category = serializers.CharField(required=False, help_text="Only this category.")

    def validate_category(self, value: str) -> str:
        services.require_category(value)
        return value


def retention_preview(*, actor: Actor, params: dict[str, Any]) -> dict[str, Any]:
    """Per registered category: its policy, its cutoff, and how many rows a purge would delete."""
    names = [params["category"]] if params.get("category") else services.registered_categories()
    policies = {policy.category: policy for policy in DataRetentionPolicy.objects.all()}
    now = timezone.now()
    return {
        "purges_allowed": modes.purges_allowed(),
        "categories": [_preview(name, policies.get(name), now) for name in names],
    }


def _preview(name: str, policy: DataRetentionPolicy | None, now: Any) -> dict[str, Any]:
    row: dict[str, Any] = {"category": name, "policy": None, "cutoff": None, "would_delete": 0}
    if policy is None:
        return row  # no policy: nothing is ever purged
    cutoff = now - timedelta(days=policy.days_to_keep)
    row["policy"] = {"days_to_keep": policy.days_to_keep, "enabled": policy.enabled}
    row["cutoff"] = cutoff.isoformat()
    if policy.enabled:
        row["would_delete"] = expired_rows(services.require_category(name), cutoff).count()
    return row


ACTIONS = {
    "retention_preview": OpsAction(
        retention_preview,
        "Per category, what a purge would delete now (nothing without an enabled policy).",
        permission=(VIEW_ADMIN_OPS, "retention.view_dataretentionpolicy"),
        params=RetentionPreviewParams,
    ),
}
