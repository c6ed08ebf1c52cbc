"""Webhook signing secrets are sealed at rest: not in the table, not in a dump, never lost."""

import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from notify import services
from notify.dispatcher import dispatch_due
from notify.models import NotificationChannel
from valhalla_ops import sealing
from valhalla_ops.principals import SYSTEM

OLD_KEY = "old-secret-key-" + "a" * 40
NEW_KEY = "new-secret-key-" + "b" * 40


def stored_secret(channel: NotificationChannel) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT secret FROM notify_notificationchannel WHERE id = %s", [channel.pk])
        return cursor.fetchone()[0]


@pytest.mark.django_db
def test_the_table_holds_a_sealed_token_not_the_secret(operator):
    body = operator.post(
        "/system/notify/channels",
        {"name": "hook", "channel_type": "webhook", "target": "https://example.com/hook"},
        format="json",
    ).json()
    channel = NotificationChannel.objects.get(pk=body["id"])

    raw = stored_secret(channel)
    assert body["secret"] not in raw
    assert sealing.is_sealed(raw)
    assert sealing.unseal(raw) == body["secret"] == channel.secret


@pytest.mark.django_db
def test_a_dump_carries_the_token_and_loads_back(make_channel, tmp_path):
    channel = make_channel(channel_type="webhook", target="https://example.com/hook")
    secret = channel.secret
    out = StringIO()
    call_command("dumpdata", "notify.notificationchannel", stdout=out)
    dump = out.getvalue()

    assert secret not in dump
    fixture = tmp_path / "channels.json"
    fixture.write_text(dump)
    NotificationChannel.objects.all().delete()
    call_command("loaddata", str(fixture), verbosity=0)

    assert NotificationChannel.objects.get(pk=channel.pk).secret == secret
    assert json.loads(dump)[0]["fields"]["secret"] != secret


@pytest.mark.django_db
def test_a_secret_no_key_opens_fails_deliveries_clearly_and_survives_edits(
    settings, make_notification
):
    settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = OLD_KEY, []
    channel, secret = services.create_channel(
        actor=SYSTEM, name="hook", channel_type="webhook", target="https://example.com/hook"
    )
    notification = make_notification(channel=channel)
    settings.SECRET_KEY = NEW_KEY  # rotated without keeping the old key as a fallback

    unreadable = NotificationChannel.objects.get(pk=channel.pk)
    dispatch_due()
    notification.refresh_from_db()
    services.update_channel(actor=SYSTEM, channel=unreadable, description="edited meanwhile")
    unreadable.save()  # even a full save writes the token back unchanged

    assert unreadable.secret == ""
    assert notification.status == "pending"  # retried once the key is back
    assert "SECRET_KEY_FALLBACKS" in notification.last_error
    settings.SECRET_KEY_FALLBACKS = [OLD_KEY]
    assert NotificationChannel.objects.get(pk=channel.pk).secret == secret


@pytest.mark.django_db
def test_the_channel_api_still_answers_when_a_secret_cannot_be_opened(settings, viewer):
    settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = OLD_KEY, []
    channel, _secret = services.create_channel(
        actor=SYSTEM, name="hook", channel_type="webhook", target="https://example.com/hook"
    )
    settings.SECRET_KEY = NEW_KEY

    listed = viewer.get("/system/notify/channels")
    detail = viewer.get(f"/system/notify/channels/{channel.pk}")

    assert listed.status_code == 200
    assert detail.status_code == 200
    assert detail.json()["name"] == "hook"


@pytest.mark.django_db(transaction=True)
def test_the_migration_seals_plain_secrets_and_reverses():
    before, after = [("notify", "0001_initial")], [("notify", "0002_seal_channel_secrets")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO notify_notificationchannel (name, channel_type, target, active,"
                " description, events, secret, disabled_reason, created_at, updated_at)"
                " VALUES ('old', 'webhook', 'https://example.com/h', true, '', '[]',"
                " 'whsec_plain', '', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            )
        executor = MigrationExecutor(connection)
        executor.migrate(after)
        channel = NotificationChannel.objects.get(name="old")
        sealed = stored_secret(channel)

        executor = MigrationExecutor(connection)
        executor.migrate(before)
        with connection.cursor() as cursor:
            cursor.execute("SELECT secret FROM notify_notificationchannel WHERE name = 'old'")
            reverted = cursor.fetchone()[0]
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())

    assert sealing.is_sealed(sealed)
    assert channel.secret == "whsec_plain"
    assert reverted == "whsec_plain"
