"""The worker step that drains the outbox: claim, deliver outside any transaction, record.

Delivery is at least once: a worker that dies mid-batch leaves its rows leased, and they
come back when the lease expires. Each row carries a stable `message_id` for receivers.
notify.pipeline keeps many deliveries in flight; this module claims, delivers and records.
"""

import logging
import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone
from prometheus_client import Counter

from notify import pipeline, services, transports
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
    """Deliver due notifications, many at a time; returns how many rows were taken on.

    0 means nothing was due and nothing is in flight.
    """
    return pipeline.current(HOOKS).run(limit=limit or settings.NOTIFY_BATCH_SIZE)


def finish_in_flight() -> None:
    """Wait for this thread's deliveries in flight and record them (the worker is stopping)."""
    pipeline.close_current()


def release(pks: list[int], token: uuid.UUID) -> None:
    """Give leased rows back to the queue without an attempt (stopping, or over a cap)."""
    with bookkeeping():
        NotificationOutbox.objects.filter(pk__in=pks, lease_token=token).update(
            locked_until=None, lease_token=None
        )


def _lease_end() -> datetime:
    return timezone.now() + timedelta(seconds=settings.NOTIFY_LEASE_SECONDS)


def _due(exclude_channels: Sequence[int], exclude_rows: Sequence[int]) -> QuerySet:
    due = NotificationOutbox.objects.due().order_by("next_attempt_at", "id")
    if exclude_channels:
        due = due.exclude(channel_id__in=exclude_channels)
    if exclude_rows:
        due = due.exclude(pk__in=exclude_rows)
    return due


def claim(
    *, limit: int, exclude_channels: Sequence[int] = (), exclude_rows: Sequence[int] = ()
) -> tuple[uuid.UUID, list[int]]:
    """Lease due rows in a short transaction; other workers skip the locked ones."""
    token = uuid.uuid4()
    with transaction.atomic(), bookkeeping():
        due = _due(exclude_channels, exclude_rows).select_for_update(skip_locked=True)
        pks = list(due.values_list("pk", flat=True)[:limit])
        if pks:
            NotificationOutbox.objects.filter(pk__in=pks).update(
                locked_until=_lease_end(), lease_token=token
            )
    return token, pks


def claim_rows(
    limit: int,
    exclude_channels: list[int],
    exclude_rows: list[int],
    channels: dict[int, NotificationChannel],
) -> tuple[uuid.UUID, list[NotificationOutbox]]:
    """Lease and load up to `limit` due rows in one statement; other workers skip locked ones.

    Channels come from `channels`, a cache for the run, so each is loaded (and its secret
    unsealed) once per batch.
    """
    token = uuid.uuid4()
    inner, params = (
        _due(exclude_channels, exclude_rows).values("pk")[:limit].query.sql_with_params()
    )
    if connection.features.has_select_for_update_skip_locked:
        inner += " FOR UPDATE SKIP LOCKED"
    meta, quote = NotificationOutbox._meta, connection.ops.quote_name
    lease = [
        NotificationOutbox.locked_until.field.get_db_prep_save(_lease_end(), connection),
        NotificationOutbox.lease_token.field.get_db_prep_save(token, connection),
    ]
    sql = (
        f"UPDATE {quote(meta.db_table)} SET {quote('locked_until')} = %s, "
        f"{quote('lease_token')} = %s WHERE {quote('id')} IN ({inner}) RETURNING *"
    )
    with bookkeeping():
        rows = sorted(NotificationOutbox.objects.raw(sql, [*lease, *params]), key=lambda r: r.pk)
    missing = {row.channel_id for row in rows} - set(channels)
    if missing:
        channels.update(NotificationChannel.objects.in_bulk(missing))
    for row in rows:
        row.channel = channels[row.channel_id]
    return token, rows


