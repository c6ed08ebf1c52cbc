"""The outbox worker step: claims, leases, retries, dead ends, channel health."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core.management import call_command
from django.utils import timezone

from notify import dispatcher, transports
from notify.models import NotificationOutbox
from valhalla_ops import registry, worker
from valhalla_ops.models import SystemLog

pytestmark = pytest.mark.django_db

# A fake clock a day ahead, so the rows each test creates (at real time) are already due.
START = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)


@pytest.fixture
def receipts(monkeypatch) -> list[str]:
    """A counting transport: every delivery appends the notification's message_id."""
    seen: list[str] = []
    monkeypatch.setattr(
        transports, "deliver", lambda notification, channel: seen.append(notification.message_id)
    )
    return seen


@pytest.fixture
def refusing(monkeypatch) -> None:
    def refuse(notification, channel) -> None:
        raise transports.TransportError("connection refused")

    monkeypatch.setattr(transports, "deliver", refuse)


def test_the_step_is_registered():
    assert registry.worker_steps.get("notify") is dispatcher.dispatch_due


def test_dispatch_delivers_due_rows_and_records_success(receipts, make_notification):
    first, second = make_notification(), make_notification()

    handled = dispatcher.dispatch_due()

    assert handled == 2
    assert sorted(receipts) == sorted([first.message_id, second.message_id])
    for row in (first, second):
        row.refresh_from_db()
        assert row.status == "sent"
        assert row.attempts == 1
        assert row.sent_at is not None
        assert row.locked_until is None


def test_dispatch_respects_the_batch_size(receipts, make_notification, settings):
    settings.NOTIFY_BATCH_SIZE = 2
    for _ in range(3):
        make_notification()

    assert dispatcher.dispatch_due() == 2
    assert dispatcher.dispatch_due() == 1
    assert dispatcher.dispatch_due() == 0


def test_rows_not_yet_due_are_left_alone(receipts, make_notification):
    later = make_notification(next_attempt_at=timezone.now() + timedelta(minutes=5))

    handled = dispatcher.dispatch_due()

    later.refresh_from_db()
    assert handled == 0
    assert later.attempts == 0
    assert receipts == []


def test_failure_schedules_the_next_attempt(refusing, make_notification):
    notification = make_notification()

    with time_machine.travel(START, tick=False):
        dispatcher.dispatch_due()
        dispatcher.dispatch_due()  # the first retry is immediate

    notification.refresh_from_db()
    assert notification.status == "pending"
    assert notification.attempts == 2
    assert notification.last_error == "connection refused"
    assert timedelta(seconds=4.5) <= notification.next_attempt_at - START <= timedelta(seconds=5.5)
    assert notification.locked_until is None


def test_retry_schedule_follows_standard_webhooks_then_fails(refusing, make_notification):
    expected = [0, 5, 300, 1800, 7200, 18000, 36000, 36000]
    notification = make_notification()
    delays = []

    with time_machine.travel(START, tick=False) as clock:
        for _ in expected:
            attempted_at = timezone.now()
            assert dispatcher.dispatch_due() == 1
            notification.refresh_from_db()
            delays.append((notification.next_attempt_at - attempted_at).total_seconds())
            clock.move_to(notification.next_attempt_at)
        assert dispatcher.dispatch_due() == 1

    notification.refresh_from_db()
    for delay, base in zip(delays, expected, strict=True):
        assert base * 0.9 <= delay <= base * 1.1
    assert notification.attempts == 9
    assert notification.status == "failed"


def test_jitter_spreads_retries():
    delays = {dispatcher.retry_delay(3).total_seconds() for _ in range(20)}

    assert len(delays) > 1
    assert all(270 <= delay <= 330 for delay in delays)


def test_max_attempts_makes_a_notification_failed(refusing, make_notification, settings):
    settings.NOTIFY_MAX_ATTEMPTS = 1
    notification = make_notification()

    dispatcher.dispatch_due()

    notification.refresh_from_db()
    assert notification.status == "failed"
    assert notification.attempts == 1
    assert notification.last_error == "connection refused"


