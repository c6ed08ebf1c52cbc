"""Retention policies: one per registered category, created or updated by category, audited."""

from datetime import timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from retention.models import DataRetentionPolicy, PurgeRun
from valhalla_ops import registry
from valhalla_ops.audit import Actor, describe_actor, record_change
from valhalla_ops.exceptions import Conflict, ServiceError
from valhalla_ops.registry import RetentionCategory

MAX_DAYS = 36500  # a hundred years: beyond it, datetime arithmetic overflows


def registered_categories() -> list[str]:
    return sorted(registry.retention_categories.names())


def require_category(name: str) -> RetentionCategory:
    category = registry.retention_categories.get(name)
    if category is None:
        known = ", ".join(registered_categories()) or "none"
        raise ServiceError(f"Unknown category {name!r}. Registered: {known}.", field="category")
    return category


def check_days(days_to_keep: Any) -> None:
    if isinstance(days_to_keep, bool) or not isinstance(days_to_keep, int):
        raise ServiceError("days_to_keep must be a whole number of days.", field="days_to_keep")
    if not 1 <= days_to_keep <= MAX_DAYS:
        raise ServiceError(f"days_to_keep must be between 1 and {MAX_DAYS}.", field="days_to_keep")


def snapshot(policy: DataRetentionPolicy) -> dict[str, Any]:
    """The audited view of a policy."""
    return {
        "category": policy.category,
        "days_to_keep": policy.days_to_keep,
        "enabled": policy.enabled,
        "description": policy.description,
    }


def _create(*, actor: Actor, policy: DataRetentionPolicy) -> DataRetentionPolicy:
    record_change(
        actor=actor,
        action="retention.create",
        target=policy,
        after=snapshot(policy),
        message=f"Retention policy {policy.category}: {policy.days_to_keep} days",
    )
    return policy


@transaction.atomic
def update_policy(
    *, actor: Actor, policy: DataRetentionPolicy, **fields: Any
) -> DataRetentionPolicy:
    """Change days_to_keep, enabled or description; no audit row when nothing changes."""
    unknown = set(fields) - {"days_to_keep", "enabled", "description"}
    if unknown:
        raise ServiceError(f"Cannot change {', '.join(sorted(unknown))} here.")
    if "days_to_keep" in fields:
        check_days(fields["days_to_keep"])
    policy = DataRetentionPolicy.objects.select_for_update().get(pk=policy.pk)
    before = snapshot(policy)
    changed = [name for name, value in fields.items() if getattr(policy, name) != value]
    if not changed:
        return policy
    for name in changed:
        setattr(policy, name, fields[name])
    policy.save(update_fields=[*changed, "updated_at"])
    record_change(
        actor=actor, action="retention.update", target=policy, before=before, after=snapshot(policy)
    )
    return policy


@transaction.atomic
def upsert_policy(
    *,
    actor: Actor,
    category: str,
    days_to_keep: int,
    enabled: bool | None = None,
    description: str | None = None,
) -> tuple[DataRetentionPolicy, bool]:
    """Create the category's policy, or update it (fields left out keep their value).

    Returns (policy, created). Safe under concurrency: the row is locked, and a concurrent
    create of the same category becomes an update.
    """
    require_category(category)
    check_days(days_to_keep)
    defaults: dict[str, object] = {"days_to_keep": days_to_keep}
    if enabled is not None:
        defaults["enabled"] = enabled
    if description is not None:
        defaults["description"] = description
    policy, created = DataRetentionPolicy.objects.select_for_update().get_or_create(
        category=category, defaults=defaults
    )
    if created:
        return _create(actor=actor, policy=policy), True
    return update_policy(actor=actor, policy=policy, **defaults), False


@transaction.atomic
def delete_policy(*, actor: Actor, policy: DataRetentionPolicy) -> None:
    """Stop purging the category altogether (disabling keeps the settings instead)."""
    record_change(actor=actor, action="retention.delete", target=policy, before=snapshot(policy))
    policy.delete()


@transaction.atomic
def schedule_purge(*, actor: Actor, policy: DataRetentionPolicy) -> PurgeRun:
    """Queue a purge of the category for the worker ("purge now"); returns at once.

    Conflict when a run of the category is already scheduled or running.
    """
    if not policy.enabled:
        raise ServiceError(f"The {policy.category} policy is disabled: enable it first.")
    now = timezone.now()
    try:
        with transaction.atomic():
            run = PurgeRun.objects.create(
                category=policy.category,
                status=PurgeRun.Status.SCHEDULED,
                cutoff=now - timedelta(days=policy.days_to_keep),
                started_at=now,
                triggered_by=describe_actor(actor)[2],
            )
    except IntegrityError:
        active = PurgeRun.objects.active().filter(category=policy.category).first()
        where = f" (run #{active.pk} is {active.status})" if active else ""
        raise Conflict(
            f"A purge of {policy.category} is already scheduled or running{where}."
        ) from None
    record_change(
        actor=actor,
        action="retention.schedule",
        target=run,
        message=f"Purge of {policy.category} scheduled",
        after={"category": run.category, "status": run.status},
    )
    return run
