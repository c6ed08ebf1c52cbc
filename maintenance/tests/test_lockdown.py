"""The emergency-lockdown procedure of the operations guide, end to end through the API."""

import pytest
from rest_framework.test import APIClient

from clients.models import ApiClient
from ratelimits.models import RateLimitRule
from valhalla_ops.models import SystemLog

# Committed for real: a switch publishes to Redis when it commits, as in production.
pytestmark = pytest.mark.django_db(transaction=True)

BLOCK = {"scope": "ip", "key": "198.51.100.23", "max_requests": 1, "window_seconds": 3600}


@pytest.fixture
def leaked_key(make_api_client):
    client, key = make_api_client(name="leaked", groups=("ops-operator",))
    return client, key


def caller(key: str) -> APIClient:
    api = APIClient()
    api.credentials(HTTP_X_API_KEY=key)
    return api


def test_emergency_lockdown_through_the_rest_api(ops_admin, leaked_key):
    leaked, key = leaked_key
    thief = caller(key)

    locked = ops_admin.post("/system/maintenance/state/read_only?reason=EMERGENCY")
    refused = thief.post("/system/clients/", {"name": "x", "client_type": "svc"}, format="json")
    snapshot = ops_admin.post("/admin/ops/", {"action": "security_snapshot"}, format="json")
    deactivated = ops_admin.post(f"/system/clients/{leaked.pk}/deactivate")
    blocked = ops_admin.post("/system/ratelimits/rules", BLOCK, format="json")
    locked_out = thief.get("/system/clients/")
    resumed = ops_admin.post("/system/maintenance/state/normal")
    write_after = ops_admin.post(
        "/system/clients/", {"name": "new", "client_type": "svc"}, format="json"
    )

    assert (locked.status_code, locked.json()["reason"]) == (200, "EMERGENCY")
    assert refused.status_code == 503
    assert snapshot.json()["data"]["maintenance"]["mode"] == "read_only"
    assert deactivated.status_code == 200
    assert blocked.status_code == 201
    assert locked_out.status_code == 401
    assert resumed.json()["mode"] == "normal"
    assert write_after.status_code == 201
    assert not ApiClient.objects.get(pk=leaked.pk).active
    assert RateLimitRule.objects.filter(key=BLOCK["key"], max_requests=1).exists()
    contained = SystemLog.objects.filter(
        action__in=["clients.deactivate", "ratelimits.create_rule"]
    ).values_list("action", "context__during_mode")
    assert sorted(contained) == [
        ("clients.deactivate", "read_only"),
        ("ratelimits.create_rule", "read_only"),
    ]


def test_emergency_lockdown_through_admin_ops(ops_admin, leaked_key):
    leaked, _key = leaked_key

    def ops(action: str, **params: object) -> dict:
        response = ops_admin.post(
            "/admin/ops/", {"action": action, "params": params}, format="json"
        )
        assert response.status_code == 200, response.content
        return response.json()["data"]

    ops("set_maintenance_mode", mode="read_only", reason="EMERGENCY")
    snapshot = ops("security_snapshot")
    ops("deactivate_client", client_id=leaked.pk)
    rule = ops("block", scope="ip", key="198.51.100.23")
    state = ops("set_maintenance_mode", mode="normal", reason="contained")

    assert snapshot["maintenance"]["reason"] == "EMERGENCY"
    assert not ApiClient.objects.get(pk=leaked.pk).active
    assert RateLimitRule.objects.get(pk=rule["id"]).max_requests == 1
    assert state["mode"] == "normal"
