"""Webhooks over real TLS: a local HTTPS receiver with certificates from a throwaway CA.

The target's name resolves (once) to 127.0.0.1, and the connection is pinned to that address,
while the certificate is still checked against the URL's host name.
"""

import socket
import ssl

import pytest
import trustme
from pytest_httpserver import HTTPServer
from standardwebhooks.webhooks import Webhook

from notify import transports
from notify.dispatcher import dispatch_due
from notify.models import NotificationOutbox

pytestmark = pytest.mark.django_db

HOST = "hooks.example.test"


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def ca_bundle(ca, tmp_path, settings) -> str:
    """Trust the throwaway CA (and only it) for webhook deliveries."""
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    settings.NOTIFY_CA_BUNDLE = str(path)
    return str(path)


@pytest.fixture
def name_resolves_to_loopback(monkeypatch) -> list[str]:
    """HOST resolves to 127.0.0.1 (there is no DNS here); the lookups are recorded."""
    real_getaddrinfo = socket.getaddrinfo
    lookups: list[str] = []

    def resolve(host, *args, **kwargs):
        if host != HOST:
            return real_getaddrinfo(host, *args, **kwargs)
        lookups.append(host)
        return real_getaddrinfo("127.0.0.1", *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    return lookups


def https_server(ca: trustme.CA, *names: str) -> HTTPServer:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*names).configure_cert(context)
    server = HTTPServer(host="127.0.0.1", port=0, ssl_context=context)
    server.start()
    return server


@pytest.fixture
def tls_receiver(ca, settings):
    """An HTTPS receiver on 127.0.0.1 whose certificate names HOST."""
    settings.NOTIFY_WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    settings.NOTIFY_HTTP_TIMEOUT = 5.0
    server = https_server(ca, HOST)
    yield server
    server.clear()
    server.stop()


def webhook_to(make_channel, make_notification, port: int, host: str = HOST) -> NotificationOutbox:
    channel = make_channel(channel_type="webhook", target=f"https://{host}:{port}/hook")
    return make_notification(channel=channel)


def delivered(notification: NotificationOutbox) -> NotificationOutbox:
    dispatch_due()
    notification.refresh_from_db()
    return notification


def test_https_webhook_is_pinned_and_verified_against_the_url_host(
    tls_receiver, ca_bundle, name_resolves_to_loopback, make_channel, make_notification
):
    tls_receiver.expect_request("/hook", method="POST").respond_with_data("ok")
    notification = webhook_to(make_channel, make_notification, tls_receiver.port)

    delivered(notification)

    assert notification.status == "sent", notification.last_error
    assert name_resolves_to_loopback == [HOST]  # resolved once, then connected to that address
    [(request, _response)] = tls_receiver.log
    assert request.headers["host"] == f"{HOST}:{tls_receiver.port}"
    secret = notification.channel.secret
    Webhook(secret).verify(request.get_data(), dict(request.headers))  # raises if forged


def test_an_untrusted_certificate_is_refused(
    tls_receiver, name_resolves_to_loopback, make_channel, make_notification, settings
):
    settings.NOTIFY_CA_BUNDLE = ""  # certifi's public authorities do not know the test CA
    tls_receiver.expect_request("/hook").respond_with_data("ok")
    notification = webhook_to(make_channel, make_notification, tls_receiver.port)

    delivered(notification)

    assert notification.status == "pending"  # retried later: the receiver may fix its certificate
    assert notification.attempts == 1
    assert "CERTIFICATE_VERIFY_FAILED" in notification.last_error
    assert tls_receiver.log == []


def test_a_certificate_for_another_name_is_refused(
    ca, ca_bundle, settings, name_resolves_to_loopback, make_channel, make_notification
):
    settings.NOTIFY_WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    server = https_server(ca, "someone-else.example.test")
    server.expect_request("/hook").respond_with_data("ok")
    try:
        notification = webhook_to(make_channel, make_notification, server.port)
        delivered(notification)
        log = list(server.log)
    finally:
        server.clear()
        server.stop()

    assert notification.status == "pending"
    assert "CERTIFICATE_VERIFY_FAILED" in notification.last_error
    assert HOST in notification.last_error  # the mismatch names the host that was expected
    assert log == []


def test_the_tls_context_follows_the_ca_bundle_setting(ca_bundle, settings):
    custom = transports.tls_context(settings.NOTIFY_CA_BUNDLE)
    default = transports.tls_context("")

    assert custom is not default
    assert custom is transports.tls_context(ca_bundle)  # built once per bundle
    for context in (custom, default):
        assert context.verify_mode == ssl.CERT_REQUIRED
        assert context.check_hostname
