"""Maintenance windows and the single-row maintenance state (PACK UE)."""

from datetime import datetime

from django.db import models
from django.db.models import F, Q
from django.utils import timezone


class Mode(models.TextChoices):
    NORMAL = "normal", "Normal"
    READ_ONLY = "read_only", "Read-only"
    MAINTENANCE = "maintenance", "Maintenance"


# How strongly a mode restricts writes: a window never weakens the mode in force.
STRENGTH: dict[str, int] = {Mode.NORMAL: 0, Mode.READ_ONLY: 1, Mode.MAINTENANCE: 2}


class WindowMode(models.TextChoices):
    READ_ONLY = Mode.READ_ONLY.value, Mode.READ_ONLY.label
    MAINTENANCE = Mode.MAINTENANCE.value, Mode.MAINTENANCE.label


class MaintenanceWindowQuerySet(models.QuerySet["MaintenanceWindow"]):
    def enabled(self) -> "MaintenanceWindowQuerySet":
        return self.filter(active=True)

    def covering(self, moment: datetime) -> "MaintenanceWindowQuerySet":
        """Enabled windows in progress at `moment`."""
        return self.enabled().filter(starts_at__lte=moment, ends_at__gt=moment)

    def upcoming(self, moment: datetime) -> "MaintenanceWindowQuerySet":
        return self.enabled().filter(starts_at__gt=moment).order_by("starts_at", "id")

    def not_over(self, moment: datetime) -> "MaintenanceWindowQuerySet":
        """Enabled windows that have not ended yet (running or upcoming)."""
        return self.enabled().filter(ends_at__gt=moment).order_by("starts_at", "id")

    def due_to_start(self, moment: datetime) -> "MaintenanceWindowQuerySet":
        return self.covering(moment).filter(started_at__isnull=True).order_by("starts_at", "id")

    def due_to_end(self, moment: datetime) -> "MaintenanceWindowQuerySet":
        """Started windows whose end has come, or that were disabled while running."""
        over = Q(ends_at__lte=moment) | Q(active=False)
        return self.filter(over, started_at__isnull=False, ended_at__isnull=True).order_by(
            "ends_at", "id"
        )


class MaintenanceWindow(models.Model):
    starts_at = models.DateTimeField(db_index=True)
    ends_at = models.DateTimeField()
    description = models.TextField(blank=True, default="")
    active = models.BooleanField(
        default=True, help_text="Only active windows switch the mode at their start and end."
    )
    mode = models.CharField(
        max_length=16,
        choices=WindowMode,
        default=WindowMode.MAINTENANCE,
        help_text="The mode the window switches to at its start.",
    )
    started_at = models.DateTimeField(
        null=True, blank=True, editable=False, help_text="When the worker handled the start."
    )
    ended_at = models.DateTimeField(
        null=True, blank=True, editable=False, help_text="When the worker handled the end."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = MaintenanceWindowQuerySet.as_manager()

    class Meta:
        ordering = ["-starts_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(ends_at__gt=F("starts_at")),
                name="maintenancewindow_ends_after_start",
                violation_error_message="ends_at must be after starts_at.",
            ),
            models.CheckConstraint(
                condition=Q(mode__in=WindowMode.values), name="maintenancewindow_mode_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.mode} window {self.starts_at:%Y-%m-%d %H:%M} - {self.ends_at:%Y-%m-%d %H:%M}"

    def is_running(self, moment: datetime | None = None) -> bool:
        moment = moment or timezone.now()
        return self.active and self.starts_at <= moment < self.ends_at


class MaintenanceState(models.Model):
    """The one row (id 1) holding the mode; no row means `normal`."""

    SINGLETON_ID = 1

    id = models.PositiveSmallIntegerField(primary_key=True, default=SINGLETON_ID, editable=False)
    mode = models.CharField(max_length=16, choices=Mode, default=Mode.NORMAL)
    reason = models.TextField(blank=True, default="")
    changed_by = models.CharField(max_length=150, blank=True, default="")
    since = models.DateTimeField(
        null=True, blank=True, editable=False, help_text="When the current mode began."
    )
    window = models.ForeignKey(
        MaintenanceWindow,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The window that set the current mode (empty when a person or client set it).",
    )
    alerted_at = models.DateTimeField(
        null=True,
        blank=True,
        editable=False,
        help_text="When the 'not normal for long' alert fired.",
    )
    version = models.PositiveBigIntegerField(
        default=0,
        editable=False,
        help_text="Grows with every change of the state or the windows (microseconds since the "
        "epoch, or one more than before): no process keeps an older state over a newer one.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        verbose_name = "maintenance state"
        permissions = [
            (
                "contain_incident",
                "Can contain an incident while the system is read-only or in maintenance",
            )
        ]
        constraints = [
            models.CheckConstraint(condition=Q(id=1), name="maintenancestate_singleton"),
            models.CheckConstraint(
                condition=Q(mode__in=Mode.values), name="maintenancestate_mode_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"Maintenance mode: {self.mode}"
