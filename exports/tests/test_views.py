import pytest

from exports.models import ExportJob
from valhalla_ops.models import SystemLog

pytestmark = pytest.mark.django_db

SEED_JOB = {
    "job_type": "audit_log_export",
    "filter_params": {"start_date": "2024-01-01", "end_date": "2024-01-31"},
    "requested_by": "admin@example.com",
}


def test_create_seed_example(operator):
    response = operator.post("/system/exports/", SEED_JOB, format="json")

    assert response.status_code == 201, response.data
    job = ExportJob.objects.get(pk=response.data["id"])
    assert job.status == ExportJob.Status.PENDING
    assert job.job_type == "audit_log_export"
    assert job.filter_params == {
        "start_date": "2024-01-01",
        "end_date": "2024-01-31",
        "format": "csv",
    }
    assert job.requested_by == "admin@example.com"
    assert job.requested_by_actor == "client:ops-operator-caller"
    assert response.data["status"] == "pending"
    assert response.data["completed_at"] is None


def test_create_writes_one_audit_row(operator):
    response = operator.post("/system/exports", SEED_JOB, format="json")

    rows = SystemLog.objects.filter(action="exports.create", target_id=str(response.data["id"]))
    assert rows.count() == 1
    row = rows.get()
    assert row.actor == "client:ops-operator-caller"
    assert row.after is not None
    assert row.after["status"] == "pending"


def test_create_without_filter_params(operator):
    response = operator.post("/system/exports/", {"job_type": "audit_log_export"}, format="json")

    assert response.status_code == 201, response.data
    assert response.data["filter_params"] == {"format": "csv"}
    assert response.data["requested_by"] == "client:ops-operator-caller"


def test_create_with_null_filter_params(operator):
    body = {"job_type": "api_clients_export", "filter_params": None}

    response = operator.post("/system/exports/", body, format="json")

    assert response.status_code == 201, response.data


def test_create_missing_job_type(operator):
    response = operator.post("/system/exports/", {"filter_params": {}}, format="json")

    assert response.status_code == 400
    assert "job_type" in response.data["errors"]
    assert ExportJob.objects.count() == 0


def test_create_unknown_job_type_lists_registered(operator):
    response = operator.post("/system/exports/", {"job_type": "everything"}, format="json")

    assert response.status_code == 400
    message = response.data["errors"]["job_type"][0]
    assert "Unknown job_type 'everything'" in message
    assert "audit_log_export" in message
    assert "api_clients_export" in message


@pytest.mark.parametrize(
    ("params", "field", "text"),
    [
        ({"start_date": "yesterday"}, "start_date", "Date has wrong format"),
        ({"start_date": "2024-02-01", "end_date": "2024-01-01"}, "end_date", "on or after"),
        ({"level": "loud"}, "level", "not a valid choice"),
        ({"format": "xlsx"}, "format", "not a valid choice"),
        ({"startdate": "2024-01-01"}, "startdate", "Unknown parameter"),
    ],
)
def test_create_bad_filter_params(operator, params, field, text):
    body = {"job_type": "audit_log_export", "filter_params": params}

    response = operator.post("/system/exports/", body, format="json")

    assert response.status_code == 400
    errors = response.data["errors"]["filter_params"]
    assert text in str(errors[field][0])
    assert ExportJob.objects.count() == 0


def test_create_filter_params_must_be_an_object(operator):
    body = {"job_type": "audit_log_export", "filter_params": ["2024-01-01"]}

    response = operator.post("/system/exports/", body, format="json")

    assert response.status_code == 400
    assert "filter_params" in response.data["errors"]


def test_create_needs_credentials(api_client):
    response = api_client.post("/system/exports/", SEED_JOB, format="json")

    assert response.status_code == 401
    assert ExportJob.objects.count() == 0


def test_viewer_cannot_create(viewer):
    response = viewer.post("/system/exports/", SEED_JOB, format="json")

    assert response.status_code == 403
    assert ExportJob.objects.count() == 0


