"""GET/POST /system/notify/channels and GET/PATCH /system/notify/channels/{id}."""

import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from notify.models import NotificationChannel
from valhalla_ops.models import SystemLog

pytestmark = pytest.mark.django_db

SEED_CHANNEL = {
    "name": "owner_email",
    "channel_type": "email",
    "target": "owner@example.com",
    "description": "Email for owner alerts",
}


def audit_text() -> str:
    rows = SystemLog.objects.values("message", "context", "before", "after")
    return json.dumps(list(rows), default=str)


@pytest.mark.parametrize("path", ["/system/notify/channels", "/system/notify/channels/"])
def test_create_channel_as_in_the_seed(operator, path):
    response = operator.post(path, SEED_CHANNEL, format="json")

    assert response.status_code == 201, response.data
    body = response.json()
    assert body["name"] == "owner_email"
    assert body["channel_type"] == "email"
    assert body["target"] == "owner@example.com"
    assert body["active"] is True
    assert body["events"] == []
    assert body["secret"].startswith("whsec_")
    channel = NotificationChannel.objects.get(pk=body["id"])
    assert channel.description == "Email for owner alerts"
    assert channel.secret == body["secret"]


def test_create_channel_writes_one_audit_row_without_the_secret(operator):
    response = operator.post("/system/notify/channels", SEED_CHANNEL, format="json")

    rows = SystemLog.objects.filter(action="notify.create_channel")
    assert rows.count() == 1
    row = rows.get()
    assert row.target_id == str(response.json()["id"])
    assert row.actor == "client:ops-operator-caller"
    assert row.after is not None
    assert row.after["target"] == "owner@example.com"
    assert "secret" not in row.after
    assert response.json()["secret"] not in audit_text()


def test_create_webhook_and_sms_channels_with_events(operator):
    webhook = {
        "name": "ops-hook",
        "channel_type": "webhook",
        "target": "https://hooks.example.com/valhalla",
        "events": ["maintenance.*", "ratelimit.exceeded"],
    }
    sms = {"name": "on-call", "channel_type": "sms", "target": "+4915112345678"}

    first = operator.post("/system/notify/channels", webhook, format="json")
    second = operator.post("/system/notify/channels", sms, format="json")

    assert first.status_code == 201, first.data
    assert second.status_code == 201, second.data
    assert NotificationChannel.objects.get(name="ops-hook").events == [
        "maintenance.*",
        "ratelimit.exceeded",
    ]
    assert NotificationChannel.objects.get(name="on-call").target == "+4915112345678"


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"channel_type": "pigeon"}, "channel_type"),
        ({"channel_type": "email", "target": "not-an-email"}, "target"),
        ({"channel_type": "email", "target": " owner@example.com"}, "target"),
        ({"channel_type": "webhook", "target": "ftp://hooks.example.com/x"}, "target"),
        ({"channel_type": "webhook", "target": "https://"}, "target"),
        ({"channel_type": "webhook", "target": "https://user:pw@hooks.example.com/"}, "target"),
        ({"channel_type": "webhook", "target": "http://127.0.0.1:8080/hook"}, "target"),
        ({"channel_type": "webhook", "target": "http://169.254.169.254/latest"}, "target"),
        ({"channel_type": "webhook", "target": "http://localhost/hook"}, "target"),
        ({"channel_type": "sms", "target": "015112345678"}, "target"),
        ({"channel_type": "sms", "target": "+0151123456"}, "target"),
        ({"channel_type": "sms", "target": "+49 151 12345678"}, "target"),
        ({"events": "maintenance.*"}, "events"),
        ({"events": ["maintenance mode"]}, "events"),
        ({"name": ""}, "name"),
        ({"name": "x" * 257}, "name"),
        ({"target": "a@b.co" + "x" * 512}, "target"),
    ],
)
def test_create_channel_rejects_bad_input(operator, overrides, field):
    response = operator.post("/system/notify/channels", SEED_CHANNEL | overrides, format="json")

    assert response.status_code == 400
    body = response.json()
    assert body["status_code"] == 400
    assert field in body["errors"], body
    assert not NotificationChannel.objects.exists()


@pytest.mark.parametrize("missing", ["name", "channel_type", "target"])
def test_create_channel_requires_fields(operator, missing):
    data = {k: v for k, v in SEED_CHANNEL.items() if k != missing}

    response = operator.post("/system/notify/channels", data, format="json")

    assert response.status_code == 400
    assert response.json()["errors"][missing] == ["This field is required."]


def test_create_channel_rejects_a_duplicate_name(operator, make_channel):
    make_channel(name="owner_email")

    response = operator.post("/system/notify/channels", SEED_CHANNEL, format="json")

    assert response.status_code == 400
    assert "already exists" in response.json()["errors"]["name"][0]
    assert NotificationChannel.objects.count() == 1


def test_private_webhook_target_is_accepted_inside_allowed_networks(operator, settings):
    settings.NOTIFY_WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    data = {"name": "local", "channel_type": "webhook", "target": "http://127.0.0.1:9000/h"}

    response = operator.post("/system/notify/channels", data, format="json")

    assert response.status_code == 201, response.data


