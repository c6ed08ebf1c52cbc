"""The notify admin: forms and actions go through the services; secrets stay hidden."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from notify.dashboard import outbox_rows, security_section
from notify.models import NotificationChannel, NotificationOutbox
from valhalla_ops.models import SystemLog

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(client, staff_user):
    client.force_login(staff_user)
    return client


def channel_form(**overrides) -> dict:
    return {
        "name": "ops-hook",
        "channel_type": "webhook",
        "target": "https://hooks.example.com/valhalla",
        "active": "on",
        "description": "",
        "events": ["maintenance.*"],
    } | overrides


def test_adding_a_channel_shows_its_secret_once_and_audits(staff):
    response = staff.post(
        reverse("admin:notify_notificationchannel_add"), channel_form(), follow=True
    )

    assert response.status_code == 200
    assert response.redirect_chain[0][1] == 302
    channel = NotificationChannel.objects.get(name="ops-hook")
    assert channel.secret in response.content.decode()
    assert "no-store" in response["Cache-Control"]
    assert channel.events == ["maintenance.*"]
    assert SystemLog.objects.filter(action="notify.create_channel").count() == 1


def test_channel_admin_form_rejects_a_bad_target(staff):
    response = staff.post(
        reverse("admin:notify_notificationchannel_add"), channel_form(target="ftp://x")
    )

    assert response.status_code == 200
    assert "Enter a valid http(s) URL" in response.content.decode()
    assert not NotificationChannel.objects.exists()


def test_channel_change_page_never_shows_the_secret(staff, make_channel):
    channel = make_channel()

    response = staff.get(reverse("admin:notify_notificationchannel_change", args=[channel.pk]))
    changelist = staff.get(reverse("admin:notify_notificationchannel_changelist"))

    assert response.status_code == 200
    assert channel.secret not in response.content.decode()
    assert channel.secret not in changelist.content.decode()


def test_changing_a_channel_in_the_admin_goes_through_the_service(staff, make_channel):
    channel = make_channel(channel_type="webhook", target="https://hooks.example.com/")
    url = reverse("admin:notify_notificationchannel_change", args=[channel.pk])

    response = staff.post(url, channel_form(name=channel.name, description="edited", active=""))

    assert response.status_code == 302
    channel.refresh_from_db()
    assert channel.description == "edited"
    assert channel.active is False
    assert SystemLog.objects.filter(action="notify.update_channel").count() == 1


def test_send_test_action_queues_one_notification_per_channel(staff, make_channel):
    channels = [make_channel(), make_channel()]

    staff.post(
        reverse("admin:notify_notificationchannel_changelist"),
        {"action": "send_test", "_selected_action": [c.pk for c in channels]},
    )

    assert NotificationOutbox.objects.filter(topic="notify.test").count() == 2


def test_rotate_secrets_action_shows_the_new_secret(staff, make_channel):
    channel = make_channel()
    old = channel.secret

    response = staff.post(
        reverse("admin:notify_notificationchannel_changelist"),
        {"action": "rotate_secrets", "_selected_action": [channel.pk]},
        follow=True,
    )

    channel.refresh_from_db()
    assert channel.secret != old
    assert channel.secret in response.content.decode()


def test_outbox_pages_are_read_only(staff, make_notification):
    notification = make_notification()

    detail = staff.get(reverse("admin:notify_notificationoutbox_change", args=[notification.pk]))
    post = staff.post(
        reverse("admin:notify_notificationoutbox_change", args=[notification.pk]),
        {"subject": "changed"},
    )

    assert detail.status_code == 200
    assert 'name="subject"' not in detail.content.decode()
    assert post.status_code == 403
    notification.refresh_from_db()
    assert notification.subject == "Alert"


def test_outbox_retry_action_retries_only_failed_rows(staff, make_notification):
    failed = make_notification(status="failed", attempts=9)
    pending = make_notification(attempts=2)

    staff.post(
        reverse("admin:notify_notificationoutbox_changelist"),
        {"action": "retry_failed", "_selected_action": [failed.pk, pending.pk]},
    )

    failed.refresh_from_db()
    pending.refresh_from_db()
    assert failed.status == "pending"
    assert failed.attempts == 0
    assert pending.attempts == 2
    assert SystemLog.objects.filter(action="notify.retry").count() == 1


def test_outbox_requeue_action_makes_waiting_rows_due(staff, make_notification):
    waiting = make_notification(next_attempt_at=timezone.now() + timedelta(hours=5))

    staff.post(
        reverse("admin:notify_notificationoutbox_changelist"),
        {"action": "requeue_pending", "_selected_action": [waiting.pk]},
    )

    waiting.refresh_from_db()
    assert waiting.next_attempt_at <= timezone.now()


def test_outbox_changelist_filters_and_searches(staff, make_notification):
    make_notification(subject="Disk full", status="failed")
    make_notification(subject="All good")

    response = staff.get(
        reverse("admin:notify_notificationoutbox_changelist"),
        {"status__exact": "failed", "q": "Disk"},
    )

    content = response.content.decode()
    assert "Disk full" in content
    assert "All good" not in content


def test_dashboard_rows_count_the_outbox(make_notification):
    now = timezone.now()
    make_notification()
    old = make_notification()
    NotificationOutbox.objects.filter(pk=old.pk).update(created_at=now - timedelta(hours=2))
    make_notification(status="failed")
    make_notification(status="sent", sent_at=now - timedelta(hours=1))
    make_notification(status="sent", sent_at=now - timedelta(days=2))

    rows = {label: (value, level) for label, value, level in outbox_rows()}

    assert rows["pending"] == (2, "info")
    assert rows["failed"] == (1, "warning")
    assert rows["sent, last 24 h"] == (1, "info")
    assert rows["oldest pending"][0].startswith("2")
    assert rows["oldest pending"][1] == "warning"


def test_admin_index_shows_the_notifications_box(staff, make_notification):
    make_notification(status="failed")

    response = staff.get(reverse("admin:index"))

    assert 'data-section="notify"' in response.content.decode()


def test_security_section_counts_channels_without_secrets(make_channel, settings):
    settings.NOTIFY_WEBHOOK_ALLOWED_NETWORKS = ["10.0.0.0/8"]
    hook = make_channel(channel_type="webhook", target="http://hooks.example.com/")
    make_channel(channel_type="webhook", target="https://hooks.example.com/")
    make_channel()

    section = security_section()

    assert section["channels"]["total"] == 3
    assert section["channels"]["plain_http_webhooks"] == 1
    assert section["webhook_allowed_private_networks"] == ["10.0.0.0/8"]
    assert hook.secret not in str(section)


def test_security_snapshot_includes_the_notify_section(ops_admin, make_channel):
    make_channel()

    response = ops_admin.post("/admin/ops/", {"action": "security_snapshot"}, format="json")

    assert response.status_code == 200
    assert response.json()["data"]["notify"]["channels"]["total"] == 1
