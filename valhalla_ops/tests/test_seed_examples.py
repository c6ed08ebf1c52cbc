"""Every curl example of the two seed guides, as written, plus an API-key header.

The guides' operational procedures (emergency lockdown, abuse response, scheduled
maintenance, client rotation) run here end to end, in their order.
"""

from datetime import timedelta

import pytest
from django.utils import timezone

from maintenance import state
from valhalla_ops.models import SystemLog

pytestmark = pytest.mark.django_db


@pytest.fixture
def curl(ops_admin, django_capture_on_commit_callbacks):
    """Like the guides' curl: one call, committed (on-commit work runs), JSON body back."""

    def call(method: str, path: str, body: dict | None = None):
        with django_capture_on_commit_callbacks(execute=True):
            response = getattr(ops_admin, method.lower())(path, body, format="json")
        return response

    return call


def test_guide_one_integration_testing(curl):
    rule = curl(
        "POST",
        "/system/ratelimits/rules",
        {"scope": "ip", "key": "192.168.1.1", "max_requests": 100},
    )
    client = curl(
        "POST",
        "/system/clients/",
        {"name": "TestClient", "client_type": "test", "api_key": "sk_test_123"},
    )
    maintenance = curl("GET", "/system/maintenance/state")
    ops = curl("POST", "/admin/ops/", {"action": "get_maintenance_state"})

    assert rule.status_code == 201
    assert (
        rule.json()
        | {"scope": "ip", "key": "192.168.1.1", "max_requests": 100, "window_seconds": 60}
        == rule.json()
    )
    assert rule.json()["enabled"] is True
    assert client.status_code == 201
    assert client.json()["api_key"] == "sk_test_123"
    assert maintenance.status_code == 200
    assert set(maintenance.json()) >= {"mode", "reason", "updated_at"}
    assert ops.status_code == 200
    assert ops.json()["ok"] is True
    assert ops.json()["data"]["mode"] == "normal"


def test_guide_one_route_registration(curl):
    for path in ("/system/ratelimits/rules", "/system/clients/", "/system/maintenance/state"):
        assert curl("GET", path).status_code == 200, path


def test_guide_one_emergency_lockdown(curl, operator):
    lockdown = curl("POST", "/system/maintenance/state/read_only?reason=EMERGENCY")
    blocked = operator.post(
        "/system/ratelimits/rules",
        {"scope": "global", "key": "*", "max_requests": 5},
        format="json",
    )
    snapshot = curl("POST", "/admin/ops/", {"action": "security_snapshot"})
    resume = curl("POST", "/system/maintenance/state/normal")

    assert lockdown.status_code == 200
    assert lockdown.json()["mode"] == "read_only"
    assert lockdown.json()["reason"] == "EMERGENCY"
    assert blocked.status_code == 503
    assert blocked.json() == {
        "status_code": 503,
        "detail": "System is in read-only mode. Write operations are not allowed.",
        "mode": "read_only",
    }
    assert snapshot.json()["ok"] is True
    assert {"clients", "maintenance"} <= set(snapshot.json()["data"])
    assert resume.json()["mode"] == "normal"
    assert state.current_mode() == "normal"


def test_guide_one_client_rotation_and_abuse_response(curl):
    old = curl("POST", "/system/clients/", {"name": "old", "client_type": "service"}).json()
    new = curl("POST", "/system/clients/", {"name": "new", "client_type": "service"})
    deactivated = curl("POST", f"/system/clients/{old['id']}/deactivate")
    rule = curl(
        "POST", "/system/ratelimits/rules", {"scope": "ip", "key": "203.0.113.7", "max_requests": 1}
    )
    snapshots = curl("GET", "/system/ratelimits/snapshots?scope=ip")

    assert new.status_code == 201
    assert deactivated.json()["active"] is False
    assert rule.status_code == 201
    assert snapshots.status_code == 200
    assert "results" in snapshots.json()


