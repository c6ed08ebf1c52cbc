"""The admin index's at-a-glance boxes, one per registered dashboard section."""

from django import template

from valhalla_ops import dashboard

register = template.Library()


@register.simple_tag
def ops_dashboard() -> list[dict]:
    return dashboard.sections()
