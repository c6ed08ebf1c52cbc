"""The retention purger: deletes rows older than their policy, in bounded batches.

Each batch is its own short transaction (select a batch of primary keys, delete by key),
so a purge never holds long locks. Protected rows (undelivered notifications, unfinished
exports) are never selected. Every purge is recorded as a PurgeRun plus one audit row.
Purges pause while the system is not in normal mode (DESIGN: retention purges pause).
"""

import logging
from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.db import models, transaction
from django.utils import timezone

from retention import modes
from retention.models import DataRetentionPolicy, PurgeRun
from valhalla_ops import registry
from valhalla_ops.audit import Actor, describe_actor, record_change
from valhalla_ops.models import SystemLog
from valhalla_ops.principals import SystemActor
from valhalla_ops.registry import RetentionCategory
from valhalla_ops.writeguard import bookkeeping

logger = logging.getLogger(__name__)

WORKER = SystemActor(username="worker:retention")
Progress = Callable[[PurgeRun, int], None]


class CategoryMissing(LookupError):
    """A policy names a category no installed app registers (any more)."""


def expired_rows(category: RetentionCategory, cutoff: object) -> models.QuerySet:
    """The category's rows older than the cutoff, minus its protected rows."""
    rows = category.queryset().filter(**{f"{category.date_field}__lt": cutoff})
    if category.protected is not None:
        rows = rows.exclude(pk__in=category.protected().values("pk"))
    return rows


def delete_batch(rows: models.QuerySet, batch_size: int) -> int:
    """Delete up to batch_size rows in one short transaction; returns how many went."""
    with transaction.atomic():
        pks = list(rows.order_by("pk").values_list("pk", flat=True)[:batch_size])
        if not pks:
            return 0
        # Filtering `rows` again re-checks age and protection at delete time.
        _total, per_model = rows.filter(pk__in=pks).delete()
    return per_model.get(rows.model._meta.label, 0)


def _delete_all(run: PurgeRun, rows: models.QuerySet, progress: Progress | None) -> None:
    batch_size = settings.RETENTION_BATCH_SIZE
    while True:
        if not run.dry_run and not modes.purges_allowed():
            run.error = "Stopped early: the system left normal mode."
            return
        deleted = delete_batch(rows, batch_size)
        if not deleted:
            return
        run.deleted += deleted
        run.batches += 1
        if progress is not None:
            progress(run, deleted)


def start_run(*, policy: DataRetentionPolicy, actor: Actor, dry_run: bool) -> PurgeRun:
    now = timezone.now()
    with bookkeeping():
        return PurgeRun.objects.create(
            category=policy.category,
            dry_run=dry_run,
            cutoff=now - timedelta(days=policy.days_to_keep),
            started_at=now,
            triggered_by=describe_actor(actor)[2],
        )


@transaction.atomic
def finish_run(*, run: PurgeRun, actor: Actor, failure: str = "") -> PurgeRun:
    """Record the outcome; a real purge (even a failed one) also gets its audit row."""
    run.status = PurgeRun.Status.FAILED if failure else PurgeRun.Status.COMPLETED
    run.error = failure or run.error
    run.finished_at = timezone.now()
    with bookkeeping():
        run.save(update_fields=["status", "error", "finished_at", "deleted", "batches"])
    if not run.dry_run:
        record_change(
            actor=actor,
            action="retention.purge",
            target=run,
            message=f"Purged {run.deleted} {run.category} row(s) older than {run.cutoff:%Y-%m-%d %H:%M}",
            context_data={
                "category": run.category,
                "cutoff": run.cutoff.isoformat(),
                "deleted": run.deleted,
                "batches": run.batches,
                "error": run.error,
            },
            level=SystemLog.Level.ERROR if failure else SystemLog.Level.INFO,
        )
    return run


def purge_policy(
    *,
    policy: DataRetentionPolicy,
    actor: Actor,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> PurgeRun:
    """Purge (or, dry, count) one category's expired rows; never raises for a bad category."""
    run = start_run(policy=policy, actor=actor, dry_run=dry_run)
    try:
        category = registry.retention_categories.get(policy.category)
        if category is None:
            raise CategoryMissing(f"Category {policy.category!r} is not registered by any app.")
        rows = expired_rows(category, run.cutoff)
        if dry_run:
            run.deleted = rows.count()
        else:
            _delete_all(run, rows, progress)
    except CategoryMissing as error:
        logger.warning("retention purge of %s skipped: %s", policy.category, error)
        return finish_run(run=run, actor=actor, failure=str(error))
    except Exception as error:  # one bad category must not stop the others
        logger.exception("retention purge of %s failed", policy.category)
        return finish_run(run=run, actor=actor, failure=f"{type(error).__name__}: {error}")
    return finish_run(run=run, actor=actor)


def due_policies() -> models.QuerySet:
    """Enabled policies without a real purge in the last RETENTION_INTERVAL_SECONDS."""
    since = timezone.now() - timedelta(seconds=settings.RETENTION_INTERVAL_SECONDS)
    recent = PurgeRun.objects.real().since(since).values("category")
    return DataRetentionPolicy.objects.enabled().exclude(category__in=recent)


def run_retention() -> int:
    """The worker step: purge every due category; returns how many rows it deleted."""
    deleted = 0
    for policy in due_policies():
        if not modes.purges_allowed():
            break
        deleted += purge_policy(policy=policy, actor=WORKER).deleted
    return deleted
