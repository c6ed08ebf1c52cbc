"""The retention purger: deletes rows older than their policy, in batches sized by time.

A real purge run claims its category: one scheduled or running run per category (a unique
constraint), a lease (`locked_until`) renewed with every batch, and a worker picks categories
with `select_for_update(skip_locked=True)`, so two workers never purge one category at once.
A run whose worker died is marked interrupted once its lease expires; the next run resumes it
after the last key it deleted, with its cutoff. Protected rows (undelivered notifications,
unfinished exports) are never deleted. Every purge is recorded as a PurgeRun plus one audit
row. Purges pause while the system is not in normal mode (DESIGN: retention purges pause).
"""

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, models, transaction
from django.utils import timezone

from retention import batches, modes
from retention.models import DataRetentionPolicy, PurgeRun
from valhalla_ops import registry
from valhalla_ops.audit import Actor, describe_actor, record_change
from valhalla_ops.models import SystemLog
from valhalla_ops.principals import SystemActor
from valhalla_ops.registry import RetentionCategory
from valhalla_ops.worker import stop_requested
from valhalla_ops.writeguard import bookkeeping

logger = logging.getLogger(__name__)

WORKER = SystemActor(username="worker:retention")
Progress = Callable[[PurgeRun, int], None]
Status = PurgeRun.Status


class CategoryMissing(LookupError):
    """A policy names a category no installed app registers (any more)."""


class CategoryBusy(Exception):
    """Another run (scheduled or running) holds the category."""


class RunLost(Exception):
    """The run's lease expired and it was marked interrupted: another run takes over."""


class Stopping(Exception):
    """The worker was asked to stop (SIGTERM): the run is interrupted, the next resumes it."""


def expired_rows(category: RetentionCategory, cutoff: object) -> models.QuerySet:
    """The category's rows older than the cutoff, minus its protected rows."""
    rows = category.queryset().filter(**{f"{category.date_field}__lt": cutoff})
    if category.protected is not None:
        rows = rows.exclude(pk__in=category.protected().values("pk"))
    return rows


def lease_end() -> datetime:
    return timezone.now() + timedelta(seconds=settings.RETENTION_LEASE_SECONDS)


def renew(run: PurgeRun) -> None:
    """Save the run's progress and extend its lease; a run no longer running is lost."""
    run.locked_until = lease_end()
    with bookkeeping():
        updated = PurgeRun.objects.filter(pk=run.pk, status=Status.RUNNING).update(
            deleted=run.deleted,
            cascaded=run.cascaded,
            batches=run.batches,
            last_pk=run.last_pk,
            locked_until=run.locked_until,
        )
    if not updated:
        raise RunLost(f"purge run {run.pk} of {run.category} was taken over")


def _delete_all(run: PurgeRun, rows: models.QuerySet, progress: Progress | None) -> None:
    sizer = batches.BatchSizer(
        size=settings.RETENTION_BATCH_SIZE,
        max_size=max(settings.RETENTION_BATCH_MAX_SIZE, 1),
        target=settings.RETENTION_BATCH_SECONDS,
    )
    fast = batches.can_fast_delete(rows)

    def record(batch: batches.Batch) -> None:
        run.deleted += batch.deleted
        run.cascaded += batch.cascaded
        run.batches += 1
        run.last_pk = batch.last_pk
        renew(run)  # a run taken over raises here: its batch is rolled back

    while True:
        if not modes.purges_allowed():
            run.error = "Stopped early: the system left normal mode."
            return
        if stop_requested():
            raise Stopping
        batch = batches.run_batch(
            rows, after=run.last_pk, size=sizer.size, fast=fast, record=record
        )
        if batch is None:
            return
        sizer.update(batch.seconds)
        if progress is not None:
            progress(run, batch.deleted)


def run_fields(policy: DataRetentionPolicy, actor: Actor, *, dry_run: bool) -> dict[str, Any]:
    now = timezone.now()
    return {
        "category": policy.category,
        "dry_run": dry_run,
        "status": Status.RUNNING,
        "cutoff": now - timedelta(days=policy.days_to_keep),
        "started_at": now,
        "triggered_by": describe_actor(actor)[2],
        "locked_until": None if dry_run else lease_end(),
    }


