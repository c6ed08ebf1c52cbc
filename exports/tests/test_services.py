import threading
import time

import pytest
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from exports import services
from exports.models import ExportJob
from valhalla_ops.exceptions import ServiceError
from valhalla_ops.models import SystemLog
from valhalla_ops.principals import SYSTEM

pytestmark = pytest.mark.django_db


@pytest.fixture
def events(monkeypatch):
    """The notify events the exports services emit, in order."""
    emitted: list[tuple[str, dict]] = []

    def record(*, topic: str, payload: dict, subject: str = "") -> list:
        assert connection.in_atomic_block, "events are emitted inside the change's transaction"
        emitted.append((topic, payload))
        return []

    monkeypatch.setattr(services, "emit_event", record)
    return emitted


def test_create_emits_export_requested(events):
    job = services.create_export(actor=SYSTEM, job_type="api_clients_export")

    assert events == [("export.requested", services.event_payload(job))]
    assert events[0][1]["export_id"] == job.pk
    assert job.requested_by == "system"


def test_completion_emits_export_completed(events, make_job):
    job = make_job(status=ExportJob.Status.RUNNING)

    services.set_export_status(actor=SYSTEM, job=job, status="completed", storage_url="s3://b/x")

    assert [topic for topic, _ in events] == ["export.completed"]
    assert events[0][1]["storage_url"] == "s3://b/x"


def test_failure_emits_export_failed(events, make_job):
    job = make_job()

    services.set_export_status(actor=SYSTEM, job=job, status="failed", error_message="no disk")

    assert [topic for topic, _ in events] == ["export.failed"]
    assert events[0][1]["error_message"] == "no disk"


def test_start_emits_nothing(events, make_job):
    services.set_export_status(actor=SYSTEM, job=make_job(), status="running")

    assert events == []


def test_database_refuses_completed_without_storage_url(make_job):
    job = make_job()

    with pytest.raises(IntegrityError), transaction.atomic():
        ExportJob.objects.filter(pk=job.pk).update(status="completed", completed_at=timezone.now())


def test_database_refuses_unknown_status(make_job):
    job = make_job()

    with pytest.raises(IntegrityError), transaction.atomic():
        ExportJob.objects.filter(pk=job.pk).update(status="stuck")


def test_retry_puts_failed_job_back(make_job):
    job = make_job(status=ExportJob.Status.FAILED, error_message="boom", attempts=2)

    services.retry_export(actor=SYSTEM, job=job)

    job.refresh_from_db()
    assert job.status == ExportJob.Status.PENDING
    assert job.error_message == ""
    assert job.attempts == 0
    assert SystemLog.objects.filter(action="exports.retry", target_id=str(job.pk)).count() == 1


def test_retry_refuses_unfailed_job(make_job):
    job = make_job()

    with pytest.raises(ServiceError, match="Only failed jobs"):
        services.retry_export(actor=SYSTEM, job=job)


def test_cancel_fails_pending_job(make_job):
    job = make_job()

    services.cancel_export(actor=SYSTEM, job=job)

    job.refresh_from_db()
    assert job.status == ExportJob.Status.FAILED
    assert job.error_message == "Cancelled by system."
    assert SystemLog.objects.filter(action="exports.cancel").count() == 1


def test_cancel_refuses_running_job(make_job):
    job = make_job(status=ExportJob.Status.RUNNING)

    with pytest.raises(ServiceError, match="Only pending jobs"):
        services.cancel_export(actor=SYSTEM, job=job)


def test_delete_refuses_running_job(make_job):
    job = make_job(status=ExportJob.Status.RUNNING)

    with pytest.raises(ServiceError, match="running"):
        services.delete_export(actor=SYSTEM, job=job)

    assert ExportJob.objects.filter(pk=job.pk).exists()


def test_delete_removes_the_file_after_commit(make_job, media, django_capture_on_commit_callbacks):
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage

    name = default_storage.save("exports/export-x.csv", ContentFile(b"id\n1\n"))
    job = make_job(status="completed", storage_url="/x", completed_at=timezone.now(), file=name)

    with django_capture_on_commit_callbacks(execute=True):
        services.delete_export(actor=SYSTEM, job=job)

    assert not default_storage.exists(name)
    assert SystemLog.objects.filter(action="exports.delete").count() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_transitions_only_one_wins(postgres, make_job, monkeypatch):
    """Two callers finish the same running job at once: the row lock lets exactly one win."""
    job = make_job(status=ExportJob.Status.RUNNING)
    checked = services.check_transition

    def slow_check(current: str, new: str) -> None:
        checked(current, new)
        time.sleep(0.3)  # hold the lock while the other caller tries

    monkeypatch.setattr(services, "check_transition", slow_check)
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def finish(status: str, **fields: str) -> None:
        barrier.wait()
        try:
            services.set_export_status(actor=SYSTEM, job=job, status=status, **fields)
            outcomes.append(status)
        except ServiceError:
            outcomes.append("refused")
        finally:
            connection.close()

    threads = [
        threading.Thread(target=finish, args=("completed",), kwargs={"storage_url": "s3://b/x"}),
        threading.Thread(target=finish, args=("failed",), kwargs={"error_message": "late"}),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(outcomes) == 2
    assert outcomes.count("refused") == 1
    job.refresh_from_db()
    assert job.status in outcomes
    assert SystemLog.objects.filter(target_type="exports.exportjob").count() == 1
