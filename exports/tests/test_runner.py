import csv
import io
import json
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.apps import apps
from django.core.files.storage import default_storage
from django.db import connection
from django.utils import timezone

from exports import runner, services
from exports.models import ExportJob
from valhalla_ops import registry
from valhalla_ops.models import SystemLog
from valhalla_ops.principals import SYSTEM
from valhalla_ops.registry import ExportJobType

pytestmark = pytest.mark.django_db


def make_logs(count: int, **fields) -> None:
    SystemLog.objects.bulk_create(
        SystemLog(
            category=fields.get("category", "bench"),
            action=f"bench.row{i}",
            message=fields.get("message", f"row {i}"),
            level=fields.get("level", "info"),
            context={"i": i},
        )
        for i in range(count)
    )


def read_file(job: ExportJob) -> str:
    assert job.file.name is not None
    with default_storage.open(job.file.name, "rb") as handle:
        return handle.read().decode("utf-8")


def test_csv_export_of_thousands_of_rows(media, make_job, settings):
    settings.EXPORTS_CHUNK_SIZE = 500
    make_logs(3000)
    job = make_job(filter_params={"format": "csv", "category": "bench"})

    assert runner.run_exports() == 1

    job.refresh_from_db()
    assert job.status == ExportJob.Status.COMPLETED
    assert job.row_count == job.rows_written == 3000
    assert job.storage_url == f"/system/exports/{job.pk}/download"
    rows = list(csv.DictReader(io.StringIO(read_file(job))))
    assert len(rows) == 3000
    assert list(rows[0]) == runner.services.get_job_type("audit_log_export").fields
    assert rows[0]["action"] == "bench.row0"
    assert json.loads(rows[2999]["context"]) == {"i": 2999}
    assert job.file.name.startswith("exports/export-")


def test_jsonl_export_of_thousands_of_rows(media, make_job):
    make_logs(2500)
    job = make_job(filter_params={"format": "jsonl", "category": "bench"})

    runner.run_exports()

    job.refresh_from_db()
    lines = read_file(job).splitlines()
    assert job.row_count == 2500
    assert len(lines) == 2500
    first, last = json.loads(lines[0]), json.loads(lines[-1])
    assert first["action"] == "bench.row0"
    assert last["context"] == {"i": 2499}
    assert job.file.name.endswith(".jsonl")


def test_export_respects_date_range_and_level(media, make_job):
    with time_machine.travel(datetime(2024, 1, 10, 12, tzinfo=UTC), tick=False):
        make_logs(3, level="warning")
        make_logs(2, level="info")
    with time_machine.travel(datetime(2024, 2, 1, 0, 0, 1, tzinfo=UTC), tick=False):
        make_logs(4, level="warning")
    params = {"start_date": "2024-01-01", "end_date": "2024-01-31", "level": "warning"}
    job = services.create_export(actor=SYSTEM, job_type="audit_log_export", filter_params=params)

    runner.run_exports()

    job.refresh_from_db()
    assert job.row_count == 3


def test_export_before_date_as_in_the_seed(media, make_job):
    with time_machine.travel(datetime(2023, 12, 31, 23, 59, tzinfo=UTC), tick=False):
        make_logs(2)
    with time_machine.travel(datetime(2024, 1, 1, 0, 0, tzinfo=UTC), tick=False):
        make_logs(5)
    params = {"before_date": "2024-01-01", "category": "bench"}
    job = services.create_export(actor=SYSTEM, job_type="audit_log_export", filter_params=params)

    runner.run_exports()

    job.refresh_from_db()
    assert job.row_count == 2


def test_api_clients_export_holds_no_key_material(media, make_api_client):
    client, key = make_api_client(name="billing")
    job = services.create_export(
        actor=SYSTEM, job_type="api_clients_export", filter_params={"format": "jsonl"}
    )

    runner.run_exports()

    job.refresh_from_db()
    content = read_file(job)
    record = json.loads(content.splitlines()[0])
    assert record["name"] == "billing"
    assert set(record) == {
        "id",
        "name",
        "client_type",
        "key_prefix",
        "active",
        "created_at",
        "last_used_at",
    }
    assert key not in content
    assert client.key_hash not in content


