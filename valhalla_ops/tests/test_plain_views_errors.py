"""The views outside DRF answer errors in the same JSON shape as the API."""

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics", "/favicon.ico"])
@pytest.mark.parametrize("method", ["post", "put", "delete"])
def test_a_write_to_a_read_only_view_is_a_json_405(path, method):
    response = getattr(Client(enforce_csrf_checks=True), method)(path)

    assert response.status_code == 405
    assert response["Allow"] == "GET, HEAD"
    assert response.json() == {
        "status_code": 405,
        "detail": f'Method "{method.upper()}" not allowed.',
    }


def test_a_csrf_refusal_is_json_for_an_api_caller():
    response = Client(enforce_csrf_checks=True).post(
        "/admin/login/", {"username": "x", "password": "y"}, HTTP_ACCEPT="application/json"
    )

    assert response.status_code == 403
    body = response.json()
    assert body["status_code"] == 403
    assert body["detail"].startswith("CSRF verification failed: ")


def test_a_csrf_refusal_is_django_s_page_for_a_browser():
    response = Client(enforce_csrf_checks=True).post(
        "/admin/login/", {"username": "x", "password": "y"}, HTTP_ACCEPT="text/html"
    )

    assert response.status_code == 403
    assert response["Content-Type"].startswith("text/html")
    assert b"CSRF" in response.content