def test_create_needs_permission_to_read_the_data(make_api_client):
    from django.contrib.auth.models import Permission
    from rest_framework.test import APIClient

    client, key = make_api_client(name="exporter")
    perm = Permission.objects.get(codename="add_exportjob")
    group = client.groups.model.objects.create(name="exporters")
    group.permissions.add(perm)
    client.groups.add(group)
    caller = APIClient()
    caller.credentials(HTTP_X_API_KEY=key)

    response = caller.post("/system/exports/", SEED_JOB, format="json")

    assert response.status_code == 403
    assert "valhalla_ops.view_systemlog" in response.data["detail"]
    assert ExportJob.objects.count() == 0


def test_list_filters_by_status_and_job_type(viewer, make_job):
    running = make_job(status=ExportJob.Status.RUNNING)
    make_job(status=ExportJob.Status.PENDING)
    clients_job = make_job(job_type="api_clients_export")

    by_status = viewer.get("/system/exports/?status=running")
    by_type = viewer.get("/system/exports?job_type=api_clients_export")

    assert by_status.status_code == 200
    assert [row["id"] for row in by_status.data["results"]] == [running.pk]
    assert [row["id"] for row in by_type.data["results"]] == [clients_job.pk]


def test_list_bad_status_filter(viewer):
    response = viewer.get("/system/exports/?status=stuck")

    assert response.status_code == 400
    assert "status" in response.data["errors"]


def test_list_paginates_newest_first(viewer, make_job):
    jobs = [make_job() for _ in range(5)]

    first = viewer.get("/system/exports/?limit=2")
    second = viewer.get("/system/exports/?limit=2&offset=2")

    assert first.data["count"] == 5
    assert [row["id"] for row in first.data["results"]] == [jobs[4].pk, jobs[3].pk]
    assert [row["id"] for row in second.data["results"]] == [jobs[2].pk, jobs[1].pk]
    assert first.data["next"] is not None


def test_list_needs_credentials(api_client):
    assert api_client.get("/system/exports/").status_code == 401


def test_list_needs_permission(nobody):
    assert nobody.get("/system/exports/").status_code == 403


def test_list_query_count_is_flat(viewer, make_job, django_assert_max_num_queries, settings):
    # The middlewares' and the key's cached copies must not lapse between the two requests.
    settings.MAINTENANCE_STATE_CACHE_SECONDS = 60
    settings.RATELIMIT_RULES_CACHE_SECONDS = 60
    settings.API_KEY_CACHE_SECONDS = 60
    for _ in range(20):
        make_job()
    viewer.get("/system/exports/")  # warm the API key cache

    with django_assert_max_num_queries(4):
        response = viewer.get("/system/exports/")

    assert len(response.data["results"]) == 20


def test_retrieve(viewer, make_job):
    job = make_job()

    response = viewer.get(f"/system/exports/{job.pk}")

    assert response.status_code == 200
    assert response.data["job_type"] == "audit_log_export"


@pytest.mark.parametrize("ref", ["999999", "abc"])
def test_retrieve_unknown_is_404(viewer, ref):
    response = viewer.get(f"/system/exports/{ref}/")

    assert response.status_code == 404
    assert response.data["status_code"] == 404


def test_list_job_types(viewer):
    response = viewer.get("/system/exports/types")

    assert response.status_code == 200
    names = [row["name"] for row in response.data]
    assert {"audit_log_export", "api_clients_export"} <= set(names)


# --- POST /system/exports/{id}/status ---------------------------------------------------


def test_status_seed_example_completes(operator, make_job):
    job = make_job(status=ExportJob.Status.RUNNING)
    body = {"status": "completed", "storage_url": "s3://bucket/exports/job-123.csv"}

    response = operator.post(f"/system/exports/{job.pk}/status", body, format="json")

    assert response.status_code == 200, response.data
    job.refresh_from_db()
    assert job.status == ExportJob.Status.COMPLETED
    assert job.storage_url == "s3://bucket/exports/job-123.csv"
    assert job.completed_at is not None
    assert response.data["completed_at"] is not None


def test_status_pending_to_running_sets_started_at(operator, make_job):
    job = make_job()

    response = operator.post(
        f"/system/exports/{job.pk}/status/", {"status": "running"}, format="json"
    )

    assert response.status_code == 200
    job.refresh_from_db()
    assert job.status == ExportJob.Status.RUNNING
    assert job.started_at is not None


