from django.db import models
from django.db.models import Q
from django.utils import timezone


class ExportJobQuerySet(models.QuerySet["ExportJob"]):
    def unfinished(self) -> "ExportJobQuerySet":
        """Jobs still waiting or in progress: never purged, never retried."""
        return self.filter(status__in=[ExportJob.Status.PENDING, ExportJob.Status.RUNNING])

    def claimable(self) -> "ExportJobQuerySet":
        """Pending jobs, and running jobs whose worker's lease expired (the worker died).

        A job set to running through the API has no lease: an external worker owns it.
        """
        expired = Q(status=ExportJob.Status.RUNNING, locked_until__lt=timezone.now())
        return self.filter(Q(status=ExportJob.Status.PENDING) | expired)


class ExportJob(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        COMPLETED = "completed"
        FAILED = "failed"

    job_type = models.CharField(max_length=128)
    filter_params = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=32, choices=Status, default=Status.PENDING, db_index=True)
    storage_url = models.CharField(max_length=512, blank=True, default="")
    error_message = models.TextField(blank=True, default="")
    requested_by = models.CharField(max_length=256, blank=True, default="")
    requested_by_actor = models.CharField(
        max_length=150, blank=True, default="", help_text="Who created the job (user or client)."
    )
    file = models.FileField(max_length=512, blank=True, default="", editable=False)
    row_count = models.PositiveIntegerField(null=True, blank=True)
    rows_written = models.PositiveBigIntegerField(
        default=0, help_text="Rows written so far: the progress of a running job."
    )
    attempts = models.PositiveIntegerField(default=0)
    locked_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    objects = ExportJobQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "export job"
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=["pending", "running", "completed", "failed"]),
                name="exportjob_status_valid",
            ),
            models.CheckConstraint(
                condition=~Q(status="completed") | ~Q(storage_url=""),
                name="exportjob_completed_has_storage_url",
            ),
            models.CheckConstraint(
                condition=~Q(status="completed") | Q(completed_at__isnull=False),
                name="exportjob_completed_has_completed_at",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.job_type} #{self.pk} ({self.status})"

    @property
    def file_format(self) -> str:
        """csv or jsonl, from the stored file's name (never trusted from elsewhere)."""
        return "jsonl" if (self.file.name or "").endswith(".jsonl") else "csv"