def test_list_channels_is_paginated_and_hides_secrets(viewer, make_channel):
    channels = [make_channel() for _ in range(3)]

    response = viewer.get("/system/notify/channels?limit=2&offset=1")

    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 3
    assert [row["id"] for row in body["results"]] == [c.pk for c in channels[1:]]
    assert all("secret" not in row for row in body["results"])
    assert not any(c.secret in response.content.decode() for c in channels)


def test_list_channels_filters_by_type_and_active(viewer, make_channel):
    make_channel(channel_type="sms", target="+4915112345678")
    wanted = make_channel(channel_type="webhook", target="https://hooks.example.com/")
    make_channel(channel_type="webhook", target="https://hooks.example.com/", active=False)

    response = viewer.get("/system/notify/channels/?channel_type=webhook&active=true")

    assert [row["id"] for row in response.json()["results"]] == [wanted.pk]


def test_list_channels_costs_two_queries_whatever_the_size(viewer, make_channel):
    for _ in range(5):
        make_channel()

    with CaptureQueriesContext(connection) as queries:
        response = viewer.get("/system/notify/channels")

    assert response.json()["count"] == 5
    assert len([q for q in queries.captured_queries if "notify_" in q["sql"]]) == 2


def test_channel_detail_hides_the_secret(viewer, make_channel):
    channel = make_channel()

    response = viewer.get(f"/system/notify/channels/{channel.pk}")

    assert response.status_code == 200
    assert response.json()["name"] == channel.name
    assert "secret" not in response.json()
    assert channel.secret not in response.content.decode()


@pytest.mark.parametrize("method", ["get", "patch"])
def test_unknown_channel_is_a_404(operator, method):
    response = getattr(operator, method)("/system/notify/channels/999999", {}, format="json")

    assert response.status_code == 404
    assert response.json() == {"status_code": 404, "detail": "Not found."}


def test_patch_channel_changes_fields_and_audits(operator, make_channel):
    channel = make_channel(name="ops")

    response = operator.patch(
        f"/system/notify/channels/{channel.pk}/",
        {"active": False, "description": "paused", "events": ["exports.*"]},
        format="json",
    )

    assert response.status_code == 200, response.data
    channel.refresh_from_db()
    assert channel.active is False
    assert channel.description == "paused"
    assert channel.events == ["exports.*"]
    row = SystemLog.objects.get(action="notify.update_channel")
    assert row.before is not None
    assert row.after is not None
    assert row.before["active"] is True
    assert row.after["active"] is False
    assert "secret" not in row.after


def test_patch_channel_type_revalidates_the_target(operator, make_channel):
    channel = make_channel(channel_type="email", target="owner@example.com")

    response = operator.patch(
        f"/system/notify/channels/{channel.pk}", {"channel_type": "sms"}, format="json"
    )

    assert response.status_code == 400
    assert "E.164" in response.json()["errors"]["target"][0]
    channel.refresh_from_db()
    assert channel.channel_type == "email"
    assert not SystemLog.objects.filter(action="notify.update_channel").exists()


def test_patch_channel_rejects_bad_values(operator, make_channel):
    channel = make_channel()

    response = operator.patch(
        f"/system/notify/channels/{channel.pk}", {"target": "nope"}, format="json"
    )

    assert response.status_code == 400
    assert "target" in response.json()["errors"]


def test_put_is_not_offered(operator, make_channel):
    channel = make_channel()

    response = operator.put(f"/system/notify/channels/{channel.pk}", SEED_CHANNEL, format="json")

    assert response.status_code == 405


def test_rotate_secret_returns_a_new_secret_once(operator, make_channel):
    channel = make_channel(channel_type="webhook", target="https://hooks.example.com/")
    old = channel.secret

    response = operator.post(f"/system/notify/channels/{channel.pk}/rotate-secret")

    assert response.status_code == 200
    channel.refresh_from_db()
    assert channel.secret == response.json()["secret"] != old
    assert SystemLog.objects.filter(action="notify.rotate_secret").count() == 1
    assert channel.secret not in audit_text()
    assert old not in audit_text()


def test_test_action_queues_a_notification(operator, make_channel):
    channel = make_channel()

    response = operator.post(f"/system/notify/channels/{channel.pk}/test")

    assert response.status_code == 201
    assert response.json()["status"] == "pending"
    assert response.json()["topic"] == "notify.test"
    assert channel.notifications.count() == 1


def test_channels_need_credentials(api_client):
    assert api_client.get("/system/notify/channels").status_code == 401
    assert (
        api_client.post("/system/notify/channels", SEED_CHANNEL, format="json").status_code == 401
    )


def test_a_client_without_permissions_cannot_read_channels(nobody):
    response = nobody.get("/system/notify/channels")

    assert response.status_code == 403


@pytest.mark.parametrize(
    ("method", "suffix"),
    [("post", ""), ("patch", "/{pk}"), ("post", "/{pk}/rotate-secret"), ("post", "/{pk}/test")],
)
def test_a_viewer_cannot_change_channels(viewer, make_channel, method, suffix):
    channel = make_channel()
    path = "/system/notify/channels" + suffix.format(pk=channel.pk)

    response = getattr(viewer, method)(path, SEED_CHANNEL, format="json")

    assert response.status_code == 403
    assert NotificationChannel.objects.count() == 1
    assert not channel.notifications.exists()
