"""Kill -9 soak on PostgreSQL: four workers, one SIGKILLed every 2 s, until the outbox drains.

No notification is lost, and every repeated delivery carries the same webhook-id. The full
size (10,000 webhooks) is bench/delivery_crash_soak.py.
"""

import logging

import pytest
from django.conf import settings

from notify.models import NotificationOutbox
from notify.tests.soak import CountingReceiver, soak, worker_env
from valhalla_ops.tests.services import postgres_url

logger = logging.getLogger(__name__)

WEBHOOKS = 1000


@pytest.mark.django_db(transaction=True)
def test_killed_workers_lose_nothing_and_duplicates_keep_their_webhook_id(
    postgres, make_channel, settings, record_property
):
    settings.NOTIFY_WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    receiver = CountingReceiver(delay=0.1)  # slow enough that workers die mid-flight
    channels = [make_channel(channel_type="webhook", target=receiver.url) for _ in range(4)]
    rows = NotificationOutbox.objects.bulk_create(
        NotificationOutbox(channel=channels[i % 4], subject=f"n{i}", payload={"i": i})
        for i in range(WEBHOOKS)
    )
    env = worker_env(
        postgres_url(),
        SECRET_KEY=django_secret_key(),
        NOTIFY_LEASE_SECONDS="2",
        NOTIFY_CONCURRENCY="8",
        NOTIFY_CHANNEL_CONCURRENCY="2",
    )
    try:
        result = soak(
            env=env,
            receiver=receiver,
            pending=NotificationOutbox.objects.pending().count,
            timeout=120,
        )
    finally:
        receiver.stop()

    record_property("duplicates", result.duplicates)  # in the JUnit report
    logger.warning(
        "soak: %s webhooks, %s kills, %s deliveries, %s duplicates, %.1f s",
        WEBHOOKS,
        result.kills,
        result.deliveries,
        result.duplicates,
        result.seconds,
    )
    assert result.kills >= 2
    assert NotificationOutbox.objects.filter(status="sent").count() == WEBHOOKS  # 0 lost
    assert set(result.received) == {str(row.message_id) for row in rows}
    assert result.mismatched == []  # every delivery, repeated or not, names its own message
    assert result.deliveries == WEBHOOKS + result.duplicates


def django_secret_key() -> str:
    return settings.SECRET_KEY
