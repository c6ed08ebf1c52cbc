"""The client IP: X-Forwarded-For walked from the right through a set of trusted networks."""

import logging
from typing import Any

import pytest
from django.test import RequestFactory

from valhalla_ops import context
from valhalla_ops.logfilter import RequestContextFilter
from valhalla_ops.net import client_ip, parse_address

TRUSTED = ["10.0.0.0/8", "192.168.0.0/16", "2001:db8:ffff::/48"]


@pytest.fixture
def request_from():
    factory = RequestFactory()

    def make(remote: str, forwarded: str | None = None):
        extra: dict[str, Any] = {"REMOTE_ADDR": remote}
        if forwarded is not None:
            extra["HTTP_X_FORWARDED_FOR"] = forwarded
        return factory.get("/", **extra)

    return make


@pytest.mark.parametrize(
    ("remote", "forwarded", "client"),
    [
        # 0 trusted hops: the peer talks to us directly, whatever it says
        ("198.51.100.7", None, "198.51.100.7"),
        ("198.51.100.7", "203.0.113.1", "198.51.100.7"),
        ("198.51.100.7", "203.0.113.1, 10.0.0.1", "198.51.100.7"),
        # 1 trusted hop
        ("10.0.0.1", "203.0.113.1", "203.0.113.1"),
        # 2 trusted hops in one network, and in two networks
        ("10.0.0.1", "203.0.113.1, 10.0.0.2", "203.0.113.1"),
        ("10.0.0.1", "203.0.113.1, 192.168.1.1", "203.0.113.1"),
        # 3 trusted hops across both networks
        ("192.168.0.9", "203.0.113.1, 10.2.0.1, 192.168.5.5", "203.0.113.1"),
        # forged leftmost entries: only the first untrusted address from the right counts
        ("10.0.0.1", "6.6.6.6, 203.0.113.1", "203.0.113.1"),
        ("10.0.0.1", "10.9.9.9, 6.6.6.6, 203.0.113.1, 10.0.0.2", "203.0.113.1"),
        ("10.0.0.1", "127.0.0.1, 203.0.113.1", "203.0.113.1"),
        # every entry trusted: the leftmost one (a host inside our networks) is the client
        ("10.0.0.1", "10.0.0.7, 192.168.0.3", "10.0.0.7"),
        # IPv6, bare, bracketed, with a port, and trusted IPv6 hops
        ("10.0.0.1", "2001:db8::1", "2001:db8::1"),
        ("10.0.0.1", "[2001:db8::1]", "2001:db8::1"),
        ("10.0.0.1", "[2001:DB8:0::1]:8443", "2001:db8::1"),
        ("2001:db8:ffff::5", "2001:db8:1::9, 2001:db8:ffff::6", "2001:db8:1::9"),
        ("2001:db8:ffff::5", "203.0.113.1", "203.0.113.1"),
        ("::ffff:10.0.0.1", "203.0.113.1", "203.0.113.1"),
        ("10.0.0.1", "::ffff:203.0.113.1", "203.0.113.1"),
        ("10.0.0.1", "fe80::1%eth0", "fe80::1"),
        # ports on IPv4 entries and on the peer
        ("10.0.0.1", "203.0.113.1:51234", "203.0.113.1"),
        ("10.0.0.1", " 203.0.113.1 ,10.0.0.2 ", "203.0.113.1"),
        ("10.0.0.1", '"203.0.113.1"', "203.0.113.1"),
        # malformed or empty entries end the walk at the last address known
        ("10.0.0.1", "not-an-ip", "10.0.0.1"),
        ("10.0.0.1", "203.0.113.1, garbage, 10.0.0.2", "10.0.0.2"),
        ("10.0.0.1", "203.0.113.1, , 10.0.0.2", "10.0.0.2"),
        ("10.0.0.1", "", "10.0.0.1"),
        ("10.0.0.1", ",", "10.0.0.1"),
        ("10.0.0.1", "unknown", "10.0.0.1"),
        ("10.0.0.1", "203.0.113.1:port", "10.0.0.1"),
        ("10.0.0.1", "[2001:db8::1", "10.0.0.1"),
        ("10.0.0.1", "203.0.113.300", "10.0.0.1"),
        # garbage to the left of the client is never read
        ("10.0.0.1", "garbage, 203.0.113.1", "203.0.113.1"),
        # an unusable peer: no client address at all
        ("", "203.0.113.1", None),
        ("not-an-ip", "203.0.113.1", None),
    ],
)
def test_client_ip_walks_forwarded_for_from_the_right(
    request_from, settings, remote, forwarded, client
):
    settings.TRUSTED_PROXIES = TRUSTED

    assert client_ip(request_from(remote, forwarded)) == client


