"""What rate limiting contributes to the admin index, the security snapshot and admin ops."""

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db.models import Count, Q, Sum
from django.utils import timezone

from ratelimits import services
from ratelimits.models import RateLimitRule, RateLimitSnapshot
from ratelimits.store import get_store
from valhalla_ops.audit import Actor
from valhalla_ops.exceptions import ServiceError

RECENT = timedelta(hours=24)
RECENT_ROWS = 5


def _rule_counts() -> dict[str, int]:
    return RateLimitRule.objects.aggregate(
        total=Count("id"), enabled=Count("id", filter=Q(enabled=True))
    )


def dashboard_rows() -> list[tuple[str, Any, str]]:
    """Rule counts and the latest counters that went over their limit."""
    counts = _rule_counts()
    recent = RateLimitSnapshot.objects.exceeded().since(timezone.now() - RECENT)
    rows: list[tuple[str, Any, str]] = [
        ("Rules", counts["total"], "info"),
        ("Enabled rules", counts["enabled"], "info" if counts["enabled"] else "warning"),
        ("Limits exceeded (24 h)", recent.count(), "warning" if recent.exists() else "ok"),
    ]
    for row in recent[:RECENT_ROWS]:
        label = f"{row.scope} {row.key}"
        value = f"{row.current_count}/{row.max_requests} per {row.window_seconds}s at {row.created_at:%H:%M:%S}"
        if row.keys_over:
            value += f", {row.keys_over} key(s) over"
        rows.append((label, value, "warning"))
    return rows


def security_section() -> dict[str, Any]:
    since = timezone.now() - RECENT
    recent = RateLimitSnapshot.objects.exceeded().since(since)
    top = (
        recent.values("scope", "key")
        .annotate(times=Count("id"))
        .order_by("-times", "scope", "key")[:10]
    )
    return {
        **{f"rules_{name}": value for name, value in _rule_counts().items()},
        "exceeded_last_24h": recent.count(),
        "keys_over_last_24h": recent.aggregate(total=Sum("keys_over"))["total"] or 0,
        "top_exceeded_last_24h": list(top),
        "store": get_store().name,
        "enabled": settings.RATELIMIT_ENABLED,
        "fail_open": settings.RATELIMIT_FAIL_OPEN,
    }


def snapshot_action(*, actor: Actor, params: dict[str, Any]) -> dict[str, Any]:
    """Admin ops `snapshot_ratelimits`: params `{"dry_run": bool}`."""
    dry_run = params.get("dry_run", False)
    if not isinstance(dry_run, bool):
        raise ServiceError("dry_run must be true or false.", field="dry_run")
    states = services.snapshot_counters(actor=actor, dry_run=dry_run)
    return {
        "dry_run": dry_run,
        "written": 0 if dry_run else len(states),
        "counters": [
            {"rule_id": s.rule.id, "scope": s.rule.scope, "key": s.value, "count": s.count}
            for s in states
        ],
    }
