"""Every change to channels and the outbox: atomic and audited (events excepted, see emit_event)."""

import json
import logging
from fnmatch import fnmatchcase
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, transaction
from django.utils import timezone

from notify import validators
from notify.models import NotificationChannel, NotificationOutbox, generate_secret
from valhalla_ops.audit import Actor, record_change
from valhalla_ops.exceptions import ServiceError
from valhalla_ops.writeguard import bookkeeping

logger = logging.getLogger(__name__)

CHANNEL_FIELDS = ("name", "channel_type", "target", "active", "description", "events")
MAX_PAYLOAD_BYTES = 64 * 1024


def channel_snapshot(channel: NotificationChannel) -> dict[str, Any]:
    """The audited view of a channel: never its secret."""
    return {field: getattr(channel, field) for field in CHANNEL_FIELDS}


def notification_snapshot(notification: NotificationOutbox) -> dict[str, Any]:
    return {
        "channel_id": notification.channel_id,
        "topic": notification.topic,
        "subject": notification.subject,
        "status": notification.status,
        "attempts": notification.attempts,
        "message_id": str(notification.message_id),
    }


def _check_channel(channel: NotificationChannel) -> None:
    if channel.channel_type not in NotificationChannel.ChannelType.values:
        choices = ", ".join(NotificationChannel.ChannelType.values)
        raise ServiceError(f"Choose one of: {choices}.", field="channel_type")
    error = validators.target_error(channel.channel_type, channel.target)
    if error:
        raise ServiceError(error, field="target")
    error = validators.events_error(channel.events)
    if error:
        raise ServiceError(error, field="events")
    taken = NotificationChannel.objects.filter(name=channel.name).exclude(pk=channel.pk)
    if not channel.name or taken.exists():
        raise ServiceError(f"A channel named {channel.name!r} already exists.", field="name")


def _save_channel(channel: NotificationChannel, update_fields: list[str] | None = None) -> None:
    try:
        with transaction.atomic():  # a savepoint: a concurrent duplicate name is a 400
            channel.save(update_fields=update_fields)
    except IntegrityError as error:
        raise ServiceError(f"A channel named {channel.name!r} already exists.", field="name") from (
            error
        )


@transaction.atomic
def create_channel(
    *,
    actor: Actor,
    name: str,
    channel_type: str,
    target: str,
    description: str = "",
    active: bool = True,
    events: list[str] | None = None,
) -> tuple[NotificationChannel, str]:
    """Register a channel; returns it with its signing secret (shown once, never logged)."""
    channel = NotificationChannel(
        name=name,
        channel_type=channel_type,
        target=target,
        description=description,
        active=active,
        events=list(events or []),
        secret=generate_secret(),
    )
    _check_channel(channel)
    _save_channel(channel)
    record_change(
        actor=actor,
        action="notify.create_channel",
        target=channel,
        after=channel_snapshot(channel),
        message=f"Notification channel {name} created",
    )
    return channel, channel.secret


@transaction.atomic
def update_channel(
    *, actor: Actor, channel: NotificationChannel, **fields: Any
) -> NotificationChannel:
    """Change any of name, channel_type, target, active, description, events."""
    unknown = set(fields) - set(CHANNEL_FIELDS)
    if unknown:
        raise ServiceError(f"Cannot change {', '.join(sorted(unknown))} here.")
    channel = NotificationChannel.objects.select_for_update().get(pk=channel.pk)
    before = channel_snapshot(channel)
    for field, value in fields.items():
        setattr(channel, field, value)
    _check_channel(channel)
    changed = [field for field in fields if before[field] != getattr(channel, field)]
    if not changed:
        return channel
    if fields.get("active") is True and not before["active"]:
        channel.failing_since, channel.disabled_reason = None, ""
        changed += ["failing_since", "disabled_reason"]
    _save_channel(channel, update_fields=[*changed, "updated_at"])
    record_change(
        actor=actor,
        action="notify.update_channel",
        target=channel,
        before=before,
        after=channel_snapshot(channel),
    )
    return channel


@transaction.atomic
def rotate_channel_secret(
    *, actor: Actor, channel: NotificationChannel
) -> tuple[NotificationChannel, str]:
    """Give the channel a new signing secret; the old one stops at once."""
    channel = NotificationChannel.objects.select_for_update().get(pk=channel.pk)
    channel.secret = generate_secret()
    channel.save(update_fields=["secret", "updated_at"])
    record_change(actor=actor, action="notify.rotate_secret", target=channel)
    return channel, channel.secret


@transaction.atomic
def disable_channel(*, actor: Actor, channel: NotificationChannel, reason: str) -> None:
    """Turn a channel off because its deliveries keep failing (a 410, or days of errors)."""
    before = channel_snapshot(channel)
    updated = NotificationChannel.objects.filter(pk=channel.pk, active=True).update(
        active=False, disabled_reason=reason[:255], updated_at=timezone.now()
    )
    if not updated:
        return
    channel.refresh_from_db()
    record_change(
        actor=actor,
        action="notify.disable_channel",
        target=channel,
        before=before,
        after=channel_snapshot(channel),
        message=f"Notification channel {channel.name} disabled: {reason}"[:500],
        level="warning",
    )
    payload = {"channel_id": channel.pk, "name": channel.name, "reason": reason}
    emit_event(topic="notify.channel_disabled", payload=payload)


