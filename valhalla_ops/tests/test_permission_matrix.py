"""Every operation of the OpenAPI schema, times every kind of caller: who gets in is written down once.

Allowed callers may still get a 4xx for the (deliberately empty) input, but never 401/403/405
and never a 5xx; everyone else gets exactly 401 (no valid credentials) or 403.
"""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone
from rest_framework.test import APIClient

from clients import services
from clients.tests.fixtures import tampered
from valhalla_ops.principals import SYSTEM
from valhalla_ops.tests.api_schema import METHODS, methods_of, operations, paths

pytestmark = pytest.mark.django_db

VIEWER, OPERATOR, ADMIN = "ops-viewer", "ops-operator", "ops-admin"
RANK = {VIEWER: 1, OPERATOR: 2, ADMIN: 3}
# The least role each write needs; every read needs ops-viewer.
WRITES = {
    "POST /admin/ops/": ADMIN,
    "POST /system/maintenance/state/": ADMIN,
    "POST /system/maintenance/state/{mode}/": ADMIN,
    "POST /system/maintenance/windows/": ADMIN,
    "PATCH /system/maintenance/windows/{id}/": ADMIN,
}
CALLERS = [
    "anonymous",
    "garbage key",
    "deactivated key",
    "expired key",
    "staff without groups",
    VIEWER,
    OPERATOR,
    ADMIN,
]


def least_role(op_id: str) -> str:
    if op_id.startswith("GET "):
        return VIEWER
    return WRITES.get(op_id, OPERATOR)


def make_caller(kind: str, django_user_model) -> APIClient:
    caller = APIClient()
    if kind == "anonymous":
        return caller
    if kind == "staff without groups":
        caller.force_login(django_user_model.objects.create(username="bare", is_staff=True))
        return caller
    if kind == "garbage key":
        _client, key = services.create_client(actor=SYSTEM, name="real", client_type="service")
        caller.credentials(HTTP_X_API_KEY=tampered(key))
        return caller
    group = ADMIN if kind in ("deactivated key", "expired key") else kind
    expires = timezone.now() - timedelta(seconds=1) if kind == "expired key" else None
    _client, key = services.create_client(
        actor=SYSTEM,
        name=f"caller {kind}",
        client_type="service",
        groups=[Group.objects.get(name=group)],
        expires_at=expires,
        active=kind != "deactivated key",
    )
    caller.credentials(HTTP_X_API_KEY=key)
    return caller


def expected(kind: str, op_id: str) -> str:
    if kind in ("anonymous", "garbage key", "deactivated key", "expired key"):
        return "401"
    if kind == "staff without groups" or RANK[kind] < RANK[least_role(op_id)]:
        return "403"
    return "allowed"


@pytest.mark.parametrize("kind", CALLERS)
@pytest.mark.parametrize("op", operations(), ids=lambda op: op.id)
def test_who_may_call_each_operation(op, kind, resources, django_user_model):
    caller = make_caller(kind, django_user_model)
    body: dict | None = {} if op.method in ("post", "put", "patch") else None
    if op.path == "/admin/ops/":
        body = {"action": "snapshot_ratelimits"}  # a mutating action: ops-admin only

    response = getattr(caller, op.method)(resources[op.path], body, format="json")

    want = expected(kind, op.id)
    if want == "allowed":
        assert response.status_code not in (401, 403, 405), response.content
        assert response.status_code < 500, response.content
    else:
        assert response.status_code == int(want), response.content
        # The one error shape, or admin ops' own {ok, action, data, error}.
        assert response.json().get("status_code", int(want)) == int(want)
        assert response.json().get("ok") in (None, False)


@pytest.mark.parametrize("kind", [VIEWER, OPERATOR, ADMIN])
@pytest.mark.parametrize("path", paths())
def test_a_method_a_resource_lacks_is_405_for_whoever_may_read_it(
    path, kind, resources, django_user_model
):
    caller = make_caller(kind, django_user_model)
    missing = [method for method in METHODS if method not in methods_of(path)]

    statuses = {
        m: getattr(caller, m)(resources[path], {}, format="json").status_code for m in missing
    }

    assert statuses == dict.fromkeys(missing, 405)