def test_csv_quotes_spreadsheet_formulas(media, make_job):
    make_logs(1, message='=HYPERLINK("http://evil")')
    job = make_job(filter_params={"category": "bench"})

    runner.run_exports()

    job.refresh_from_db()
    row = next(csv.DictReader(io.StringIO(read_file(job))))
    assert row["message"] == '\'=HYPERLINK("http://evil")'


@pytest.fixture
def broken_type():
    def rows(params):
        raise RuntimeError("the data source is down")

    clients_export = registry.export_job_types.get("api_clients_export")
    assert clients_export is not None
    job_type = ExportJobType(
        name="broken_export",
        description="fails",
        params_serializer=clients_export.params_serializer,
        rows=rows,
        fields=["id"],
    )
    registry.export_job_types.register("broken_export", job_type)
    yield job_type
    registry.export_job_types._entries.pop("broken_export")


def test_failure_fails_the_job_and_the_loop_goes_on(media, make_job, broken_type, caplog):
    broken = make_job(job_type="broken_export")
    fine = make_job(job_type="api_clients_export")

    handled = runner.run_exports()

    broken.refresh_from_db()
    fine.refresh_from_db()
    assert handled == 2
    assert broken.status == ExportJob.Status.FAILED
    assert broken.error_message == "RuntimeError: the data source is down"
    assert broken.locked_until is None
    assert fine.status == ExportJob.Status.COMPLETED
    assert "export %s (%s) failed" in [r.msg for r in caplog.records if r.exc_info]
    assert SystemLog.objects.filter(action="exports.fail", target_id=str(broken.pk)).count() == 1


def test_unregistered_job_type_fails_at_run_time(media, make_job):
    job = make_job(job_type="gone_export")

    runner.run_exports()

    job.refresh_from_db()
    assert job.status == ExportJob.Status.FAILED
    assert "Unknown job_type 'gone_export'" in job.error_message


def test_run_writes_start_and_complete_audit_rows(media, make_job):
    job = make_job(job_type="api_clients_export")

    runner.run_exports()

    actions = list(
        SystemLog.objects.filter(target_id=str(job.pk), target_type="exports.exportjob")
        .order_by("id")
        .values_list("action", "actor")
    )
    assert actions == [("exports.start", "worker:exports"), ("exports.complete", "worker:exports")]


def test_exports_keep_running_in_read_only_mode(media, make_job, set_maintenance_mode):
    job = make_job(job_type="api_clients_export")
    set_maintenance_mode("read_only")

    runner.run_exports()

    job.refresh_from_db()
    assert job.status == ExportJob.Status.COMPLETED


def test_batch_size_bounds_one_step(media, make_job, settings):
    settings.EXPORTS_BATCH_SIZE = 2
    for _ in range(3):
        make_job(job_type="api_clients_export")

    assert runner.run_exports() == 2
    assert runner.run_exports() == 1
    assert runner.run_exports() == 0


def test_expired_lease_brings_a_crashed_job_back(media, make_job, settings):
    settings.EXPORTS_LEASE_SECONDS = 60
    job = make_job(job_type="api_clients_export")
    crashed = services.claim_export(actor=SYSTEM)  # this worker dies before finishing
    assert crashed is not None
    assert crashed.pk == job.pk

    assert services.claim_export(actor=SYSTEM) is None  # leased: nobody else takes it
    with time_machine.travel(timezone.now() + timedelta(seconds=61)):
        handled = runner.run_exports()

    job.refresh_from_db()
    assert handled == 1
    assert job.status == ExportJob.Status.COMPLETED
    assert job.attempts == 2


def test_a_lost_claim_discards_its_result(media, make_job):
    job = make_job(job_type="api_clients_export")
    claimed = services.claim_export(actor=SYSTEM)
    assert claimed is not None
    services.set_export_status(actor=SYSTEM, job=job, status="failed", error_message="by hand")

    runner.run_export(claimed)

    job.refresh_from_db()
    assert job.status == ExportJob.Status.FAILED
    assert job.error_message == "by hand"
    assert default_storage.listdir("exports")[1] == []


def test_a_job_whose_workers_keep_dying_is_failed(make_job, settings):
    past = timezone.now() - timedelta(seconds=1)
    job = make_job(status="running", attempts=settings.EXPORTS_MAX_ATTEMPTS, locked_until=past)

    assert services.claim_export(actor=SYSTEM) is None

    job.refresh_from_db()
    assert job.status == ExportJob.Status.FAILED
    assert "Gave up after 3 attempts" in job.error_message


