"""Every change to rate-limit rules and snapshots: atomic, audited, cache invalidated on commit."""

import logging
from datetime import UTC, datetime
from typing import Any

from django.db import IntegrityError, transaction

from notify import services as notify_services
from ratelimits import ruleset
from ratelimits.keys import InvalidKey, normalize_key
from ratelimits.limiter import CounterState, Decision, Verdict, read_counters
from ratelimits.models import RateLimitRule, RateLimitSnapshot
from valhalla_ops import context
from valhalla_ops.audit import Actor, record_change
from valhalla_ops.exceptions import ServiceError
from valhalla_ops.models import SystemLog
from valhalla_ops.principals import SYSTEM
from valhalla_ops.writeguard import bookkeeping

logger = logging.getLogger(__name__)

EDITABLE = ("scope", "key", "window_seconds", "max_requests", "enabled", "description")


def snapshot(rule: RateLimitRule) -> dict[str, Any]:
    """The audited view of a rule."""
    return {name: getattr(rule, name) for name in EDITABLE}


def _validate(rule: RateLimitRule) -> None:
    if rule.scope not in RateLimitRule.Scope.values:
        choices = ", ".join(RateLimitRule.Scope.values)
        raise ServiceError(f"Unknown scope {rule.scope!r}; use one of {choices}.", field="scope")
    try:
        rule.key = normalize_key(rule.scope, rule.key)
    except InvalidKey as error:
        raise ServiceError(str(error), field="key") from None
    for name in ("window_seconds", "max_requests"):
        if getattr(rule, name) is None or getattr(rule, name) < 1:
            raise ServiceError("Must be at least 1.", field=name)
    duplicate = RateLimitRule.objects.filter(
        scope=rule.scope, key=rule.key, window_seconds=rule.window_seconds
    ).exclude(pk=rule.pk)
    if duplicate.exists():
        raise ServiceError(
            f"A {rule.scope} rule for {rule.key} with a {rule.window_seconds} s window "
            "already exists.",
            field="key",
        )


def _save(rule: RateLimitRule, **kwargs: Any) -> None:
    try:
        with transaction.atomic():  # a savepoint: a lost race on the unique key is a 400
            rule.save(**kwargs)
    except IntegrityError:
        raise ServiceError("A rule with this scope, key and window already exists.") from None


@transaction.atomic
def create_rule(
    *,
    actor: Actor,
    scope: str,
    key: str,
    max_requests: int,
    window_seconds: int = 60,
    enabled: bool = True,
    description: str = "",
) -> RateLimitRule:
    rule = RateLimitRule(
        scope=scope,
        key=key,
        max_requests=max_requests,
        window_seconds=window_seconds,
        enabled=enabled,
        description=description,
    )
    _validate(rule)
    _save(rule)
    record_change(
        actor=actor,
        action="ratelimits.create_rule",
        target=rule,
        after=snapshot(rule),
        message=f"Rate-limit rule {rule} created",
    )
    transaction.on_commit(ruleset.invalidate)
    return rule


@transaction.atomic
def update_rule(*, actor: Actor, rule: RateLimitRule, **fields: Any) -> RateLimitRule:
    """Change any of scope, key, window_seconds, max_requests, enabled, description."""
    unknown = set(fields) - set(EDITABLE)
    if unknown:
        raise ServiceError(f"Cannot change {', '.join(sorted(unknown))}.")
    rule = RateLimitRule.objects.select_for_update().get(pk=rule.pk)
    before = snapshot(rule)
    for name, value in fields.items():
        setattr(rule, name, value)
    _validate(rule)
    _save(rule, update_fields=sorted({*fields, "key", "updated_at"}))
    record_change(
        actor=actor,
        action="ratelimits.update_rule",
        target=rule,
        before=before,
        after=snapshot(rule),
        message=f"Rate-limit rule {rule} updated",
    )
    transaction.on_commit(ruleset.invalidate)
    return rule


@transaction.atomic
def delete_rule(*, actor: Actor, rule: RateLimitRule) -> None:
    record_change(
        actor=actor,
        action="ratelimits.delete_rule",
        target=rule,
        before=snapshot(rule),
        message=f"Rate-limit rule {rule} deleted",
    )
    rule.delete()
    transaction.on_commit(ruleset.invalidate)


# --- snapshots ------------------------------------------------------------------------------


def _timestamp(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def _new_snapshot(state: CounterState | Verdict) -> RateLimitSnapshot:
    rule = state.rule
    return RateLimitSnapshot(
        rule_id=rule.id,
        scope=rule.scope,
        key=state.value[:255],
        window_seconds=rule.window_seconds,
        max_requests=rule.max_requests,
        current_count=state.count,
        window_started_at=_timestamp(state.window_start),
    )


def record_exceeded(*, decision: Decision) -> list[RateLimitSnapshot]:
    """One snapshot and one `ratelimit.exceeded` event per counter that just went over.

    Bookkeeping of a request: allowed in read-only mode, and a failure here is logged, never
    raised, so it cannot turn the 429 into a 500.
    """
    written = []
    for verdict in decision.first_over:
        try:
            written.append(_record_one_exceeded(verdict))
        except Exception:
            logger.exception("could not record rate-limit excess of rule %s", verdict.rule.id)
    return written


def _record_one_exceeded(verdict: Verdict) -> RateLimitSnapshot:
    row = _new_snapshot(verdict)
    with bookkeeping(), transaction.atomic():
        if not RateLimitRule.objects.filter(pk=verdict.rule.id).exists():
            row.rule_id = None  # deleted since this process cached it; keep the snapshot
        return _write_exceeded(row, verdict)


def _write_exceeded(row: RateLimitSnapshot, verdict: Verdict) -> RateLimitSnapshot:
    row.save()
    request = context.current()
    payload = {
        "snapshot_id": row.pk,
        "rule": verdict.rule.as_dict(),
        "value": row.key,
        "count": verdict.count,
        "window_started_at": verdict.started_at().isoformat(),
        "window_ends_at": verdict.ends_at().isoformat(),
        "client_ip": request.client_ip,
        "request_id": request.request_id,
    }
    record_change(
        actor=SYSTEM,
        action="ratelimits.exceeded",
        target=row,
        level=SystemLog.Level.WARNING,
        context_data=payload,
        message=f"Rate limit exceeded: {verdict.rule.scope} {row.key} "
        f"over {verdict.rule.max_requests}/{verdict.rule.window_seconds}s",
    )
    notify_services.emit_event(
        topic="ratelimit.exceeded",
        payload=payload,
        subject=f"Rate limit exceeded: {verdict.rule.scope} {row.key}",
    )
    return row


def snapshot_counters(
    *, actor: Actor, rules: list[RateLimitRule] | None = None, dry_run: bool = False
) -> list[CounterState]:
    """Snapshot the live counters of the given (default: every enabled) rule.

    Reads the counter store first, outside any transaction, then writes every snapshot and
    one audit row in one short transaction.
    """
    if rules is None:
        rules = list(RateLimitRule.objects.enabled())
    compiled = [ruleset.compile_rule(rule) for rule in rules]
    states = [state for rule in compiled for state in read_counters(rule)]
    if dry_run or not states:
        return states
    with bookkeeping(), transaction.atomic():
        RateLimitSnapshot.objects.bulk_create([_new_snapshot(state) for state in states])
        record_change(
            actor=actor,
            action="ratelimits.snapshot",
            message=f"Snapshot of {len(states)} rate-limit counter(s)",
            context_data={"counters": len(states), "rules": sorted({s.rule.id for s in states})},
        )
    return states