def _check_payload(payload: dict[str, Any]) -> None:
    if not isinstance(payload, dict):
        raise ServiceError("The payload must be a JSON object.", field="payload")
    size = len(json.dumps(payload, cls=DjangoJSONEncoder))
    if size > MAX_PAYLOAD_BYTES:
        raise ServiceError(
            f"The payload is {size} bytes; at most {MAX_PAYLOAD_BYTES}.", field="payload"
        )


@transaction.atomic
def enqueue_notification(
    *,
    actor: Actor,
    channel_id: int,
    subject: str,
    body: str = "",
    payload: dict[str, Any] | None = None,
    topic: str = "",
) -> NotificationOutbox:
    """Queue one notification for one channel; the dispatcher delivers it after commit."""
    channel = NotificationChannel.objects.filter(pk=channel_id).first()
    if channel is None:
        raise ServiceError(f"Notification channel {channel_id} does not exist.", field="channel_id")
    if not channel.active:
        raise ServiceError(f"Notification channel {channel_id} is inactive.", field="channel_id")
    payload = payload if payload is not None else {}
    _check_payload(payload)
    notification = NotificationOutbox.objects.create(
        channel=channel, subject=subject, body=body, payload=payload, topic=topic
    )
    record_change(
        actor=actor,
        action="notify.enqueue",
        target=notification,
        after=notification_snapshot(notification),
        message=f"Notification queued for channel {channel.name}",
    )
    return notification


def render_body(topic: str, payload: dict[str, Any]) -> str:
    details = json.dumps(payload, cls=DjangoJSONEncoder, indent=2, sort_keys=True)
    return f"Event: {topic}\n\n{details}\n"


def subscribers(topic: str) -> list[NotificationChannel]:
    """Active channels with an event pattern that matches `topic` (fnmatch, case-sensitive)."""
    channels = NotificationChannel.objects.subscribed().only("id", "events")
    return [c for c in channels if any(fnmatchcase(topic, p) for p in c.events)]


@transaction.atomic(savepoint=False)
def emit_event(*, topic: str, payload: dict[str, Any], subject: str = "") -> list:
    """Queue a notification for every active channel subscribed to `topic`.

    Call inside the transaction of the change that caused it: the outbox rows commit with it,
    and that change's own audit row covers them (no audit row per event).
    """
    if not validators.TOPIC.match(topic):
        raise ValueError(f"Invalid topic {topic!r}: 1-128 letters, digits, '.', '_' or '-'.")
    channels = subscribers(topic)
    if not channels:
        return []
    body = render_body(topic, payload)
    rows = [
        NotificationOutbox(
            channel=channel,
            topic=topic,
            subject=(subject or topic)[:512],
            body=body,
            payload=payload,
        )
        for channel in channels
    ]
    with bookkeeping():  # events of a permitted change flow in read-only mode too
        created = NotificationOutbox.objects.bulk_create(rows)
    logger.info("event %s queued for %s channel(s)", topic, len(created))
    return created


@transaction.atomic
def retry_notification(*, actor: Actor, notification: NotificationOutbox) -> NotificationOutbox:
    """Give a failed notification a fresh set of attempts, starting now."""
    notification = NotificationOutbox.objects.select_for_update().get(pk=notification.pk)
    if notification.status != NotificationOutbox.Status.FAILED:
        raise ServiceError(
            f"Only failed notifications can be retried; this one is {notification.status}.",
            field="status",
        )
    before = notification_snapshot(notification)
    notification.status = NotificationOutbox.Status.PENDING
    notification.attempts = 0
    notification.next_attempt_at = timezone.now()
    notification.locked_until = notification.lease_token = None
    fields = ["status", "attempts", "next_attempt_at", "locked_until", "lease_token", "updated_at"]
    notification.save(update_fields=fields)
    record_change(
        actor=actor,
        action="notify.retry",
        target=notification,
        before=before,
        after=notification_snapshot(notification),
    )
    return notification


@transaction.atomic
def requeue_notification(*, actor: Actor, notification: NotificationOutbox) -> NotificationOutbox:
    """Make a pending notification that is waiting for its next attempt due now."""
    notification = NotificationOutbox.objects.select_for_update().get(pk=notification.pk)
    if notification.status != NotificationOutbox.Status.PENDING:
        raise ServiceError(
            f"Only pending notifications can be requeued; this one is {notification.status}.",
            field="status",
        )
    before = {"next_attempt_at": notification.next_attempt_at.isoformat()}
    notification.next_attempt_at = timezone.now()
    notification.save(update_fields=["next_attempt_at", "updated_at"])
    after = {"next_attempt_at": notification.next_attempt_at.isoformat()}
    record_change(
        actor=actor, action="notify.requeue", target=notification, before=before, after=after
    )
    return notification


def send_test_notification(*, actor: Actor, channel: NotificationChannel) -> NotificationOutbox:
    """Queue a harmless notification that shows whether the channel's target receives."""
    return enqueue_notification(
        actor=actor,
        channel_id=channel.pk,
        topic="notify.test",
        subject=f"Test notification for {channel.name}",
        body="This is a test notification from Valhalla Ops. No action is needed.",
        payload={"test": True, "channel": channel.name},
    )