def test_without_trusted_proxies_the_peer_address_is_used(request_from, settings):
    settings.TRUSTED_PROXIES = []

    assert client_ip(request_from("10.0.0.1", "203.0.113.1")) == "10.0.0.1"
    assert client_ip(request_from("2001:DB8::1", "203.0.113.1")) == "2001:db8::1"


def test_a_single_trusted_address_is_a_network_of_one(request_from, settings):
    settings.TRUSTED_PROXIES = ["10.0.0.1"]

    assert client_ip(request_from("10.0.0.1", "203.0.113.1, 10.0.0.2")) == "10.0.0.2"
    assert client_ip(request_from("10.0.0.2", "203.0.113.1")) == "10.0.0.2"


def test_the_address_found_by_the_middleware_is_reused(request_from, settings):
    settings.TRUSTED_PROXIES = TRUSTED
    request = request_from("10.0.0.1", "203.0.113.1")
    request.client_ip = None  # as RequestContextMiddleware stores it, even when empty

    assert client_ip(request) is None


@pytest.mark.parametrize(
    ("entry", "parsed"),
    [
        ("192.0.2.1", "192.0.2.1"),
        ("192.0.2.1:80", "192.0.2.1"),
        ("[::1]:80", "::1"),
        ("[::1]", "::1"),
        ("::1", "::1"),
        ("192.0.2.1:", None),
        ("[::1", None),
        ("", None),
        ("   ", None),
        ("1.2.3", None),
    ],
)
def test_parse_address(entry, parsed):
    address = parse_address(entry)

    assert (str(address) if address is not None else None) == parsed


def test_log_records_carry_the_request_id_and_client_ip():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello", None, None)
    token = context.bind(context.RequestContext("req-7", "203.0.113.1"))
    try:
        RequestContextFilter().filter(record)
    finally:
        context.reset(token)
    outside = logging.LogRecord("x", logging.INFO, __file__, 1, "hello", None, None)
    RequestContextFilter().filter(outside)

    assert (record.__dict__["request_id"], record.__dict__["client_ip"]) == ("req-7", "203.0.113.1")
    assert (outside.__dict__["request_id"], outside.__dict__["client_ip"]) == ("-", "-")


def test_django_request_log_lines_carry_the_client_of_their_request(request_from, settings):
    settings.TRUSTED_PROXIES = TRUSTED
    request = request_from("10.0.0.1", "203.0.113.1, 192.168.0.2")
    request.request_id = "req-9"
    # django.request writes "Not Found: /x" after the middleware returned, with the request.
    record = logging.LogRecord("django.request", logging.WARNING, __file__, 1, "x", None, None)
    record.request = request

    RequestContextFilter().filter(record)

    assert (record.__dict__["request_id"], record.__dict__["client_ip"]) == ("req-9", "203.0.113.1")


def test_the_console_handler_prints_the_request_id_and_client_ip(settings):
    formatter = logging.Formatter(settings.LOGGING["formatters"]["plain"]["format"])
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello", None, None)
    token = context.bind(context.RequestContext("req-8", "198.51.100.4"))
    try:
        RequestContextFilter().filter(record)
    finally:
        context.reset(token)

    assert formatter.format(record).endswith("[req-8 198.51.100.4] hello")
    assert settings.LOGGING["handlers"]["console"]["filters"] == ["request"]
