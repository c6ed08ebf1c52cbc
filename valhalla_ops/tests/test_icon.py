"""Browsers ask every site for /favicon.ico; it is answered, without a query or a log line."""

import pytest

pytestmark = pytest.mark.django_db


def test_the_site_icon_is_served_without_a_query(
    client, settings, django_assert_num_queries, caplog
):
    settings.MAINTENANCE_STATE_CACHE_SECONDS = 60
    settings.RATELIMIT_RULES_CACHE_SECONDS = 60
    client.get("/favicon.ico")  # warms the middlewares' own caches

    with django_assert_num_queries(0):
        response = client.get("/favicon.ico")

    assert response.status_code == 200
    assert response["Content-Type"] == "image/svg+xml"
    assert response.content.startswith(b"<svg")
    assert "max-age" in response["Cache-Control"]
    assert not [r for r in caplog.records if r.name == "django.request"]


def test_the_site_icon_refuses_writes(client):
    assert client.post("/favicon.ico").status_code == 405