@pytest.mark.parametrize("start", ["pending", "running"])
def test_status_to_failed_keeps_error_message(operator, make_job, start):
    job = make_job(status=start)
    body = {"status": "failed", "error_message": "disk full"}

    response = operator.post(f"/system/exports/{job.pk}/status", body, format="json")

    assert response.status_code == 200
    job.refresh_from_db()
    assert job.status == ExportJob.Status.FAILED
    assert job.error_message == "disk full"


def test_status_change_writes_one_audit_row(operator, make_job):
    job = make_job()

    operator.post(f"/system/exports/{job.pk}/status", {"status": "running"}, format="json")

    row = SystemLog.objects.get(target_type="exports.exportjob", target_id=str(job.pk))
    assert row.action == "exports.start"
    assert row.before is not None
    assert row.after is not None
    assert row.before["status"] == "pending"
    assert row.after["status"] == "running"


@pytest.mark.parametrize(
    ("start", "target"),
    [
        ("pending", "completed"),
        ("pending", "pending"),
        ("running", "pending"),
        ("running", "running"),
        ("completed", "running"),
        ("completed", "failed"),
        ("completed", "pending"),
        ("failed", "running"),
        ("failed", "completed"),
        ("failed", "pending"),
    ],
)
def test_status_illegal_transition_is_named(operator, make_job, start, target):
    fields = {"storage_url": "s3://b/x.csv", "completed_at": "2024-01-01T00:00:00Z"}
    job = make_job(status=start, **(fields if start == "completed" else {}))
    body = {"status": target, "storage_url": "s3://b/y.csv" if target == "completed" else ""}

    response = operator.post(f"/system/exports/{job.pk}/status", body, format="json")

    assert response.status_code == 400
    assert response.data["errors"]["status"] == [f"Illegal transition {start} → {target}."]
    job.refresh_from_db()
    assert job.status == start
    assert not SystemLog.objects.filter(target_type="exports.exportjob").exists()


def test_status_completed_requires_storage_url(operator, make_job):
    job = make_job(status=ExportJob.Status.RUNNING)

    response = operator.post(
        f"/system/exports/{job.pk}/status", {"status": "completed"}, format="json"
    )

    assert response.status_code == 400
    assert "storage_url" in response.data["errors"]
    job.refresh_from_db()
    assert job.status == ExportJob.Status.RUNNING


def test_status_storage_url_only_for_completed(operator, make_job):
    job = make_job()
    body = {"status": "running", "storage_url": "s3://bucket/x.csv"}

    response = operator.post(f"/system/exports/{job.pk}/status", body, format="json")

    assert response.status_code == 400
    assert "storage_url" in response.data["errors"]


def test_status_bad_storage_url(operator, make_job):
    job = make_job(status=ExportJob.Status.RUNNING)
    body = {"status": "completed", "storage_url": "not a url"}

    response = operator.post(f"/system/exports/{job.pk}/status", body, format="json")

    assert response.status_code == 400
    assert "storage_url" in response.data["errors"]


def test_status_bad_enum(operator, make_job):
    job = make_job()

    response = operator.post(f"/system/exports/{job.pk}/status", {"status": "done"}, format="json")

    assert response.status_code == 400
    assert "not a valid choice" in response.data["errors"]["status"][0]


def test_status_missing(operator, make_job):
    job = make_job()

    response = operator.post(f"/system/exports/{job.pk}/status", {}, format="json")

    assert response.status_code == 400
    assert "status" in response.data["errors"]


def test_status_unknown_job_is_404(operator):
    response = operator.post("/system/exports/424242/status", {"status": "running"}, format="json")

    assert response.status_code == 404


def test_status_needs_credentials(api_client, make_job):
    job = make_job()

    response = api_client.post(
        f"/system/exports/{job.pk}/status", {"status": "running"}, format="json"
    )

    assert response.status_code == 401


def test_viewer_cannot_change_status(viewer, make_job):
    job = make_job()

    response = viewer.post(f"/system/exports/{job.pk}/status", {"status": "running"}, format="json")

    assert response.status_code == 403
    job.refresh_from_db()
    assert job.status == ExportJob.Status.PENDING
