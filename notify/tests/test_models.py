"""The invariants the database itself enforces."""

from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from notify.models import NotificationChannel, NotificationOutbox

pytestmark = pytest.mark.django_db


def test_database_refuses_an_unknown_channel_type():
    with pytest.raises(IntegrityError), transaction.atomic():
        NotificationChannel.objects.create(name="x", channel_type="pigeon", target="coop")


def test_database_refuses_a_duplicate_channel_name(make_channel):
    make_channel(name="ops")

    with pytest.raises(IntegrityError), transaction.atomic():
        NotificationChannel.objects.create(name="ops", channel_type="email", target="a@b.example")


def test_database_refuses_an_unknown_status(make_notification):
    notification = make_notification()

    with pytest.raises(IntegrityError), transaction.atomic():
        NotificationOutbox.objects.filter(pk=notification.pk).update(status="lost")


def test_database_refuses_negative_attempts(make_notification):
    notification = make_notification()

    with pytest.raises(IntegrityError), transaction.atomic():
        NotificationOutbox.objects.filter(pk=notification.pk).update(attempts=-1)


def test_database_refuses_sent_without_sent_at(make_notification):
    notification = make_notification()

    with pytest.raises(IntegrityError), transaction.atomic():
        NotificationOutbox.objects.filter(pk=notification.pk).update(status="sent")


def test_message_ids_are_unique_and_stable(make_notification):
    first, second = make_notification(), make_notification()
    message_id = first.message_id

    first.refresh_from_db()

    assert first.message_id == message_id
    assert first.message_id != second.message_id


def test_due_skips_future_attempts_live_leases_and_finished_rows(make_notification):
    now = timezone.now()
    due = make_notification()
    expired_lease = make_notification(locked_until=now - timedelta(seconds=1))
    make_notification(next_attempt_at=now + timedelta(minutes=5))
    make_notification(locked_until=now + timedelta(seconds=30))
    make_notification(status="failed")
    make_notification(status="sent", sent_at=now)

    assert set(NotificationOutbox.objects.due()) == {due, expired_lease}