def deliver_rows(rows: list[NotificationOutbox], token: uuid.UUID) -> list[Outcome | None]:
    """One task's deliveries, in a pool thread: never touches the database.

    Emails share one SMTP connection; a stopping worker leaves the rest (None) to release.
    """
    with transports.batch(token):
        if rows[0].channel.channel_type != "email":
            return [attempt(row) for row in rows]
        results: list[Outcome | None] = []
        with transports.smtp_session():
            for row in rows:
                results.append(None if stop_requested() else attempt(row))
        return results


def inactive(notification: NotificationOutbox) -> Outcome:
    return Outcome(
        f"channel {notification.channel.name} is inactive", permanent=True, counted=False
    )


def record_results(results: list[tuple[NotificationOutbox, uuid.UUID, object]]) -> set[int]:
    """Write a round of results: the successes in one statement, each failure on its own.

    Returns the rows that failed, which the same run does not take again (the first retry
    is immediate, but not in the same breath).
    """
    sent = [(row, token) for row, token, outcome in results if delivered(outcome)]
    unsent: dict[uuid.UUID, list[int]] = {}
    for row, token, outcome in results:
        if outcome is None:
            unsent.setdefault(token, []).append(row.pk)
    for token, pks in unsent.items():
        release(pks, token)
    try:
        record_sent(sent)
    except Exception:  # one bad write never stops the worker; the leases bring the rows back
        logger.exception("recording %s deliveries failed", len(sent))
    for row, token, outcome in results:
        if isinstance(outcome, Outcome) and not delivered(outcome):
            try:
                record(row, token, outcome)
            except Exception:
                logger.exception("notification %s: recording its result failed", row.pk)
    for row, _token, outcome in results:
        if isinstance(outcome, Outcome) and outcome.counted:
            deliveries.labels(row.channel.channel_type, "sent" if outcome.ok else "failed").inc()
    return {
        row.pk
        for row, _token, outcome in results
        if isinstance(outcome, Outcome) and not outcome.ok
    }


def delivered(outcome: object) -> bool:
    return isinstance(outcome, Outcome) and outcome.ok and outcome.counted


def record_sent(sent: list[tuple[NotificationOutbox, uuid.UUID]]) -> None:
    """Mark delivered rows sent (those we still hold) and clear their channels' failure streak."""
    if not sent:
        return
    held = Q()
    by_token: dict[uuid.UUID, list[int]] = {}
    for row, token in sent:
        by_token.setdefault(token, []).append(row.pk)
    for token, pks in by_token.items():
        held |= Q(lease_token=token, pk__in=pks)
    now = timezone.now()
    with bookkeeping():
        updated = NotificationOutbox.objects.filter(held).update(
            status=NotificationOutbox.Status.SENT,
            sent_at=now,
            last_error="",
            attempts=F("attempts") + 1,
            locked_until=None,
            lease_token=None,
            updated_at=now,
        )
        failing = {row.channel for row, _token in sent if row.channel.failing_since is not None}
        if failing:
            NotificationChannel.objects.filter(pk__in=[c.pk for c in failing]).update(
                failing_since=None
            )
            for channel in failing:
                channel.failing_since = None
    if updated < len(sent):
        logger.warning("%s deliveries lost their lease before being saved", len(sent) - updated)


def renew_leases(rows: list[tuple[NotificationOutbox, uuid.UUID]]) -> None:
    """Extend the leases of claimed rows still waiting for a slot."""
    held = Q()
    for row, token in rows:
        held |= Q(pk=row.pk, lease_token=token)
    with bookkeeping():
        NotificationOutbox.objects.filter(held).update(locked_until=_lease_end())


HOOKS = pipeline.Hooks(
    claim_rows=claim_rows,
    deliver=deliver_rows,
    inactive=inactive,
    record=record_results,
    renew=renew_leases,
)


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
    channel.failing_since = channel.failing_since or now  # the run's cached channel, too
    since = channels.values_list("failing_since", flat=True).first()
    if since is not None and now - since >= DISABLE_AFTER:
        reason = f"deliveries failing since {since:%Y-%m-%d %H:%M} UTC: {outcome.error}"
        services.disable_channel(actor=SYSTEM, channel=channel, reason=reason)