def test_guide_one_scheduled_maintenance(curl):
    starts = timezone.now() + timedelta(days=1)
    window = curl(
        "POST",
        "/system/maintenance/windows",
        {
            "starts_at": starts.isoformat(),
            "ends_at": (starts + timedelta(hours=2)).isoformat(),
            "description": "upgrade",
        },
    )
    into_maintenance = curl(
        "POST",
        "/system/maintenance/state",
        {"mode": "maintenance", "reason": f"window {window.json()['id']}"},
    )
    back = curl("POST", "/system/maintenance/state/normal")
    closed = curl("PATCH", f"/system/maintenance/windows/{window.json()['id']}", {"active": False})

    assert window.status_code == 201
    assert into_maintenance.json()["mode"] == "maintenance"
    assert back.json()["mode"] == "normal"
    assert closed.json()["active"] is False


def test_guide_two_notifications(curl):
    channel = curl(
        "POST",
        "/system/notify/channels",
        {
            "name": "owner_email",
            "channel_type": "email",
            "target": "owner@example.com",
            "description": "Email for owner alerts",
        },
    )
    queued = curl(
        "POST",
        "/system/notify/",
        {
            "channel_id": channel.json()["id"],
            "subject": "Alert",
            "body": "System updated",
            "payload": {"resource": "config", "action": "update"},
        },
    )
    pending = curl("GET", "/system/notify/?status=pending")

    assert channel.status_code == 201
    assert queued.status_code == 201
    assert queued.json()["status"] == "pending"
    assert queued.json()["payload"] == {"resource": "config", "action": "update"}
    assert [row["id"] for row in pending.json()["results"]] == [queued.json()["id"]]


def test_guide_two_exports(curl):
    job = curl(
        "POST",
        "/system/exports/",
        {
            "job_type": "audit_log_export",
            "filter_params": {"start_date": "2024-01-01", "end_date": "2024-01-31"},
            "requested_by": "admin@example.com",
        },
    )
    job_id = job.json()["id"]
    running = curl("POST", f"/system/exports/{job_id}/status", {"status": "running"})
    listed = curl("GET", "/system/exports/?status=running")
    completed = curl(
        "POST",
        f"/system/exports/{job_id}/status",
        {"status": "completed", "storage_url": "s3://bucket/exports/job-123.csv"},
    )

    assert job.status_code == 201
    assert job.json()["status"] == "pending"
    assert running.status_code == 200
    assert [row["id"] for row in listed.json()["results"]] == [job_id]
    assert completed.status_code == 200
    assert completed.json()["storage_url"] == "s3://bucket/exports/job-123.csv"
    assert completed.json()["completed_at"] is not None


def test_guide_two_retention(curl):
    created = curl(
        "POST",
        "/system/retention/",
        {
            "category": "audit_logs",
            "days_to_keep": 365,
            "description": "Keep audit logs for 1 year",
        },
    )
    listed = curl("GET", "/system/retention/")
    one = curl("GET", "/system/retention/audit_logs")
    updated = curl(
        "POST",
        "/system/retention/",
        {"category": "audit_logs", "days_to_keep": 730, "description": "Extended to 2 years"},
    )

    assert created.status_code == 201
    assert [row["category"] for row in listed.json()["results"]] == ["audit_logs"]
    assert one.json()["days_to_keep"] == 365
    assert updated.status_code == 200
    assert updated.json()["days_to_keep"] == 730


def test_guide_two_read_only_shield(curl, operator):
    body = {"name": "test", "channel_type": "email", "target": "test@test.com"}
    normal = operator.post("/system/notify/channels", body, format="json")
    curl(
        "POST",
        "/system/maintenance/state",
        {"mode": "read_only", "reason": "Scheduled maintenance"},
    )
    refused = operator.post("/system/notify/channels", {**body, "name": "test2"}, format="json")
    reads = operator.get("/system/notify/channels")

    assert normal.status_code == 201
    assert refused.status_code == 503
    assert refused.json()["mode"] == "read_only"
    assert reads.status_code == 200
    assert SystemLog.objects.filter(action__startswith="maintenance.").exists()
