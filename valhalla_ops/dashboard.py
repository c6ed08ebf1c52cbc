"""The base's own dashboard box: recent audit activity."""

from datetime import timedelta

from django.db.models import Count, Q
from django.utils import timezone

from valhalla_ops.models import SystemLog


def audit_rows() -> list[tuple[str, object, str]]:
    since = timezone.now() - timedelta(hours=24)
    counts = SystemLog.objects.filter(created_at__gte=since).aggregate(
        changes=Count("id"),
        warnings=Count("id", filter=Q(level__in=["warning", "error", "critical"])),
    )
    latest = SystemLog.objects.only("action", "actor", "created_at").first()
    rows = [
        ("changes, last 24 h", counts["changes"], "info"),
        (
            "warnings and errors, last 24 h",
            counts["warnings"],
            "warning" if counts["warnings"] else "ok",
        ),
    ]
    if latest is not None:
        rows.append(("latest", f"{latest.action} by {latest.actor}", "info"))
    return rows
