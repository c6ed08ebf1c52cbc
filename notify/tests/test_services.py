import base64
import logging

import pytest
from django.db import transaction

from notify import services
from notify.models import NotificationChannel, NotificationOutbox
from valhalla_ops.exceptions import ServiceError
from valhalla_ops.models import SystemLog
from valhalla_ops.principals import SYSTEM

pytestmark = pytest.mark.django_db


def test_create_channel_generates_a_standard_webhooks_secret():
    channel, secret = services.create_channel(
        actor=SYSTEM, name="hook", channel_type="webhook", target="https://hooks.example.com/"
    )

    channel.refresh_from_db()
    assert channel.secret == secret
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 24


def test_every_channel_gets_its_own_secret(make_channel):
    secrets = {make_channel().secret for _ in range(5)}

    assert len(secrets) == 5


def test_the_secret_is_never_logged(caplog):
    caplog.set_level(logging.DEBUG)

    _channel, secret = services.create_channel(
        actor=SYSTEM, name="hook", channel_type="webhook", target="https://hooks.example.com/"
    )

    assert caplog.records
    assert secret not in caplog.text


def test_emit_event_fans_out_to_matching_active_channels(make_channel):
    maintenance = make_channel(events=["maintenance.*"])
    ratelimit = make_channel(events=["ratelimit.exceeded"])
    everything = make_channel(events=["*"])
    make_channel(events=[])  # direct notifications only
    make_channel(events=["*"], active=False)
    audit_rows = SystemLog.objects.count()

    with transaction.atomic():
        created = services.emit_event(
            topic="maintenance.mode_changed", payload={"mode": "read_only"}, subject="Mode"
        )

    assert {row.channel_id for row in created} == {maintenance.pk, everything.pk}
    rows = NotificationOutbox.objects.filter(topic="maintenance.mode_changed")
    assert {row.channel_id for row in rows} == {maintenance.pk, everything.pk}
    assert all(row.status == "pending" and row.subject == "Mode" for row in rows)
    first = rows.first()
    assert first is not None
    assert first.payload == {"mode": "read_only"}
    assert "read_only" in first.body
    assert SystemLog.objects.count() == audit_rows
    assert not NotificationOutbox.objects.filter(channel=ratelimit).exists()


def test_emit_event_patterns_are_exact_without_wildcards(make_channel):
    channel = make_channel(events=["ratelimit.exceeded"])

    none = services.emit_event(topic="ratelimit.exceeded.ip", payload={})
    one = services.emit_event(topic="ratelimit.exceeded", payload={})

    assert none == []
    assert [row.channel_id for row in one] == [channel.pk]


def test_emit_event_uses_the_topic_as_default_subject(make_channel):
    make_channel(events=["export.*"])

    [row] = services.emit_event(topic="export.completed", payload={"job_id": 7})

    assert row.subject == "export.completed"


def test_emit_event_rolls_back_with_the_callers_transaction(make_channel):
    make_channel(events=["*"])

    def failing_change() -> None:
        with transaction.atomic():
            services.emit_event(topic="export.requested", payload={"job_id": 1})
            raise RuntimeError("the caller's change failed")

    with pytest.raises(RuntimeError):
        failing_change()

    assert not NotificationOutbox.objects.exists()


def test_emit_event_with_no_subscribers_writes_nothing(make_channel):
    make_channel(events=["maintenance.*"])

    created = services.emit_event(topic="export.requested", payload={})

    assert created == []
    assert not NotificationOutbox.objects.exists()


def test_emit_event_refuses_a_malformed_topic():
    with pytest.raises(ValueError, match="Invalid topic"):
        services.emit_event(topic="no spaces allowed", payload={})


def test_emit_event_accepts_datetimes_in_the_payload(make_channel):
    from django.utils import timezone

    make_channel(events=["*"])
    moment = timezone.now()

    [row] = services.emit_event(topic="maintenance.mode_changed", payload={"at": moment})

    row.refresh_from_db()
    assert row.payload["at"].startswith(moment.date().isoformat())


