"""The notify box on the admin index and its section of the security snapshot."""

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db.models import Count, Min, Q
from django.utils import timezone
from django.utils.timesince import timesince

from notify.models import NotificationChannel, NotificationOutbox
from valhalla_ops.registry import DashboardChart, DashboardSection

STALE_PENDING = timedelta(minutes=15)


def outbox_rows() -> list[tuple[str, Any, str]]:
    now = timezone.now()
    pending = Q(status=NotificationOutbox.Status.PENDING)
    counts = NotificationOutbox.objects.aggregate(
        pending=Count("id", filter=pending),
        failed=Count("id", filter=Q(status=NotificationOutbox.Status.FAILED)),
        sent_24h=Count("id", filter=Q(status="sent", sent_at__gte=now - timedelta(hours=24))),
        oldest=Min("created_at", filter=pending),
    )
    oldest = counts["oldest"]
    stale = oldest is not None and now - oldest > STALE_PENDING
    disabled = NotificationChannel.objects.exclude(disabled_reason="").filter(active=False).count()
    return [
        ("pending", counts["pending"], "info"),
        ("failed", counts["failed"], "warning" if counts["failed"] else "ok"),
        ("sent, last 24 h", counts["sent_24h"], "info"),
        ("oldest pending", timesince(oldest, now) if oldest else "-", "warning" if stale else "ok"),
        ("channels disabled by failures", disabled, "warning" if disabled else "ok"),
    ]


SECTION = DashboardSection("Notifications", outbox_rows, order=400)


def backlog_last_hour() -> list[int]:
    """Notifications waiting at the end of each of the last 60 minutes, from the outbox rows.

    A row waited at moment t if it was created by t and was still pending then: it is pending
    now, or it was sent after t, or it failed (its last update) after t. One query.
    """
    now = timezone.now().replace(second=0, microsecond=0) + timedelta(minutes=1)
    moments = [now - timedelta(minutes=60 - index) for index in range(1, 61)]
    hour_ago = moments[0]
    pending = Q(status=NotificationOutbox.Status.PENDING)
    failed = Q(status=NotificationOutbox.Status.FAILED)
    rows = NotificationOutbox.objects.filter(
        pending | Q(sent_at__gt=hour_ago) | (failed & Q(updated_at__gt=hour_ago))
    )
    counts = rows.aggregate(
        **{
            f"m{index}": Count(
                "id",
                filter=Q(created_at__lte=moment)
                & (pending | Q(sent_at__gt=moment) | (failed & Q(updated_at__gt=moment))),
            )
            for index, moment in enumerate(moments)
        }
    )
    return [counts[f"m{index}"] for index in range(len(moments))]


BACKLOG_CHART = DashboardChart("Outbox backlog", backlog_last_hour, order=300)


def security_section() -> dict[str, Any]:
    """Where notifications go: channel counts, plain-http webhooks, the SSRF allow-list."""
    channels = NotificationChannel.objects.aggregate(
        total=Count("id"),
        active_channels=Count("id", filter=Q(active=True)),
        active_webhooks=Count("id", filter=Q(channel_type="webhook", active=True)),
        plain_http_webhooks=Count(
            "id", filter=Q(channel_type="webhook", active=True, target__startswith="http://")
        ),
        disabled_by_failures=Count("id", filter=Q(active=False) & ~Q(disabled_reason="")),
    )
    since = timezone.now() - timedelta(hours=24)
    failed = NotificationOutbox.objects.filter(status="failed", updated_at__gte=since).count()
    return {
        "channels": channels,
        "failed_last_24h": failed,
        "webhook_allowed_private_networks": list(settings.NOTIFY_WEBHOOK_ALLOWED_NETWORKS),
        "sms_backend": settings.NOTIFY_SMS_BACKEND,
    }