def create_run(fields: dict[str, Any]) -> PurgeRun:
    """Insert a run; a real one claims its category or raises CategoryBusy."""
    try:
        with bookkeeping(), transaction.atomic():
            return PurgeRun.objects.create(**fields)
    except IntegrityError:
        raise CategoryBusy(
            f"A purge of {fields['category']} is already scheduled or running."
        ) from None


def start_run(*, policy: DataRetentionPolicy, actor: Actor, dry_run: bool) -> PurgeRun:
    return create_run(run_fields(policy, actor, dry_run=dry_run))


def _audit(run: PurgeRun, actor: Actor, level: str) -> None:
    verb = "Purged" if run.status != Status.INTERRUPTED else "Interrupted after purging"
    record_change(
        actor=actor,
        action="retention.purge",
        target=run,
        message=f"{verb} {run.deleted} {run.category} row(s) older than {run.cutoff:%Y-%m-%d %H:%M}",
        context_data={
            "category": run.category,
            "cutoff": run.cutoff.isoformat(),
            "status": run.status,
            "deleted": run.deleted,
            "cascaded": run.cascaded,
            "batches": run.batches,
            "error": run.error,
            "resumes": run.resumes,
        },
        level=level,
    )


@transaction.atomic
def finish_run(
    *, run: PurgeRun, actor: Actor, failure: str = "", status: str | None = None
) -> PurgeRun:
    """Record the outcome; a real purge (even a failed one) also gets its audit row."""
    if not run.dry_run:
        stored = PurgeRun.objects.select_for_update().get(pk=run.pk)
        if stored.status != Status.RUNNING:  # taken over meanwhile: its new owner records it
            logger.warning("purge run %s of %s was taken over", run.pk, run.category)
            return stored
    run.status = status or (Status.FAILED if failure else Status.COMPLETED)
    run.error = failure or run.error
    run.finished_at = timezone.now()
    run.locked_until = None
    fields = ["status", "error", "finished_at", "deleted", "cascaded", "batches", "last_pk"]
    with bookkeeping():
        run.save(update_fields=[*fields, "locked_until"])
    if not run.dry_run:
        _audit(run, actor, SystemLog.Level.ERROR if failure else SystemLog.Level.INFO)
    return run


def execute_run(run: PurgeRun, *, actor: Actor, progress: Progress | None = None) -> PurgeRun:
    """Purge (or, dry, count) a started run's rows; never raises for a bad category."""
    try:
        category = registry.retention_categories.get(run.category)
        if category is None:
            raise CategoryMissing(f"Category {run.category!r} is not registered by any app.")
        rows = expired_rows(category, run.cutoff)
        if run.dry_run:
            run.deleted = rows.count()
        else:
            _delete_all(run, rows, progress)
    except RunLost:
        logger.warning(
            "purge run %s of %s lost its lease; another run resumes it", run.pk, run.category
        )
        return run
    except Stopping:
        run.error = "Interrupted: the worker stopped; the next run resumes."
        return finish_run(run=run, actor=actor, status=Status.INTERRUPTED)
    except CategoryMissing as error:
        logger.warning("retention purge of %s skipped: %s", run.category, error)
        return finish_run(run=run, actor=actor, failure=str(error))
    except Exception as error:  # one bad category must not stop the others
        logger.exception("retention purge of %s failed", run.category)
        return finish_run(run=run, actor=actor, failure=f"{type(error).__name__}: {error}")
    return finish_run(run=run, actor=actor)


