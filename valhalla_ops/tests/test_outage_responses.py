"""Whatever part of a request meets a lost database connection, the answer is the outage's 503."""

import pytest
from django.db import OperationalError
from django.db.models import QuerySet

from valhalla_ops import metrics

pytestmark = pytest.mark.django_db


@pytest.fixture
def cut_database(monkeypatch):
    """cut_database(): every query from then on fails as a lost connection does."""

    def refuse(*args, **kwargs):
        raise OperationalError("connection to server at 127.0.0.1 failed: Connection refused")

    def cut() -> None:
        monkeypatch.setattr(QuerySet, "_fetch_all", refuse)
        monkeypatch.setattr(QuerySet, "count", refuse)

    return cut


def test_an_api_read_gets_a_json_503(viewer, cut_database, settings):
    before = metrics.outage_responses.labels("database")._value.get()
    cut_database()

    response = viewer.get("/system/ratelimits/rules")

    assert response.status_code == 503
    assert response["Retry-After"] == str(settings.OUTAGE_RETRY_AFTER)
    assert response["Cache-Control"] == "no-store"
    assert response.json() == {
        "status_code": 503,
        "detail": "The database is unavailable. Nothing was changed; try again shortly.",
        "unavailable": "database",
    }
    assert metrics.outage_responses.labels("database")._value.get() == before + 1


def test_an_admin_page_gets_an_html_503(client, superuser, cut_database):
    client.force_login(superuser)
    client.raise_request_exception = False
    cut_database()

    response = client.get("/admin/ratelimits/ratelimitrule/", HTTP_ACCEPT="text/html")

    assert response.status_code == 503
    assert response["Content-Type"].startswith("text/html")
    assert "briefly unavailable" in response.content.decode()


def test_an_error_in_a_middleware_is_a_503_too(viewer, monkeypatch):
    from ratelimits import middleware

    def refuse(*args, **kwargs):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(middleware.RateLimitMiddleware, "__call__", refuse)
    viewer.raise_request_exception = False  # as a real server: Django's handling, not a re-raise

    response = viewer.get("/system/ratelimits/rules")

    assert response.status_code == 503
    assert response.json()["unavailable"] == "database"


def test_other_errors_stay_500(viewer, monkeypatch):
    from ratelimits import views

    def fail(*args, **kwargs):
        raise ValueError("a bug")

    monkeypatch.setattr(views.RateLimitRuleViewSet, "list", fail)
    viewer.raise_request_exception = False

    response = viewer.get("/system/ratelimits/rules")

    assert response.status_code == 500
