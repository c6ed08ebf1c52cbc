"""The worker step that drains the outbox: claim, deliver outside any transaction, record.

Delivery is at least once: a worker that dies mid-batch leaves its rows leased, and they
come back when the lease expires. Each row carries a stable `message_id` for receivers.
"""

import logging
import random
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from prometheus_client import Counter

from notify import services, transports
from notify.models import NotificationChannel, NotificationOutbox
from valhalla_ops.metrics import registry as metrics_registry
from valhalla_ops.principals import SYSTEM
from valhalla_ops.worker import stop_requested
from valhalla_ops.writeguard import bookkeeping

logger = logging.getLogger(__name__)

# Seconds to wait after the n-th failed attempt (Standard Webhooks' schedule): the attempts
# run about immediately, then after 5 s, 5 min, 30 min, 2 h, 5 h, 10 h and 10 h.
RETRY_SCHEDULE = (0, 5, 5 * 60, 30 * 60, 2 * 3600, 5 * 3600, 10 * 3600, 10 * 3600)
JITTER = 0.1
DISABLE_AFTER = timedelta(days=5)
MAX_ERROR_CHARS = 2000

deliveries = Counter(
    "valhalla_notify_deliveries_total",
    "Notification delivery attempts by channel type and outcome.",
    ["channel_type", "outcome"],
    registry=metrics_registry,
)


@dataclass(frozen=True)
class Outcome:
    error: str = ""
    permanent: bool = False
    gone: bool = False
    counted: bool = True  # False when no delivery was attempted (inactive channel)

    @property
    def ok(self) -> bool:
        return not self.error


def retry_delay(failures: int) -> timedelta:
    """How long to wait after the `failures`-th failed attempt, with ±10 % jitter."""
    base = RETRY_SCHEDULE[min(max(failures, 1), len(RETRY_SCHEDULE)) - 1]
    return timedelta(seconds=base * random.uniform(1 - JITTER, 1 + JITTER))


def dispatch_due(*, limit: int | None = None) -> int:
    """Deliver up to `limit` due notifications; returns how many were handled."""
    token, pks = claim(limit=limit or settings.NOTIFY_BATCH_SIZE)
    for index, pk in enumerate(pks):
        if stop_requested():  # SIGTERM: hand the rest of the batch back at once
            release(pks[index:], token)
            return index
        try:
            process(pk, token)
        except Exception:  # one bad row never stops the batch; its lease brings it back
            logger.exception("notification %s: dispatch failed", pk)
    return len(pks)


def release(pks: list[int], token: uuid.UUID) -> None:
    """Give leased rows back to the queue without an attempt (the worker is stopping)."""
    with bookkeeping():
        NotificationOutbox.objects.filter(pk__in=pks, lease_token=token).update(
            locked_until=None, lease_token=None
        )


def _lease_end() -> datetime:
    return timezone.now() + timedelta(seconds=settings.NOTIFY_LEASE_SECONDS)


def claim(*, limit: int) -> tuple[uuid.UUID, list[int]]:
    """Lease due rows in a short transaction; other workers skip the locked ones."""
    token = uuid.uuid4()
    with transaction.atomic(), bookkeeping():
        due = NotificationOutbox.objects.due().order_by("next_attempt_at", "id")
        pks = list(due.select_for_update(skip_locked=True).values_list("pk", flat=True)[:limit])
        if pks:
            NotificationOutbox.objects.filter(pk__in=pks).update(
                locked_until=_lease_end(), lease_token=token
            )
    return token, pks


def take(pk: int, token: uuid.UUID) -> NotificationOutbox | None:
    """Renew our lease just before delivering; None when another worker has taken the row."""
    with bookkeeping():
        renewed = NotificationOutbox.objects.filter(
            pk=pk, lease_token=token, status=NotificationOutbox.Status.PENDING
        ).update(locked_until=_lease_end())
    if not renewed:
        return None
    return NotificationOutbox.objects.select_related("channel").get(pk=pk)


def process(pk: int, token: uuid.UUID) -> None:
    notification = take(pk, token)
    if notification is None:
        logger.info("notification %s: lease lost to another worker, skipped", pk)
        return
    outcome = attempt(notification)
    channel_type = notification.channel.channel_type
    deliveries.labels(channel_type, "sent" if outcome.ok else "failed").inc()
    record(notification, token, outcome)


def attempt(notification: NotificationOutbox) -> Outcome:
    """Deliver through the channel's transport; never raises."""
    channel = notification.channel
    if not channel.active:
        return Outcome(f"channel {channel.name} is inactive", permanent=True, counted=False)
    try:
        transports.deliver(notification, channel)
    except transports.TransportError as error:
        logger.warning("notification %s to %s failed: %s", notification.pk, channel.name, error)
        gone = isinstance(error, transports.GoneError)
        return Outcome(str(error) or type(error).__name__, permanent=error.permanent, gone=gone)
    except Exception as error:
        logger.exception("notification %s to %s: unexpected error", notification.pk, channel.name)
        return Outcome(f"unexpected error: {type(error).__name__}: {error}")
    logger.info("notification %s sent to %s", notification.pk, channel.name)
    return Outcome()


def result_fields(notification: NotificationOutbox, outcome: Outcome) -> dict:
    now = timezone.now()
    attempts = notification.attempts + (1 if outcome.counted else 0)
    fields = {"attempts": attempts, "locked_until": None, "lease_token": None, "updated_at": now}
    if outcome.ok:
        return fields | {"status": "sent", "sent_at": now, "last_error": ""}
    final = outcome.permanent or attempts >= settings.NOTIFY_MAX_ATTEMPTS
    if final:
        return fields | {"status": "failed", "last_error": outcome.error[:MAX_ERROR_CHARS]}
    next_attempt_at = now + retry_delay(attempts)
    return fields | {
        "last_error": outcome.error[:MAX_ERROR_CHARS],
        "next_attempt_at": next_attempt_at,
    }


def record(notification: NotificationOutbox, token: uuid.UUID, outcome: Outcome) -> None:
    """Write the attempt's result and the channel's health in a second short transaction."""
    with transaction.atomic(), bookkeeping():
        updated = NotificationOutbox.objects.filter(pk=notification.pk, lease_token=token).update(
            **result_fields(notification, outcome)
        )
        if not updated:
            logger.warning(
                "notification %s: lease lost before its result was saved", notification.pk
            )
            return
        if outcome.counted:
            track_channel_health(notification.channel, outcome)


def track_channel_health(channel: NotificationChannel, outcome: Outcome) -> None:
    """A success clears the failure streak; a 410 or five days of failures disables."""
    channels = NotificationChannel.objects.filter(pk=channel.pk)
    if outcome.ok:
        channels.exclude(failing_since=None).update(failing_since=None)
        return
    if outcome.gone:
        services.disable_channel(actor=SYSTEM, channel=channel, reason=outcome.error)
        return
    now = timezone.now()
    channels.filter(failing_since=None).update(failing_since=now)
    since = channels.values_list("failing_since", flat=True).first()
    if since is not None and now - since >= DISABLE_AFTER:
        reason = f"deliveries failing since {since:%Y-%m-%d %H:%M} UTC: {outcome.error}"
        services.disable_channel(actor=SYSTEM, channel=channel, reason=reason)
