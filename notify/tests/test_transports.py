"""Delivery through real servers: aiosmtpd for email, pytest-httpserver for webhooks and SMS."""

import json
import socket
import time
from email import message_from_bytes

import pytest
from standardwebhooks.webhooks import Webhook
from werkzeug import Response

from notify import transports
from notify.dispatcher import dispatch_due
from notify.models import NotificationOutbox
from valhalla_ops.models import SystemLog
from valhalla_ops.tests.services import free_port

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def local_only(stub_dns, network_guard):
    """Names resolve through a local table, and nothing connects beyond loopback."""
    return stub_dns


def delivered(notification: NotificationOutbox) -> NotificationOutbox:
    dispatch_due()
    notification.refresh_from_db()
    return notification


# --- email --------------------------------------------------------------------------------


def test_email_reaches_a_real_smtp_server(smtp_inbox, make_channel, make_notification):
    channel = make_channel(target="owner@example.com")
    notification = make_notification(channel=channel, subject="Alert", body="System updated")

    delivered(notification)

    assert notification.status == "sent"
    assert notification.attempts == 1
    assert notification.sent_at is not None
    [envelope] = smtp_inbox.envelopes
    assert envelope.rcpt_tos == ["owner@example.com"]
    message = message_from_bytes(envelope.content)
    assert message["Subject"] == "Alert"
    assert str(notification.message_id) in message["Message-ID"]
    assert "System updated" in message.get_payload()


def test_email_subject_cannot_inject_headers(smtp_inbox, make_channel, make_notification):
    notification = make_notification(
        channel=make_channel(), subject="Alert\nBcc: victim@example.com"
    )

    delivered(notification)

    [envelope] = smtp_inbox.envelopes
    assert envelope.rcpt_tos == ["owner@example.com"]
    assert message_from_bytes(envelope.content)["Bcc"] is None


def test_email_without_a_server_is_retried(settings, make_channel, make_notification):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", free_port(), 2
    notification = make_notification(channel=make_channel())

    delivered(notification)

    assert notification.status == "pending"
    assert notification.attempts == 1
    assert "SMTP" in notification.last_error or "Connection" in notification.last_error


# --- webhooks -----------------------------------------------------------------------------


def test_webhook_is_signed_per_standard_webhooks(
    hook_server, make_webhook, make_notification, caplog
):
    caplog.set_level("DEBUG")
    hook_server.expect_request("/hook", method="POST").respond_with_data("ok")
    channel = make_webhook()
    notification = make_notification(
        channel=channel, topic="maintenance.mode_changed", payload={"mode": "read_only"}
    )

    delivered(notification)

    assert notification.status == "sent"
    [(request, _response)] = hook_server.log
    assert request.headers["webhook-id"] == str(notification.message_id)
    verified = Webhook(channel.secret).verify(request.get_data(), dict(request.headers))
    assert verified["type"] == "maintenance.mode_changed"
    assert verified["data"]["payload"] == {"mode": "read_only"}
    assert verified["data"]["message_id"] == str(notification.message_id)
    assert request.headers["content-type"] == "application/json"
    assert channel.secret not in caplog.text


def test_a_forged_signature_does_not_verify(hook_server, make_webhook, make_notification):
    from standardwebhooks.webhooks import WebhookVerificationError

    hook_server.expect_request("/hook").respond_with_data("ok")
    notification = make_notification(channel=make_webhook())
    delivered(notification)
    [(request, _response)] = hook_server.log
    other_secret = make_webhook().secret

    with pytest.raises(WebhookVerificationError):
        Webhook(other_secret).verify(request.get_data(), dict(request.headers))


def test_loopback_target_is_refused_unless_allowed(
    hook_server, make_webhook, make_notification, settings
):
    hook_server.expect_request("/hook").respond_with_data("ok")
    notification = make_notification(channel=make_webhook())
    settings.NOTIFY_WEBHOOK_ALLOWED_NETWORKS = []

    delivered(notification)

    assert hook_server.log == []
    assert notification.status == "failed"  # refusing an address is not worth retrying
    assert "127.0.0.1" in notification.last_error
    assert "NOTIFY_WEBHOOK_ALLOWED_NETWORKS" in notification.last_error


