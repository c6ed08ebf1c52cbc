"""The admin index's "At a glance" boxes (one per registered section), and the base's own box."""

import logging
from datetime import timedelta
from typing import Any

from django.db.models import Count, Q
from django.utils import timezone

from valhalla_ops import registry
from valhalla_ops.models import SystemLog

logger = logging.getLogger(__name__)


def sections() -> list[dict[str, Any]]:
    """Every registered section, rendered in order; a broken one shows as unavailable."""
    ordered = sorted(registry.dashboard_sections.items(), key=lambda item: item[1].order)
    boxes = []
    for name, section in ordered:
        try:
            rows = section.render()
        except Exception:  # one broken box must not break the others
            logger.exception("dashboard section %s failed", name)
            rows = [("status", "unavailable", "error")]
        boxes.append({"name": name, "title": section.title, "rows": rows})
    return boxes


def dashboard_action(*, actor: object, params: dict[str, Any]) -> dict[str, Any]:
    """The admin index's "At a glance" as JSON: {section: {title, rows: [{label, value, level}]}}."""
    return {
        box["name"]: {
            "title": box["title"],
            "rows": [
                {"label": label, "value": _jsonable(value), "level": level}
                for label, value, level in box["rows"]
            ],
        }
        for box in sections()
    }


def _jsonable(value: object) -> object:
    return value if isinstance(value, int | float | str | bool) or value is None else str(value)


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
