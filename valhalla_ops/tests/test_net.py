from typing import Any

import pytest
from django.test import RequestFactory

from valhalla_ops.net import client_ip


@pytest.fixture
def request_from():
    factory = RequestFactory()

    def make(remote: str, forwarded: str | None = None):
        extra: dict[str, Any] = {"REMOTE_ADDR": remote}
        if forwarded is not None:
            extra["HTTP_X_FORWARDED_FOR"] = forwarded
        return factory.get("/", **extra)

    return make


def test_without_trusted_proxies_the_peer_address_is_used(request_from, settings):
    settings.TRUSTED_PROXIES = []

    assert client_ip(request_from("198.51.100.7", "203.0.113.1")) == "198.51.100.7"


def test_a_spoofed_header_from_an_untrusted_peer_changes_nothing(request_from, settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]

    assert client_ip(request_from("198.51.100.7", "203.0.113.1")) == "198.51.100.7"


def test_a_trusted_proxy_is_believed(request_from, settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]

    assert client_ip(request_from("10.1.2.3", "203.0.113.1")) == "203.0.113.1"
    assert client_ip(request_from("10.1.2.3", "6.6.6.6, 203.0.113.1")) == "203.0.113.1"


def test_garbage_from_a_trusted_proxy_falls_back_to_the_peer(request_from, settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]

    assert client_ip(request_from("10.1.2.3", "not-an-ip")) == "10.1.2.3"


def test_ipv6_client_through_a_trusted_proxy(request_from, settings):
    settings.TRUSTED_PROXIES = ["10.0.0.1"]

    assert client_ip(request_from("10.0.0.1", "2001:db8::1")) == "2001:db8::1"
