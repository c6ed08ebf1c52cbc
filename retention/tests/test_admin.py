from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from retention import dashboard, purger
from retention.models import DataRetentionPolicy, PurgeRun
from valhalla_ops import ops
from valhalla_ops.models import SystemLog
from valhalla_ops.principals import SYSTEM

pytestmark = pytest.mark.django_db

URL = "/admin/retention/dataretentionpolicy/"


@pytest.fixture
def staff(client, staff_user):
    client.force_login(staff_user)
    return client


def old_log() -> None:
    with time_machine.travel(timezone.now() - timedelta(days=400), tick=False):
        SystemLog.objects.create(category="old", action="old.row", message="old")


def messages_of(response) -> str:
    return " ".join(str(message) for message in response.context["messages"])


def test_changelist(staff, make_policy):
    make_policy("audit_logs", 365)

    response = staff.get(URL, {"enabled__exact": "1"})

    assert response.status_code == 200
    assert response.context["cl"].result_count == 1


def test_add_goes_through_the_service(staff):
    data = {"category": "audit_logs", "days_to_keep": "365", "enabled": "on", "description": "1y"}

    response = staff.post(f"{URL}add/", data)

    assert response.status_code == 302
    assert DataRetentionPolicy.objects.get().days_to_keep == 365
    assert SystemLog.objects.get(action="retention.create").actor == "staff"


def test_add_offers_only_registered_categories(staff):
    response = staff.post(f"{URL}add/", {"category": "temp_data", "days_to_keep": "5"})

    assert response.status_code == 200
    assert "category" in response.context["adminform"].form.errors
    assert not DataRetentionPolicy.objects.exists()


def test_change_goes_through_the_service(staff, make_policy):
    policy = make_policy("audit_logs", 365)

    staff.post(f"{URL}{policy.pk}/change/", {"days_to_keep": "30", "description": "short"})

    policy.refresh_from_db()
    assert (policy.days_to_keep, policy.enabled, policy.category) == (30, False, "audit_logs")
    assert SystemLog.objects.filter(action="retention.update").count() == 1


def test_dry_run_action_deletes_nothing(staff, make_policy):
    policy = make_policy("audit_logs", 30)
    old_log()

    response = staff.post(URL, {"action": "dry_run", "_selected_action": [policy.pk]}, follow=True)

    assert "audit_logs: would delete 1 row(s)" in messages_of(response)
    assert SystemLog.objects.filter(action="old.row").count() == 1


def test_purge_now_action(staff, make_policy):
    policy = make_policy("audit_logs", 30)
    old_log()

    response = staff.post(
        URL, {"action": "purge_now", "_selected_action": [policy.pk]}, follow=True
    )

    run = PurgeRun.objects.get()
    assert f"audit_logs: purge scheduled (run #{run.pk})" in messages_of(response)
    assert run.status == PurgeRun.Status.SCHEDULED
    # The page returned before the purge: the row is still there until the worker runs.
    assert SystemLog.objects.filter(action="old.row").count() == 1

    assert purger.run_retention() == 1

    run.refresh_from_db()
    assert (run.status, run.deleted) == (PurgeRun.Status.COMPLETED, 1)
    assert not SystemLog.objects.filter(action="old.row").exists()


def test_purge_now_twice_reports_the_run_in_hand(staff, make_policy):
    policy = make_policy("audit_logs", 30)
    staff.post(URL, {"action": "purge_now", "_selected_action": [policy.pk]})

    response = staff.post(
        URL, {"action": "purge_now", "_selected_action": [policy.pk]}, follow=True
    )

    assert "already scheduled or running" in messages_of(response)
    assert PurgeRun.objects.count() == 1


def test_disable_action(staff, make_policy):
    policy = make_policy("audit_logs", 30)

    staff.post(URL, {"action": "disable_policies", "_selected_action": [policy.pk]})

    policy.refresh_from_db()
    assert policy.enabled is False


def test_purge_runs_are_read_only(staff, make_policy):
    from retention import purger

    purger.purge_policy(policy=make_policy("admin_log", 30), actor=SYSTEM)
    run = PurgeRun.objects.get()

    assert staff.get("/admin/retention/purgerun/").status_code == 200
    assert staff.get("/admin/retention/purgerun/add/").status_code == 403
    assert (
        staff.post(f"/admin/retention/purgerun/{run.pk}/delete/", {"post": "yes"}).status_code
        == 403
    )
    assert PurgeRun.objects.filter(pk=run.pk).exists()


def test_dashboard_shows_policies_and_last_purge(make_policy):
    from retention import purger

    make_policy("audit_logs", 365)
    purger.purge_policy(policy=make_policy("admin_log", 30), actor=SYSTEM)

    rows = {label: (value, level) for label, value, level in dashboard.dashboard_rows()}

    assert rows["audit_logs"] == ("365 days; never purged", "ok")
    assert rows["admin_log"][0].startswith("30 days; last purge ")
    assert rows["admin_log"][0].endswith("0 deleted (completed)")


def test_dashboard_counts_categories_without_a_policy(make_policy):
    from valhalla_ops import registry

    make_policy("audit_logs", 365)

    rows = {label: value for label, value, _ in dashboard.dashboard_rows()}

    assert rows["categories kept forever (no policy)"] == len(registry.retention_categories) - 1


def test_admin_index_shows_the_box(staff, make_policy):
    make_policy("audit_logs", 365)

    response = staff.get("/admin/")

    assert response.status_code == 200
    assert "365 days; never purged" in response.content.decode()


def test_dashboard_shows_the_pause(make_policy, set_maintenance_mode):
    set_maintenance_mode("read_only")

    rows = dashboard.dashboard_rows()

    assert rows[0] == ("Purges", "paused (read_only mode)", "warning")


def test_security_snapshot_section(make_policy):
    make_policy("audit_logs", 365)

    data = ops.security_snapshot(actor=SYSTEM, params={})["retention"]

    assert data["policies"]["audit_logs"]["days_to_keep"] == 365
    assert data["purges_paused"] is False
    assert "admin_log" in data["categories_without_policy"]
