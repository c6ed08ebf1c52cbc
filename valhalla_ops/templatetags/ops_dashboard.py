"""The admin index's at-a-glance boxes, one per registered dashboard section."""

import logging

from django import template

from valhalla_ops import dashboard, registry

logger = logging.getLogger(__name__)
register = template.Library()


@register.simple_tag
def ops_dashboard() -> list[dict]:
    return dashboard.sections()


CHART_WIDTH = 240
CHART_HEIGHT = 48


@register.simple_tag
def ops_charts() -> list[dict]:
    """The last hour of each registered chart, as the points of an SVG polyline."""
    charts = sorted(registry.dashboard_charts.items(), key=lambda item: item[1].order)
    rendered = []
    for name, chart in charts:
        try:
            values = chart.collect()
        except Exception:  # one broken chart must not break the admin index
            logger.exception("dashboard chart %s failed", name)
            values = []
        rendered.append(
            {
                "name": name,
                "title": chart.title,
                "values": values,
                "total": sum(values),
                "peak": max(values, default=0),
                "last": values[-1] if values else 0,
                "points": polyline(values),
                "width": CHART_WIDTH,
                "height": CHART_HEIGHT,
            }
        )
    return rendered


def polyline(values: list[int]) -> str:
    """x from 0 to CHART_WIDTH, y from the bottom (0) to the top (the peak), 2 px inside."""
    if not values:
        return ""
    peak = max(values) or 1
    step = CHART_WIDTH / max(len(values) - 1, 1)
    usable = CHART_HEIGHT - 4
    return " ".join(
        f"{index * step:.1f},{CHART_HEIGHT - 2 - value / peak * usable:.1f}"
        for index, value in enumerate(values)
    )
