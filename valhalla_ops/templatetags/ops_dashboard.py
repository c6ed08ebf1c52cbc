"""The admin index's at-a-glance boxes, one per registered dashboard section."""

import logging

from django import template

from valhalla_ops import registry

logger = logging.getLogger(__name__)
register = template.Library()


@register.simple_tag
def ops_dashboard() -> list[dict]:
    sections = sorted(registry.dashboard_sections.items(), key=lambda item: item[1].order)
    boxes = []
    for name, section in sections:
        try:
            rows = section.render()
        except Exception:  # one broken box must not break the admin index
            logger.exception("dashboard section %s failed", name)
            rows = [("status", "unavailable", "error")]
        boxes.append({"name": name, "title": section.title, "rows": rows})
    return boxes
