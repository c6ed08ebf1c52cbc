"""What notify adds to the ops console: retrying failed notifications in bulk."""

from datetime import timedelta
from typing import Any

from django.utils import timezone
from rest_framework import serializers

from notify import services
from notify.models import NotificationChannel, NotificationOutbox
from valhalla_ops.audit import Actor
from valhalla_ops.ops import RUN_ADMIN_OPS, OpsAction

MAX_LIMIT = 10_000


class RetryFailedParams(serializers.Serializer):
    channel = serializers.PrimaryKeyRelatedField(
        queryset=NotificationChannel.objects.all(),
        required=False,
        help_text="Only this channel's notifications (its id).",
    )
    failed_within_hours = serializers.IntegerField(
        min_value=1,
        required=False,
        help_text="Only notifications that failed in the last N hours.",
    )
    limit = serializers.IntegerField(
        min_value=1, max_value=MAX_LIMIT, default=1000, help_text="Retry at most this many."
    )
    dry_run = serializers.BooleanField(default=False, help_text="Count, retry nothing.")


def retry_failed_notifications(*, actor: Actor, params: dict[str, Any]) -> dict[str, Any]:
    """Give failed notifications a fresh set of attempts; each retry is audited."""
    failed = NotificationOutbox.objects.filter(status=NotificationOutbox.Status.FAILED)
    if params.get("channel") is not None:
        failed = failed.filter(channel=params["channel"])
    if params.get("failed_within_hours"):
        since = timezone.now() - timedelta(hours=params["failed_within_hours"])
        failed = failed.filter(updated_at__gte=since)
    matched = failed.count()
    ids = list(failed.order_by("pk").values_list("pk", flat=True)[: params["limit"]])
    if not params["dry_run"]:
        for pk in ids:
            services.retry_notification(actor=actor, notification=NotificationOutbox(pk=pk))
    return {
        "matched": matched,
        "retried": 0 if params["dry_run"] else len(ids),
        "ids": ids,
        "dry_run": params["dry_run"],
    }


ACTIONS = {
    "retry_failed_notifications": OpsAction(
        retry_failed_notifications,
        "Retry failed notifications, by channel and by when they failed, with a count.",
        mutating=True,
        permission=(RUN_ADMIN_OPS, "notify.change_notificationoutbox"),
        params=RetryFailedParams,
    ),
}