def test_running_job_without_lease_is_left_to_its_external_worker(make_job):
    make_job(status="running", started_at=timezone.now())

    assert services.claim_export(actor=SYSTEM) is None


def test_snapshot_job_type_follows_the_ratelimits_app():
    has_snapshots = True
    try:
        apps.get_model("ratelimits", "RateLimitSnapshot")
    except LookupError:
        has_snapshots = False

    assert ("ratelimit_snapshots_export" in registry.export_job_types) is has_snapshots


# --- GET /system/exports/{id}/download --------------------------------------------------


@pytest.fixture
def finished_job(media, make_job):
    make_logs(3)
    job = make_job(filter_params={"category": "bench"})
    runner.run_exports()
    job.refresh_from_db()
    return job


def test_download_streams_the_file(viewer, finished_job):
    response = viewer.get(finished_job.storage_url)

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert f'filename="export-{finished_job.pk}.csv"' in response["Content-Disposition"]
    body = b"".join(response.streaming_content).decode()
    assert body == read_file(finished_job)
    assert len(body.splitlines()) == 4


def test_download_of_jsonl(viewer, media, make_job):
    make_logs(2)
    job = make_job(filter_params={"category": "bench", "format": "jsonl"})
    runner.run_exports()
    job.refresh_from_db()

    response = viewer.get(job.storage_url)

    assert response.status_code == 200
    assert response["Content-Type"] == "application/x-ndjson"
    assert f'filename="export-{job.pk}.jsonl"' in response["Content-Disposition"]
    assert len(b"".join(response.streaming_content).splitlines()) == 2


def test_download_of_unfinished_job_is_404(viewer, make_job):
    job = make_job(status="running")

    response = viewer.get(f"/system/exports/{job.pk}/download")

    assert response.status_code == 404


def test_download_of_an_externally_stored_job_is_a_409_with_its_url(viewer, make_job):
    job = make_job(status="completed", storage_url="s3://b/x.csv", completed_at=timezone.now())

    response = viewer.get(f"/system/exports/{job.pk}/download")

    assert response.status_code == 409
    assert response.json() == {
        "status_code": 409,
        "detail": f"Export #{job.pk} is stored elsewhere, not on this server: "
        "fetch it from s3://b/x.csv.",
        "storage_url": "s3://b/x.csv",
    }


def test_the_url_of_an_externally_stored_job_needs_the_download_permission(nobody, make_job):
    job = make_job(status="completed", storage_url="s3://b/x.csv", completed_at=timezone.now())

    response = nobody.get(f"/system/exports/{job.pk}/download")

    assert response.status_code == 403
    assert "s3://" not in response.content.decode()


def test_download_of_unknown_job_is_404(viewer):
    assert viewer.get("/system/exports/999/download").status_code == 404


def test_download_with_the_file_gone_is_404(viewer, finished_job):
    default_storage.delete(finished_job.file.name)

    assert viewer.get(finished_job.storage_url).status_code == 404


def test_download_needs_credentials(api_client, finished_job):
    assert api_client.get(finished_job.storage_url).status_code == 401


def test_download_needs_permission(nobody, finished_job):
    assert nobody.get(finished_job.storage_url).status_code == 403


# --- several workers at once ------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_concurrent_workers_run_each_job_once(postgres, media, make_job, monkeypatch):
    jobs = [make_job(job_type="api_clients_export") for _ in range(8)]
    write = runner.write_export
    # Each worker's first job waits until the other worker holds one too: both run at the
    # same time however late one of them starts.
    both_busy = threading.Barrier(2, timeout=30)
    seen = threading.local()

    def slow_write(job):
        if not getattr(seen, "first", False):
            seen.first = True
            both_busy.wait()
        time.sleep(0.05)
        return write(job)

    monkeypatch.setattr(runner, "write_export", slow_write)
    barrier = threading.Barrier(2)
    handled: list[int] = []

    def work() -> None:
        barrier.wait()
        try:
            total = 0
            while count := runner.run_exports():
                total += count
            handled.append(total)
        finally:
            connection.close()

    threads = [threading.Thread(target=work) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sum(handled) == 8
    assert all(count > 0 for count in handled)
    for job in jobs:
        job.refresh_from_db()
        assert job.status == ExportJob.Status.COMPLETED
        assert job.attempts == 1
    assert SystemLog.objects.filter(action="exports.start").count() == 8
