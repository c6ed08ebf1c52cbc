"""Channels and notifications for the notify tests."""

import pytest
from aiosmtpd.controller import Controller

from notify import services
from notify.models import NotificationChannel, NotificationOutbox
from valhalla_ops.principals import SYSTEM
from valhalla_ops.tests.services import free_port


@pytest.fixture
def make_channel(db):
    """make(name=..., channel_type=..., target=..., events=[...]) -> NotificationChannel."""
    counter = iter(range(1, 10_000))

    def make(**overrides) -> NotificationChannel:
        fields = {
            "name": f"channel-{next(counter)}",
            "channel_type": "email",
            "target": "owner@example.com",
        } | overrides
        channel, _secret = services.create_channel(actor=SYSTEM, **fields)
        return channel

    return make


@pytest.fixture
def make_notification(make_channel):
    """make(channel=..., **fields) -> NotificationOutbox, written directly (no audit row)."""

    def make(channel: NotificationChannel | None = None, **fields) -> NotificationOutbox:
        values = {"subject": "Alert", "body": "System updated", "payload": {"n": 1}} | fields
        return NotificationOutbox.objects.create(channel=channel or make_channel(), **values)

    return make


class Inbox:
    """An aiosmtpd handler that keeps every envelope it receives."""

    def __init__(self) -> None:
        self.envelopes: list = []

    async def handle_DATA(self, server, session, envelope) -> str:  # aiosmtpd calls this name
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp_inbox(settings):
    """A real SMTP server on a free loopback port; Django's SMTP backend points at it."""
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = controller.port
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_TIMEOUT = 5
    yield inbox
    controller.stop()


@pytest.fixture
def hook_server(httpserver_ipv4, settings):
    """A real HTTP receiver on 127.0.0.1, with loopback allowed as a webhook target."""
    settings.NOTIFY_WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    settings.NOTIFY_HTTP_TIMEOUT = 5.0
    return httpserver_ipv4


@pytest.fixture
def make_webhook(make_channel, hook_server):
    """make(path="/hook", **fields) -> a webhook channel aimed at hook_server."""

    def make(path: str = "/hook", **fields) -> NotificationChannel:
        return make_channel(channel_type="webhook", target=hook_server.url_for(path), **fields)

    return make
