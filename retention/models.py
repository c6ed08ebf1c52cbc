from datetime import datetime

from django.db import models
from django.db.models import Exists, OuterRef, Q


class DataRetentionPolicyQuerySet(models.QuerySet["DataRetentionPolicy"]):
    def enabled(self) -> "DataRetentionPolicyQuerySet":
        return self.filter(enabled=True)


class DataRetentionPolicy(models.Model):
    category = models.CharField(max_length=128, unique=True)
    days_to_keep = models.PositiveIntegerField(help_text="Rows older than this many days go.")
    enabled = models.BooleanField(default=True)
    description = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = DataRetentionPolicyQuerySet.as_manager()

    class Meta:
        ordering = ["category"]
        verbose_name = "data retention policy"
        verbose_name_plural = "data retention policies"
        constraints = [
            models.CheckConstraint(
                condition=Q(days_to_keep__gte=1), name="dataretentionpolicy_days_positive"
            )
        ]

    def __str__(self) -> str:
        state = "" if self.enabled else ", disabled"
        return f"{self.category}: {self.days_to_keep} days{state}"


class PurgeRunQuerySet(models.QuerySet["PurgeRun"]):
    def real(self) -> "PurgeRunQuerySet":
        """Runs that deleted (or tried to), not dry runs."""
        return self.filter(dry_run=False)

    def since(self, moment: datetime) -> "PurgeRunQuerySet":
        return self.filter(started_at__gte=moment)

    def active(self) -> "PurgeRunQuerySet":
        """Real runs waiting for a worker or holding their category."""
        return self.real().filter(status__in=PurgeRun.ACTIVE)

    def lease_expired(self, now: datetime) -> "PurgeRunQuerySet":
        """Running real runs whose worker stopped renewing the lease (it died)."""
        return self.real().filter(status=PurgeRun.Status.RUNNING, locked_until__lt=now)

    def resumable(self) -> "PurgeRunQuerySet":
        """Interrupted runs that no later run has resumed yet."""
        resumed = PurgeRun.objects.filter(resumes=OuterRef("pk"))
        return self.real().filter(status=PurgeRun.Status.INTERRUPTED).exclude(Exists(resumed))


class PurgeRun(models.Model):
    class Status(models.TextChoices):
        SCHEDULED = "scheduled"
        RUNNING = "running"
        COMPLETED = "completed"
        FAILED = "failed"
        INTERRUPTED = "interrupted"

    category = models.CharField(max_length=128)
    dry_run = models.BooleanField(default=False)
    status = models.CharField(max_length=16, choices=Status, default=Status.RUNNING)
    cutoff = models.DateTimeField(help_text="Rows older than this were deleted.")
    deleted = models.PositiveBigIntegerField(
        default=0, help_text="Rows deleted (for a dry run: rows that would be)."
    )
    cascaded = models.PositiveBigIntegerField(
        default=0, help_text="Rows of other tables deleted with them (cascades)."
    )
    batches = models.PositiveIntegerField(default=0)
    last_pk = models.JSONField(
        null=True, blank=True, help_text="The highest primary key deleted so far (to resume)."
    )
    resumes = models.PositiveBigIntegerField(
        null=True, blank=True, help_text="The interrupted run this run continues."
    )
    locked_until = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    triggered_by = models.CharField(max_length=150, blank=True, default="")
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = PurgeRunQuerySet.as_manager()

    ACTIVE = (Status.SCHEDULED, Status.RUNNING)

    class Meta:
        ordering = ["-started_at", "-id"]
        verbose_name = "purge run"
        indexes = [models.Index(fields=["category", "started_at"])]
        constraints = [
            models.CheckConstraint(
                condition=Q(
                    status__in=["scheduled", "running", "completed", "failed", "interrupted"]
                ),
                name="purgerun_status_valid",
            ),
            # A category is purged by one run at a time, whichever worker or command runs it.
            models.UniqueConstraint(
                fields=["category"],
                condition=Q(dry_run=False, status__in=["scheduled", "running"]),
                name="purgerun_one_active_per_category",
            ),
        ]

    def __str__(self) -> str:
        kind = "dry run" if self.dry_run else "purge"
        return f"{self.category} {kind} at {self.started_at:%Y-%m-%d %H:%M:%S} ({self.status})"