def test_a_failed_notification_is_not_picked_up_again(refusing, make_notification):
    make_notification(status="failed", attempts=9)

    assert dispatcher.dispatch_due() == 0


def test_an_unexpected_error_fails_the_row_and_the_loop_goes_on(
    monkeypatch, make_notification, caplog
):
    broken, fine = make_notification(subject="broken"), make_notification(subject="fine")
    sent = []

    def flaky(notification, channel) -> None:
        if notification.subject == "broken":
            raise KeyError("bug in a transport")
        sent.append(notification.pk)

    monkeypatch.setattr(transports, "deliver", flaky)

    dispatcher.dispatch_due()

    broken.refresh_from_db()
    fine.refresh_from_db()
    assert fine.status == "sent"
    assert broken.status == "pending"
    assert broken.attempts == 1
    assert "unexpected error: KeyError" in broken.last_error
    assert "unexpected error" in caplog.text
    assert any(record.exc_info for record in caplog.records)


def test_a_row_whose_bookkeeping_fails_does_not_stop_the_batch(monkeypatch, make_notification):
    broken, fine = make_notification(subject="broken"), make_notification(subject="fine")
    real_record = dispatcher.record

    def flaky(notification, channel) -> None:
        if notification.subject == "broken":
            raise transports.TransportError("refused")

    def record(notification, token, outcome) -> None:
        if notification.pk == broken.pk:
            raise RuntimeError("database hiccup")
        real_record(notification, token, outcome)

    monkeypatch.setattr(transports, "deliver", flaky)
    monkeypatch.setattr(dispatcher, "record", record)

    assert dispatcher.dispatch_due() == 2

    fine.refresh_from_db()
    broken.refresh_from_db()
    assert fine.status == "sent"
    assert broken.status == "pending"
    assert broken.attempts == 0
    assert broken.locked_until is not None  # comes back when the lease expires


def test_when_saving_a_round_of_successes_fails_the_rows_come_back_later(
    receipts, make_notification, monkeypatch
):
    rows = [make_notification() for _ in range(3)]

    def hiccup(sent) -> None:
        raise RuntimeError("database hiccup")

    monkeypatch.setattr(dispatcher, "record_sent", hiccup)

    assert dispatcher.dispatch_due() == 3

    for row in rows:
        row.refresh_from_db()
        assert (row.status, row.attempts) == ("pending", 0)
        assert row.locked_until is not None


def test_an_inactive_channel_fails_its_rows_without_an_attempt(
    receipts, make_channel, make_notification
):
    channel = make_channel(active=False)
    notification = make_notification(channel=channel)

    dispatcher.dispatch_due()

    notification.refresh_from_db()
    assert receipts == []
    assert notification.status == "failed"
    assert notification.attempts == 0
    assert "inactive" in notification.last_error


def test_expired_lease_is_claimed_again(receipts, make_notification):
    abandoned = make_notification(
        locked_until=timezone.now() - timedelta(seconds=1), lease_token=uuid.uuid4()
    )

    dispatcher.dispatch_due()

    abandoned.refresh_from_db()
    assert abandoned.status == "sent"
    assert receipts == [abandoned.message_id]


def test_a_crashed_workers_rows_come_back_after_the_lease(receipts, make_notification, settings):
    settings.NOTIFY_LEASE_SECONDS = 60
    notification = make_notification()

    with time_machine.travel(START, tick=False) as clock:
        NotificationOutbox.objects.filter(pk=notification.pk).update(next_attempt_at=START)
        crashed_token, claimed = dispatcher.claim(limit=10)  # then the worker dies
        during_lease = dispatcher.dispatch_due()
        clock.shift(timedelta(seconds=61))
        after_lease = dispatcher.dispatch_due()
        notification.refresh_from_db()
        # The old worker wakes up and saves a result under its lost lease: nothing changes.
        dispatcher.record_results([(notification, crashed_token, dispatcher.Outcome("late"))])
        dispatcher.record_results([(notification, crashed_token, dispatcher.Outcome())])

    notification.refresh_from_db()
    assert claimed == [notification.pk]
    assert during_lease == 0
    assert after_lease == 1
    assert receipts == [notification.message_id]
    assert (notification.status, notification.attempts, notification.last_error) == ("sent", 1, "")


