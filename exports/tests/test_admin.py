import pytest
from django.utils import timezone

from exports import dashboard
from exports.models import ExportJob
from valhalla_ops import ops
from valhalla_ops.models import SystemLog
from valhalla_ops.principals import SYSTEM

pytestmark = pytest.mark.django_db

URL = "/admin/exports/exportjob/"


@pytest.fixture
def staff(client, staff_user):
    client.force_login(staff_user)
    return client


def test_changelist_with_filters(staff, make_job):
    make_job(status="failed", error_message="boom")

    response = staff.get(URL, {"status__exact": "failed", "q": "boom"})

    assert response.status_code == 200
    assert response.context["cl"].result_count == 1


def test_add_goes_through_the_service(staff, staff_user):
    data = {
        "job_type": "audit_log_export",
        "param_start_date": "2024-01-01",
        "param_end_date": "2024-01-31",
        "requested_by": "admin@example.com",
    }

    response = staff.post(f"{URL}add/", data)

    assert response.status_code == 302
    job = ExportJob.objects.get()
    assert job.filter_params["format"] == "csv"
    assert job.requested_by_actor == "staff"
    assert SystemLog.objects.get(action="exports.create").actor == "staff"


def test_add_shows_filter_param_errors(staff):
    data = {
        "job_type": "audit_log_export",
        "param_start_date": "2024-02-01",
        "param_end_date": "2024-01-31",
    }

    response = staff.post(f"{URL}add/", data)

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert errors["param_end_date"] == ["end_date must be on or after start_date."]
    assert not ExportJob.objects.exists()


def test_change_page_is_read_only(staff, make_job):
    job = make_job(status="completed", storage_url="s3://b/x", completed_at=timezone.now())

    response = staff.get(f"{URL}{job.pk}/change/")

    assert response.status_code == 200
    assert response.context["adminform"].form.fields == {}


def test_retry_action(staff, make_job):
    failed = make_job(status="failed", error_message="boom")
    pending = make_job()

    staff.post(URL, {"action": "retry_jobs", "_selected_action": [failed.pk, pending.pk]})

    failed.refresh_from_db()
    pending.refresh_from_db()
    assert failed.status == ExportJob.Status.PENDING
    assert pending.status == ExportJob.Status.PENDING
    assert SystemLog.objects.filter(action="exports.retry").count() == 1


def test_cancel_action(staff, make_job):
    pending = make_job()
    running = make_job(status="running")

    staff.post(URL, {"action": "cancel_jobs", "_selected_action": [pending.pk, running.pk]})

    pending.refresh_from_db()
    running.refresh_from_db()
    assert pending.status == ExportJob.Status.FAILED
    assert running.status == ExportJob.Status.RUNNING


def test_running_job_cannot_be_deleted(staff, make_job):
    job = make_job(status="running")

    response = staff.post(f"{URL}{job.pk}/delete/", {"post": "yes"})

    assert response.status_code == 403
    assert ExportJob.objects.filter(pk=job.pk).exists()


def test_delete_is_audited(staff, make_job):
    job = make_job(status="failed")

    staff.post(f"{URL}{job.pk}/delete/", {"post": "yes"})

    assert not ExportJob.objects.exists()
    assert SystemLog.objects.filter(action="exports.delete").count() == 1


def test_dashboard_rows(make_job):
    make_job()
    make_job(status="running")
    make_job(status="failed")

    rows = {label: (value, level) for label, value, level in dashboard.dashboard_rows()}

    assert rows["Pending"] == (1, "ok")
    assert rows["Running"] == (1, "ok")
    assert rows["Failed (last 24 h)"] == (1, "error")
    assert rows["Oldest pending"] == ("0\xa0minutes old", "ok")


def test_admin_index_shows_the_box(staff, make_job):
    make_job()

    response = staff.get("/admin/")

    assert response.status_code == 200
    assert "Oldest pending" in response.content.decode()


def test_security_snapshot_section(make_job):
    make_job(requested_by_actor="client:billing")

    data = ops.security_snapshot(actor=SYSTEM, params={})

    assert data["exports"]["pending"] == 1
    assert data["exports"]["requesters_last_24h"] == ["client:billing"]
