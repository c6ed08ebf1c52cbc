"""Retention's box on the admin index and its section of the security snapshot."""

from typing import Any

from django.db.models import OuterRef, Subquery

from retention import modes
from retention.models import DataRetentionPolicy, PurgeRun
from valhalla_ops import registry

LEVELS: dict[str, str] = {
    PurgeRun.Status.COMPLETED: "ok",
    PurgeRun.Status.RUNNING: "ok",
    PurgeRun.Status.SCHEDULED: "ok",
    PurgeRun.Status.INTERRUPTED: "warning",
}


def last_runs() -> dict[str, PurgeRun]:
    """The latest real purge of each policy's category (two queries)."""
    latest = (
        PurgeRun.objects.real()
        .filter(category=OuterRef("category"))
        .order_by("-started_at", "-id")
        .values("pk")[:1]
    )
    ids = DataRetentionPolicy.objects.annotate(last_run=Subquery(latest)).values_list(
        "last_run", flat=True
    )
    return {run.category: run for run in PurgeRun.objects.filter(pk__in=[i for i in ids if i])}


def dashboard_rows() -> list[tuple[str, Any, str]]:
    runs = last_runs()
    rows: list[tuple[str, Any, str]] = []
    if not modes.purges_allowed():
        rows.append(("Purges", f"paused ({modes.current_mode()} mode)", "warning"))
    for policy in DataRetentionPolicy.objects.all():
        run = runs.get(policy.category)
        last = (
            f"last purge {run.started_at:%Y-%m-%d %H:%M}: {run.deleted} deleted ({run.status})"
            if run
            else "never purged"
        )
        state = f"{policy.days_to_keep} days" if policy.enabled else "disabled"
        level = LEVELS.get(run.status, "error") if run else "ok"
        rows.append((policy.category, f"{state}; {last}", level))
    unmanaged = len(set(registry.retention_categories.names()) - {row[0] for row in rows})
    if unmanaged:
        rows.append(("categories kept forever (no policy)", unmanaged, "warning"))
    return rows


def snapshot_section() -> dict[str, Any]:
    runs = last_runs()
    policies = {
        policy.category: {
            "days_to_keep": policy.days_to_keep,
            "enabled": policy.enabled,
            "last_purge_at": runs[policy.category].started_at.isoformat()
            if policy.category in runs
            else None,
            "last_purge_status": runs[policy.category].status if policy.category in runs else None,
        }
        for policy in DataRetentionPolicy.objects.all()
    }
    unmanaged = sorted(set(registry.retention_categories.names()) - set(policies))
    return {
        "purges_paused": not modes.purges_allowed(),
        "policies": policies,
        "categories_without_policy": unmanaged,
    }
