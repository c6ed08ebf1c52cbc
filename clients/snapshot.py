"""The clients' section of the security snapshot and of the admin dashboard."""

from datetime import timedelta

from django.db.models import Count, Q
from django.utils import timezone

from clients.models import ApiClient


def clients_section() -> dict[str, int]:
    now = timezone.now()
    month_ago = now - timedelta(days=30)
    # A client created less than 30 days ago has not had the chance to be unused for 30 days.
    stale = Q(created_at__lt=month_ago) & (
        Q(last_used_at__isnull=True) | Q(last_used_at__lt=month_ago)
    )
    # Aliases must not shadow field names (Count(filter=Q(active=...)) would resolve to the alias).
    counts = ApiClient.objects.aggregate(
        n_total=Count("id"),
        n_active=Count("id", filter=Q(active=True)),
        n_expired=Count("id", filter=Q(expires_at__lte=now)),
        n_unused=Count("id", filter=Q(active=True) & stale),
        n_grace=Count("id", filter=Q(previous_key_expires_at__gt=now)),
    )
    return {
        "total": counts["n_total"],
        "active": counts["n_active"],
        "expired": counts["n_expired"],
        "active_unused_30_days": counts["n_unused"],
        "in_rotation_grace": counts["n_grace"],
    }


def dashboard_rows() -> list[tuple[str, object, str]]:
    section = clients_section()
    return [
        ("active clients", f"{section['active']} of {section['total']}", "info"),
        ("expired", section["expired"], "warning" if section["expired"] else "ok"),
        (
            "active but unused 30 days",
            section["active_unused_30_days"],
            "warning" if section["active_unused_30_days"] else "ok",
        ),
        ("old key still in grace", section["in_rotation_grace"], "info"),
    ]
