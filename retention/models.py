from datetime import datetime

from django.db import models
from django.db.models import Q


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


class PurgeRun(models.Model):
    class Status(models.TextChoices):
        RUNNING = "running"
        COMPLETED = "completed"
        FAILED = "failed"

    category = models.CharField(max_length=128)
    dry_run = models.BooleanField(default=False)
    status = models.CharField(max_length=16, choices=Status, default=Status.RUNNING)
    cutoff = models.DateTimeField(help_text="Rows older than this were deleted.")
    deleted = models.PositiveBigIntegerField(
        default=0, help_text="Rows deleted (for a dry run: rows that would be)."
    )
    batches = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True, default="")
    triggered_by = models.CharField(max_length=150, blank=True, default="")
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = PurgeRunQuerySet.as_manager()

    class Meta:
        ordering = ["-started_at", "-id"]
        verbose_name = "purge run"
        indexes = [models.Index(fields=["category", "started_at"])]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=["running", "completed", "failed"]),
                name="purgerun_status_valid",
            )
        ]

    def __str__(self) -> str:
        kind = "dry run" if self.dry_run else "purge"
        return f"{self.category} {kind} at {self.started_at:%Y-%m-%d %H:%M:%S} ({self.status})"
