"""The audit log: one row per state change, whoever made it."""

from datetime import datetime

from django.db import models


class SystemLogQuerySet(models.QuerySet["SystemLog"]):
    def older_than(self, cutoff: datetime) -> "SystemLogQuerySet":
        return self.filter(created_at__lt=cutoff)


class SystemLog(models.Model):
    class Level(models.TextChoices):
        DEBUG = "debug"
        INFO = "info"
        WARNING = "warning"
        ERROR = "error"
        CRITICAL = "critical"

    class ActorType(models.TextChoices):
        USER = "user"
        CLIENT = "client"
        SYSTEM = "system"

    level = models.CharField(max_length=16, choices=Level, default=Level.INFO)
    category = models.CharField(max_length=64)
    action = models.CharField(max_length=100)
    message = models.CharField(max_length=500)
    context = models.JSONField(default=dict, blank=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    actor_type = models.CharField(max_length=16, choices=ActorType, default=ActorType.SYSTEM)
    actor_id = models.CharField(max_length=64, blank=True)
    actor = models.CharField(max_length=150, blank=True, help_text="Who made the change.")
    target_type = models.CharField(max_length=100, blank=True)
    target_id = models.CharField(max_length=64, blank=True)
    target = models.CharField(max_length=255, blank=True)
    request_id = models.CharField(max_length=64, blank=True)
    client_ip = models.GenericIPAddressField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    objects = SystemLogQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        permissions = [
            ("run_admin_ops", "Can run admin ops actions"),
            ("view_admin_ops", "Can run the read-only admin ops actions"),
        ]
        indexes = [
            models.Index(fields=["category", "created_at"]),
            models.Index(fields=["actor", "created_at"]),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(level__in=["debug", "info", "warning", "error", "critical"]),
                name="systemlog_level_valid",
            )
        ]

    def __str__(self) -> str:
        return f"{self.action} by {self.actor or self.actor_type} at {self.created_at:%Y-%m-%d %H:%M:%S}"


class IdempotencyKeyQuerySet(models.QuerySet["IdempotencyKey"]):
    def expired(self, now: datetime) -> "IdempotencyKeyQuerySet":
        return self.filter(expires_at__lte=now)


class IdempotencyKey(models.Model):
    """The first answer to a POST sent with an `Idempotency-Key` header, kept to replay it.

    One row per caller and key. `fingerprint` is a hash of the method, path, query and
    body; `body` is the response sealed under SECRET_KEY (it may hold a new API key).
    """

    caller = models.CharField(max_length=100, help_text="user:<id> or client:<id>.")
    key = models.CharField(max_length=255)
    fingerprint = models.CharField(max_length=64)
    method = models.CharField(max_length=10)
    path = models.CharField(max_length=255)
    status_code = models.PositiveSmallIntegerField()
    body = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(db_index=True)

    objects = IdempotencyKeyQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["caller", "key"], name="idempotencykey_caller_key")
        ]

    def __str__(self) -> str:
        return f"{self.method} {self.path} ({self.caller}, {self.key})"