def purge_policy(
    *,
    policy: DataRetentionPolicy,
    actor: Actor,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> PurgeRun:
    """Purge (or, dry, count) one category now, in this process.

    A real purge claims the category first: CategoryBusy if another run holds it.
    """
    run = start_run(policy=policy, actor=actor, dry_run=dry_run)
    return execute_run(run, actor=actor, progress=progress)


# --- the worker step ----------------------------------------------------------------------


def interrupt_expired(*, actor: Actor) -> int:
    """Mark running runs whose lease expired (their worker died) as interrupted."""
    now = timezone.now()
    count = 0
    for run in PurgeRun.objects.lease_expired(now):
        with bookkeeping(), transaction.atomic():
            stored = PurgeRun.objects.select_for_update(skip_locked=True).filter(pk=run.pk).first()
            if stored is None or stored.status != Status.RUNNING or stored.locked_until is None:
                continue
            if stored.locked_until >= now:  # renewed meanwhile
                continue
            stored.status = Status.INTERRUPTED
            stored.error = (
                "Interrupted: the worker stopped renewing its lease; the next run resumes."
            )
            stored.finished_at = now
            stored.locked_until = None
            stored.save(update_fields=["status", "error", "finished_at", "locked_until"])
            _audit(stored, actor, SystemLog.Level.WARNING)
            count += 1
    return count


def due_policies() -> models.QuerySet:
    """Enabled policies without an active run, nor a real purge in the last
    RETENTION_INTERVAL_SECONDS."""
    since = timezone.now() - timedelta(seconds=settings.RETENTION_INTERVAL_SECONDS)
    recent = PurgeRun.objects.real().since(since).values("category")
    active = PurgeRun.objects.active().values("category")
    return (
        DataRetentionPolicy.objects.enabled()
        .exclude(category__in=recent)
        .exclude(category__in=active)
    )


def claim_scheduled() -> PurgeRun | None:
    """Start the oldest run scheduled by "purge now", with the policy's cutoff as of now."""
    with bookkeeping(), transaction.atomic():
        run = (
            PurgeRun.objects.filter(status=Status.SCHEDULED, dry_run=False)
            .order_by("started_at", "id")
            .select_for_update(skip_locked=True)
            .first()
        )
        if run is None:
            return None
        now = timezone.now()
        policy = DataRetentionPolicy.objects.filter(category=run.category).first()
        if policy is not None:
            run.cutoff = now - timedelta(days=policy.days_to_keep)
        run.status, run.started_at, run.locked_until = Status.RUNNING, now, lease_end()
        run.save(update_fields=["status", "started_at", "cutoff", "locked_until"])
        return run


def claim_resumable(*, actor: Actor) -> PurgeRun | None:
    """Start a run that continues an interrupted one: same cutoff, after its last key."""
    enabled = DataRetentionPolicy.objects.enabled().values("category")
    with bookkeeping(), transaction.atomic():
        old = (
            PurgeRun.objects.resumable()
            .filter(category__in=enabled)
            .order_by("started_at", "id")
            .select_for_update(skip_locked=True)
            .first()
        )
        if old is None:
            return None
        fields = {
            "category": old.category,
            "cutoff": old.cutoff,
            "last_pk": old.last_pk,
            "resumes": old.pk,
            "started_at": timezone.now(),
            "triggered_by": describe_actor(actor)[2],
            "locked_until": lease_end(),
        }
        try:
            return create_run(fields)
        except CategoryBusy:
            return None


def claim_due(*, actor: Actor) -> PurgeRun | None:
    """Claim the next due category (skipping policies another worker is claiming)."""
    busy: list[str] = []
    while True:
        with bookkeeping(), transaction.atomic():
            policy = (
                due_policies()
                .exclude(category__in=busy)
                .order_by("category")
                .select_for_update(skip_locked=True)
                .first()
            )
            if policy is None:
                return None
            try:
                return start_run(policy=policy, actor=actor, dry_run=False)
            except CategoryBusy:
                busy.append(policy.category)


def claim_next(*, actor: Actor) -> PurgeRun | None:
    return claim_scheduled() or claim_resumable(actor=actor) or claim_due(actor=actor)


def run_retention() -> int:
    """The worker step: purge every scheduled, interrupted and due category; returns how many
    rows it deleted."""
    interrupt_expired(actor=WORKER)
    deleted = 0
    while modes.purges_allowed() and not stop_requested():
        run = claim_next(actor=WORKER)
        if run is None:
            break
        deleted += execute_run(run, actor=WORKER).deleted
    return deleted