def test_update_without_a_change_writes_no_audit_row(make_channel):
    channel = make_channel(description="same")

    services.update_channel(actor=SYSTEM, channel=channel, description="same")

    assert not SystemLog.objects.filter(action="notify.update_channel").exists()


def test_reactivating_a_disabled_channel_clears_its_failure_state(make_channel):
    channel = make_channel()
    services.disable_channel(actor=SYSTEM, channel=channel, reason="HTTP 410 Gone")

    services.update_channel(actor=SYSTEM, channel=channel, active=True)

    channel.refresh_from_db()
    assert channel.active is True
    assert channel.disabled_reason == ""
    assert channel.failing_since is None


def test_disable_channel_audits_and_announces_it(make_channel):
    watcher = make_channel(events=["notify.*"])
    channel = make_channel(channel_type="webhook", target="https://hooks.example.com/")

    services.disable_channel(actor=SYSTEM, channel=channel, reason="HTTP 410 Gone")

    channel.refresh_from_db()
    assert channel.active is False
    assert channel.disabled_reason == "HTTP 410 Gone"
    row = SystemLog.objects.get(action="notify.disable_channel")
    assert row.level == "warning"
    assert row.after is not None
    assert row.after["active"] is False
    event = NotificationOutbox.objects.get(topic="notify.channel_disabled")
    assert event.channel == watcher


def test_disabling_an_inactive_channel_does_nothing(make_channel):
    channel = make_channel(active=False)

    services.disable_channel(actor=SYSTEM, channel=channel, reason="again")

    assert not SystemLog.objects.filter(action="notify.disable_channel").exists()


def test_update_channel_refuses_unknown_fields(make_channel):
    channel = make_channel()

    with pytest.raises(ServiceError):
        services.update_channel(actor=SYSTEM, channel=channel, secret="whsec_mine")

    channel.refresh_from_db()
    assert channel.secret != "whsec_mine"


def test_requeue_refuses_a_sent_notification(make_notification):
    from django.utils import timezone

    notification = make_notification(status="sent", sent_at=timezone.now())

    with pytest.raises(ServiceError, match="Only pending"):
        services.requeue_notification(actor=SYSTEM, notification=notification)


def test_retention_category_protects_undelivered_notifications(make_notification):
    from django.utils import timezone

    from valhalla_ops import registry

    pending = make_notification()
    failed = make_notification(status="failed")
    sent = make_notification(status="sent", sent_at=timezone.now())
    category = registry.retention_categories.get("notifications")
    assert category is not None
    assert category.protected is not None

    protected = set(category.protected().values_list("pk", flat=True))

    assert category.date_field == "created_at"
    assert protected == {pending.pk, failed.pk}
    assert set(category.queryset().values_list("pk", flat=True)) == {
        pending.pk,
        failed.pk,
        sent.pk,
    }


def test_channel_queryset_subscribed_skips_inactive_and_unsubscribed(make_channel):
    wanted = make_channel(events=["*"])
    make_channel(events=["*"], active=False)
    make_channel()

    assert list(NotificationChannel.objects.subscribed()) == [wanted]


def test_emit_event_writes_as_bookkeeping_under_a_write_guard(make_channel):
    """A read-only guard refuses ordinary writes; the events of a permitted change pass."""
    from django.db import connection

    from valhalla_ops.writeguard import is_bookkeeping

    def guard(execute, sql, params, many, context):
        if sql.lstrip().upper().startswith("INSERT") and not is_bookkeeping():
            raise PermissionError("write refused")
        return execute(sql, params, many, context)

    make_channel(events=["ratelimit.*"])

    with connection.execute_wrapper(guard):
        created = services.emit_event(topic="ratelimit.exceeded", payload={"key": "1.2.3.4"})
        with pytest.raises(PermissionError), transaction.atomic():
            NotificationOutbox.objects.create(channel=created[0].channel, subject="direct")

    assert NotificationOutbox.objects.filter(topic="ratelimit.exceeded").count() == 1
