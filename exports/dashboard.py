"""The exports' box on the admin index and their section of the security snapshot."""

from datetime import timedelta
from typing import Any

from django.db.models import Count, Min, Q
from django.utils import timezone
from django.utils.timesince import timesince

from exports.models import ExportJob

Status = ExportJob.Status
STALE_PENDING = timedelta(minutes=30)


def counts() -> dict[str, Any]:
    day_ago = timezone.now() - timedelta(days=1)
    return ExportJob.objects.aggregate(
        pending=Count("id", filter=Q(status=Status.PENDING)),
        running=Count("id", filter=Q(status=Status.RUNNING)),
        failed=Count("id", filter=Q(status=Status.FAILED)),
        failed_last_24h=Count("id", filter=Q(status=Status.FAILED, updated_at__gte=day_ago)),
        completed_last_24h=Count(
            "id", filter=Q(status=Status.COMPLETED, completed_at__gte=day_ago)
        ),
        oldest_pending=Min("created_at", filter=Q(status=Status.PENDING)),
    )


def dashboard_rows() -> list[tuple[str, Any, str]]:
    found = counts()
    oldest = found["oldest_pending"]
    stale = oldest is not None and timezone.now() - oldest > STALE_PENDING
    return [
        ("Pending", found["pending"], "ok"),
        ("Running", found["running"], "ok"),
        (
            "Failed (last 24 h)",
            found["failed_last_24h"],
            "error" if found["failed_last_24h"] else "ok",
        ),
        (
            "Oldest pending",
            f"{timesince(oldest)} old" if oldest else "—",
            "warning" if stale else "ok",
        ),
    ]


def snapshot_section() -> dict[str, Any]:
    found = counts()
    oldest = found.pop("oldest_pending")
    found["oldest_pending"] = oldest.isoformat() if oldest else None
    found["requesters_last_24h"] = sorted(
        ExportJob.objects.filter(created_at__gte=timezone.now() - timedelta(days=1))
        .values_list("requested_by_actor", flat=True)
        .distinct()
    )
    return found
