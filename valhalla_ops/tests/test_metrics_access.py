"""/metrics is for staff or allowed addresses, the client address found through TRUSTED_PROXIES."""

import pytest

pytestmark = pytest.mark.django_db


@pytest.fixture
def behind_a_balancer(settings):
    settings.TRUSTED_PROXIES = ["10.9.0.0/16"]
    settings.METRICS_ALLOWED_IPS = ["192.0.2.10"]


def test_a_scraper_behind_a_trusted_proxy_is_recognised(client, behind_a_balancer):
    scraper = client.get("/metrics", REMOTE_ADDR="10.9.0.5", HTTP_X_FORWARDED_FOR="192.0.2.10")
    other = client.get("/metrics", REMOTE_ADDR="10.9.0.5", HTTP_X_FORWARDED_FOR="203.0.113.9")

    assert scraper.status_code == 200
    assert other.status_code == 403  # the balancer's own address is not what is checked


def test_a_forged_forwarded_for_from_an_untrusted_peer_is_ignored(client, behind_a_balancer):
    forged = client.get("/metrics", REMOTE_ADDR="203.0.113.9", HTTP_X_FORWARDED_FOR="192.0.2.10")
    direct = client.get("/metrics", REMOTE_ADDR="192.0.2.10")

    assert forged.status_code == 403
    assert direct.status_code == 200


def test_a_scraper_behind_two_trusted_hops_is_recognised(client, settings):
    settings.TRUSTED_PROXIES = ["10.9.0.0/16", "172.16.0.0/12"]
    settings.METRICS_ALLOWED_IPS = ["192.0.2.10"]

    def scrape(chain: str) -> int:
        return client.get(
            "/metrics", REMOTE_ADDR="10.9.0.5", HTTP_X_FORWARDED_FOR=chain
        ).status_code

    assert scrape("192.0.2.10, 172.16.0.1") == 200
    assert scrape("192.0.2.10, 203.0.113.9, 172.16.0.1") == 403  # forged on the left
    assert scrape("203.0.113.9, 172.16.0.1") == 403