def test_a_success_clears_the_channels_failure_streak(receipts, make_channel, make_notification):
    channel = make_channel()
    channel.failing_since = timezone.now() - timedelta(days=1)
    channel.save(update_fields=["failing_since"])
    make_notification(channel=channel)

    dispatcher.dispatch_due()

    channel.refresh_from_db()
    assert channel.failing_since is None


def test_a_first_failure_starts_the_streak(refusing, make_channel, make_notification):
    channel = make_channel()
    make_notification(channel=channel)

    with time_machine.travel(START, tick=False):
        dispatcher.dispatch_due()

    channel.refresh_from_db()
    assert channel.failing_since == START
    assert channel.active is True


def test_five_days_of_failures_disable_the_channel(refusing, make_channel, make_notification):
    channel = make_channel(events=[])
    watcher = make_channel(events=["notify.channel_disabled"])
    channel.failing_since = START - timedelta(days=5)
    channel.save(update_fields=["failing_since"])
    make_notification(channel=channel)

    with time_machine.travel(START, tick=False):
        dispatcher.dispatch_due()

    channel.refresh_from_db()
    assert channel.active is False
    assert "failing since" in channel.disabled_reason
    assert SystemLog.objects.filter(action="notify.disable_channel", actor="system").count() == 1
    assert NotificationOutbox.objects.filter(channel=watcher, topic="notify.channel_disabled")


def test_four_days_of_failures_keep_the_channel(refusing, make_channel, make_notification):
    channel = make_channel()
    channel.failing_since = START - timedelta(days=4)
    channel.save(update_fields=["failing_since"])
    make_notification(channel=channel)

    with time_machine.travel(START, tick=False):
        dispatcher.dispatch_due()

    channel.refresh_from_db()
    assert channel.active is True


@pytest.mark.django_db(transaction=True)  # the worker manages its own connection
def test_run_worker_once_drains_the_outbox(receipts, make_notification):
    rows = [make_notification() for _ in range(3)]

    call_command("run_worker", "--once")

    assert sorted(receipts) == sorted(row.message_id for row in rows)
    assert NotificationOutbox.objects.filter(status="sent").count() == 3


@pytest.mark.django_db(transaction=True)  # the worker manages its own connection
def test_events_emitted_by_a_change_are_delivered_by_the_worker(receipts, make_channel):
    from django.db import transaction

    from notify.services import emit_event

    make_channel(events=["export.*"])
    with transaction.atomic():
        [row] = emit_event(topic="export.completed", payload={"job_id": 3})

    call_command("run_worker", "--once", "--only", "notify")

    row.refresh_from_db()
    assert row.status == "sent"
    assert receipts == [row.message_id]


def test_deliveries_are_counted_in_metrics(receipts, make_notification):
    before = dispatcher.deliveries.labels("email", "sent")._value.get()
    make_notification()

    dispatcher.dispatch_due()

    assert dispatcher.deliveries.labels("email", "sent")._value.get() == before + 1


def test_a_stopping_worker_hands_the_rest_of_its_batch_back(make_notification, monkeypatch):
    rows = [make_notification() for _ in range(3)]  # emails: one task, one SMTP connection
    delivered: list[int] = []

    def deliver_then_stop(notification, channel) -> None:
        delivered.append(notification.pk)
        worker._stop_requested.set()  # SIGTERM arrives while the first row is in hand

    monkeypatch.setattr(transports, "deliver", deliver_then_stop)
    try:
        dispatcher.dispatch_due(limit=10)
    finally:
        worker._stop_requested.clear()

    assert delivered == [rows[0].pk]
    rows[0].refresh_from_db()
    assert rows[0].status == "sent"
    for row in rows[1:]:
        row.refresh_from_db()
        assert (row.locked_until, row.lease_token, row.attempts) == (None, None, 0)
