"""A running export renews its lease as it writes and shows its progress (rows written)."""

import threading
import time
from typing import Any

import pytest
from django.db import OperationalError, connection

from exports import runner, services
from exports.models import ExportJob
from valhalla_ops.models import SystemLog

LEASE = 2


@pytest.fixture
def staff_client(client, staff_user):
    client.force_login(staff_user)
    return client


def make_logs(count: int) -> None:
    SystemLog.objects.bulk_create(
        SystemLog(category="lease", action=f"lease.{i}", message="m") for i in range(count)
    )


def wait_for(condition, timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def paused_export(monkeypatch):
    """The export stops after its first rows until `release` is set; `writing` holds its
    LeaseKeeper. The export's connection is busy streaming: look from another thread."""
    writing: dict[str, Any] = {}
    release = threading.Event()
    add = runner.LeaseKeeper.add

    def paused_add(self, rows):
        if writing:
            return add(self, rows)
        self.rows += rows  # counted, then paused, then checked
        writing["keeper"], writing["rows"] = self, self.rows
        assert release.wait(120)
        return add(self, 0)

    monkeypatch.setattr(runner.LeaseKeeper, "add", paused_add)
    yield writing, release
    release.set()


def in_thread(target) -> threading.Thread:
    def run() -> None:
        try:
            target()
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


@pytest.mark.django_db(transaction=True)  # two workers, each with its own connection
def test_an_export_longer_than_its_lease_runs_once_with_two_workers(
    media, make_job, settings, paused_export, viewer, staff_client
):
    settings.EXPORTS_LEASE_SECONDS = LEASE
    writing, release = paused_export
    make_logs(50)
    job = make_job(filter_params={"format": "csv", "category": "lease"})
    handled: dict[str, int] = {}
    other_tries_after_expiry: list[int] = []
    first_done = threading.Event()

    def first() -> None:
        handled["first"] = runner.run_exports()
        first_done.set()

    def second() -> None:
        total = 0
        while not first_done.is_set():
            try:
                total += runner.run_exports()
            except OperationalError as error:
                # The suite's SQLite database is in memory with a shared cache, where a table
                # another connection writes is "locked" at once instead of waited for (a file
                # database waits): this try claimed nothing, as a waiting one would not.
                if "locked" not in str(error):
                    raise
            if expired_by is not None and time.monotonic() > expired_by:
                other_tries_after_expiry.append(1)
            time.sleep(0.05)
        handled["second"] = total

    expired_by: float | None = None
    threads = [in_thread(first)]
    assert wait_for(lambda: "keeper" in writing)
    expired_by = time.monotonic() + 2 * LEASE  # the first lease is long gone by then
    threads.append(in_thread(second))
    # The other worker keeps trying to claim well past the first lease...
    assert wait_for(lambda: len(other_tries_after_expiry) >= 5)
    # ...while the API and the admin show how far the export got.
    api = viewer.get(f"/system/exports/{job.pk}").data
    admin = staff_client.get("/admin/exports/exportjob/").content.decode()
    release.set()
    for thread in threads:
        thread.join(120)

    assert handled == {"first": 1, "second": 0}
    job.refresh_from_db()
    assert job.status == ExportJob.Status.COMPLETED
    assert job.attempts == 1  # started once
    assert job.row_count == job.rows_written == 50
    assert SystemLog.objects.filter(action="exports.start").count() == 1
    assert api["status"] == "running"
    assert api["rows_written"] == writing["rows"]
    assert api["rows_written"] > 0
    assert "rows written" in admin.lower()


@pytest.mark.django_db(transaction=True)
def test_a_lost_claim_stops_the_export_while_it_writes(media, make_job, settings, paused_export):
    settings.EXPORTS_LEASE_SECONDS = LEASE
    writing, release = paused_export
    make_logs(5)
    job = make_job(filter_params={"format": "jsonl", "category": "lease"})

    thread = in_thread(runner.run_exports)
    assert wait_for(lambda: "keeper" in writing)
    ExportJob.objects.filter(pk=job.pk).update(status="failed", error_message="by hand")
    assert wait_for(writing["keeper"]._lost.is_set)
    release.set()
    thread.join(60)

    job.refresh_from_db()
    assert (job.status, job.error_message) == ("failed", "by hand")
    assert not job.file


@pytest.mark.django_db
def test_renewing_reports_a_lost_claim(make_job):
    job = make_job(status="running", attempts=2)

    assert services.renew_export_lease(job_id=job.pk, attempt=2, rows_written=10) is True
    assert services.renew_export_lease(job_id=job.pk, attempt=1, rows_written=10) is False
    assert services.renew_export_lease(job_id=job.pk + 1, attempt=1, rows_written=1) is None
    job.refresh_from_db()
    assert job.rows_written == 10
    assert job.locked_until is not None