@pytest.mark.parametrize(
    "address",
    [
        "10.1.2.3",
        "192.168.0.10",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "::1",
        "fe80::1",
        "fc00::5",
        "::ffff:127.0.0.1",
        "224.0.0.1",
    ],
)
def test_private_and_special_addresses_are_refused(monkeypatch, settings, address):
    settings.NOTIFY_WEBHOOK_ALLOWED_NETWORKS = []
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    answer = [(family, socket.SOCK_STREAM, 6, "", (address, 443))]
    monkeypatch.setattr(socket, "getaddrinfo", lambda *args, **kwargs: answer)

    with pytest.raises(transports.AddressRefused):
        transports.resolve_checked("hooks.example.com", 443)


def test_a_host_with_one_private_address_is_refused(monkeypatch, settings):
    settings.NOTIFY_WEBHOOK_ALLOWED_NETWORKS = []
    answer = [
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", 443)),
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.7", 443)),
    ]
    monkeypatch.setattr(socket, "getaddrinfo", lambda *args, **kwargs: answer)

    with pytest.raises(transports.AddressRefused):
        transports.resolve_checked("hooks.example.com", 443)


def test_a_public_address_is_accepted(monkeypatch, settings):
    settings.NOTIFY_WEBHOOK_ALLOWED_NETWORKS = []
    answer = [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", 443))]
    monkeypatch.setattr(socket, "getaddrinfo", lambda *args, **kwargs: answer)

    assert transports.resolve_checked("hooks.example.com", 443) == "93.184.215.14"


def test_webhook_connects_to_the_checked_address(
    hook_server, make_channel, make_notification, monkeypatch
):
    """DNS rebinding: the name resolves to an allowed address once, then elsewhere."""
    real_getaddrinfo = socket.getaddrinfo
    lookups = []

    def rebinding(host, *args, **kwargs):
        if host != "hooks.example.test":
            return real_getaddrinfo(host, *args, **kwargs)
        lookups.append(host)
        if len(lookups) > 1:
            raise socket.gaierror("rebound to an internal address")
        return real_getaddrinfo("127.0.0.1", *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    hook_server.expect_request("/hook").respond_with_data("ok")
    target = f"http://hooks.example.test:{hook_server.port}/hook"
    notification = make_notification(channel=make_channel(channel_type="webhook", target=target))

    delivered(notification)

    assert notification.status == "sent", notification.last_error
    assert len(lookups) == 1
    [(request, _response)] = hook_server.log
    assert request.headers["host"] == f"hooks.example.test:{hook_server.port}"


def test_redirects_are_not_followed(hook_server, make_webhook, make_notification):
    hook_server.expect_request("/hook").respond_with_response(
        Response(status=302, headers={"Location": "http://127.0.0.1:1/elsewhere"})
    )
    notification = make_notification(channel=make_webhook())

    delivered(notification)

    assert [request.path for request, _ in hook_server.log] == ["/hook"]
    assert notification.status == "pending"
    assert notification.attempts == 1
    assert "redirect" in notification.last_error


def test_410_gone_disables_the_channel(hook_server, make_webhook, make_notification):
    hook_server.expect_request("/hook").respond_with_data("bye", status=410)
    channel = make_webhook()
    notification = make_notification(channel=channel)

    delivered(notification)

    channel.refresh_from_db()
    assert notification.status == "failed"
    assert channel.active is False
    assert "410" in channel.disabled_reason
    assert SystemLog.objects.filter(action="notify.disable_channel", target_id=str(channel.pk))


def test_server_error_is_retried_with_the_body_in_last_error(
    hook_server, make_webhook, make_notification
):
    hook_server.expect_request("/hook").respond_with_data("database on fire", status=503)
    notification = make_notification(channel=make_webhook())

    delivered(notification)

    assert notification.status == "pending"
    assert notification.attempts == 1
    assert notification.last_error == "HTTP 503: database on fire"


def test_slow_receiver_times_out(hook_server, make_webhook, make_notification, settings):
    def slow(request):
        time.sleep(1.0)
        return Response("late")

    hook_server.expect_request("/hook").respond_with_handler(slow)
    notification = make_notification(channel=make_webhook())
    settings.NOTIFY_HTTP_TIMEOUT = 0.2

    started = time.monotonic()
    delivered(notification)

    assert time.monotonic() - started < 3
    assert notification.status == "pending"
    assert "Timeout" in notification.last_error
    wait_until(lambda: len(hook_server.log) == 1)  # let the server finish before the next test


def wait_until(condition, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)


def test_unresolvable_host_is_retried(make_channel, make_notification):
    target = "https://does-not-exist.invalid/hook"
    notification = make_notification(channel=make_channel(channel_type="webhook", target=target))

    delivered(notification)

    assert notification.status == "pending"
    assert "cannot resolve" in notification.last_error


# --- SMS ----------------------------------------------------------------------------------


class RecordingSmsBackend:
    """Stands in for a paid SMS provider."""

    sent: list[dict] = []

    def send(self, *, to: str, body: str, message_id: str) -> None:
        self.sent.append({"to": to, "body": body, "message_id": message_id})


def test_sms_goes_through_the_configured_backend(settings, make_channel, make_notification):
    settings.NOTIFY_SMS_BACKEND = "notify.tests.test_transports.RecordingSmsBackend"
    RecordingSmsBackend.sent = []
    channel = make_channel(channel_type="sms", target="+4915112345678")
    notification = make_notification(channel=channel, subject="Alert", body="Disk full")

    delivered(notification)

    assert notification.status == "sent"
    assert RecordingSmsBackend.sent == [
        {
            "to": "+4915112345678",
            "body": "Alert\nDisk full",
            "message_id": str(notification.message_id),
        }
    ]


def test_console_sms_backend_logs_the_text(make_channel, make_notification, caplog):
    caplog.set_level("INFO", logger="notify.transports")
    notification = make_notification(
        channel=make_channel(channel_type="sms", target="+4915112345678")
    )

    delivered(notification)

    assert notification.status == "sent"
    assert "+4915112345678" in caplog.text


def test_http_sms_backend_posts_to_the_gateway(
    httpserver_ipv4, settings, make_channel, make_notification
):
    httpserver_ipv4.expect_request("/sms", method="POST").respond_with_json({"ok": True})
    settings.NOTIFY_SMS_BACKEND = "notify.transports.HttpSmsBackend"
    settings.NOTIFY_SMS_API_URL = httpserver_ipv4.url_for("/sms")
    settings.NOTIFY_SMS_API_TOKEN = "gateway-token"
    settings.NOTIFY_SMS_SENDER = "Valhalla"
    notification = make_notification(
        channel=make_channel(channel_type="sms", target="+4915112345678"), body=""
    )

    delivered(notification)

    assert notification.status == "sent"
    [(request, _response)] = httpserver_ipv4.log
    assert request.headers["authorization"] == "Bearer gateway-token"
    assert json.loads(request.get_data()) == {
        "to": "+4915112345678",
        "from": "Valhalla",
        "body": "Alert",
        "id": str(notification.message_id),
    }


def test_http_sms_backend_failure_is_retried(
    httpserver_ipv4, settings, make_channel, make_notification
):
    httpserver_ipv4.expect_request("/sms").respond_with_data("quota", status=429)
    settings.NOTIFY_SMS_BACKEND = "notify.transports.HttpSmsBackend"
    settings.NOTIFY_SMS_API_URL = httpserver_ipv4.url_for("/sms")
    notification = make_notification(
        channel=make_channel(channel_type="sms", target="+4915112345678")
    )

    delivered(notification)

    assert notification.status == "pending"
    assert "HTTP 429" in notification.last_error
