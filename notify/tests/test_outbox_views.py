"""POST/GET /system/notify/, GET /system/notify/{id}, retry and requeue."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from notify.models import NotificationOutbox
from valhalla_ops.models import SystemLog

pytestmark = pytest.mark.django_db

SEED_NOTIFICATION = {
    "subject": "Alert",
    "body": "System updated",
    "payload": {"resource": "config", "action": "update"},
}


@pytest.mark.parametrize("path", ["/system/notify/", "/system/notify"])
def test_enqueue_as_in_the_seed(operator, make_channel, path):
    channel = make_channel()

    response = operator.post(path, {"channel_id": channel.pk, **SEED_NOTIFICATION}, format="json")

    assert response.status_code == 201, response.data
    body = response.json()
    assert body["status"] == "pending"
    assert body["channel_id"] == channel.pk
    assert body["attempts"] == 0
    assert body["message_id"]
    notification = NotificationOutbox.objects.get(pk=body["id"])
    assert notification.subject == "Alert"
    assert notification.body == "System updated"
    assert notification.payload == {"resource": "config", "action": "update"}
    assert notification.status == NotificationOutbox.Status.PENDING


def test_enqueue_writes_one_audit_row(operator, make_channel):
    channel = make_channel()

    response = operator.post(
        "/system/notify/", {"channel_id": channel.pk, **SEED_NOTIFICATION}, format="json"
    )

    row = SystemLog.objects.get(action="notify.enqueue")
    assert row.target_id == str(response.json()["id"])
    assert row.after is not None
    assert row.after["channel_id"] == channel.pk
    assert row.after["status"] == "pending"


def test_enqueue_without_body_or_payload(operator, make_channel):
    channel = make_channel()

    response = operator.post(
        "/system/notify/", {"channel_id": channel.pk, "subject": "Ping"}, format="json"
    )

    assert response.status_code == 201
    assert response.json()["payload"] == {}
    assert response.json()["body"] == ""


def test_enqueue_to_an_unknown_channel_is_a_400_naming_channel_id(operator):
    response = operator.post(
        "/system/notify/", {"channel_id": 424242, **SEED_NOTIFICATION}, format="json"
    )

    assert response.status_code == 400
    assert response.json()["errors"] == {
        "channel_id": ["Notification channel 424242 does not exist."]
    }
    assert not NotificationOutbox.objects.exists()
    assert not SystemLog.objects.filter(action="notify.enqueue").exists()


def test_enqueue_to_an_inactive_channel_is_a_400(operator, make_channel):
    channel = make_channel(active=False)

    response = operator.post(
        "/system/notify/", {"channel_id": channel.pk, **SEED_NOTIFICATION}, format="json"
    )

    assert response.status_code == 400
    assert "inactive" in response.json()["errors"]["channel_id"][0]
    assert not NotificationOutbox.objects.exists()


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"subject": "x"}, "channel_id"),
        ({"channel_id": "one", "subject": "x"}, "channel_id"),
        ({"channel_id": None, "subject": "x"}, "channel_id"),
        ({"channel_id": "$id", "body": "no subject"}, "subject"),
        ({"channel_id": "$id", "subject": ""}, "subject"),
        ({"channel_id": "$id", "subject": "x" * 513}, "subject"),
        ({"channel_id": "$id", "subject": "x", "payload": [1, 2]}, "payload"),
        ({"channel_id": "$id", "subject": "x", "payload": "text"}, "payload"),
        ({"channel_id": "$id", "subject": "x", "payload": {"blob": "x" * 70_000}}, "payload"),
    ],
)
def test_enqueue_rejects_bad_input(operator, make_channel, data, field):
    channel = make_channel()
    if data.get("channel_id") == "$id":
        data = data | {"channel_id": channel.pk}

    response = operator.post("/system/notify/", data, format="json")

    assert response.status_code == 400
    assert field in response.json()["errors"], response.json()
    assert not NotificationOutbox.objects.exists()


def test_list_filters_by_status(viewer, make_notification):
    pending = make_notification()
    make_notification(status="failed", last_error="boom")
    make_notification(status="sent", sent_at=timezone.now())

    response = viewer.get("/system/notify/?status=pending")

    assert response.status_code == 200
    assert [row["id"] for row in response.json()["results"]] == [pending.pk]


def test_list_rejects_an_unknown_status(viewer):
    response = viewer.get("/system/notify/?status=lost")

    assert response.status_code == 400
    assert "status" in response.json()["errors"]


def test_list_filters_by_channel_and_topic(viewer, make_channel, make_notification):
    channel = make_channel()
    wanted = make_notification(channel=channel, topic="maintenance.mode_changed")
    make_notification(channel=channel, topic="exports.completed")
    make_notification(topic="maintenance.mode_changed")

    response = viewer.get(f"/system/notify/?channel={channel.pk}&topic=maintenance.mode_changed")

    assert [row["id"] for row in response.json()["results"]] == [wanted.pk]


def test_list_is_newest_first_and_paginated(viewer, make_notification):
    rows = [make_notification() for _ in range(5)]

    response = viewer.get("/system/notify/?limit=2&offset=1")

    body = response.json()
    assert body["count"] == 5
    assert [row["id"] for row in body["results"]] == [rows[3].pk, rows[2].pk]
    assert "offset=3" in body["next"]


def test_list_costs_two_queries_whatever_the_size(viewer, make_notification):
    for _ in range(10):
        make_notification()

    with CaptureQueriesContext(connection) as queries:
        response = viewer.get("/system/notify/")

    assert len(response.json()["results"]) == 10
    assert len([q for q in queries.captured_queries if "notify_" in q["sql"]]) == 2


def test_detail_shows_one_notification(viewer, make_notification):
    notification = make_notification(payload={"resource": "config"})

    response = viewer.get(f"/system/notify/{notification.pk}")

    assert response.status_code == 200
    assert response.json()["payload"] == {"resource": "config"}
    assert response.json()["message_id"] == str(notification.message_id)


def test_unknown_notification_is_a_404(viewer):
    assert viewer.get("/system/notify/999999").status_code == 404
    assert viewer.get("/system/notify/999999/").status_code == 404


def test_retry_puts_a_failed_notification_back_in_the_queue(operator, make_notification):
    notification = make_notification(status="failed", attempts=9, last_error="HTTP 500")

    response = operator.post(f"/system/notify/{notification.pk}/retry")

    assert response.status_code == 200
    notification.refresh_from_db()
    assert notification.status == "pending"
    assert notification.attempts == 0
    assert notification.next_attempt_at <= timezone.now()
    row = SystemLog.objects.get(action="notify.retry")
    assert row.before is not None
    assert row.after is not None
    assert row.before["status"] == "failed"
    assert row.after["status"] == "pending"


def test_retry_refuses_a_notification_that_has_not_failed(operator, make_notification):
    notification = make_notification()

    response = operator.post(f"/system/notify/{notification.pk}/retry")

    assert response.status_code == 400
    assert "Only failed" in response.json()["errors"]["status"][0]


def test_requeue_makes_a_waiting_notification_due_now(operator, make_notification):
    later = timezone.now() + timedelta(hours=2)
    notification = make_notification(attempts=4, next_attempt_at=later)

    response = operator.post(f"/system/notify/{notification.pk}/requeue")

    assert response.status_code == 200
    notification.refresh_from_db()
    assert notification.next_attempt_at <= timezone.now()
    assert NotificationOutbox.objects.due().filter(pk=notification.pk).exists()
    assert SystemLog.objects.filter(action="notify.requeue").count() == 1


def test_outbox_needs_credentials(api_client):
    assert api_client.get("/system/notify/").status_code == 401
    assert api_client.post("/system/notify/", SEED_NOTIFICATION, format="json").status_code == 401


def test_a_viewer_can_read_but_not_enqueue(viewer, make_channel):
    channel = make_channel()

    read = viewer.get("/system/notify/")
    write = viewer.post(
        "/system/notify/", {"channel_id": channel.pk, **SEED_NOTIFICATION}, format="json"
    )

    assert read.status_code == 200
    assert write.status_code == 403
    assert not NotificationOutbox.objects.exists()


@pytest.mark.parametrize("verb", ["retry", "requeue"])
def test_a_viewer_cannot_retry_or_requeue(viewer, make_notification, verb):
    notification = make_notification(status="failed")

    response = viewer.post(f"/system/notify/{notification.pk}/{verb}")

    assert response.status_code == 403
    notification.refresh_from_db()
    assert notification.status == "failed"


def test_a_client_without_permissions_cannot_read_the_outbox(nobody):
    assert nobody.get("/system/notify/").status_code == 403
