"""`{% maintenance_banner %}`: the mode on every admin page while it is not normal."""

from typing import Any

from django import template

from maintenance.state import StateUnavailable, current_state

register = template.Library()


@register.inclusion_tag("maintenance/banner.html")
def maintenance_banner() -> dict[str, Any]:
    """Reads the cached state: no query on a normal request."""
    try:
        state = current_state()
    except StateUnavailable:
        return {"show": True, "mode": "unknown"}
    return {
        "show": not state.is_normal,
        "mode": state.mode,
        "reason": state.reason,
        "since": state.since,
    }
