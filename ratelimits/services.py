"""Every change to rate-limit rules and snapshots: atomic, audited, cache invalidated on commit."""

import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from notify import services as notify_services
from ratelimits import ruleset
from ratelimits.keys import InvalidKey, normalize_key
from ratelimits.limiter import CounterState, read_counters
from ratelimits.models import RateLimitRule, RateLimitSnapshot
from ratelimits.store import (
    CounterStore,
    Excess,
    LocalStore,
    LogThrottle,
    StoreUnavailable,
    get_store,
)
from valhalla_ops.audit import Actor, record_change
from valhalla_ops.exceptions import ServiceError
from valhalla_ops.models import SystemLog
from valhalla_ops.principals import SYSTEM
from valhalla_ops.writeguard import bookkeeping

logger = logging.getLogger(__name__)

EDITABLE = ("scope", "key", "window_seconds", "max_requests", "enabled", "description")
TOP_OFFENDERS = 20  # kept in a report's snapshot
TOP_IN_EVENT = 10  # sent in its event
REPORT_SETTLE_SECONDS = 5  # a report is final this long after its window ended
LOCAL_REPORT_SECONDS = 1.0  # local memory: the request path reports at most this often
_store_warnings = LogThrottle()


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


def _new_snapshot(state: CounterState) -> RateLimitSnapshot:
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


def report_exceeded(*, store: CounterStore | None = None, now: float | None = None) -> int:
    """One snapshot per rule and window with counters over the limit; returns the new ones.

    A report is a rule's window aligned to the epoch. Its first pass writes the snapshot, one
    `ratelimits.exceeded` audit row and one `ratelimit.exceeded` event, in one transaction;
    later passes only bring the snapshot's aggregate up to date, until the window is over.
    """
    store = get_store() if store is None else store
    now = time.time() if now is None else now
    written, finished = 0, []
    for excess in store.excess(top=TOP_OFFENDERS):
        rule_id, window_seconds, index = (int(part) for part in excess.report.split(":"))
        try:
            rule = RateLimitRule.objects.filter(pk=rule_id).first()
            if rule is None:
                logger.warning("rate-limit report %s dropped: its rule was deleted", excess.report)
                finished.append(excess.report)
                continue
            written += _write_report(excess, rule, window_seconds, index)
        except Exception:  # one bad report must not stop the others, nor the worker
            logger.exception("could not write the rate-limit report %s", excess.report)
            continue
        if now >= (index + 1) * window_seconds + REPORT_SETTLE_SECONDS:
            finished.append(excess.report)
    store.forget_excess(finished)
    return written


def report_exceeded_step() -> int:
    """The worker's step; Redis unreachable means nothing to report until it is back."""
    try:
        return report_exceeded()
    except StoreUnavailable as error:
        _store_warnings.warning(logger, "rate-limit reports skipped: %s", error)
        return 0


def report_exceeded_soon() -> None:
    """On a refused request, with local-memory counters: report now, at most once a second.

    The counters live in this process only, so the worker cannot read them. With Redis the
    worker's step reports, and a refused request writes nothing to the database.
    """
    store = get_store()
    if not isinstance(store, LocalStore) or time.monotonic() < store.next_report:
        return
    store.next_report = time.monotonic() + LOCAL_REPORT_SECONDS
    try:
        with bookkeeping():
            report_exceeded(store=store)
    except Exception:  # bookkeeping of a request: the client still gets its 429
        logger.exception("could not report rate-limit excess")


def _write_report(excess: Excess, rule: RateLimitRule, window_seconds: int, index: int) -> int:
    prefix = ruleset.counter_prefix(rule.pk, window_seconds)
    top = [
        {"value": counter.removeprefix(prefix).rpartition(":")[0], "count": count}
        for counter, count in excess.top
    ]
    fields = {
        "keys_over": excess.keys_over,
        "top_offenders": top,
        "current_count": top[0]["count"] if top else rule.max_requests + 1,
    }
    with bookkeeping(), transaction.atomic():
        row = RateLimitSnapshot.objects.select_for_update().filter(report=excess.report).first()
        if row is not None:
            RateLimitSnapshot.objects.filter(pk=row.pk).update(**fields, updated_at=timezone.now())
            return 0
        row = RateLimitSnapshot(
            rule=rule,
            scope=rule.scope,
            key=rule.key,
            window_seconds=window_seconds,
            max_requests=rule.max_requests,
            window_started_at=_timestamp(index * window_seconds),
            report=excess.report,
            **fields,
        )
        try:
            with transaction.atomic():  # a savepoint: another worker may have won the race
                row.save()
        except IntegrityError:
            return 0
        _audit_and_emit(row, rule)
    return 1


def _audit_and_emit(row: RateLimitSnapshot, rule: RateLimitRule) -> None:
    start = row.window_started_at
    payload = {
        "snapshot_id": row.pk,
        "rule": ruleset.compile_rule(rule).as_dict(),
        "keys_over": row.keys_over,
        "top_offenders": row.top_offenders[:TOP_IN_EVENT],
        "value": row.top_offenders[0]["value"] if row.top_offenders else rule.key,
        "count": row.current_count,
        "window_started_at": start.isoformat(),
        "window_ends_at": (start + timedelta(seconds=rule.window_seconds)).isoformat(),
    }
    summary = f"{rule.scope} {rule.key} over {rule.max_requests}/{rule.window_seconds}s"
    record_change(
        actor=SYSTEM,
        action="ratelimits.exceeded",
        target=row,
        level=SystemLog.Level.WARNING,
        context_data=payload,
        message=f"Rate limit exceeded: {summary} by {row.keys_over} key(s)",
    )
    notify_services.emit_event(
        topic="ratelimit.exceeded",
        payload=payload,
        subject=f"Rate limit exceeded: {summary} by {row.keys_over} key(s)",
    )


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
