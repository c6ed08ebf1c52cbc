"""Maintenance in the ops console: admin ops actions, snapshot and dashboard sections."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone

from maintenance import ops, services
from maintenance.models import MaintenanceState
from valhalla_ops import registry
from valhalla_ops.models import SystemLog
from valhalla_ops.principals import SYSTEM

pytestmark = pytest.mark.django_db


def run(caller, action: str, params: dict | None = None):
    return caller.post("/admin/ops/", {"action": action, "params": params or {}}, format="json")


def test_get_maintenance_state_as_in_the_seed(ops_admin):
    response = ops_admin.post("/admin/ops/", {"action": "get_maintenance_state"}, format="json")

    assert response.status_code == 200
    body = response.json()
    assert body["ok"] is True
    assert body["data"]["mode"] == "normal"
    assert body["data"]["next_window"] is None
    assert not MaintenanceState.objects.exists()
    assert SystemLog.objects.filter(action="admin_ops.get_maintenance_state").count() == 1


def test_set_maintenance_mode(ops_admin):
    response = run(ops_admin, "set_maintenance_mode", {"mode": "read_only", "reason": "EMERGENCY"})

    assert response.status_code == 200
    assert response.json()["data"]["mode"] == "read_only"
    stored = MaintenanceState.objects.get()
    assert (stored.mode, stored.reason) == ("read_only", "EMERGENCY")
    assert SystemLog.objects.filter(action="maintenance.set_mode").count() == 1


def test_set_maintenance_mode_with_a_bad_mode_is_a_400(ops_admin):
    response = run(ops_admin, "set_maintenance_mode", {"mode": "panic"})

    assert response.status_code == 400
    assert response.json()["ok"] is False
    assert "Valid modes: normal, read_only, maintenance" in response.json()["error"]
    assert not MaintenanceState.objects.exists()


def test_set_maintenance_mode_needs_the_state_permission(django_user_model, client):
    user = django_user_model.objects.create(username="ops-runner", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="run_admin_ops"))
    client.force_login(user)

    response = client.post(
        "/admin/ops/",
        {"action": "set_maintenance_mode", "params": {"mode": "maintenance"}},
        content_type="application/json",
    )

    assert response.status_code == 403
    assert "change_maintenancestate" in response.json()["error"]
    assert not MaintenanceState.objects.exists()


def test_actions_are_listed(ops_admin):
    names = {
        row["action"]: row["mutating"] for row in run(ops_admin, "list_actions").json()["data"]
    }

    assert names["get_maintenance_state"] is False
    assert names["set_maintenance_mode"] is True


def test_snapshot_section_flags_a_long_non_normal_mode(time_machine, settings):
    settings.MAINTENANCE_ALERT_AFTER = 1800
    start = timezone.now()
    time_machine.move_to(start, tick=False)
    services.set_mode(actor=SYSTEM, mode="maintenance", reason="migration")
    services.create_window(
        actor=SYSTEM,
        starts_at=start + timedelta(days=1),
        ends_at=start + timedelta(days=1, hours=1),
    )

    time_machine.move_to(start + timedelta(minutes=45), tick=False)
    snapshot_section = registry.snapshot_sections.get("maintenance")
    assert snapshot_section is not None
    section = snapshot_section()

    assert section["mode"] == "maintenance"
    assert section["not_normal_for_seconds"] == 45 * 60
    assert section["alert"] is True
    assert section["upcoming_windows"] == 1
    assert section["next_window"]["mode"] == "maintenance"


def test_dashboard_section_shows_mode_reason_since_and_next_window():
    services.set_mode(actor=SYSTEM, mode="read_only", reason="backup")
    now = timezone.now()
    services.create_window(
        actor=SYSTEM, starts_at=now + timedelta(hours=2), ends_at=now + timedelta(hours=3)
    )

    section = registry.dashboard_sections.get("maintenance")
    assert section is not None
    rows = {label: (value, level) for label, value, level in section.render()}

    assert section is ops.DASHBOARD
    assert rows["mode"] == ("read_only", "warning")
    assert rows["reason"][0] == "backup"
    assert rows["since"][0].endswith("ago")
    assert rows["next window"][0].endswith("1\xa0hour, maintenance")


def test_dashboard_in_normal_mode_is_ok():
    rows = {label: (value, level) for label, value, level in ops.dashboard_rows()}

    assert rows["mode"] == ("normal", "ok")
    assert rows["next window"][0] == "none scheduled"
