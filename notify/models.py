"""Notification channels and the outbox the dispatcher drains."""

import base64
import secrets
import uuid
from datetime import datetime

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models import Q
from django.utils import timezone

from valhalla_ops.sealing import SealedTextField

SECRET_PREFIX = "whsec_"


def generate_secret() -> str:
    """A Standard Webhooks signing secret: `whsec_` + base64 of 24 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode("ascii")


class NotificationChannelQuerySet(models.QuerySet["NotificationChannel"]):
    def active(self) -> "NotificationChannelQuerySet":
        return self.filter(active=True)

    def subscribed(self) -> "NotificationChannelQuerySet":
        """Active channels with at least one event pattern."""
        return self.active().exclude(events=[])


class NotificationChannel(models.Model):
    class ChannelType(models.TextChoices):
        EMAIL = "email"
        WEBHOOK = "webhook"
        SMS = "sms", "SMS"

    name = models.CharField(max_length=256, unique=True)
    channel_type = models.CharField(max_length=64, choices=ChannelType)
    target = models.CharField(
        max_length=512, help_text="An email address, an http(s) URL or an E.164 phone number."
    )
    active = models.BooleanField(default=True, db_index=True)
    description = models.TextField(blank=True, default="")
    events = models.JSONField(
        default=list,
        blank=True,
        help_text='Topic patterns this channel receives, e.g. ["maintenance.*"]. '
        "Empty: only notifications sent to the channel directly.",
    )
    secret = SealedTextField(
        editable=False, default=generate_secret, help_text="Webhook signing key, sealed at rest."
    )
    failing_since = models.DateTimeField(
        null=True, blank=True, editable=False, help_text="First failed delivery since a success."
    )
    disabled_reason = models.CharField(max_length=255, blank=True, default="", editable=False)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = NotificationChannelQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(channel_type__in=["email", "webhook", "sms"]),
                name="notify_channel_type_valid",
            ),
            models.CheckConstraint(condition=~Q(target=""), name="notify_channel_target_set"),
            models.CheckConstraint(condition=~Q(name=""), name="notify_channel_name_set"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.channel_type})"


class NotificationOutboxQuerySet(models.QuerySet["NotificationOutbox"]):
    def pending(self) -> "NotificationOutboxQuerySet":
        return self.filter(status=NotificationOutbox.Status.PENDING)

    def failed(self) -> "NotificationOutboxQuerySet":
        return self.filter(status=NotificationOutbox.Status.FAILED)

    def due(self, *, now: datetime | None = None) -> "NotificationOutboxQuerySet":
        """Pending rows whose time has come and that no worker holds a live lease on."""
        now = now or timezone.now()
        unleased = Q(locked_until__isnull=True) | Q(locked_until__lt=now)
        return self.pending().filter(unleased, next_attempt_at__lte=now)


class NotificationOutbox(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending"
        SENT = "sent"
        FAILED = "failed"

    message_id = models.UUIDField(
        default=uuid.uuid4, unique=True, editable=False, help_text="Stable id to drop duplicates."
    )
    channel = models.ForeignKey(
        NotificationChannel, on_delete=models.PROTECT, related_name="notifications"
    )
    topic = models.CharField(max_length=128, blank=True, default="", db_index=True)
    subject = models.CharField(max_length=512, blank=True, default="")
    body = models.TextField(blank=True, default="")
    payload = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)
    status = models.CharField(max_length=32, choices=Status, default=Status.PENDING, db_index=True)
    last_error = models.TextField(blank=True, default="")
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    locked_until = models.DateTimeField(null=True, blank=True)
    lease_token = models.UUIDField(null=True, blank=True, editable=False)
    sent_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = NotificationOutboxQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        verbose_name = "notification"
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="notify_outbox_due")]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=["pending", "sent", "failed"]),
                name="notify_outbox_status_valid",
            ),
            models.CheckConstraint(
                condition=Q(attempts__gte=0), name="notify_outbox_attempts_gte_0"
            ),
            models.CheckConstraint(
                condition=~Q(status="sent") | Q(sent_at__isnull=False),
                name="notify_outbox_sent_has_sent_at",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.subject or self.topic or 'notification'} #{self.pk} ({self.status})"
