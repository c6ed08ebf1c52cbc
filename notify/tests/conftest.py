"""Channels and notifications for the notify tests."""

import pytest
from aiosmtpd.controller import Controller

from notify import services
from notify.models import NotificationChannel, NotificationOutbox
from valhalla_ops.principals import SYSTEM
from valhalla_ops.tests.services import free_port


@pytest.fixture(autouse=True)
def fresh_pipeline():
    """Each test starts with a new pipeline: nothing in flight from another test's database."""
    from notify import pipeline

    yield
    pipeline.close_current(record=False)


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


LOOPBACK_HOSTS = {"127.0.0.1", "::1", "localhost"}


class NetworkGuard:
    """Stops, before it leaves the process, every connection to an address not on loopback.

    The attempts are recorded; a test takes the ones it expects with `take()`, and any left
    over fail the test at teardown.
    """

    def __init__(self) -> None:
        self.attempts: list[tuple[str, int]] = []

    def check(self, address: object) -> None:
        if isinstance(address, tuple) and address:
            host = str(address[0]).split("%", 1)[0]
            if host in LOOPBACK_HOSTS or host.startswith("127."):
                return
            self.attempts.append((host, int(address[1])))
            raise ConnectionRefusedError(f"test network guard: no connection to {host}")
        if isinstance(address, str | bytes):  # a Unix socket path stays on this machine
            return
        raise AssertionError(f"test network guard: unexpected address {address!r}")

    def take(self) -> list[tuple[str, int]]:
        taken, self.attempts = self.attempts, []
        return taken


@pytest.fixture
def network_guard(monkeypatch):
    """Any connect() or sendto() to a non-loopback address raises and is recorded."""
    import socket

    guard = NetworkGuard()
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex
    real_sendto = socket.socket.sendto

    def connect(sock, address):
        guard.check(address)
        return real_connect(sock, address)

    def connect_ex(sock, address):
        guard.check(address)
        return real_connect_ex(sock, address)

    def sendto(sock, data, *args):
        guard.check(args[-1])
        return real_sendto(sock, data, *args)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(socket.socket, "sendto", sendto)
    yield guard
    assert guard.attempts == [], f"connections attempted beyond loopback: {guard.attempts}"


class StubResolver:
    """A local stand-in for DNS: names answer from a table, numeric hosts are parsed locally.

    Nothing is ever sent to a DNS server: an unknown name fails like NXDOMAIN.
    """

    def __init__(self, real_getaddrinfo) -> None:
        self.real_getaddrinfo = real_getaddrinfo
        self.table: dict[str, list[str]] = {"localhost": ["127.0.0.1"]}
        self.lookups: list[str] = []

    def add(self, name: str, *addresses: str) -> None:
        self.table[name.lower()] = list(addresses)

    def getaddrinfo(self, host, port, family=0, type=0, proto=0, flags=0):
        import socket

        name = host.decode() if isinstance(host, bytes) else str(host)
        answers = self.table.get(name.lower().rstrip("."))
        if answers is None:  # a numeric host (any spelling libc accepts), never a query
            try:
                return self.real_getaddrinfo(
                    name, port, family, type, proto, flags | socket.AI_NUMERICHOST
                )
            except socket.gaierror:
                self.lookups.append(name)
                raise
        self.lookups.append(name)  # names only: numeric hosts are not lookups
        infos = []
        for address in answers:
            infos += self.real_getaddrinfo(
                address, port, family, type, proto, flags | socket.AI_NUMERICHOST
            )
        return infos


@pytest.fixture
def stub_dns(monkeypatch) -> StubResolver:
    """Resolve names through a local table only; no DNS query leaves the process."""
    import socket

    resolver = StubResolver(socket.getaddrinfo)
    monkeypatch.setattr(socket, "getaddrinfo", resolver.getaddrinfo)
    return resolver
