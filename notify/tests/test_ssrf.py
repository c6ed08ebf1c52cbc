"""The SSRF guard on a table of targets, as literal URLs and as names from a local resolver.

No packet leaves loopback here even if the guard were broken: `network_guard` stops every
connection to another address inside the process (and records it), and names resolve
through `stub_dns`, never through DNS.
"""

import pytest

from notify import transports, validators
from notify.dispatcher import dispatch_due
from notify.models import NotificationChannel, NotificationOutbox
from valhalla_ops.tests.services import free_port

pytestmark = pytest.mark.django_db

REFUSED = [
    # IPv4 special-purpose blocks that are not globally reachable
    "0.0.0.0",
    "0.1.2.3",
    "10.1.2.3",
    "100.64.0.1",
    "100.127.255.254",
    "127.0.0.1",
    "127.255.255.254",
    "169.254.169.254",
    "172.16.0.1",
    "172.31.255.255",
    "192.0.0.8",
    "192.0.0.170",
    "192.0.2.1",
    "192.88.99.1",
    "192.168.1.1",
    "198.18.0.1",
    "198.51.100.7",
    "203.0.113.9",
    "224.0.0.251",
    "240.0.0.1",
    "255.255.255.255",
    # IPv6 special-purpose blocks, and space outside 2000::/3
    "::",
    "::1",
    "100::1",
    "2001:2::1",
    "2001:10::1",
    "2001:db8::1",
    "3fff::1",
    "5f00::1",
    "fc00::1",
    "fd12:3456::1",
    "fe80::1",
    "ff02::1",
    "4000::1",
    "64:ff9b:1::a01:203",
    # IPv6 carrying a refused IPv4 address
    "::ffff:127.0.0.1",
    "::ffff:169.254.169.254",
    "::7f00:1",
    "::a00:1",
    "64:ff9b::a9fe:a9fe",
    "64:ff9b::a00:1",
    "2002:7f00:1::1",
    "2002:a9fe:a9fe::",
    "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo, client 192.0.2.45
    "2001:0:a00:1:8000:63bf:f7f7:f7f7",  # Teredo, server 10.0.0.1
]

ALLOWED = [
    "93.184.215.14",
    "8.8.8.8",
    "192.0.0.9",  # PCP anycast: globally reachable inside 192.0.0.0/24
    "192.31.196.1",
    "2606:4700::1111",
    "2001:4:112::1",  # AS112-v6: globally reachable inside 2001::/23
    "::ffff:8.8.8.8",
    "64:ff9b::808:808",
    "2002:808:808::1",
    "2001:0:4136:e378:8000:63bf:f7f7:f7f7",  # Teredo, both ends public
]


PORT = free_port()  # were the guard broken, a loopback target would find nothing listening


def url_for(address: str) -> str:
    host = f"[{address}]" if ":" in address else address
    return f"http://{host}:{PORT}/hook"


def post(url: str) -> None:
    transports.post_pinned(url, content="{}", headers={})


@pytest.fixture
def guarded(network_guard, stub_dns, settings):
    settings.NOTIFY_WEBHOOK_ALLOWED_NETWORKS = []
    return network_guard, stub_dns


def test_the_table_is_large_enough():
    assert len(REFUSED) + len(ALLOWED) >= 40
    assert len(set(REFUSED) | set(ALLOWED)) == len(REFUSED) + len(ALLOWED)


@pytest.mark.parametrize("address", REFUSED)
def test_a_refused_literal_is_never_connected(guarded, address):
    guard, _resolver = guarded

    with pytest.raises(transports.AddressRefused):
        post(url_for(address))

    assert guard.take() == []
    assert validators.target_error("webhook", url_for(address)) is not None


@pytest.mark.parametrize("address", REFUSED)
def test_a_name_resolving_to_a_refused_address_is_never_connected(guarded, address):
    guard, resolver = guarded
    resolver.add("hooks.example.test", "93.184.215.14", address)  # one bad answer is enough

    with pytest.raises(transports.AddressRefused, match=r"hooks\.example\.test resolves to"):
        post(f"http://hooks.example.test:{PORT}/hook")

    assert guard.take() == []
    assert resolver.lookups == ["hooks.example.test"]


@pytest.mark.parametrize("address", ALLOWED)
def test_an_allowed_literal_is_connected_on_that_address(guarded, address):
    guard, _resolver = guarded

    with pytest.raises(transports.TransportError, match="ConnectError"):
        post(url_for(address))  # the guard stops the connection inside the process

    [(host, port)] = guard.take()
    assert (transports.literal_ip(host), port) == (transports.literal_ip(address), PORT)
    assert validators.target_error("webhook", url_for(address)) is None


@pytest.mark.parametrize("address", ALLOWED)
def test_a_name_resolving_to_an_allowed_address_is_pinned_to_it(guarded, address):
    guard, resolver = guarded
    resolver.add("hooks.example.test", address)

    with pytest.raises(transports.TransportError, match="ConnectError"):
        post(f"http://hooks.example.test:{PORT}/hook")

    [(host, port)] = guard.take()
    assert (transports.literal_ip(host), port) == (transports.literal_ip(address), PORT)
    assert resolver.lookups == ["hooks.example.test"]


def test_an_allowed_network_lets_a_wrapped_private_address_through(guarded, settings):
    settings.NOTIFY_WEBHOOK_ALLOWED_NETWORKS = ["10.0.0.0/8"]

    assert validators.target_error("webhook", url_for("64:ff9b::a00:1")) is None
    assert validators.target_error("webhook", url_for("64:ff9b::a9fe:a9fe")) is not None


def test_the_worker_fails_a_notification_to_nat64_metadata_without_connecting(guarded):
    guard, resolver = guarded
    resolver.add("metadata.example.test", "64:ff9b::a9fe:a9fe")
    sneaky = NotificationChannel.objects.create(
        name="sneaky", channel_type="webhook", target="http://metadata.example.test/latest"
    )
    literal = NotificationChannel.objects.create(  # saved around the service's check
        name="literal", channel_type="webhook", target=url_for("::7f00:1")
    )
    rows = [NotificationOutbox.objects.create(channel=c, subject="x") for c in (sneaky, literal)]

    dispatch_due()

    for row in rows:
        row.refresh_from_db()
        assert row.status == "failed"
        assert "NOTIFY_WEBHOOK_ALLOWED_NETWORKS" in row.last_error
    assert guard.take() == []
