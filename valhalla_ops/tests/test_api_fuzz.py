"""Property-based fuzzing of the whole API from its own OpenAPI schema (schemathesis).

Whatever a caller sends, the answer is never a server error: every bad input is a 4xx.
The maintenance-state writes and admin ops are left out because switching the system to
read-only turns every later write into the shield's (intended) 503.
"""

import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, settings

from clients import services
from valhalla_ops.principals import SYSTEM

schema = (
    schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application())
    .exclude(path_regex=r"^/system/maintenance/state")
    .exclude(path="/admin/ops/")
    .exclude(path_regex=r"/(deactivate|rotate)/$")  # would revoke the fuzzer's own key
)


@pytest.fixture
def keep_test_connection():
    """Called as a WSGI app, Django closes connections after each request, which would end
    the test's transaction; Django's own test client switches this off the same way."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def admin_key(db, keep_test_connection) -> str:
    from django.contrib.auth.models import Group

    _, key = services.create_client(
        actor=SYSTEM,
        name="fuzzer",
        client_type="test",
        groups=list(Group.objects.filter(name="ops-admin")),
    )
    return key


@pytest.mark.django_db
@schema.parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_input_makes_the_api_fail(case, admin_key):
    case.headers = {}  # no generated credentials: every call is the admin key
    response = case.call(headers={"X-API-Key": admin_key, "Authorization": f"Bearer {admin_key}"})

    assert response.status_code < 500, (
        case.method,
        case.formatted_path,
        case.body,
        response.text[:500],
    )
