"""Admin ops action `block`: a rate-limit rule that all but stops a caller, for incidents.

It runs while the system is read-only or in maintenance for holders of the containment
permission (`lockdown=CONTAIN`); the rule is created through the rate-limit services.
"""

from typing import Any

from rest_framework import serializers
from rest_framework.exceptions import PermissionDenied

from ratelimits import services
from ratelimits.serializers import RateLimitRuleCreateSerializer, RateLimitRuleSerializer
from valhalla_ops.audit import Actor
from valhalla_ops.ops import CONTAIN, OpsAction

ADD_PERM = "ratelimits.add_ratelimitrule"


class BlockParamsSerializer(RateLimitRuleCreateSerializer):
    """A rule's fields, with defaults that block: one request per hour."""

    window_seconds = serializers.IntegerField(min_value=1, max_value=2**31 - 1, default=3600)
    max_requests = serializers.IntegerField(min_value=1, max_value=2**31 - 1, default=1)
    description = serializers.CharField(allow_blank=True, default="Blocked by admin ops")


def block(*, actor: Actor, params: dict[str, Any]) -> dict[str, Any]:
    """Params {"scope", "key", "max_requests" = 1, "window_seconds" = 3600, "description"}."""
    if not actor.has_perm(ADD_PERM):
        raise PermissionDenied(f"This action needs the {ADD_PERM} permission.")
    serializer = BlockParamsSerializer(data=params)
    serializer.is_valid(raise_exception=True)
    rule = services.create_rule(actor=actor, **serializer.validated_data)
    return dict(RateLimitRuleSerializer(rule).data)


ACTIONS = {
    "block": OpsAction(
        block,
        'Create a rate-limit rule that blocks a caller: params {"scope": "ip|api_key|user|'
        'path|global", "key", "max_requests": 1, "window_seconds": 3600, "description"}. '
        "Allowed in a lockdown for holders of the containment permission.",
        mutating=True,
        lockdown=CONTAIN,
    ),
}
