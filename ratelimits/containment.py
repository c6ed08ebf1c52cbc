"""Incident containment with rate limits: what may change while the system is locked down.

In read-only or maintenance mode, holders of the containment permission may create a rule,
enable one, or tighten one (fewer requests, or the same over a longer window); nothing that
loosens a limit, moves it to other callers, or deletes it.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ratelimits.models import RateLimitRule
from valhalla_ops import writeguard


def tightens(rule: RateLimitRule, changes: dict[str, Any]) -> bool:
    """Whether applying `changes` to `rule` never lets more requests through."""
    for name in ("scope", "key"):
        if name in changes and changes[name] != getattr(rule, name):
            return False
    if rule.enabled and changes.get("enabled", True) is False:
        return False
    if changes.get("max_requests", rule.max_requests) > rule.max_requests:
        return False
    return changes.get("window_seconds", rule.window_seconds) >= rule.window_seconds


@contextmanager
def contain_change(request: Any, rule: RateLimitRule, changes: dict[str, Any]) -> Iterator[None]:
    """Run a rule change; in a lockdown only a tightening one, by a holder of the permission."""
    if writeguard.lockdown_mode(request) is not None and not tightens(rule, changes):
        raise writeguard.refuse(request)
    with writeguard.contain(request):
        yield
